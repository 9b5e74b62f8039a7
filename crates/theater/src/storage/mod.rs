//! Durable storage for chains: [`RedbEventLog`] keeps every actor's chain in
//! one redb database file.
//!
//! - **Acknowledged means durable.** [`EventLog::append`](crate::chain::EventLog::append)
//!   completes only after the write transaction holding the event has
//!   committed; with [`Durability::Durable`] (the default) that commit was
//!   flushed to disk with `fsync`.
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

pub mod codec;
mod redb_log;

pub use redb_log::{
    ChainDamage, ChainHead, Damage, Durability, GROUP_COMMIT_WINDOW, LogOptions, LogStats,
    MAX_BATCH, RedbEventLog, StorageError, VerifySummary,
};
