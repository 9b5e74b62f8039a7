//! The management server: a runtime reachable over TCP with
//! length-delimited JSON frames (see [`protocol`] and `docs/protocol.md`).
//!
//! It listens on loopback by default, can require a shared-secret token,
//! and serves each connection in its own task: a bad or hostile client
//! gets an error frame or is closed, and the others are not disturbed.
//! [`Client`] is the matching client, used by the `theater` CLI.

mod client;
mod connection;
mod ops;
pub mod protocol;

pub use client::{Client, ClientError};
pub use protocol::{ErrorBody, ErrorKind, MAX_FRAME_BYTES, PROTOCOL_VERSION};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::SinkExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::FramedWrite;

use crate::id::ActorId;
use crate::runtime::TheaterRuntime;

/// Where the server listens unless told otherwise: loopback only, so
/// nothing outside this machine can reach it.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9000";

/// How long a new connection has to send its `hello`. Guards against
/// clients that connect and hold a slot without speaking.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once; more are told so and closed. Guards the
/// server's memory and tasks against a flood of connections.
pub const MAX_CONNECTIONS: usize = 256;

/// Frames waiting to be written to one client. A client that does not
/// read its events slows its own subscriptions (they report `lagged`),
/// never the runtime.
pub const OUTBOX_CAPACITY: usize = 1024;

/// Default wait for an actor's answer to `request` and `open_channel`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait a client may ask for.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// How the server behaves.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// When set, every connection must present it in its `hello`.
    pub token: Option<String>,
}

/// What the server remembers about actors it started or found running
/// (the runtime keeps their manifests).
#[derive(Debug, Clone)]
pub(crate) struct Started {
    pub started_ms: u64,
}

/// State every connection shares.
pub(crate) struct Shared {
    pub runtime: TheaterRuntime,
    pub config: ServerConfig,
    pub started: Mutex<HashMap<ActorId, Started>>,
}

/// A bound management server.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds `addr` (e.g. [`DEFAULT_LISTEN`], or port 0 for any free port).
    pub async fn bind(
        runtime: TheaterRuntime,
        addr: &str,
        config: ServerConfig,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        // Actors resumed before the server opened keep their first start.
        let started = runtime
            .saved_actors()
            .unwrap_or_default()
            .into_iter()
            .filter(|saved| runtime.actor(saved.id).is_ok())
            .map(|saved| {
                let started_ms = saved.record.started_ms;
                (saved.id, Started { started_ms })
            })
            .collect();
        Ok(Self {
            listener,
            shared: Arc::new(Shared {
                runtime,
                config,
                started: Mutex::new(started),
            }),
        })
    }

    /// The address it is bound to, with the real port when 0 was asked for.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves connections until `shutdown` completes.
    pub async fn serve_until(self, shutdown: impl Future<Output = ()>) {
        tokio::select! {
            () = self.serve() => {}
            () = shutdown => {}
        }
    }

    /// Serves connections for ever.
    pub async fn serve(self) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Running out of descriptors and the like pass; wait a little.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            match slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    let shared = self.shared.clone();
                    tokio::spawn(async move {
                        tracing::debug!(%peer, "connection opened");
                        connection::serve(shared, stream).await;
                        tracing::debug!(%peer, "connection closed");
                        drop(slot);
                    });
                }
                Err(_) => {
                    tokio::spawn(refuse(stream));
                }
            }
        }
    }
}

/// Tells a connection over [`MAX_CONNECTIONS`] so and closes it.
async fn refuse(stream: TcpStream) {
    let mut out = FramedWrite::new(stream, protocol::codec());
    let error = ErrorBody::new(
        ErrorKind::TooManyConnections,
        format!("the server already serves {MAX_CONNECTIONS} connections; retry later"),
    );
    let _ = out
        .send(Bytes::from(protocol::error_frame(None, &error)))
        .await;
}
