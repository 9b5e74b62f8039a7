//! Answers about an actor's past: `replay`, `fork` and `revert`
//! (`docs/replay.md`).

use serde::{Deserialize, Serialize};

use crate::id::ActorId;

/// `replay`. `matched` only when every event was reproduced; at most one
/// of `divergence` and `stopped_at` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replayed {
    pub actor: ActorId,
    /// Events looked at, up to the one the replay ended at.
    pub events: usize,
    /// Calls re-run that did what the chain says.
    pub calls: usize,
    pub matched: bool,
    pub divergence: Option<Diverged>,
    pub stopped_at: Option<StoppedAt>,
    /// SHA-256 of the state the replay ended with, hex.
    pub state_sha256: Option<String>,
}

/// The first event the component did not reproduce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diverged {
    pub index: usize,
    /// The event's hash, hex.
    pub hash: String,
    /// The export being replayed.
    pub function: String,
    pub reason: String,
}

/// An event replay could not get past, though nothing diverged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoppedAt {
    pub index: usize,
    /// The event's hash, hex.
    pub hash: String,
    pub reason: String,
}

/// `fork`: the new actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forked {
    pub actor: ActorId,
    pub short: String,
    pub name: String,
    pub forked_from: ForkedFrom,
}

/// The actor and event a fork started from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkedFrom {
    pub actor: ActorId,
    /// The event's whole hash, hex.
    pub event: String,
}

/// `revert`: the event gone back to, and the `revert` event recording it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reverted {
    pub actor: ActorId,
    /// The whole hash of the event gone back to, hex.
    pub to: String,
    /// The hash of the new `revert` event, hex.
    pub event: String,
}
