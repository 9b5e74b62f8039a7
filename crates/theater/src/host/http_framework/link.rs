//! The framework's one way to its actor and its runtime: the actor's
//! handle for the network tasks, and the two runtime settings a server
//! needs. Nothing else in `http_framework` reaches the runtime.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::actor::{ActorHandle, ActorStore, WeakActorHandle, WeakRuntime};
use crate::id::ActorId;
use crate::metrics::Metrics;

/// How often a request made while the actor is still in its `init` looks
/// for the actor's handle again.
const REGISTRATION_POLL: Duration = Duration::from_millis(10);

pub struct ActorLink {
    pub actor: ActorId,
    runtime: WeakRuntime,
    /// Found in the runtime once, then kept weakly: a strong handle here
    /// would keep the actor's queue open, and so the actor alive, after
    /// its runtime is gone.
    handle: OnceLock<WeakActorHandle>,
}

impl ActorLink {
    /// The link of the actor whose store this is.
    pub fn of(store: &ActorStore) -> Self {
        Self {
            actor: store.id,
            runtime: store.weak_runtime(),
            handle: OnceLock::new(),
        }
    }

    /// The runtime's metrics (none when it is gone).
    pub fn metrics(&self) -> Metrics {
        self.runtime
            .upgrade()
            .map(|runtime| runtime.metrics().clone())
            .unwrap_or_default()
    }

    /// Whether the operator lets actor servers listen beyond loopback.
    pub fn public_http(&self) -> bool {
        self.runtime.upgrade().is_some_and(|r| r.public_http())
    }

    /// Where the operator has actor servers listen, if it said.
    pub fn http_address(&self) -> Option<std::net::IpAddr> {
        self.runtime.upgrade().and_then(|r| r.http_address())
    }

    /// The actor's handle, without waiting; `None` before the actor is
    /// registered (during its `init`) and once it is gone.
    pub fn current(&self) -> Option<ActorHandle> {
        if let Some(handle) = self.handle.get() {
            return handle.upgrade();
        }
        let handle = self.runtime.upgrade()?.actor(self.actor).ok()?;
        let _ = self.handle.set(handle.downgrade());
        Some(handle)
    }

    /// The actor's handle, waiting (until `deadline`, or until `ended`)
    /// while the actor is still in its `init` and not registered yet.
    pub async fn wait(&self, deadline: Instant, ended: &CancellationToken) -> Option<ActorHandle> {
        loop {
            if let Some(handle) = self.current() {
                return Some(handle);
            }
            if ended.is_cancelled() || Instant::now() >= deadline {
                return None;
            }
            tokio::select! {
                _ = tokio::time::sleep(REGISTRATION_POLL) => {}
                _ = ended.cancelled() => return None,
            }
        }
    }
}
