//! Read-only views of the runtime for tools such as the management server.

use serde_json::Value;

use super::TheaterRuntime;
use crate::actor::ActorHandle;
use crate::chain::record;
use crate::id::ActorId;
use crate::metrics::{Scrape, Snapshot};
use crate::storage::LogError;

/// Whether an actor runs and, if not, how it ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ActorStatus {
    Running,
    /// Stopped by an operator, its parent or the runtime, or failed for good.
    Stopped,
    /// It stopped itself with `shutdown`; `data` is what it passed, as its
    /// chain's `shutdown` event shows it.
    StoppedByItself {
        data: Value,
    },
}

impl ActorStatus {
    /// `running`, `stopped` or `stopped by itself`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::StoppedByItself { .. } => "stopped by itself",
        }
    }
}

impl TheaterRuntime {
    /// Every running actor, as one consistent snapshot of the registry.
    pub fn actors(&self) -> Vec<ActorHandle> {
        self.inner
            .actors
            .read()
            .expect("registry lock")
            .values()
            .map(|entry| entry.handle.clone())
            .collect()
    }

    /// How many actors are running.
    pub fn actor_count(&self) -> usize {
        self.inner.actors.read().expect("registry lock").len()
    }

    /// Everything its [`metrics`](Self::metrics) counted, in the Prometheus
    /// text format; `None` when they are disabled.
    pub fn metrics_text(&self) -> Option<String> {
        let metrics = self.metrics();
        if !metrics.is_enabled() {
            return None;
        }
        let mut snapshot = Snapshot::default();
        let (mut running, mut stopping) = (0, 0);
        for actor in self.actors() {
            match actor.is_running() {
                true => running += 1,
                false => stopping += 1,
            }
            let depth = actor.queue_depth() as i64;
            snapshot.queue_depth += depth;
            snapshot.queue_depth_max = snapshot.queue_depth_max.max(depth);
            snapshot.per_actor_queue.push((actor.id(), depth));
        }
        snapshot.actors = vec![("running", running), ("stopping", stopping)];
        metrics.encode(&snapshot)
    }

    /// Whether `id` runs; if not, how it ended, read from its chain (whose
    /// last event is `shutdown` when it stopped itself).
    pub async fn status(&self, id: ActorId) -> Result<ActorStatus, LogError> {
        if self.actor(id).is_ok_and(|handle| handle.is_running()) {
            return Ok(ActorStatus::Running);
        }
        // One trip to a blocking thread for the head and the last event.
        let last = self
            .read_log(move |log| match log.chain_head(&id)? {
                Some((events, _)) => Ok(log.events_from(&id, events - 1)?.pop()),
                None => Ok(None),
            })
            .await?;
        Ok(match last {
            Some(last) if last.event_type == record::SHUTDOWN => {
                let data = serde_json::from_str::<Value>(last.data.get())
                    .ok()
                    .map_or(Value::Null, |mut event| event["data"].take());
                ActorStatus::StoppedByItself { data }
            }
            _ => ActorStatus::Stopped,
        })
    }
}

impl Scrape for TheaterRuntime {
    fn metrics_text(&self) -> Option<String> {
        TheaterRuntime::metrics_text(self)
    }
}
