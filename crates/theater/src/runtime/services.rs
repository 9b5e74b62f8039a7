//! The runtime behind [`RuntimeServices`]: what its actors and their
//! capabilities reach of it, each service one of its own methods.

use std::path::Path;
use std::sync::Arc;

use super::{Inner, TheaterRuntime};
use crate::actor::{
    ActorHandle, BoxFuture, ChildEvent, ChildOp, Decision, Ending, RuntimeServices, Shared,
    SpawnOptions, WeakRuntime,
};
use crate::chain::ChainEvent;
use crate::cluster::Cluster;
use crate::error::{ActorError, SpawnError};
use crate::files::FileRules;
use crate::id::ActorId;
use crate::manifest::Manifest;
use crate::metrics::Metrics;
use crate::storage::{EventLog, LogError};
use crate::telemetry::Traces;
use crate::wasm::StateBytes;

impl Inner {
    /// The runtime this is the inside of: alive, since it is being used.
    fn runtime(&self) -> TheaterRuntime {
        TheaterRuntime {
            inner: self.me.upgrade().expect("a runtime in use is alive"),
        }
    }
}

impl RuntimeServices for Inner {
    fn actor(&self, id: ActorId) -> Result<ActorHandle, ActorError> {
        self.runtime().actor(id)
    }

    fn manifest(&self, id: ActorId) -> Result<Arc<Manifest>, ActorError> {
        self.runtime().manifest(id)
    }

    fn spawn(
        &self,
        manifest: Manifest,
        options: SpawnOptions,
    ) -> BoxFuture<'static, Result<ActorHandle, SpawnError>> {
        let runtime = self.runtime();
        Box::pin(async move { runtime.spawn_with(&manifest, options).await })
    }

    fn stop(&self, id: ActorId) -> BoxFuture<'static, Result<(), ActorError>> {
        let runtime = self.runtime();
        Box::pin(async move { runtime.stop(id).await })
    }

    fn children(&self, parent: ActorId) -> Vec<ActorId> {
        self.tree.lock().expect("tree lock").children(parent)
    }

    fn parent(&self, child: ActorId) -> Option<ActorId> {
        self.tree.lock().expect("tree lock").parent(child)
    }

    fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    fn chain(&self, id: ActorId) -> Result<Vec<ChainEvent>, LogError> {
        self.log.events(&id)
    }

    fn event_log(&self) -> &dyn EventLog {
        &*self.log
    }

    fn file_rules(&self) -> FileRules {
        self.runtime().file_rules()
    }

    fn shared(&self) -> &Shared {
        &self.shared
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn traces(&self) -> Option<&Traces> {
        self.traces.as_ref()
    }

    fn public_http(&self) -> bool {
        self.public_http
    }

    fn http_address(&self) -> Option<std::net::IpAddr> {
        self.http_address
    }

    fn home(&self) -> Option<&Path> {
        self.home.as_deref()
    }

    fn downgrade(&self) -> WeakRuntime {
        self.runtime().downgrade()
    }

    fn supervise(&self, child: ActorId, event: ChildEvent) -> BoxFuture<'static, Decision> {
        let runtime = self.runtime();
        Box::pin(async move { runtime.supervise(child, event).await })
    }

    fn child_op(
        &self,
        parent: ActorId,
        child: ActorId,
        op: ChildOp,
    ) -> BoxFuture<'static, Result<StateBytes, ActorError>> {
        let runtime = self.runtime();
        Box::pin(async move { runtime.child_op(parent, child, op).await })
    }

    fn actor_exited(&self, id: ActorId, ending: Ending) -> BoxFuture<'static, ()> {
        let runtime = self.runtime();
        Box::pin(async move { runtime.actor_exited(id, ending).await })
    }
}
