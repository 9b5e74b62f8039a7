//! What a log keeps about each actor beside its chain: how it was started,
//! so a restarted runtime can start it again.

use serde::{Deserialize, Serialize};

use super::Snapshot;
use crate::chain::Hash;
use crate::id::ActorId;
use crate::manifest::Manifest;

/// How an actor was started: enough to start it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActorRecord {
    /// Its manifest, whose `init_state` is the state its first `actor.init`
    /// was given (a fork's or a child's may differ from the file's).
    pub manifest: Manifest,
    /// SHA-256 (hex) of the component it was started with; a resume names
    /// the one it runs in its `actor-resume` event.
    pub component: String,
    /// The supervising actor, if any.
    pub parent: Option<ActorId>,
    /// `false` once the actor was stopped or ended; only running actors are
    /// resumed.
    pub running: bool,
    /// When it was first started, ms since the Unix epoch; parents start
    /// before their children, so this orders a resume.
    pub started_ms: u64,
}

/// An actor a log knows, as [`EventLog::saved_actors`](super::EventLog::saved_actors) lists it.
#[derive(Debug, Clone)]
pub struct SavedActor {
    pub id: ActorId,
    pub record: ActorRecord,
    /// The newest event of its chain.
    pub head: Option<Hash>,
    /// Its newest state, `None` if its chain holds no state yet.
    pub latest: Option<Snapshot>,
}
