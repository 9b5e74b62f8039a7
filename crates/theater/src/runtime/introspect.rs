//! Read-only views of the runtime for tools such as the management server.

use super::TheaterRuntime;
use crate::actor::ActorHandle;

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
}
