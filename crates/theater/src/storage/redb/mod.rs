//! [`RedbEventLog`]: every actor's chain in one redb database, appended to
//! by one group-committing writer thread. This file holds the handle itself
//! (what its parts share, how requests reach the writer, closing); each job
//! has its own file:
//!
//! - `options`: how the log is opened, and its counters;
//! - `error`: what can go wrong, and the damage a stored chain can have;
//! - `layout`: the tables of the file and their keys;
//! - `open`: opening the file, converting an older layout;
//! - `read`: reading chains, states and actor records back;
//! - `verify`: checking stored chains and states from disk;
//! - `exchange`: export and import of whole chains;
//! - `inbox`: accepted messages kept until their call is recorded;
//! - `writer`: the thread that takes requests and commits them in batches;
//! - `batch`: one batch's transaction;
//! - `kept`: the writer's side of kept states, each stored once;
//! - `event_log`: the [`EventLog`](crate::storage::EventLog) trait on top.

mod batch;
mod error;
mod event_log;
mod exchange;
mod inbox;
mod kept;
mod layout;
mod open;
mod options;
mod read;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

pub use error::{ChainDamage, Damage, ImportError, StateDamage, StorageError, WriteError};
pub use options::{Durability, GROUP_COMMIT_WINDOW, LogOptions, LogStats, MAX_BATCH};
pub use read::ChainHead;
pub use verify::VerifySummary;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::thread::JoinHandle;

use redb::{Database, ReadTransaction, ReadableDatabase};

use options::Counters;
use writer::Request;

/// What the handle, its readers and the writer thread share.
struct Shared {
    db: Database,
    path: PathBuf,
    counters: Counters,
    /// The number the next accepted message gets in its actor's inbox.
    next_accepted: AtomicU64,
}

/// Every actor's chain in one redb database file. See the
/// [module documentation](crate::storage).
pub struct RedbEventLog {
    shared: Arc<Shared>,
    queue: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

impl fmt::Debug for RedbEventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbEventLog")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl RedbEventLog {
    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// What the writer has done since the log was opened.
    pub fn stats(&self) -> LogStats {
        self.shared.counters.stats()
    }

    /// A read transaction: one consistent view of the last commit.
    fn begin_read(&self) -> Result<ReadTransaction, StorageError> {
        let path = &self.shared.path;
        self.shared.db.begin_read().map_err(error::failed(path))
    }

    fn damaged(&self, chains: Vec<ChainDamage>) -> StorageError {
        StorageError::Damaged {
            path: self.shared.path.clone(),
            chains,
        }
    }

    fn unreadable(&self, detail: String) -> StorageError {
        StorageError::Unreadable {
            path: self.shared.path.clone(),
            detail,
        }
    }
}

impl Drop for RedbEventLog {
    /// Lets the writer commit what is queued (durably) and waits for it.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!(path = %self.shared.path.display(), "the chain writer panicked");
        }
    }
}
