//! Actors: each one's wasm instance runs one call at a time, in the
//! caller's task when the actor is idle, otherwise from a bounded queue its
//! own task drains; an [`ActorHandle`] is the cheap, clonable way in.

mod call;
mod executor;
mod extensions;
mod handle;
mod instance;
mod note;
mod outcome;
mod recorder;
mod services;
mod shared;
mod store;
mod view;

pub use extensions::Extensions;
pub use handle::{ActorCounters, ActorHandle, WeakActorHandle};
pub use note::{CallNote, FinishNote, Noted};
pub use recorder::{ActorEvent, ChainRecorder, now_ms};
pub use services::{
    BoxFuture, ChildEvent, ChildLink, ChildOp, Decision, EndRequest, Ending, Exit, RuntimeServices,
    Shared, SpawnOptions, Terms, WeakRuntime,
};
pub use store::ActorStore;
pub use view::HostView;

pub use executor::MAX_ERROR_BYTES;
pub(crate) use executor::{Start, spawn};
pub(crate) use instance::{ActorTemplate, instantiate_with};

/// The export every actor has, called once at spawn.
pub const INIT_FUNCTION: &str = "ntwk:theater/actor.init";
/// Interface of [`INIT_FUNCTION`].
pub const ACTOR_INTERFACE: &str = "ntwk:theater/actor";

/// Raised inside wasm when a call outlives `limits.call_timeout_ms`.
#[derive(Debug, thiserror::Error)]
#[error("time limit of {limit_ms} ms exceeded")]
pub struct TimeLimitExceeded {
    pub limit_ms: u64,
}

/// Raised inside wasm when linear memory would outgrow `limits.memory_mb`.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit_mb} MiB exceeded (asked for {desired} bytes)")]
pub struct MemoryLimitExceeded {
    pub limit_mb: u64,
    pub desired: usize,
}
