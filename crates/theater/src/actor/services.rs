//! The runtime as its actors and their capabilities see it: a narrow set of
//! services (route to an actor, spawn, stop, the supervision tree, state a
//! capability shares across actors, and the executor's two hooks), defined
//! here, implemented by the runtime above, and held weakly, so that an
//! actor never keeps its runtime alive.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::ActorHandle;
use crate::chain::ChainEvent;
use crate::chain::Hash;
use crate::chain::record::Origin;
use crate::cluster::Cluster;
use crate::error::{ActorError, SpawnError};
use crate::files::FileRules;
use crate::id::ActorId;
use crate::manifest::Manifest;
use crate::metrics::Metrics;
use crate::storage::{EventLog, LogError};
use crate::telemetry::Traces;
use crate::wasm::StateBytes;

/// A boxed future, as a trait object's async method returns it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the terms of a supervised child are to the runtime: whatever its
/// parent's supervising capability keeps (its policy), handed back to that
/// capability's hooks.
pub type Terms = Arc<dyn Any + Send + Sync>;

/// What the runtime does for an actor's capabilities and its task.
pub trait RuntimeServices: Send + Sync {
    /// The running actor `id`: where calls to it go.
    fn actor(&self, id: ActorId) -> Result<ActorHandle, ActorError>;

    /// The manifest a running actor was started from.
    fn manifest(&self, id: ActorId) -> Result<Arc<Manifest>, ActorError>;

    /// Spawns an actor (see [`SpawnOptions`]).
    fn spawn(
        &self,
        manifest: Manifest,
        options: SpawnOptions,
    ) -> BoxFuture<'static, Result<ActorHandle, SpawnError>>;

    /// Stops an actor and, first, its subtree.
    fn stop(&self, id: ActorId) -> BoxFuture<'static, Result<(), ActorError>>;

    /// The children an actor supervises, oldest first.
    fn children(&self, parent: ActorId) -> Vec<ActorId>;

    /// The actor supervising `child`, if any.
    fn parent(&self, child: ActorId) -> Option<ActorId>;

    /// The cluster this runtime is a node of, if any: where messages to
    /// actors that do not run here go.
    fn cluster(&self) -> Option<&Cluster>;

    /// An actor's chain, oldest first, read on the calling thread.
    fn chain(&self, id: ActorId) -> Result<Vec<ChainEvent>, LogError>;

    /// The log chains and inboxes are kept in.
    fn event_log(&self) -> &dyn EventLog;

    /// How the files of an operator's spawn are read.
    fn file_rules(&self) -> FileRules;

    /// State a capability keeps for the whole runtime, one value per type.
    fn shared(&self) -> &Shared;

    /// The runtime's metrics (disabled unless its config asked for them).
    fn metrics(&self) -> &Metrics;

    /// Where the runtime's spans go, if anywhere.
    fn traces(&self) -> Option<&Traces>;

    /// Whether actor HTTP servers may bind the address they ask for.
    fn public_http(&self) -> bool;

    /// Where actor HTTP servers listen whatever they ask, if the operator
    /// said so.
    fn http_address(&self) -> Option<std::net::IpAddr>;

    /// The data directory, `None` for a runtime that keeps nothing on disk.
    fn home(&self) -> Option<&Path>;

    /// A weak reference to these services, for work that outlives a call.
    fn downgrade(&self) -> WeakRuntime;

    /// The executor's hook after a trap or a shutdown request: what the
    /// actor's task does next. A child whose parent runs on another node
    /// of a cluster waits for that node's decision.
    fn supervise(&self, child: ActorId, event: ChildEvent) -> BoxFuture<'static, Decision>;

    /// Does `op` to `child`, a child of `parent`, on whichever node of the
    /// cluster runs it: the child's state for [`ChildOp::State`], `None`
    /// otherwise.
    fn child_op(
        &self,
        parent: ActorId,
        child: ActorId,
        op: ChildOp,
    ) -> BoxFuture<'static, Result<StateBytes, ActorError>>;

    /// The executor's hook once an actor's task ends.
    fn actor_exited(&self, id: ActorId, ending: Ending) -> BoxFuture<'static, ()>;
}

/// A reference to a runtime that does not keep it alive; actors hold one.
#[derive(Clone)]
pub struct WeakRuntime(Option<Weak<dyn RuntimeServices>>);

impl WeakRuntime {
    pub fn new(services: Weak<dyn RuntimeServices>) -> Self {
        Self(Some(services))
    }

    /// A reference to no runtime, for host state that must reach none.
    pub fn detached() -> Self {
        Self(None)
    }

    /// The runtime, unless it is gone.
    pub fn upgrade(&self) -> Option<Arc<dyn RuntimeServices>> {
        self.0.as_ref()?.upgrade()
    }
}

/// How an actor starts.
#[derive(Default)]
pub struct SpawnOptions {
    /// The supervising actor, and the terms its supervising capability
    /// keeps for the child (a `SupervisionPolicy`).
    pub parent: Option<(ActorId, Terms)>,
    /// Set when the parent itself asked for this spawn (supervisor `spawn`
    /// or `resume`): the child is admitted only within what the parent
    /// holds, and its component is read under these rules.
    pub by_parent: Option<FileRules>,
    /// State to start from instead of the manifest's `init_state`.
    pub state: Option<StateBytes>,
    /// Continue the stored chain of this actor, whose newest event is the
    /// hash given, instead of starting a new actor.
    pub resume: Option<(ActorId, Hash)>,
    /// The event whose state a fork starts from, named in its first event.
    pub forked_from: Option<Origin>,
}

/// A supervised actor's place in the tree, as the runtime linked it.
pub struct ChildLink {
    pub child: ActorId,
    pub parent: ActorId,
    /// The child's manifest `name`.
    pub name: String,
    pub terms: Terms,
}

/// An actor that ended, once the runtime has forgotten it.
pub struct Exit {
    pub actor: ActorId,
    /// Its supervisor, if it had one.
    pub parent: Option<ActorId>,
    /// What it handed its supervisor when it asked to end.
    pub data: Option<Vec<u8>>,
}

/// How an actor's task ended.
pub enum Ending {
    /// Stopped by an operator, its parent or the runtime, or failed for good.
    Stopped,
    /// It asked to stop itself, with this data for its supervisor.
    ByItself(Option<Vec<u8>>),
}

/// An actor's request to end once its running call returns, with data for
/// its supervisor; the capability that takes the request keeps it in the
/// actor's extensions, where the executor looks after each call.
pub struct EndRequest(pub Option<Vec<u8>>);

/// What happened to an actor, for its supervisor.
#[derive(Debug)]
pub enum ChildEvent {
    /// A call trapped or hit a limit.
    Failed(String),
    /// The actor asked to shut down.
    ShutdownRequested,
}

/// What a supervisor does to one of its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildOp {
    /// Stop it, after the calls queued for it.
    Stop,
    /// Replace its instance, keeping its state, after its queued calls.
    Restart,
    /// Restart it once this long has passed (its siblings' restarts).
    RestartAfter(Duration),
    /// Read its state.
    State,
}

/// What an actor's task does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Continue with a fresh instance after this delay.
    Restart(Duration),
    /// End the actor.
    Stop,
}

impl Decision {
    /// Its `decision` label in the metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Decision::Restart(_) => "restart",
            Decision::Stop => "stop",
        }
    }
}

/// One value per type, shared by every actor of a runtime: the channels of
/// the message server, the restart history of supervisors.
#[derive(Default)]
pub struct Shared(Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

impl Shared {
    /// The value of type `T`, made with `Default` on first use.
    pub fn get<T: Any + Send + Sync + Default>(&self) -> Arc<T> {
        let mut values = self.0.lock().expect("shared state lock");
        let value = values
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()))
            .clone();
        value.downcast().expect("stored under its own type id")
    }
}
