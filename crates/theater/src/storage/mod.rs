//! Where chains are kept, with what a restarted runtime needs to bring the
//! actors back: how each was started and the states its chain reached.
//!
//! - [`EventLog`] (`log`) is what the executor appends to and the runtime
//!   reads from; [`MemoryEventLog`] (`memory`) keeps chains in memory and
//!   [`RedbEventLog`] (`redb`) on disk; [`ReplicatedLog`] (`replicated`)
//!   puts a cluster's replicated chains in front of either.
//! - `actors` and `states` are what a log keeps beside each chain: the
//!   [`ActorRecord`] an actor was started with, its newest state and
//!   snapshots every [`SNAPSHOT_EVERY`] events.
//! - [`codec`] is the byte form of one stored event.
//!
//! The redb log's promises:
//!
//! - **Acknowledged means durable.** [`EventLog::append`] completes only
//!   after the write transaction holding the event has committed; with
//!   [`Durability::Durable`] (the default) that commit was flushed to disk
//!   with `fsync`.
//! - **Group commit.** One writer thread takes the appends of every actor
//!   from a queue and commits them in batches: one transaction, one `fsync`,
//!   for all appends waiting at that moment.
//! - **Verifiable.** Events are stored with the exact bytes that were hashed,
//!   so [`RedbEventLog::verify_stored`] and [`RedbEventLog::verify_all`]
//!   recompute every hash from disk and name the first bad event of each
//!   damaged chain.
//! - **Crash safe.** redb commits are atomic: after a crash, even `kill -9`
//!   in the middle of a commit, the file holds the last completed commit, so
//!   every acknowledged event is there and every chain verifies.
//!
//! `docs/durability.md` gives the guarantees, the storage layout and
//! measured figures.

mod actors;
pub mod codec;
mod log;
mod memory;
mod redb;
mod replicated;
mod states;

pub use self::redb::{
    ChainDamage, ChainHead, Damage, Durability, GROUP_COMMIT_WINDOW, ImportError, LogOptions,
    LogStats, MAX_BATCH, RedbEventLog, StateDamage, StorageError, VerifySummary, WriteError,
};
pub use actors::{ActorRecord, SavedActor};
pub use log::{AcceptFuture, Accepted, Entry, EventLog, LogError, LogFuture, VerifyFailure};
pub use memory::MemoryEventLog;
pub use replicated::{Replicated, ReplicatedError, ReplicatedLog};
pub use states::{KeptState, SNAPSHOT_EVERY, Snapshot, always_snapshot, snapshot_due};
