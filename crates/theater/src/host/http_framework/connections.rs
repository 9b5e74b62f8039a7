//! The WebSocket connections of one actor's servers, as the registry
//! keeps them: each connection's state, its outbound buffer of messages
//! the actor pushed, and how it is asked to close. The connection tasks
//! themselves are in [`super::websocket`].

use std::sync::MutexGuard;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::state::{Registry, Shared};
use super::types::{MessageType, WebsocketMessage};

/// Messages pushed with `send-websocket-message` that may wait for one
/// connection. Guards the host against an actor pushing to a client that
/// does not read.
pub const OUTBOUND_BUFFER: usize = 256;

/// Where a WebSocket connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Upgraded or upgrading; the connect handler has not answered yet.
    Connecting,
    Connected,
    /// A close frame is on its way; nothing more is sent.
    Closing,
}

pub struct Connection {
    pub server: u64,
    pub path: String,
    pub state: ConnState,
    pub outbound: mpsc::Sender<WebsocketMessage>,
    /// Cancelled to close the connection; `close_reason` says why.
    pub close: CancellationToken,
    pub close_reason: Option<(u16, String)>,
}

/// What a connection task gets when it is registered.
pub struct NewConnection {
    pub id: u64,
    pub outbound: mpsc::Receiver<WebsocketMessage>,
    pub close: CancellationToken,
}

impl Registry {
    /// Cancels every connection of `server` (on `path`, if given).
    pub fn close_connections(&mut self, server: u64, path: Option<&str>, code: u16, why: &str) {
        for conn in self.connections.values_mut() {
            if conn.server == server && path.is_none_or(|p| p == conn.path) {
                conn.close_reason.get_or_insert((code, why.to_owned()));
                conn.close.cancel();
            }
        }
    }
}

impl Shared {
    /// Registers a connection being upgraded on `server` at `path`.
    pub fn open_connection(
        &self,
        server: u64,
        path: &str,
        cancel: &CancellationToken,
    ) -> NewConnection {
        let (outbound, receiver) = mpsc::channel(OUTBOUND_BUFFER);
        let close = cancel.child_token();
        let mut registry = self.lock();
        registry.next_connection += 1;
        let id = registry.next_connection;
        registry.connections.insert(
            id,
            Connection {
                server,
                path: path.to_owned(),
                state: ConnState::Connecting,
                outbound,
                close: close.clone(),
                close_reason: None,
            },
        );
        NewConnection {
            id,
            outbound: receiver,
            close,
        }
    }

    pub fn set_connection_state(&self, id: u64, state: ConnState) {
        if let Some(conn) = self.lock().connections.get_mut(&id) {
            conn.state = state;
        }
    }

    /// Forgets a closed connection; returns why it was asked to close, if it was.
    pub fn remove_connection(&self, id: u64) -> Option<(u16, String)> {
        self.lock().connections.remove(&id)?.close_reason
    }

    pub fn close_reason(&self, id: u64) -> Option<(u16, String)> {
        self.lock().connections.get(&id)?.close_reason.clone()
    }

    fn connection(&self, server: u64, id: u64) -> Result<MutexGuard<'_, Registry>, String> {
        let registry = self.lock();
        registry.server(server)?;
        match registry.connections.get(&id) {
            Some(conn) if conn.server == server => Ok(registry),
            _ => Err(format!(
                "no open WebSocket connection {id} on server {server}"
            )),
        }
    }

    pub fn send_websocket(
        &self,
        server: u64,
        id: u64,
        message: WebsocketMessage,
    ) -> Result<(), String> {
        match message.ty {
            MessageType::Connect | MessageType::Other(_) => {
                return Err(format!(
                    "a `{}` message cannot be sent: send text, binary, ping, pong or close",
                    serde_json::to_string(&message.ty).unwrap_or_default()
                ));
            }
            MessageType::Ping | MessageType::Pong if message.len() > 125 => {
                return Err("a ping or pong carries at most 125 bytes".into());
            }
            _ => {}
        }
        if message.len() > self.config.max_body_bytes {
            return Err(format!(
                "a message of {} bytes is larger than this actor's limit of {} (`max_body_bytes`)",
                message.len(),
                self.config.max_body_bytes
            ));
        }
        let registry = self.connection(server, id)?;
        let conn = &registry.connections[&id];
        if conn.state == ConnState::Closing {
            return Err(format!("WebSocket connection {id} is closing"));
        }
        conn.outbound.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => format!(
                "WebSocket connection {id} has {OUTBOUND_BUFFER} messages waiting: its client is not reading; try again later"
            ),
            mpsc::error::TrySendError::Closed(_) => format!("WebSocket connection {id} is closed"),
        })
    }

    pub fn close_websocket(&self, server: u64, id: u64) -> Result<(), String> {
        let mut registry = self.connection(server, id)?;
        let conn = registry.connections.get_mut(&id).expect("checked above");
        conn.close_reason.get_or_insert((1000, String::new()));
        conn.close.cancel();
        Ok(())
    }
}
