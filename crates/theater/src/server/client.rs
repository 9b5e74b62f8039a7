//! A client of the management server: one connection, requests answered
//! in order, events kept until asked for.

use std::collections::VecDeque;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::protocol::{self, ErrorBody, Op, PROTOCOL_VERSION, Request};

/// A request that did not get an answer, or got an error.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    /// The server answered with an error.
    #[error("{0}")]
    Server(ErrorBody),
    #[error("lost the connection to the server: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("the server sent something this client does not understand: {0}")]
    Protocol(String),
}

/// One connection to a management server.
pub struct Client {
    framed: Framed<TcpStream, LengthDelimitedCodec>,
    next_id: u64,
    events: VecDeque<Value>,
    /// The server's `hello` answer.
    pub hello: Value,
}

impl Client {
    /// Connects to `addr` and says hello, with `token` if the server wants one.
    pub async fn connect(addr: &str, token: Option<&str>) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let mut framed = Framed::new(stream, protocol::codec());
        let hello = json!({
            "hello": {
                "version": PROTOCOL_VERSION,
                "token": token,
                "client": format!("theater {}", env!("CARGO_PKG_VERSION")),
            }
        });
        framed
            .send(Bytes::from(
                serde_json::to_vec(&hello).expect("JSON values serialize"),
            ))
            .await?;
        let mut client = Self {
            framed,
            next_id: 1,
            events: VecDeque::new(),
            hello: Value::Null,
        };
        let answer = client.read().await?;
        if let Some(error) = answer.get("error") {
            return Err(ClientError::Server(parse_error(error)?));
        }
        match answer.get("hello") {
            Some(hello) => client.hello = hello.clone(),
            None => return Err(ClientError::Protocol(answer.to_string())),
        }
        Ok(client)
    }

    /// Sends one request and waits for its answer; events that arrive
    /// meanwhile are kept for [`next_event`](Self::next_event).
    pub async fn call(&mut self, op: Op) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let request = serde_json::to_vec(&Request { id, op }).expect("requests serialize");
        self.framed.send(Bytes::from(request)).await?;
        loop {
            let frame = self.read().await?;
            if frame.get("event").is_some() {
                self.events.push_back(frame);
                continue;
            }
            if frame
                .get("id")
                .and_then(Value::as_u64)
                .is_some_and(|got| got != id)
            {
                return Err(ClientError::Protocol(format!(
                    "an answer to request {} while waiting for {id}",
                    frame["id"]
                )));
            }
            if let Some(error) = frame.get("error") {
                return Err(ClientError::Server(parse_error(error)?));
            }
            return match frame.get("ok") {
                Some(ok) => Ok(ok.clone()),
                None => Err(ClientError::Protocol(frame.to_string())),
            };
        }
    }

    /// The next event (`{"event": kind, ...}`), waiting for one if none
    /// is kept; [`ClientError::Closed`] when the server is gone.
    pub async fn next_event(&mut self) -> Result<Value, ClientError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(event);
        }
        loop {
            let frame = self.read().await?;
            if frame.get("event").is_some() {
                return Ok(frame);
            }
            if let Some(error) = frame.get("error") {
                return Err(ClientError::Server(parse_error(error)?));
            }
        }
    }

    /// The events kept while waiting for answers, without waiting for more.
    pub fn kept_events(&mut self) -> impl Iterator<Item = Value> + '_ {
        self.events.drain(..)
    }

    async fn read(&mut self) -> Result<Value, ClientError> {
        let frame = self.framed.next().await.ok_or(ClientError::Closed)??;
        serde_json::from_slice(&frame).map_err(|e| ClientError::Protocol(e.to_string()))
    }
}

fn parse_error(error: &Value) -> Result<ErrorBody, ClientError> {
    serde_json::from_value(error.clone()).map_err(|_| ClientError::Protocol(error.to_string()))
}
