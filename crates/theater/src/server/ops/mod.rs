//! What each request does: [`Connection::handle`] runs one [`Op`] and
//! answers with that op's type from [`protocol`](super::protocol).
//!
//! - [`actors`]: starting actors and what the server knows of them.
//! - [`messages`]: messages, channels and subscriptions.
//! - [`history`]: replay, fork and revert.
//! - [`lookup`]: finding the actor, chain or channel a request names.
//! - [`cluster`]: the nodes of the server's cluster.

mod actors;
mod cluster;
mod history;
mod lookup;
mod messages;

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::connection::Connection;
use super::protocol::{ErrorBody, ErrorKind, Op, Payload, Pong, Restarted, Stopped};
use super::{DEFAULT_REQUEST_TIMEOUT, MAX_REQUEST_TIMEOUT};
use crate::error::{ActorError, SpawnError};

/// An op's answer, as the JSON its frame carries, or the error instead.
type Answer = Result<Value, ErrorBody>;

/// The JSON of an op's answer.
fn answer(answer: impl Serialize) -> Answer {
    Ok(serde_json::to_value(answer).expect("protocol answers serialize"))
}

fn bad_request(message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(ErrorKind::BadRequest, message)
}

/// A failure to read the log or a chain, which the client cannot help.
fn internal(what: &str, e: impl std::fmt::Display) -> ErrorBody {
    ErrorBody::new(ErrorKind::Internal, format!("reading {what}: {e}"))
}

/// The protocol's form of an actor error.
fn actor_error(e: ActorError) -> ErrorBody {
    let kind = match &e {
        ActorError::UnknownActor(_) | ActorError::Stopped(_) => ErrorKind::UnknownActor,
        ActorError::UnknownChannel(_) => ErrorKind::UnknownChannel,
        ActorError::Timeout { .. } => ErrorKind::Timeout,
        ActorError::BadActorId(_) => ErrorKind::BadRequest,
        _ => ErrorKind::ActorError,
    };
    ErrorBody::new(kind, e.to_string())
}

fn spawn_error(e: SpawnError) -> ErrorBody {
    ErrorBody::new(ErrorKind::SpawnFailed, e.to_string())
}

/// How long to wait for an actor's answer: as asked, within the bounds.
fn timeout(ms: Option<u64>) -> Duration {
    ms.map_or(DEFAULT_REQUEST_TIMEOUT, |ms| {
        Duration::from_millis(ms).min(MAX_REQUEST_TIMEOUT)
    })
}

fn payload(payload: &Payload) -> Result<Vec<u8>, ErrorBody> {
    payload.bytes().map_err(bad_request)
}

impl Connection {
    pub async fn handle(&mut self, op: Op) -> Answer {
        let elsewhere = self.elsewhere(&op).await?;
        if let Some(node) = &elsewhere
            && !matches!(op, Op::Start { .. })
        {
            return self.forward(node, &op).await;
        }
        match op {
            Op::Ping => answer(Pong { pong: true }),
            Op::Start {
                manifest_path,
                manifest,
                base_dir,
                state,
                node: _,
            } => {
                let manifest = self
                    .read_manifest(manifest_path, manifest, base_dir, state)
                    .await?;
                match elsewhere {
                    // Read here, where the client is: `node` needs no files.
                    Some(node) => self.place_on(&node, manifest).await,
                    None => self.start_actor(manifest).await,
                }
            }
            Op::Stop { actor } => {
                let handle = self.running(&actor)?;
                let runtime = &self.shared.runtime;
                runtime.stop(handle.id()).await.map_err(actor_error)?;
                self.release(handle.id()).await;
                answer(Stopped {
                    actor: handle.id(),
                    stopped: true,
                })
            }
            Op::Restart { actor } => {
                let handle = self.running(&actor)?;
                handle.restart().await.map_err(actor_error)?;
                answer(Restarted {
                    actor: handle.id(),
                    restarted: true,
                })
            }
            Op::List { all } => self.list(all).await,
            Op::State { actor } => self.state(&actor).await,
            Op::Events { actor, limit } => self.events(&actor, limit).await,
            Op::Verify { actor } => self.verify(&actor).await,
            Op::Inspect { actor } => self.inspect(&actor).await,
            Op::Tree => self.tree(),
            Op::Nodes => self.nodes().await,
            Op::Migrate { actor, to } => self.migrate(&actor, &to).await,
            Op::Adopt { actor } => self.adopt(&actor).await,
            Op::Place {
                manifest,
                component,
            } => self.place(*manifest, &component).await,
            Op::Send { actor, payload } => self.send_message(&actor, &payload).await,
            Op::Request {
                actor,
                payload,
                timeout_ms,
            } => self.request(&actor, &payload, timeout(timeout_ms)).await,
            Op::OpenChannel {
                actor,
                payload,
                timeout_ms,
            } => {
                self.open_channel(&actor, &payload, timeout(timeout_ms))
                    .await
            }
            Op::ChannelSend { channel, payload } => self.channel_send(channel, &payload).await,
            Op::CloseChannel { channel } => self.close_channel(channel).await,
            Op::Subscribe { actor } => self.subscribe(actor.as_deref()).await,
            Op::Unsubscribe { subscription } => self.unsubscribe(subscription),
            Op::Replay { actor } => self.replay(&actor).await,
            Op::Fork {
                actor,
                at,
                ephemeral_ports,
            } => self.fork(&actor, &at, ephemeral_ports).await,
            Op::Revert { actor, to } => self.revert(&actor, &to).await,
        }
    }
}
