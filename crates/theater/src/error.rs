//! Errors a user of the library can see. Each says what failed, where, and
//! what to do next.

use std::path::PathBuf;

use crate::id::ActorId;
use crate::manifest::ManifestError;
use crate::storage::LogError;
use crate::wasm::ComponentError;

/// An actor could not be spawned; nothing was registered.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Component(#[from] ComponentError),
    #[error("{manifest}:{line}: unknown handler type `{kind}` (known types: {known})")]
    UnknownHandler {
        manifest: PathBuf,
        line: usize,
        kind: String,
        known: String,
    },
    #[error("{manifest}:{line}: handler `{kind}`: {reason}")]
    HandlerConfig {
        manifest: PathBuf,
        line: usize,
        kind: String,
        reason: String,
    },
    #[error(
        "{manifest}:{line}: capability `{kind}` is not held by the parent; a child may be granted only what its parent holds"
    )]
    NotHeld {
        manifest: PathBuf,
        line: usize,
        kind: &'static str,
    },
    #[error(
        "{manifest}:{line}: {what} grants more than the parent holds: {reason}; a child may be granted at most what its parent holds"
    )]
    BeyondParent {
        manifest: PathBuf,
        line: usize,
        what: String,
        reason: String,
    },
    #[error("the parent {0} is not running")]
    ParentStopped(ActorId),
    #[error(
        "actor {parent} already has {limit} children, its limit (`max_children = {limit}` of its supervisor handler); stop one first, or raise the limit in its manifest"
    )]
    TooManyChildren { parent: ActorId, limit: usize },
    #[error(
        "the runtime already runs {limit} actors, its limit (`max_actors`, `theater server --max-actors`); stop some first, or raise the limit"
    )]
    TooManyActors { limit: usize },
    #[error(
        "the component imports `{interface}` but {manifest} does not grant it; add:\n\n{entry}"
    )]
    NotGranted {
        manifest: PathBuf,
        interface: String,
        kind: &'static str,
        /// The entry to add, in the form the manifest lists handlers.
        entry: String,
    },
    #[error("the component imports `{interface}`, which no Theater handler provides")]
    UnknownInterface { interface: String },
    #[error("the component does not export `{function}`; expected `{signature}`")]
    MissingExport { function: String, signature: String },
    #[error(
        "the component exports both `{first}` and `{second}`: the same function under two package names, and which one to call is unclear; export each interface under one package name"
    )]
    ExportedTwice { first: String, second: String },
    #[error("the component's `{function}` has the wrong type; expected `{signature}`: {reason}")]
    MistypedExport {
        function: String,
        signature: String,
        reason: String,
    },
    #[error("cannot instantiate the component: {0}")]
    Instantiate(String),
    #[error("`actor.init` failed: {0}")]
    Init(String),
    #[error("actor {0} is already running")]
    AlreadyRunning(ActorId),
    #[error("cannot take the actor on: {0}")]
    Adopt(String),
    #[error("the cluster did not record the actor: {0}")]
    Cluster(String),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// A call into an actor did not complete; the actor's state is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    #[error(
        "actor {actor} is busy: its queue of {capacity} pending calls is full; retry later or raise `limits.queue_capacity`"
    )]
    QueueFull { actor: ActorId, capacity: usize },
    #[error("actor {0} is not running")]
    Stopped(ActorId),
    #[error("no actor with id {0}")]
    UnknownActor(ActorId),
    #[error("actor {actor} has no export `{function}`; it exports: {available}")]
    UnknownFunction {
        actor: ActorId,
        function: String,
        available: String,
    },
    #[error("params for `{function}` do not match its signature: {reason}")]
    BadParams { function: String, reason: String },
    #[error("`{function}` returned an error: {message}")]
    Failed { function: String, message: String },
    #[error("`{function}` trapped: {reason}")]
    Trapped { function: String, reason: String },
    #[error("`{function}` ran past its time limit of {limit_ms} ms and was stopped")]
    TimeLimit { function: String, limit_ms: u64 },
    #[error("`{function}` hit the memory limit of {limit_mb} MiB and was stopped")]
    MemoryLimit { function: String, limit_mb: u64 },
    #[error(
        "`{function}` left a state of {size} bytes, more than the actor's limit of {limit} bytes (`limits.max_state_bytes`); the state is unchanged"
    )]
    StateTooLarge {
        function: String,
        size: usize,
        limit: usize,
    },
    #[error(
        "`{function}` answered more than the actor's limit of {limit} bytes (`limits.max_result_bytes`, as the chain records the result); the state is unchanged"
    )]
    ResultTooLarge { function: String, limit: usize },
    #[error(
        "message of {size} bytes is larger than actor {actor}'s limit of {limit} bytes (`limits.max_message_bytes`)"
    )]
    MessageTooLarge {
        actor: ActorId,
        size: usize,
        limit: usize,
    },
    #[error("{0}")]
    BadActorId(String),
    #[error("deadlock: {0}")]
    Deadlock(String),
    #[error("no answer from actor {actor} within {timeout_ms} ms")]
    Timeout { actor: ActorId, timeout_ms: u64 },
    #[error("actor {actor} does not take channels (it has no `handle-channel-open` export)")]
    NoChannels { actor: ActorId },
    #[error("actor {actor} refused the channel{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    ChannelRejected {
        actor: ActorId,
        message: Option<String>,
    },
    #[error("the client at the other end of channel {0} is not reading its messages")]
    ClientNotReading(String),
    #[error("no open channel {0}")]
    UnknownChannel(String),
    #[error("node `{node}`: {message}")]
    Remote { node: String, message: String },
    #[error("the result of `{function}` is not a `{expected}`: {reason}")]
    BadResult {
        function: String,
        expected: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Log(#[from] LogError),
}
