//! The states a log keeps beside a chain: the newest one each actor
//! reached and snapshots every so many events, so an actor can be resumed
//! or sent back to an event without replaying its whole chain.

use sha2::{Digest, Sha256};

use crate::chain::record::{self, StateDigest};
use crate::chain::{ChainEvent, Hash};

/// By default a state is snapshotted with the first event of a chain and
/// then every this many events, so going back to an event replays fewer
/// calls than this.
pub const SNAPSHOT_EVERY: u64 = 64;

/// A state kept with the event that left it, with the SHA-256 stored
/// states are keyed by, computed once, here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptState {
    /// The state's bytes, `None` for no state.
    state: Option<Vec<u8>>,
    /// `None` for no state.
    sha256: Option<Hash>,
}

impl KeptState {
    pub fn new(state: Option<Vec<u8>>) -> Self {
        let sha256 = state.as_deref().map(|bytes| Sha256::digest(bytes).into());
        Self { state, sha256 }
    }

    pub fn state(&self) -> &Option<Vec<u8>> {
        &self.state
    }

    pub fn into_state(self) -> Option<Vec<u8>> {
        self.state
    }

    /// SHA-256 of the state's bytes, `None` for no state.
    pub fn sha256(&self) -> Option<Hash> {
        self.sha256
    }

    /// How the chain records this state.
    pub fn digest(&self) -> Option<StateDigest> {
        let (bytes, sha256) = (self.state.as_ref()?, self.sha256.as_ref()?);
        Some(StateDigest::new(sha256, bytes.len()))
    }
}

/// A state an actor's chain reached, with the event that left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Index of the event in the chain (0 for the first).
    pub index: u64,
    pub hash: Hash,
    /// The state's bytes, `None` for no state.
    pub state: Option<Vec<u8>>,
}

/// Whether the state an event at `index` leaves is snapshotted, the newest
/// snapshot being at `last` and one due `every` events; `always` is
/// [`always_snapshot`] of the event.
pub fn snapshot_due(always: bool, index: u64, last: Option<u64>, every: u64) -> bool {
    always || last.is_none_or(|last| index >= last + every.max(1))
}

/// Transitions other than calls (init, resume, revert) are snapshotted
/// whatever the interval: replay cannot rebuild their states from the chain.
pub fn always_snapshot(event: &ChainEvent) -> bool {
    event.event_type != record::CALL
}
