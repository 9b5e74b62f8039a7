//! A client of the management server: one connection, requests answered
//! in order with their typed answers, events kept until asked for.

use std::collections::VecDeque;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::protocol::{
    self, ErrorBody, Event, HelloFrame, Incoming, Op, Request, Welcome, WelcomeFrame,
};

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
    events: VecDeque<Event>,
    /// The server's answer to the `hello`.
    pub hello: Welcome,
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
        let hello = protocol::to_wire(&HelloFrame::of_this_client(token));
        framed.send(Bytes::from(hello)).await?;
        let frame = framed.next().await.ok_or(ClientError::Closed)??;
        let hello = match serde_json::from_slice::<WelcomeFrame>(&frame) {
            Ok(welcome) => welcome.hello,
            Err(_) => match Incoming::decode(&frame) {
                Ok(Incoming::Answer {
                    result: Err(error), ..
                }) => return Err(ClientError::Server(error)),
                _ => return Err(unexpected(&frame)),
            },
        };
        Ok(Self {
            framed,
            next_id: 1,
            events: VecDeque::new(),
            hello,
        })
    }

    /// Sends one request and waits for its answer, read as `A` (the type
    /// [`protocol`] gives the answers of `op`); events that arrive
    /// meanwhile are kept for [`next_event`](Self::next_event).
    pub async fn ask<A: DeserializeOwned>(&mut self, op: Op) -> Result<A, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let request = serde_json::to_vec(&Request { id, op }).expect("requests serialize");
        self.framed.send(Bytes::from(request)).await?;
        loop {
            match self.read().await? {
                Incoming::Event(event) => self.events.push_back(event),
                Incoming::Answer { id: Some(got), .. } if got != id => {
                    return Err(ClientError::Protocol(format!(
                        "an answer to request {got} while waiting for {id}"
                    )));
                }
                Incoming::Answer { result, .. } => {
                    let fields = result.map_err(ClientError::Server)?;
                    return serde_json::from_str(fields.get()).map_err(|e| {
                        ClientError::Protocol(format!("{e} in the answer {}", fields.get()))
                    });
                }
            }
        }
    }

    /// [`ask`](Self::ask) for the answer as plain JSON, for tools that
    /// pass it on without reading it.
    pub async fn call(&mut self, op: Op) -> Result<Value, ClientError> {
        self.ask(op).await
    }

    /// The next event, waiting for one if none is kept;
    /// [`ClientError::Closed`] when the server is gone.
    pub async fn next_event(&mut self) -> Result<Event, ClientError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(event);
        }
        loop {
            match self.read().await? {
                Incoming::Event(event) => return Ok(event),
                Incoming::Answer {
                    result: Err(error), ..
                } => return Err(ClientError::Server(error)),
                Incoming::Answer { .. } => {}
            }
        }
    }

    /// The events kept while waiting for answers, without waiting for more.
    pub fn kept_events(&mut self) -> impl Iterator<Item = Event> + '_ {
        self.events.drain(..)
    }

    async fn read(&mut self) -> Result<Incoming, ClientError> {
        let frame = self.framed.next().await.ok_or(ClientError::Closed)??;
        Incoming::decode(&frame).map_err(|e| {
            ClientError::Protocol(format!("{e} in {}", String::from_utf8_lossy(&frame)))
        })
    }
}

fn unexpected(frame: &[u8]) -> ClientError {
    ClientError::Protocol(String::from_utf8_lossy(frame).into_owned())
}
