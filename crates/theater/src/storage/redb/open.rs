//! Opening the chain database: creating its file and tables, refusing a
//! damaged file or an unknown layout with a hint, converting layout 1, and
//! starting the writer.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use redb::{Builder, Database, ReadableTable, WriteTransaction};

use super::error::{StorageError, failed};
use super::inbox::last_accepted;
use super::kept::KeptStates;
use super::layout::{
    ACTORS, EVENTS, FORMAT, HEADS, INBOX, META, SNAPSHOTS, STATE_BLOBS, STATE_REFS, STATES,
};
use super::options::{BatchCounts, Counters, LogOptions};
use super::{RedbEventLog, Shared, writer};
use crate::storage::KeptState;
use crate::storage::codec::{self, StateRef};

impl RedbEventLog {
    /// Opens (or creates) the database at `path`, durable, checking the file
    /// on open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_with(path, LogOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: LogOptions) -> Result<Self, StorageError> {
        let path = path.as_ref().to_owned();
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StorageError::Directory {
                path: path.clone(),
                source,
            })?;
        }
        let db = open_database(&path, &options)?;
        let tx = db.begin_write().map_err(failed(&path))?;
        {
            let mut meta = tx.open_table(META).map_err(failed(&path))?;
            let found = meta
                .get("format")
                .map_err(failed(&path))?
                .map(|v| v.value());
            match found {
                None | Some(FORMAT) => {}
                Some(1) => migrate_inline_states(&tx, &path)?,
                Some(found) => return Err(StorageError::Format { path, found }),
            }
            meta.insert("format", FORMAT).map_err(failed(&path))?;
            tx.open_table(EVENTS).map_err(failed(&path))?;
            tx.open_table(HEADS).map_err(failed(&path))?;
            tx.open_table(STATES).map_err(failed(&path))?;
            tx.open_table(SNAPSHOTS).map_err(failed(&path))?;
            tx.open_table(STATE_BLOBS).map_err(failed(&path))?;
            tx.open_table(STATE_REFS).map_err(failed(&path))?;
            tx.open_table(INBOX).map_err(failed(&path))?;
            tx.open_table(ACTORS).map_err(failed(&path))?;
        }
        let next_accepted = last_accepted(&tx, &path)?.map_or(0, |last| last + 1);
        tx.commit().map_err(failed(&path))?;

        let shared = Arc::new(Shared {
            db,
            path,
            counters: Counters::default(),
            next_accepted: AtomicU64::new(next_accepted),
        });
        let (queue, writer) = writer::start(shared.clone(), &options)?;
        Ok(Self {
            shared,
            queue: Some(queue),
            writer: Some(writer),
        })
    }
}

fn open_database(path: &Path, options: &LogOptions) -> Result<Database, StorageError> {
    let mut builder = Builder::new();
    builder
        .set_cache_size(options.cache_bytes)
        .set_check_integrity_on_open(options.check_integrity_on_open);
    // redb's debug builds assert on states a damaged file can produce; such
    // a file is reported like any other damaged one.
    let opened = catch_unwind(AssertUnwindSafe(|| builder.create(path)));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)))) => {
            Err(StorageError::Unreadable {
                path: path.to_owned(),
                detail,
            })
        }
        Ok(Err(source)) => {
            let hint = match &source {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    " (another process has it open: give each running Theater its own home)"
                }
                redb::DatabaseError::Storage(redb::StorageError::Io(e))
                    if e.kind() == std::io::ErrorKind::InvalidData =>
                {
                    " (the file is not a redb database: move it aside or choose another path)"
                }
                redb::DatabaseError::UpgradeRequired(_) => {
                    " (the file was written by another version of redb)"
                }
                _ => "",
            };
            Err(StorageError::Open {
                path: path.to_owned(),
                source,
                hint,
            })
        }
        Err(panic) => Err(StorageError::Unreadable {
            path: path.to_owned(),
            detail: panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "redb stopped while reading it".to_owned()),
        }),
    }
}

/// Converts a database of layout 1, which kept a copy of the state in
/// every entry of [`STATES`] and [`SNAPSHOTS`], to keeping each state once.
fn migrate_inline_states(tx: &WriteTransaction, path: &Path) -> Result<(), StorageError> {
    let mut kept = KeptStates::open(tx, path)?;
    let mut newest = Vec::new();
    for row in kept.newest.iter().map_err(failed(path))? {
        let (key, value) = row.map_err(failed(path))?;
        newest.push((key.value(), value.value().to_vec()));
    }
    for (actor, bytes) in newest {
        let (at, state) = inline_state(&bytes, path)?;
        kept.newest
            .insert(actor, codec::encode_state_ref(&at).as_slice())
            .map_err(failed(path))?;
        kept.add_ref(&state, &mut BatchCounts::default())?;
    }
    let mut snapshots = Vec::new();
    for row in kept.snapshots.iter().map_err(failed(path))? {
        let (key, value) = row.map_err(failed(path))?;
        snapshots.push((key.value(), value.value().to_vec()));
    }
    for ((actor, _), bytes) in snapshots {
        let (at, state) = inline_state(&bytes, path)?;
        kept.snapshot(actor, &at, &state, &mut BatchCounts::default())?;
    }
    Ok(())
}

/// A state as layout 1 kept it, and the reference layout 2 keeps instead.
fn inline_state(bytes: &[u8], path: &Path) -> Result<(StateRef, KeptState), StorageError> {
    let snapshot = codec::decode_v1_snapshot(bytes).map_err(|e| StorageError::Unreadable {
        path: path.to_owned(),
        detail: format!("a state kept by layout 1 cannot be read: {e}"),
    })?;
    let state = KeptState::new(snapshot.state);
    let at = StateRef {
        index: snapshot.index,
        hash: snapshot.hash,
        sha256: state.sha256(),
    };
    Ok((at, state))
}
