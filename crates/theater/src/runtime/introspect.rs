//! Read-only views of the runtime for tools such as the management server.

use super::TheaterRuntime;
use crate::actor::ActorHandle;
use crate::metrics::Snapshot;

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
}
