//! How a [`RedbEventLog`](super::RedbEventLog) is opened ([`LogOptions`],
//! [`Durability`]) and what its writer has done since ([`LogStats`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::storage::SNAPSHOT_EVERY;

/// How long the writer keeps a batch open for more appends after the first
/// one arrived. It closes earlier once as many appends have arrived as the
/// recent batches held, so a lone appender waits for no one.
pub const GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(1);
/// Most appends committed in one transaction.
pub const MAX_BATCH: usize = 1024;
/// Memory redb may use to cache pages of the chain database.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// When an appended event is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every batch is committed with `fsync` before its appends complete: an
    /// acknowledged event survives a crash of the process or of the machine.
    #[default]
    Durable,
    /// Batches are committed without `fsync` (visible to readers at once);
    /// a durable commit follows at most `max_unsynced` after the first
    /// commit that is not yet durable, and when the log is dropped. A crash
    /// of the machine may lose the events acknowledged in the last
    /// `max_unsynced` plus one [`GROUP_COMMIT_WINDOW`] and two commits; what
    /// survives of each chain is a prefix of it, so it still verifies.
    Buffered { max_unsynced: Duration },
}

/// How [`RedbEventLog::open_with`] opens the database.
#[derive(Clone, Debug)]
pub struct LogOptions {
    pub durability: Durability,
    /// Verify the checksum of every page when the file is opened, so a file
    /// damaged on disk is refused with an error rather than read. Costs a
    /// read of the whole file per open.
    pub check_integrity_on_open: bool,
    /// Memory redb may use to cache pages.
    pub cache_bytes: usize,
    /// Keep a snapshot of an actor's state every this many events (at least
    /// 1), so going back to an event replays fewer calls than this. Costs
    /// one copy of the state per snapshot on disk.
    pub snapshot_every: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Durable,
            check_integrity_on_open: true,
            cache_bytes: CACHE_BYTES,
            snapshot_every: SNAPSHOT_EVERY,
        }
    }
}

/// What the writer has done since the log was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Events stored (appended or imported).
    pub events: u64,
    /// Write transactions committed.
    pub commits: u64,
    /// Commits flushed to disk with `fsync`.
    pub syncs: u64,
    /// Most requests committed in one transaction.
    pub largest_batch: u64,
    /// States written: a state already stored is not written again.
    pub states_written: u64,
    /// Their bytes.
    pub state_bytes_written: u64,
}

impl LogStats {
    pub fn events_per_commit(&self) -> f64 {
        self.events as f64 / self.commits.max(1) as f64
    }

    pub fn events_per_sync(&self) -> f64 {
        self.events as f64 / self.syncs.max(1) as f64
    }
}

/// The writer's running counts behind [`LogStats`], read without locking.
#[derive(Default)]
pub(super) struct Counters {
    events: AtomicU64,
    commits: AtomicU64,
    syncs: AtomicU64,
    largest_batch: AtomicU64,
    states_written: AtomicU64,
    state_bytes_written: AtomicU64,
}

/// What one committed batch adds to the counts.
#[derive(Default)]
pub(super) struct BatchCounts {
    /// Requests in the batch.
    pub requests: u64,
    /// Events it stored.
    pub events: u64,
    /// States it wrote (not those it found stored already), and their bytes.
    pub states: u64,
    pub state_bytes: u64,
    /// Whether its commit was flushed with `fsync`.
    pub synced: bool,
}

impl Counters {
    pub fn add(&self, batch: &BatchCounts) {
        self.events.fetch_add(batch.events, Ordering::Relaxed);
        self.states_written
            .fetch_add(batch.states, Ordering::Relaxed);
        self.state_bytes_written
            .fetch_add(batch.state_bytes, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.largest_batch
            .fetch_max(batch.requests, Ordering::Relaxed);
        if batch.synced {
            self.syncs.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> LogStats {
        LogStats {
            events: self.events.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
            states_written: self.states_written.load(Ordering::Relaxed),
            state_bytes_written: self.state_bytes_written.load(Ordering::Relaxed),
        }
    }
}
