//! What each request does.

mod history;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::connection::{After, Connection};
use super::protocol::{ErrorBody, ErrorKind, Op, Payload, put_bytes};
use super::{DEFAULT_REQUEST_TIMEOUT, MAX_REQUEST_TIMEOUT, Started};
use crate::actor::{ActorHandle, now_ms};
use crate::chain::{ChainEvent, Hash};
use crate::error::{ActorError, SpawnError};
use crate::id::ActorId;
use crate::manifest::{Limits, Manifest};
use crate::runtime::{ActorStatus, TheaterRuntime};
use crate::storage::SavedActor;

type Answer = Result<Value, ErrorBody>;

fn bad_request(message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(ErrorKind::BadRequest, message)
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
        match op {
            Op::Ping => Ok(json!({ "pong": true })),
            Op::Start {
                manifest_path,
                manifest,
                base_dir,
                state,
            } => {
                self.start_actor(manifest_path, manifest, base_dir, state)
                    .await
            }
            Op::Stop { actor } => {
                let handle = self.running(&actor)?;
                self.shared
                    .runtime
                    .stop(handle.id())
                    .await
                    .map_err(actor_error)?;
                Ok(json!({ "actor": handle.id().to_string(), "stopped": true }))
            }
            Op::List { all } => self.list(all).await,
            Op::State { actor } => {
                let (id, state) = match self.running(&actor) {
                    Ok(handle) => (handle.id(), handle.state().await.map_err(actor_error)?),
                    Err(e) if e.kind == ErrorKind::UnknownActor => {
                        let saved = self.saved(&actor).await?;
                        (saved.id, saved.latest.and_then(|latest| latest.state))
                    }
                    Err(e) => return Err(e),
                };
                let mut answer = Map::new();
                answer.insert("actor".into(), id.to_string().into());
                put_bytes(&mut answer, "state", state.as_deref());
                Ok(Value::Object(answer))
            }
            Op::Events { actor, limit } => {
                let id = self.any_actor(&actor).await?;
                // Only the events asked for are read, off the runtime's threads.
                let total = self.head(id).await?.map_or(0, |(events, _)| events);
                let start = limit.map_or(0, |limit| total.saturating_sub(limit as u64));
                let events = self.chain_from(id, start).await?;
                Ok(json!({
                    "actor": id.to_string(),
                    "total": start + events.len() as u64,
                    "start": start,
                    "events": events,
                }))
            }
            Op::Verify { actor } => {
                let id = self.any_actor(&actor).await?;
                let head = self.head(id).await?;
                let mut answer = json!({
                    "actor": id.to_string(),
                    "events": head.map_or(0, |(events, _)| events),
                    "head": head.map(|(_, hash)| hex::encode(hash)),
                });
                // Read back from where the log keeps it, states included.
                match self.shared.runtime.verify(id).await {
                    Ok(()) => answer["verified"] = true.into(),
                    Err(failure) => {
                        answer["verified"] = false.into();
                        if let Some(index) = failure.first_bad_event {
                            answer["first_bad_event"] = index.into();
                        }
                        answer["error"] = failure.message.into();
                    }
                }
                Ok(answer)
            }
            Op::Inspect { actor } => self.inspect(&actor).await,
            Op::Send { actor, payload } => {
                let (id, message) = self.addressed(&actor, &payload)?;
                // Answered only once the message is kept: `queued` means it
                // runs once, whatever happens to this process.
                let runtime = &self.shared.runtime;
                runtime.send(None, id, message).await.map_err(actor_error)?;
                Ok(json!({ "actor": id.to_string(), "queued": true }))
            }
            Op::Request {
                actor,
                payload,
                timeout_ms,
            } => {
                let (id, message) = self.addressed(&actor, &payload)?;
                let runtime = &self.shared.runtime;
                let reply = runtime
                    .request(None, id, message, timeout(timeout_ms))
                    .await
                    .map_err(actor_error)?;
                let mut answer = Map::new();
                answer.insert("actor".into(), id.to_string().into());
                put_bytes(&mut answer, "reply", Some(&reply));
                Ok(Value::Object(answer))
            }
            Op::OpenChannel {
                actor,
                payload,
                timeout_ms,
            } => {
                let (id, message) = self.addressed(&actor, &payload)?;
                let channel = self
                    .shared
                    .runtime
                    .open_client_channel(id, message, timeout(timeout_ms))
                    .await
                    .map_err(actor_error)?;
                let mut answer = Map::new();
                answer.insert("channel".into(), channel.id.clone().into());
                answer.insert("actor".into(), id.to_string().into());
                put_bytes(
                    &mut answer,
                    "accept_message",
                    channel.accept_message.as_deref(),
                );
                self.after.push(After::Channel(channel));
                Ok(Value::Object(answer))
            }
            Op::ChannelSend {
                channel,
                payload: p,
            } => {
                self.own_channel(&channel)?;
                let message = payload(&p)?;
                self.shared
                    .runtime
                    .send_on_channel(None, &channel, message)
                    .map_err(actor_error)?;
                Ok(json!({ "channel": channel, "queued": true }))
            }
            Op::CloseChannel { channel } => {
                self.own_channel(&channel)?;
                if let Some(task) = self.channels.remove(&channel) {
                    task.abort();
                }
                self.shared
                    .runtime
                    .close_channel(None, &channel)
                    .map_err(actor_error)?;
                Ok(json!({ "channel": channel, "closed": true }))
            }
            Op::Subscribe { actor } => {
                let actor = actor
                    .as_deref()
                    .map(|a| self.running(a).map(|h| h.id()))
                    .transpose()?;
                let id = self.next_subscription;
                self.next_subscription += 1;
                // Subscribed before the answer leaves: nothing after it is missed.
                let events = self.shared.runtime.subscribe();
                self.after.push(After::Subscription { id, events, actor });
                Ok(json!({
                    "subscription": id,
                    "actor": actor.map(|a| a.to_string()),
                }))
            }
            Op::Unsubscribe { subscription } => {
                let task = self.subscriptions.remove(&subscription).ok_or_else(|| {
                    ErrorBody::new(
                        ErrorKind::UnknownSubscription,
                        format!("this connection has no subscription {subscription}"),
                    )
                })?;
                task.abort();
                Ok(json!({ "subscription": subscription, "unsubscribed": true }))
            }
            Op::Restart { actor } => {
                let handle = self.running(&actor)?;
                handle.restart().await.map_err(actor_error)?;
                Ok(json!({ "actor": handle.id().to_string(), "restarted": true }))
            }
            Op::Tree => {
                let runtime = &self.shared.runtime;
                let mut roots: Vec<Value> = runtime
                    .actor_ids()
                    .into_iter()
                    .filter(|id| runtime.parent(*id).is_none())
                    .map(|id| tree_node(runtime, id))
                    .collect();
                roots.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
                Ok(json!({ "roots": roots }))
            }
            Op::Replay { actor } => self.replay(&actor).await,
            Op::Fork {
                actor,
                at,
                ephemeral_ports,
            } => self.fork(&actor, &at, ephemeral_ports).await,
            Op::Revert { actor, to } => self.revert(&actor, &to).await,
        }
    }

    async fn start_actor(
        &mut self,
        manifest_path: Option<String>,
        manifest_text: Option<String>,
        base_dir: Option<String>,
        state: Option<Value>,
    ) -> Answer {
        // Read on a blocking thread: a manifest may name a slow or hostile file.
        let rules = self.shared.runtime.file_rules();
        let mut manifest = match (manifest_path, manifest_text) {
            (Some(path), None) => Manifest::read(path.into(), rules).await,
            (None, Some(text)) => {
                let base = base_dir.as_deref().map_or_else(
                    || std::env::current_dir().unwrap_or_default(),
                    PathBuf::from,
                );
                Manifest::read_text(text, base.join("<inline>"), base, rules).await
            }
            _ => {
                return Err(bad_request(
                    "give the manifest as `manifest_path` or as `manifest` text (with `base_dir`), one of them",
                ));
            }
        }
        .map_err(|e| ErrorBody::new(ErrorKind::SpawnFailed, e.to_string()))?;
        if let Some(state) = state {
            manifest.init_state = Some(serde_json::to_vec(&state).expect("JSON values serialize"));
        }
        let handle = self
            .shared
            .runtime
            .spawn(&manifest)
            .await
            .map_err(spawn_error)?;
        self.started(handle.id());
        Ok(json!({
            "actor": handle.id().to_string(),
            "short": handle.id().short(),
            "name": manifest.name,
            "warnings": manifest.warnings,
        }))
    }

    /// Remembers that this server started `id`, now.
    fn started(&self, id: ActorId) {
        let started = Started {
            started_ms: now_ms(),
        };
        self.shared
            .started
            .lock()
            .expect("started lock")
            .insert(id, started);
    }

    /// The running actors, oldest first; with `all`, then every other
    /// actor the log knows, with how it ended.
    async fn list(&self, all: bool) -> Answer {
        let started = self.shared.started.lock().expect("started lock").clone();
        let mut actors = self.shared.runtime.actors();
        actors.sort_by_key(|h| (started.get(&h.id()).map_or(0, |s| s.started_ms), h.id()));
        let mut listed: Vec<Value> = actors
            .iter()
            .map(|h| {
                let counters = h.counters();
                json!({
                    "id": h.id().to_string(),
                    "short": h.id().short(),
                    "name": h.name(),
                    "status": status(h),
                    "queue_depth": h.queue_depth(),
                    "calls_ok": counters.calls_ok.load(std::sync::atomic::Ordering::Relaxed),
                    "calls_failed": counters.calls_failed.load(std::sync::atomic::Ordering::Relaxed),
                })
            })
            .collect();
        if all {
            let running: Vec<ActorId> = actors.iter().map(ActorHandle::id).collect();
            let stopped = self
                .saved_actors()
                .await?
                .into_iter()
                .filter(|saved| !running.contains(&saved.id));
            for saved in stopped {
                let mut entry = json!({
                    "id": saved.id.to_string(),
                    "short": saved.id.short(),
                    "name": saved.record.manifest.name,
                    "queue_depth": null,
                    "calls_ok": null,
                    "calls_failed": null,
                });
                self.put_status(&mut entry, saved.id).await?;
                listed.push(entry);
            }
        }
        Ok(json!({ "actors": listed }))
    }

    /// Sets `status` of an actor that is not running (and `shutdown_data`
    /// when it stopped itself), read from its chain.
    async fn put_status(&self, answer: &mut Value, id: ActorId) -> Result<(), ErrorBody> {
        let status =
            self.shared.runtime.status(id).await.map_err(|e| {
                ErrorBody::new(ErrorKind::Internal, format!("reading the chain: {e}"))
            })?;
        answer["status"] = status.as_str().into();
        if let ActorStatus::StoppedByItself { data } = status {
            answer["shutdown_data"] = data;
        }
        Ok(())
    }

    async fn inspect(&self, actor: &str) -> Answer {
        let handle = match self.running(actor) {
            Ok(handle) => handle,
            Err(e) if e.kind == ErrorKind::UnknownActor => {
                return self.inspect_stopped(actor).await;
            }
            Err(e) => return Err(e),
        };
        let id = handle.id();
        let head = self.head(id).await?;
        let started = self
            .shared
            .started
            .lock()
            .expect("started lock")
            .get(&id)
            .cloned();
        let counters = handle.counters();
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        Ok(json!({
            "id": id.to_string(),
            "short": id.short(),
            "name": handle.name(),
            "status": status(&handle),
            "manifest": self.shared.runtime.manifest(id).ok().map(|m| m.source.display().to_string()),
            "started_ms": started.as_ref().map(|s| s.started_ms),
            "limits": limits_json(handle.limits()),
            "queue_depth": handle.queue_depth(),
            "counters": {
                "calls_ok": load(&counters.calls_ok),
                "calls_failed": load(&counters.calls_failed),
                "queue_full": load(&counters.queue_full),
            },
            "chain": {
                "events": head.map_or(0, |(events, _)| events),
                "head": head.map(|(_, hash)| hex::encode(hash)),
            },
        }))
    }

    /// `inspect` of an actor that is not running, from its stored record.
    async fn inspect_stopped(&self, actor: &str) -> Answer {
        let saved = self.saved(actor).await?;
        let head = self.head(saved.id).await?;
        let manifest = &saved.record.manifest;
        let mut answer = json!({
            "id": saved.id.to_string(),
            "short": saved.id.short(),
            "name": manifest.name,
            "manifest": manifest.source.display().to_string(),
            "started_ms": saved.record.started_ms,
            "limits": limits_json(&manifest.limits),
            "queue_depth": null,
            "counters": null,
            "chain": {
                "events": head.map_or(0, |(events, _)| events),
                "head": head.map(|(_, hash)| hex::encode(hash)),
            },
        });
        self.put_status(&mut answer, saved.id).await?;
        Ok(answer)
    }

    /// The stored record of an actor the log knows, by id or prefix.
    async fn saved(&self, actor: &str) -> Result<SavedActor, ErrorBody> {
        let id = self.known(actor).await?;
        self.shared
            .runtime
            .read_log(move |log| log.saved_actor(&id))
            .await
            .map_err(|e| ErrorBody::new(ErrorKind::Internal, format!("reading the log: {e}")))?
            .ok_or_else(|| unknown(actor))
    }

    async fn saved_actors(&self) -> Result<Vec<SavedActor>, ErrorBody> {
        self.shared
            .runtime
            .read_log(|log| log.saved_actors())
            .await
            .map_err(|e| ErrorBody::new(ErrorKind::Internal, format!("reading the log: {e}")))
    }

    /// `id`'s chain from index `start` on.
    async fn chain_from(&self, id: ActorId, start: u64) -> Result<Vec<ChainEvent>, ErrorBody> {
        self.shared
            .runtime
            .chain_from(id, start)
            .await
            .map_err(|e| ErrorBody::new(ErrorKind::Internal, format!("reading the chain: {e}")))
    }

    /// How many events `id`'s chain has, and the newest one's hash.
    async fn head(&self, id: ActorId) -> Result<Option<(u64, Hash)>, ErrorBody> {
        self.shared
            .runtime
            .chain_head(id)
            .await
            .map_err(|e| ErrorBody::new(ErrorKind::Internal, format!("reading the chain: {e}")))
    }

    fn own_channel(&self, channel: &str) -> Result<(), ErrorBody> {
        if self.channels.contains_key(channel) {
            Ok(())
        } else {
            Err(ErrorBody::new(
                ErrorKind::UnknownChannel,
                format!(
                    "this connection has no open channel {channel}; open one with `open_channel`"
                ),
            ))
        }
    }

    /// A running actor, by full id or unambiguous prefix.
    /// The running actor `actor` names and the message `payload` holds,
    /// for an operation that sends it one.
    fn addressed(&self, actor: &str, payload: &Payload) -> Result<(ActorId, Vec<u8>), ErrorBody> {
        let id = self.running(actor)?.id();
        Ok((id, self::payload(payload)?))
    }

    fn running(&self, text: &str) -> Result<ActorHandle, ErrorBody> {
        let running = self.shared.runtime.actors();
        let ids: Vec<ActorId> = running.iter().map(ActorHandle::id).collect();
        let id = resolve(text, &ids)?;
        running
            .into_iter()
            .find(|h| h.id() == id)
            .ok_or_else(|| unknown(text))
    }

    /// A running actor or, by full id, any actor whose chain the log may
    /// hold; by prefix, one the log knows.
    async fn any_actor(&self, text: &str) -> Result<ActorId, ErrorBody> {
        if let Ok(id) = text.trim().parse::<ActorId>() {
            // A full id names a chain even if this server never saw the actor.
            return Ok(id);
        }
        self.known(text).await
    }

    /// An actor by full id or unambiguous prefix: among the running ones,
    /// then among every actor the log knows, stopped ones too.
    async fn known(&self, text: &str) -> Result<ActorId, ErrorBody> {
        let runtime = &self.shared.runtime;
        match resolve(text, &runtime.actor_ids()) {
            Err(e) if e.kind == ErrorKind::UnknownActor => {}
            found => return found,
        }
        let ids = runtime
            .saved_ids()
            .await
            .map_err(|e| ErrorBody::new(ErrorKind::Internal, format!("reading the log: {e}")))?;
        resolve(text, &ids).map_err(|e| match e.kind {
            ErrorKind::UnknownActor => ErrorBody::new(
                ErrorKind::UnknownActor,
                format!(
                    "no actor `{}` is running or in this server's log; `theater list` shows the running ones",
                    text.trim()
                ),
            ),
            _ => e,
        })
    }
}

fn limits_json(limits: &Limits) -> Value {
    json!({
        "memory_mb": limits.memory_mb,
        "call_timeout_ms": limits.call_timeout_ms,
        "queue_capacity": limits.queue_capacity,
        "max_message_bytes": limits.max_message_bytes,
        "max_state_bytes": limits.max_state_bytes,
        "max_result_bytes": limits.max_result_bytes,
    })
}

fn status(handle: &ActorHandle) -> &'static str {
    if handle.is_running() {
        "running"
    } else {
        "stopped"
    }
}

fn unknown(text: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorKind::UnknownActor,
        format!("no running actor `{text}`; `theater list` shows the running ones"),
    )
}

/// Finds the one id that `text` is or begins.
fn resolve(text: &str, ids: &[ActorId]) -> Result<ActorId, ErrorBody> {
    let text = text.trim().to_ascii_lowercase();
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(bad_request(format!(
            "`{text}` is not an actor id; give the full id or its first characters (e.g. the 8-character short id)"
        )));
    }
    let matches: Vec<ActorId> = ids
        .iter()
        .copied()
        .filter(|id| id.to_string().starts_with(&text))
        .collect();
    match matches.as_slice() {
        [] => Err(unknown(&text)),
        [one] => Ok(*one),
        many => Err(ErrorBody::new(
            ErrorKind::AmbiguousActor,
            format!(
                "`{text}` matches {} actors ({}); give more characters",
                many.len(),
                many.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// An actor and, below it, the children it supervises.
fn tree_node(runtime: &TheaterRuntime, id: ActorId) -> Value {
    let name = runtime
        .actor(id)
        .map(|h| h.name().to_owned())
        .unwrap_or_default();
    let children: Vec<Value> = runtime
        .children(id)
        .into_iter()
        .map(|c| tree_node(runtime, c))
        .collect();
    json!({ "id": id.to_string(), "short": id.short(), "name": name, "children": children })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_resolve_by_unambiguous_prefix() {
        let a: ActorId = "1a2b3c4d-0000-4000-8000-000000000001".parse().unwrap();
        let b: ActorId = "1a2b9999-0000-4000-8000-000000000002".parse().unwrap();
        let ids = [a, b];
        assert_eq!(resolve("1a2b3c4d", &ids).unwrap(), a);
        assert_eq!(resolve("1A2B9", &ids).unwrap(), b);
        assert_eq!(
            resolve("1a2b", &ids).unwrap_err().kind,
            ErrorKind::AmbiguousActor
        );
        assert_eq!(
            resolve("ffff", &ids).unwrap_err().kind,
            ErrorKind::UnknownActor
        );
        assert_eq!(
            resolve("not an id", &ids).unwrap_err().kind,
            ErrorKind::BadRequest
        );
        assert_eq!(resolve("", &ids).unwrap_err().kind, ErrorKind::BadRequest);
    }
}
