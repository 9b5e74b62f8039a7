//! [`RedbEventLog`]: every actor's chain in one redb database, appended to
//! by one group-committing writer thread.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::{Future, ready};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{
    Builder, Database, ReadTransaction, ReadableDatabase, ReadableTable, Table, TableDefinition,
    WriteTransaction,
};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::codec::{self, StateRef};
use crate::chain::record::StateDigest;
use crate::chain::{
    self, AcceptFuture, Accepted, ActorRecord, ChainEvent, ChainExport, EXPORT_FORMAT, Entry,
    EventLog, Hash, KeptState, LogError, LogFuture, SNAPSHOT_EVERY, SavedActor, Snapshot,
    VerifyError, VerifyFailure, always_snapshot, snapshot_due,
};
use crate::id::ActorId;

/// How long the writer keeps a batch open for more appends after the first
/// one arrived. It closes earlier once as many appends have arrived as the
/// recent batches held, so a lone appender waits for no one.
pub const GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(1);
/// Most appends committed in one transaction.
pub const MAX_BATCH: usize = 1024;
/// Memory redb may use to cache pages of the chain database.
const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// The layout version of the database, kept in [`META`]. Layout 1 kept
/// every state inline; a database in it is converted when opened.
const FORMAT: u64 = 2;

/// Encoded events by (actor id bytes, sequence number from 0).
const EVENTS: TableDefinition<([u8; 16], u64), &[u8]> = TableDefinition::new("chain-events");
/// Per actor: (number of events, hash of the newest).
const HEADS: TableDefinition<[u8; 16], (u64, [u8; 32])> = TableDefinition::new("chain-heads");
/// Per actor: where its newest state is (see `codec::encode_state_ref`).
const STATES: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("actor-states");
/// Where the states of (actor, index of the event that left them) are,
/// every [`LogOptions::snapshot_every`] events.
const SNAPSHOTS: TableDefinition<([u8; 16], u64), &[u8]> = TableDefinition::new("snapshots");
/// State bytes by their SHA-256: each state is stored once, however many
/// events and actors leave it.
const STATE_BLOBS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("state-blobs");
/// How many entries of [`STATES`] and [`SNAPSHOTS`] name each stored
/// state; a state no entry names is removed.
const STATE_REFS: TableDefinition<[u8; 32], u64> = TableDefinition::new("state-refs");
/// Accepted messages not yet run, by (actor, number); each leaves in the
/// transaction that appends its call's event (see `EventLog::accept`).
const INBOX: TableDefinition<([u8; 16], u64), &[u8]> = TableDefinition::new("inbox");
/// Per actor: how it was started ([`ActorRecord`] as JSON).
const ACTORS: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("actors");
/// `format` → [`FORMAT`].
const META: TableDefinition<&str, u64> = TableDefinition::new("chain-meta");

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

/// The newest event of a stored chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// How many events the chain has.
    pub events: u64,
    pub hash: Hash,
}

/// What [`RedbEventLog::verify_all`] checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifySummary {
    pub chains: u64,
    pub events: u64,
}

/// What is wrong with one stored chain, at its first bad event.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    #[error("event {index} cannot be read: {reason}")]
    Unreadable { index: u64, reason: String },
    #[error("event {index} is missing: the next stored event has sequence number {found}")]
    Missing { index: u64, found: u64 },
    #[error("{0}")]
    Chain(VerifyError),
    #[error("the state stored for event {index} does not match it: {reason}")]
    State { index: u64, reason: String },
    #[error(
        "the head table records {recorded} events ending in {recorded_head}, but {stored} events are stored ending in {stored_head}"
    )]
    Head {
        recorded: u64,
        recorded_head: String,
        stored: u64,
        stored_head: String,
    },
}

impl Damage {
    /// Index (= sequence number) of the first bad event.
    pub fn first_bad_event(&self) -> u64 {
        match self {
            Self::Unreadable { index, .. }
            | Self::Missing { index, .. }
            | Self::State { index, .. } => *index,
            Self::Chain(error) => error.index() as u64,
            Self::Head {
                recorded, stored, ..
            } => (*recorded)
                .min(*stored)
                .min(recorded.max(stored).saturating_sub(1)),
        }
    }
}

/// One damaged chain.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("chain of actor {actor}: {damage}")]
pub struct ChainDamage {
    pub actor: ActorId,
    pub damage: Damage,
}

/// The chain database failed, or holds something that does not verify.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot create the directory of the chain database {}: {source}", path.display())]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the chain database {}: {source}{hint}", path.display())]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
        hint: &'static str,
    },
    #[error(
        "cannot open the chain database {}: the file is damaged ({detail}); move it aside and restore it from a backup or from chain exports",
        path.display()
    )]
    Unreadable { path: PathBuf, detail: String },
    #[error(
        "the chain database {} has layout {found}; this version of Theater reads layout {FORMAT}",
        path.display()
    )]
    Format { path: PathBuf, found: u64 },
    #[error("the chain database {} failed: {source}", path.display())]
    Database { path: PathBuf, source: redb::Error },
    #[error("the chain database {} is damaged: {}", path.display(), list(chains))]
    Damaged {
        path: PathBuf,
        chains: Vec<ChainDamage>,
    },
    #[error("cannot import the chain into {}: {reason}", path.display())]
    Import { path: PathBuf, reason: String },
    #[error("cannot store in {}: {reason}", path.display())]
    Refused { path: PathBuf, reason: String },
    #[error("the chain database {} is closed: its writer has stopped", path.display())]
    Closed { path: PathBuf },
}

fn list(chains: &[ChainDamage]) -> String {
    let shown: Vec<String> = chains.iter().map(ToString::to_string).collect();
    shown.join("; ")
}

impl StorageError {
    /// The damaged chains, if this error is about damage.
    pub fn damaged_chains(&self) -> &[ChainDamage] {
        match self {
            Self::Damaged { chains, .. } => chains,
            _ => &[],
        }
    }
}

/// Wraps redb's errors with the path of the database.
fn failed<E: Into<redb::Error>>(path: &Path) -> impl Fn(E) -> StorageError + '_ {
    move |error| StorageError::Database {
        path: path.to_owned(),
        source: error.into(),
    }
}

/// (sequence number, stored bytes) of one actor's events, in order.
type Rows = Vec<(u64, Vec<u8>)>;

/// What the writer answers: `Err` carries a message for the caller.
type Reply = oneshot::Sender<Result<(), String>>;

enum Request {
    Append {
        actor: [u8; 16],
        hash: Hash,
        parent: Option<Hash>,
        bytes: Vec<u8>,
        /// The state the event leaves behind, if it is a state transition,
        /// and whether it is snapshotted whatever the interval.
        state: Option<(KeptState, bool)>,
        /// The inbox entry the event's call delivered.
        delivered: Option<u64>,
        reply: Reply,
    },
    /// A message for an actor's inbox, under its number.
    Accept {
        actor: [u8; 16],
        number: u64,
        message: Vec<u8>,
        reply: Reply,
    },
    /// How an actor was started, as JSON.
    SaveActor {
        actor: [u8; 16],
        record: Vec<u8>,
        reply: Reply,
    },
    SetRunning {
        actor: [u8; 16],
        running: bool,
        reply: Reply,
    },
    /// A whole verified chain for an actor that has none.
    Import {
        actor: [u8; 16],
        events: Vec<(Hash, Vec<u8>)>,
        reply: Reply,
    },
    /// A durable commit, even if nothing is waiting.
    Sync { reply: Reply },
}

struct Shared {
    db: Database,
    path: PathBuf,
    events: AtomicU64,
    commits: AtomicU64,
    syncs: AtomicU64,
    largest_batch: AtomicU64,
    states_written: AtomicU64,
    state_bytes_written: AtomicU64,
    /// The number the next accepted message gets in its actor's inbox.
    next_accepted: AtomicU64,
}

/// Every actor's chain in one redb database file. See the
/// [module documentation](super).
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
            events: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            largest_batch: AtomicU64::new(0),
            states_written: AtomicU64::new(0),
            state_bytes_written: AtomicU64::new(0),
            next_accepted: AtomicU64::new(next_accepted),
        });
        let (queue, requests) = mpsc::channel();
        let writer = Writer {
            shared: shared.clone(),
            requests,
            durability: options.durability,
            snapshot_every: options.snapshot_every,
            expected: 1,
            unsynced_since: None,
        };
        let writer = std::thread::Builder::new()
            .name("theater-chain-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StorageError::Refused {
                path: shared.path.clone(),
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(Self {
            shared,
            queue: Some(queue),
            writer: Some(writer),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// What the writer has done since the log was opened.
    pub fn stats(&self) -> LogStats {
        let s = &self.shared;
        LogStats {
            events: s.events.load(Ordering::Relaxed),
            commits: s.commits.load(Ordering::Relaxed),
            syncs: s.syncs.load(Ordering::Relaxed),
            largest_batch: s.largest_batch.load(Ordering::Relaxed),
            states_written: s.states_written.load(Ordering::Relaxed),
            state_bytes_written: s.state_bytes_written.load(Ordering::Relaxed),
        }
    }

    /// Every actor with a stored chain.
    pub fn actors(&self) -> Result<Vec<ActorId>, StorageError> {
        let path = &self.shared.path;
        let tx = self.shared.db.begin_read().map_err(failed(path))?;
        let heads = tx.open_table(HEADS).map_err(failed(path))?;
        let mut actors = Vec::new();
        for row in heads.iter().map_err(failed(path))? {
            let (key, _) = row.map_err(failed(path))?;
            actors.push(actor_of(key.value()));
        }
        Ok(actors)
    }

    /// The newest event of `actor`'s chain, `None` if it has none.
    pub fn head(&self, actor: &ActorId) -> Result<Option<ChainHead>, StorageError> {
        let path = &self.shared.path;
        let tx = self.shared.db.begin_read().map_err(failed(path))?;
        let heads = tx.open_table(HEADS).map_err(failed(path))?;
        let head = heads.get(key_of(actor)).map_err(failed(path))?;
        Ok(head.map(|head| {
            let (events, hash) = head.value();
            ChainHead { events, hash }
        }))
    }

    /// `actor`'s stored chain, oldest first; an event that cannot be read is
    /// an error naming it.
    pub fn stored_events(&self, actor: &ActorId) -> Result<Vec<ChainEvent>, StorageError> {
        self.stored_events_from(actor, 0)
    }

    /// [`stored_events`](Self::stored_events) from index `start` on: only
    /// those are read.
    pub fn stored_events_from(
        &self,
        actor: &ActorId,
        start: u64,
    ) -> Result<Vec<ChainEvent>, StorageError> {
        self.stored_range(actor, start, u64::MAX)
    }

    /// `actor`'s stored events with indices `start..end`; only those are
    /// read, and a missing or unreadable one is an error naming it.
    fn stored_range(
        &self,
        actor: &ActorId,
        start: u64,
        end: u64,
    ) -> Result<Vec<ChainEvent>, StorageError> {
        let rows = self.rows(actor, start, end)?;
        let mut events = Vec::with_capacity(rows.len());
        for (index, (seq, bytes)) in (start..).zip(rows) {
            let damage = if seq != index {
                Damage::Missing { index, found: seq }
            } else {
                match codec::decode(&bytes) {
                    Ok(event) => {
                        events.push(event);
                        continue;
                    }
                    Err(reason) => Damage::Unreadable { index, reason },
                }
            };
            return Err(self.damaged(vec![ChainDamage {
                actor: *actor,
                damage,
            }]));
        }
        Ok(events)
    }

    /// Up to `limit` stored events of `actor` from index `start` on, and how
    /// many the chain has; reads only those events.
    pub fn stored_page(
        &self,
        actor: &ActorId,
        start: u64,
        limit: usize,
    ) -> Result<(Vec<ChainEvent>, u64), StorageError> {
        let total = self.head(actor)?.map_or(0, |head| head.events);
        let end = start.saturating_add(limit as u64).min(total);
        let page = match start < end {
            true => self.stored_range(actor, start, end)?,
            false => Vec::new(),
        };
        Ok((page, total))
    }

    /// The messages in `actor`'s inbox, oldest first, with their numbers.
    pub fn stored_inbox(&self, actor: &ActorId) -> Result<Vec<(u64, Accepted)>, StorageError> {
        let path = &self.shared.path;
        let tx = self.shared.db.begin_read().map_err(failed(path))?;
        let inbox = tx.open_table(INBOX).map_err(failed(path))?;
        let mut messages = Vec::new();
        for row in inbox.range(range_of(actor)).map_err(failed(path))? {
            let (key, value) = row.map_err(failed(path))?;
            let number = key.value().1;
            let message = serde_json::from_slice(value.value()).map_err(|e| {
                self.unreadable(format!(
                    "message {number} in the inbox of actor {actor} cannot be read: {e}"
                ))
            })?;
            messages.push((number, message));
        }
        Ok(messages)
    }

    /// Re-reads `actor`'s chain from the database and recomputes every hash
    /// and link, and checks it against the recorded head. Returns the head.
    pub fn verify_stored(&self, actor: &ActorId) -> Result<Option<ChainHead>, StorageError> {
        let path = &self.shared.path;
        let tx = self.shared.db.begin_read().map_err(failed(path))?;
        let heads = tx.open_table(HEADS).map_err(failed(path))?;
        let recorded = heads.get(key_of(actor)).map_err(failed(path))?;
        let recorded = recorded.map(|head| head.value());
        let events = tx.open_table(EVENTS).map_err(failed(path))?;
        let mut rows = Vec::new();
        for row in events.range(range_of(actor)).map_err(failed(path))? {
            let (key, value) = row.map_err(failed(path))?;
            rows.push((key.value().1, value.value().to_vec()));
        }
        let states = stored_states(&tx, key_of(actor), path)?;
        check_chain(rows, recorded, states).map_err(|damage| {
            self.damaged(vec![ChainDamage {
                actor: *actor,
                damage,
            }])
        })
    }

    /// [`verify_stored`](Self::verify_stored) for every chain in the
    /// database, in one consistent snapshot. Every damaged chain is reported,
    /// each at its first bad event.
    pub fn verify_all(&self) -> Result<VerifySummary, StorageError> {
        let path = &self.shared.path;
        let tx = self.shared.db.begin_read().map_err(failed(path))?;
        let mut heads = BTreeMap::new();
        for row in tx
            .open_table(HEADS)
            .map_err(failed(path))?
            .iter()
            .map_err(failed(path))?
        {
            let (key, value) = row.map_err(failed(path))?;
            heads.insert(key.value(), value.value());
        }
        let mut summary = VerifySummary::default();
        let mut damaged = Vec::new();
        let mut check = |actor: [u8; 16], rows: Rows, head| {
            summary.chains += 1;
            summary.events += rows.len() as u64;
            let states = stored_states(&tx, actor, path)?;
            if let Err(damage) = check_chain(rows, head, states) {
                damaged.push(ChainDamage {
                    actor: actor_of(actor),
                    damage,
                });
            }
            Ok::<_, StorageError>(())
        };
        let events = tx.open_table(EVENTS).map_err(failed(path))?;
        let mut current: Option<([u8; 16], Rows)> = None;
        for row in events.iter().map_err(failed(path))? {
            let (key, value) = row.map_err(failed(path))?;
            let (actor, seq) = key.value();
            match &mut current {
                Some((open, rows)) if *open == actor => rows.push((seq, value.value().to_vec())),
                _ => {
                    if let Some((done, rows)) = current.take() {
                        check(done, rows, heads.remove(&done))?;
                    }
                    current = Some((actor, vec![(seq, value.value().to_vec())]));
                }
            }
        }
        if let Some((done, rows)) = current.take() {
            check(done, rows, heads.remove(&done))?;
        }
        // Heads whose chain has no events at all.
        for (actor, head) in heads {
            check(actor, Vec::new(), Some(head))?;
        }
        if damaged.is_empty() {
            Ok(summary)
        } else {
            Err(self.damaged(damaged))
        }
    }

    /// `actor`'s stored chain in the portable export format.
    pub fn export(&self, actor: &ActorId) -> Result<ChainExport, StorageError> {
        Ok(ChainExport::new(
            actor.to_string(),
            self.stored_events(actor)?,
        ))
    }

    /// Verifies `export` and stores its chain under a fresh actor id, which
    /// it returns. New events for that id link to the imported head. The
    /// id the chain itself vouches for (in its `actor-init` data) stays the
    /// original one.
    pub fn import(
        &self,
        export: &ChainExport,
    ) -> impl Future<Output = Result<ActorId, StorageError>> + Send + use<> {
        let actor = ActorId::new();
        let stored = self.import_as(actor, export);
        async move { stored.await.map(|()| actor) }
    }

    /// [`import`](Self::import) from the JSON text of an export.
    pub fn import_json(
        &self,
        json: &str,
    ) -> impl Future<Output = Result<ActorId, StorageError>> + Send + use<> {
        let stored = match ChainExport::from_json(json) {
            Ok(export) => Ok(self.import(&export)),
            Err(reason) => Err(self.import_error(reason)),
        };
        async move { stored?.await }
    }

    /// Verifies `export` and stores its chain as `actor`'s, which must have
    /// no chain yet.
    pub fn import_as(
        &self,
        actor: ActorId,
        export: &ChainExport,
    ) -> impl Future<Output = Result<(), StorageError>> + Send + use<> {
        let checked = self.check_import(export).map(|()| {
            let events = export
                .events
                .iter()
                .map(|event| (event.hash, codec::encode(event)))
                .collect();
            let (reply, done) = oneshot::channel();
            let request = Request::Import {
                actor: key_of(&actor),
                events,
                reply,
            };
            (self.send(request), done)
        });
        let shared = self.shared.clone();
        async move {
            let (sent, done) = checked?;
            sent?;
            match done.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(reason)) => Err(StorageError::Import {
                    path: shared.path.clone(),
                    reason,
                }),
                Err(_) => Err(StorageError::Closed {
                    path: shared.path.clone(),
                }),
            }
        }
    }

    /// Makes everything committed so far durable now (useful with
    /// [`Durability::Buffered`]; with `Durable` it is already).
    pub fn sync(&self) -> impl Future<Output = Result<(), StorageError>> + Send + use<> {
        let (reply, done) = oneshot::channel();
        let sent = self.send(Request::Sync { reply });
        let shared = self.shared.clone();
        async move {
            sent?;
            match done.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(reason)) => Err(StorageError::Refused {
                    path: shared.path.clone(),
                    reason,
                }),
                Err(_) => Err(StorageError::Closed {
                    path: shared.path.clone(),
                }),
            }
        }
    }

    fn check_import(&self, export: &ChainExport) -> Result<(), StorageError> {
        if export.format != EXPORT_FORMAT {
            return Err(self.import_error(format!(
                "unsupported chain format `{}` (this version reads `{EXPORT_FORMAT}`)",
                export.format
            )));
        }
        if export.events.is_empty() {
            return Err(self.import_error("the export holds no events".to_owned()));
        }
        chain::verify(&export.events).map_err(|error| {
            self.import_error(format!(
                "the chain of {} does not verify: {error}",
                export.actor_id
            ))
        })
    }

    fn import_error(&self, reason: String) -> StorageError {
        StorageError::Import {
            path: self.shared.path.clone(),
            reason,
        }
    }

    fn send(&self, request: Request) -> Result<(), StorageError> {
        self.queue
            .as_ref()
            .and_then(|queue| queue.send(request).ok())
            .ok_or_else(|| StorageError::Closed {
                path: self.shared.path.clone(),
            })
    }

    fn damaged(&self, chains: Vec<ChainDamage>) -> StorageError {
        StorageError::Damaged {
            path: self.shared.path.clone(),
            chains,
        }
    }

    /// (sequence number, stored bytes) of `actor`'s events from `start` on,
    /// before `end`, in order.
    fn rows(&self, actor: &ActorId, start: u64, end: u64) -> Result<Rows, StorageError> {
        let path = &self.shared.path;
        let tx = self.shared.db.begin_read().map_err(failed(path))?;
        let events = tx.open_table(EVENTS).map_err(failed(path))?;
        let mut rows = Vec::new();
        let key = key_of(actor);
        for row in events
            .range((key, start)..(key, end))
            .map_err(failed(path))?
        {
            let (key, value) = row.map_err(failed(path))?;
            rows.push((key.value().1, value.value().to_vec()));
        }
        Ok(rows)
    }
}

impl RedbEventLog {
    fn append_request(&self, actor: &ActorId, entry: Entry<'_>) -> LogFuture {
        let Entry {
            event,
            state,
            delivered,
        } = entry;
        let state = state.map(|kept| (kept.clone(), always_snapshot(&event)));
        if event.computed_hash() != event.hash {
            return Box::pin(ready(Err(LogError(format!(
                "refusing event {} for actor {actor}: its hash does not match its contents",
                hex::encode(event.hash)
            )))));
        }
        let (reply, done) = oneshot::channel();
        let request = Request::Append {
            actor: key_of(actor),
            hash: event.hash,
            parent: event.parent_hash,
            bytes: codec::encode(&event),
            state,
            delivered,
            reply,
        };
        self.request(request, done)
    }

    /// Sends `request` and waits for the writer's answer on `done`.
    fn request(&self, request: Request, done: oneshot::Receiver<Result<(), String>>) -> LogFuture {
        if let Err(error) = self.send(request) {
            return Box::pin(ready(Err(LogError(error.to_string()))));
        }
        let shared = self.shared.clone();
        Box::pin(async move {
            match done.await {
                Ok(result) => result.map_err(LogError),
                Err(_) => Err(LogError(
                    StorageError::Closed {
                        path: shared.path.clone(),
                    }
                    .to_string(),
                )),
            }
        })
    }

    /// The newest snapshot of `actor` at or before event `index`.
    pub fn stored_snapshot(
        &self,
        actor: &ActorId,
        index: u64,
    ) -> Result<Option<Snapshot>, StorageError> {
        let path = &self.shared.path;
        let tx = self.shared.db.begin_read().map_err(failed(path))?;
        let snapshots = tx.open_table(SNAPSHOTS).map_err(failed(path))?;
        let key = key_of(actor);
        let newest = snapshots
            .range((key, 0)..=(key, index))
            .map_err(failed(path))?
            .next_back()
            .transpose()
            .map_err(failed(path))?;
        newest
            .map(|(_, value)| self.load_state(&tx, actor, value.value()))
            .transpose()
    }

    /// Every actor with a stored record, oldest first, with its newest state.
    pub fn stored_actors(&self) -> Result<Vec<SavedActor>, StorageError> {
        let path = &self.shared.path;
        let tx = self.shared.db.begin_read().map_err(failed(path))?;
        let records = tx.open_table(ACTORS).map_err(failed(path))?;
        let mut saved = Vec::new();
        for row in records.iter().map_err(failed(path))? {
            let (key, value) = row.map_err(failed(path))?;
            saved.push(self.saved(&tx, key.value(), value.value())?);
        }
        saved.sort_by_key(|actor| actor.record.started_ms);
        Ok(saved)
    }

    /// The stored record of `actor`, with its newest state.
    pub fn stored_actor(&self, actor: &ActorId) -> Result<Option<SavedActor>, StorageError> {
        let path = &self.shared.path;
        let tx = self.shared.db.begin_read().map_err(failed(path))?;
        let records = tx.open_table(ACTORS).map_err(failed(path))?;
        let record = records.get(key_of(actor)).map_err(failed(path))?;
        record
            .map(|record| self.saved(&tx, key_of(actor), record.value()))
            .transpose()
    }

    /// Every actor with a stored record, without reading their states.
    pub fn stored_actor_ids(&self) -> Result<Vec<ActorId>, StorageError> {
        let path = &self.shared.path;
        let tx = self.shared.db.begin_read().map_err(failed(path))?;
        let records = tx.open_table(ACTORS).map_err(failed(path))?;
        let mut ids = Vec::new();
        for row in records.iter().map_err(failed(path))? {
            ids.push(actor_of(row.map_err(failed(path))?.0.value()));
        }
        Ok(ids)
    }

    /// One stored actor: its record (`record`), head and newest state.
    fn saved(
        &self,
        tx: &ReadTransaction,
        key: [u8; 16],
        record: &[u8],
    ) -> Result<SavedActor, StorageError> {
        let path = &self.shared.path;
        let id = actor_of(key);
        let record: ActorRecord = serde_json::from_slice(record).map_err(|e| {
            self.unreadable(format!("the record of actor {id} cannot be read: {e}"))
        })?;
        let states = tx.open_table(STATES).map_err(failed(path))?;
        let latest = states
            .get(key)
            .map_err(failed(path))?
            .map(|state| self.load_state(tx, &id, state.value()))
            .transpose()?;
        let heads = tx.open_table(HEADS).map_err(failed(path))?;
        let head = heads
            .get(key)
            .map_err(failed(path))?
            .map(|head| head.value().1);
        Ok(SavedActor {
            id,
            record,
            head,
            latest,
        })
    }

    /// The state an encoded reference of `actor`'s names, read from where
    /// it is stored.
    fn load_state(
        &self,
        tx: &ReadTransaction,
        actor: &ActorId,
        encoded: &[u8],
    ) -> Result<Snapshot, StorageError> {
        let path = &self.shared.path;
        let unreadable = |e: String| {
            self.unreadable(format!(
                "a stored state of actor {actor} cannot be read: {e}"
            ))
        };
        let StateRef {
            index,
            hash,
            sha256,
        } = codec::decode_state_ref(encoded).map_err(unreadable)?;
        let state = match sha256 {
            None => None,
            Some(sha256) => {
                let blobs = tx.open_table(STATE_BLOBS).map_err(failed(path))?;
                let bytes = blobs.get(sha256).map_err(failed(path))?.ok_or_else(|| {
                    unreadable(format!(
                        "state {} of event {index} is not stored",
                        hex::encode(sha256)
                    ))
                })?;
                Some(bytes.value().to_vec())
            }
        };
        Ok(Snapshot { index, hash, state })
    }

    fn unreadable(&self, detail: String) -> StorageError {
        StorageError::Unreadable {
            path: self.shared.path.clone(),
            detail,
        }
    }
}

impl EventLog for RedbEventLog {
    fn append_entry(&self, actor: &ActorId, entry: Entry<'_>) -> LogFuture {
        self.append_request(actor, entry)
    }

    fn accept(&self, actor: &ActorId, message: &Accepted) -> AcceptFuture {
        let number = self.shared.next_accepted.fetch_add(1, Ordering::Relaxed);
        let (reply, done) = oneshot::channel();
        let request = Request::Accept {
            actor: key_of(actor),
            number,
            message: serde_json::to_vec(message).expect("accepted messages serialize"),
            reply,
        };
        let stored = self.request(request, done);
        Box::pin(async move { stored.await.map(|()| Some(number)) })
    }

    fn inbox(&self, actor: &ActorId) -> Result<Vec<(u64, Accepted)>, LogError> {
        self.stored_inbox(actor)
            .map_err(|error| LogError(error.to_string()))
    }

    fn events_from(&self, actor: &ActorId, start: u64) -> Result<Vec<ChainEvent>, LogError> {
        self.stored_events_from(actor, start)
            .map_err(|error| LogError(error.to_string()))
    }

    fn chain_head(&self, actor: &ActorId) -> Result<Option<(u64, Hash)>, LogError> {
        self.head(actor)
            .map(|head| head.map(|head| (head.events, head.hash)))
            .map_err(|error| LogError(error.to_string()))
    }

    fn events(&self, actor: &ActorId) -> Result<Vec<ChainEvent>, LogError> {
        self.stored_events(actor)
            .map_err(|error| LogError(error.to_string()))
    }

    fn verify(&self, actor: &ActorId) -> Result<(), VerifyFailure> {
        self.verify_stored(actor)
            .map(|_| ())
            .map_err(|error| VerifyFailure {
                first_bad_event: error
                    .damaged_chains()
                    .first()
                    .map(|chain| chain.damage.first_bad_event()),
                message: error.to_string(),
            })
    }

    fn snapshot(&self, actor: &ActorId, index: u64) -> Result<Option<Snapshot>, LogError> {
        self.stored_snapshot(actor, index)
            .map_err(|error| LogError(error.to_string()))
    }

    fn save_actor(&self, actor: &ActorId, record: &ActorRecord) -> LogFuture {
        let (reply, done) = oneshot::channel();
        let request = Request::SaveActor {
            actor: key_of(actor),
            record: serde_json::to_vec(record).expect("records serialize"),
            reply,
        };
        self.request(request, done)
    }

    fn set_running(&self, actor: &ActorId, running: bool) -> LogFuture {
        let (reply, done) = oneshot::channel();
        let request = Request::SetRunning {
            actor: key_of(actor),
            running,
            reply,
        };
        self.request(request, done)
    }

    fn saved_actors(&self) -> Result<Vec<SavedActor>, LogError> {
        self.stored_actors()
            .map_err(|error| LogError(error.to_string()))
    }

    fn saved_actor(&self, actor: &ActorId) -> Result<Option<SavedActor>, LogError> {
        self.stored_actor(actor)
            .map_err(|error| LogError(error.to_string()))
    }

    fn saved_ids(&self) -> Result<Vec<ActorId>, LogError> {
        self.stored_actor_ids()
            .map_err(|error| LogError(error.to_string()))
    }

    fn events_page(
        &self,
        actor: &ActorId,
        start: u64,
        limit: usize,
    ) -> Result<(Vec<ChainEvent>, u64), LogError> {
        self.stored_page(actor, start, limit)
            .map_err(|error| LogError(error.to_string()))
    }

    fn stats(&self) -> Option<LogStats> {
        Some(RedbEventLog::stats(self))
    }

    fn size_bytes(&self) -> Option<u64> {
        std::fs::metadata(&self.shared.path).ok().map(|m| m.len())
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

/// The kept states of one actor, as [`check_chain`] checks them.
struct StoredStates {
    /// The encoded references of its snapshots, then of its newest state.
    refs: Vec<Vec<u8>>,
    /// The size of each state they name, or why it is not what its digest says.
    blobs: HashMap<Hash, Result<usize, String>>,
}

/// Reads the state references of `actor` and checks, once each, that the
/// states they name are stored and hash to their digests.
fn stored_states(
    tx: &ReadTransaction,
    actor: [u8; 16],
    path: &Path,
) -> Result<StoredStates, StorageError> {
    let snapshots = tx.open_table(SNAPSHOTS).map_err(failed(path))?;
    let mut refs = Vec::new();
    for row in snapshots.range(range_of_key(actor)).map_err(failed(path))? {
        refs.push(row.map_err(failed(path))?.1.value().to_vec());
    }
    let latest = tx.open_table(STATES).map_err(failed(path))?;
    if let Some(state) = latest.get(actor).map_err(failed(path))? {
        refs.push(state.value().to_vec());
    }
    let stored = tx.open_table(STATE_BLOBS).map_err(failed(path))?;
    let mut blobs = HashMap::new();
    for sha256 in refs
        .iter()
        .filter_map(|bytes| codec::decode_state_ref(bytes).ok()?.sha256)
    {
        if blobs.contains_key(&sha256) {
            continue;
        }
        let checked = match stored.get(sha256).map_err(failed(path))? {
            None => Err("the state it names is not stored".to_owned()),
            Some(bytes) if Sha256::digest(bytes.value()).as_slice() != sha256 => {
                Err("the stored state does not hash to the digest it is kept under".to_owned())
            }
            Some(bytes) => Ok(bytes.value().len()),
        };
        blobs.insert(sha256, checked);
    }
    Ok(StoredStates { refs, blobs })
}

/// Checks one kept state against the event it belongs to: the event is in
/// the chain, records that state's digest, and the state is stored intact.
fn check_state(
    events: &[ChainEvent],
    encoded: &[u8],
    blobs: &HashMap<Hash, Result<usize, String>>,
) -> Result<(), Damage> {
    let state = codec::decode_state_ref(encoded).map_err(|reason| Damage::State {
        index: u64::from_be_bytes(
            encoded
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .unwrap_or_default(),
        ),
        reason,
    })?;
    let index = state.index;
    let damage = |reason: String| Damage::State { index, reason };
    let event = usize::try_from(index)
        .ok()
        .and_then(|i| events.get(i))
        .ok_or_else(|| damage(format!("the chain has only {} events", events.len())))?;
    if event.hash != state.hash {
        return Err(damage(format!(
            "it names event {}, but the event there is {}",
            hex::encode(state.hash),
            hex::encode(event.hash)
        )));
    }
    let data: serde_json::Value = serde_json::from_str(event.data.get())
        .map_err(|e| damage(format!("the event's data is not JSON: {e}")))?;
    let recorded = data
        .get("state")
        .ok_or_else(|| damage("the event records no state".to_owned()))?;
    let stored = match &state.sha256 {
        None => None,
        Some(sha256) => {
            let size = blobs
                .get(sha256)
                .cloned()
                .unwrap_or_else(|| Err("the state it names was not read".to_owned()))
                .map_err(&damage)?;
            Some(StateDigest::new(sha256, size))
        }
    };
    let stored = serde_json::to_value(stored).expect("digests serialize");
    if *recorded != stored {
        return Err(damage(format!(
            "the event records state {recorded}, the stored state is {stored}"
        )));
    }
    Ok(())
}

/// Checks one actor's stored rows against its recorded head: every
/// sequence number present, every event readable, every hash and link
/// right, the head the newest event; then every stored state against its
/// event.
fn check_chain(
    rows: Rows,
    recorded: Option<(u64, Hash)>,
    states: StoredStates,
) -> Result<Option<ChainHead>, Damage> {
    let stored = rows.len() as u64;
    let mut events = Vec::with_capacity(rows.len());
    // The first problem that stops reading, if any; events before it are
    // verified first, since an earlier bad link is the first bad event.
    let mut stop = None;
    for (index, (seq, bytes)) in rows.into_iter().enumerate() {
        let index = index as u64;
        if seq != index {
            stop = Some(Damage::Missing { index, found: seq });
            break;
        }
        match codec::decode(&bytes) {
            Ok(event) => events.push(event),
            Err(reason) => {
                stop = Some(Damage::Unreadable { index, reason });
                break;
            }
        }
    }
    chain::verify(&events).map_err(Damage::Chain)?;
    if let Some(damage) = stop {
        return Err(damage);
    }
    let found = events.last().map(|event| (stored, event.hash));
    if found != recorded {
        let show = |head: Option<(u64, Hash)>| {
            (
                head.map_or(0, |(count, _)| count),
                head.map_or_else(|| "nothing".to_owned(), |(_, hash)| hex::encode(hash)),
            )
        };
        let (recorded, recorded_head) = show(recorded);
        let (stored, stored_head) = show(found);
        return Err(Damage::Head {
            recorded,
            recorded_head,
            stored,
            stored_head,
        });
    }
    for state in &states.refs {
        check_state(&events, state, &states.blobs)?;
    }
    Ok(found.map(|(events, hash)| ChainHead { events, hash }))
}

fn key_of(actor: &ActorId) -> [u8; 16] {
    Uuid::parse_str(&actor.to_string())
        .expect("an actor id prints as a UUID")
        .into_bytes()
}

fn actor_of(key: [u8; 16]) -> ActorId {
    Uuid::from_bytes(key)
        .to_string()
        .parse()
        .expect("a UUID is an actor id")
}

fn range_of(actor: &ActorId) -> std::ops::RangeInclusive<([u8; 16], u64)> {
    range_of_key(key_of(actor))
}

fn range_of_key(key: [u8; 16]) -> std::ops::RangeInclusive<([u8; 16], u64)> {
    (key, 0)..=(key, u64::MAX)
}

/// The one thread that writes: takes batches of requests off the queue and
/// commits each batch in one transaction.
struct Writer {
    shared: Arc<Shared>,
    requests: mpsc::Receiver<Request>,
    durability: Durability,
    snapshot_every: u64,
    /// How many requests a batch waits for (within the window), from the
    /// recent batch sizes.
    expected: usize,
    /// When the oldest commit that is not yet durable completed.
    unsynced_since: Option<Instant>,
}

impl Writer {
    fn run(mut self) {
        loop {
            let first = match self.sync_deadline() {
                None => match self.requests.recv() {
                    Ok(request) => request,
                    Err(_) => break,
                },
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    match self.requests.recv_timeout(wait) {
                        Ok(request) => request,
                        Err(RecvTimeoutError::Timeout) => {
                            self.commit(Vec::new(), true);
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            let (batch, closed) = self.gather(first);
            self.commit(batch, false);
            if closed {
                break;
            }
        }
        if self.unsynced_since.is_some() {
            self.commit(Vec::new(), true);
        }
    }

    fn sync_deadline(&self) -> Option<Instant> {
        match self.durability {
            Durability::Durable => None,
            Durability::Buffered { max_unsynced } => self.unsynced_since.map(|t| t + max_unsynced),
        }
    }

    /// Collects requests after `first` until the batch is full, as many as
    /// recent batches held have arrived, or the window has passed. `true`
    /// if the queue was closed.
    fn gather(&mut self, first: Request) -> (Vec<Request>, bool) {
        let mut batch = vec![first];
        let close = Instant::now() + GROUP_COMMIT_WINDOW;
        let mut closed = false;
        while batch.len() < MAX_BATCH {
            match self.requests.try_recv() {
                Ok(request) => {
                    batch.push(request);
                    continue;
                }
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
                Err(TryRecvError::Empty) => {}
            }
            let now = Instant::now();
            if batch.len() >= self.expected || now >= close {
                break;
            }
            match self.requests.recv_timeout(close - now) {
                Ok(request) => batch.push(request),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        // Follow rising concurrency at once, falling concurrency gradually.
        self.expected = batch.len().max(self.expected * 3 / 4).max(1);
        (batch, closed)
    }

    /// Commits `batch` in one transaction and answers every request in it.
    fn commit(&mut self, batch: Vec<Request>, force_sync: bool) {
        let sync = force_sync
            || batch.iter().any(|r| matches!(r, Request::Sync { .. }))
            || match self.sync_deadline() {
                None => matches!(self.durability, Durability::Durable),
                Some(deadline) => Instant::now() >= deadline,
            };
        let shared = self.shared.clone();
        let result = write_batch(&shared, &batch, sync, self.snapshot_every);
        let replies = batch.into_iter().map(|request| match request {
            Request::Append { reply, .. }
            | Request::Accept { reply, .. }
            | Request::SaveActor { reply, .. }
            | Request::SetRunning { reply, .. }
            | Request::Import { reply, .. }
            | Request::Sync { reply } => reply,
        });
        match result {
            Ok(Committed {
                outcomes,
                events,
                written,
            }) => {
                shared.events.fetch_add(events, Ordering::Relaxed);
                shared
                    .states_written
                    .fetch_add(written.states, Ordering::Relaxed);
                shared
                    .state_bytes_written
                    .fetch_add(written.bytes, Ordering::Relaxed);
                shared.commits.fetch_add(1, Ordering::Relaxed);
                shared
                    .largest_batch
                    .fetch_max(outcomes.len() as u64, Ordering::Relaxed);
                if sync {
                    shared.syncs.fetch_add(1, Ordering::Relaxed);
                    self.unsynced_since = None;
                } else if self.unsynced_since.is_none() {
                    self.unsynced_since = Some(Instant::now());
                }
                for (reply, outcome) in replies.zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                tracing::error!("chain batch not stored: {error}");
                let message = error.to_string();
                for reply in replies {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}

/// What one committed batch did.
struct Committed {
    /// Each request's outcome, in order.
    outcomes: Vec<Result<(), String>>,
    /// Events stored.
    events: u64,
    written: Written,
}

/// One transaction for the whole batch; `Err` if the transaction failed,
/// in which case nothing of the batch was stored.
fn write_batch(
    shared: &Shared,
    batch: &[Request],
    sync: bool,
    snapshot_every: u64,
) -> Result<Committed, StorageError> {
    let path = &shared.path;
    let mut tx: WriteTransaction = shared.db.begin_write().map_err(failed(path))?;
    let durability = if sync {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    };
    tx.set_durability(durability).map_err(failed(path))?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut stored = 0;
    let mut written = Written::default();
    {
        let mut events = tx.open_table(EVENTS).map_err(failed(path))?;
        let mut heads = tx.open_table(HEADS).map_err(failed(path))?;
        let mut kept = KeptStates::open(&tx, path)?;
        let mut inbox = tx.open_table(INBOX).map_err(failed(path))?;
        let written = &mut written;
        let mut actors = tx.open_table(ACTORS).map_err(failed(path))?;
        // Heads changed by this batch, written once at the end.
        let mut moved: HashMap<[u8; 16], (u64, Hash)> = HashMap::new();
        for request in batch {
            let outcome = match request {
                Request::Append {
                    actor,
                    hash,
                    parent,
                    bytes,
                    state,
                    delivered,
                    ..
                } => {
                    let head = match moved.get(actor) {
                        Some(head) => Some(*head),
                        None => heads
                            .get(*actor)
                            .map_err(failed(path))?
                            .map(|head| head.value()),
                    };
                    let (count, head_hash) = head.map_or((0, None), |(n, h)| (n, Some(h)));
                    if *parent == head_hash {
                        events
                            .insert((*actor, count), bytes.as_slice())
                            .map_err(failed(path))?;
                        moved.insert(*actor, (count + 1, *hash));
                        stored += 1;
                        if let Some((state, always)) = state {
                            let at = StateRef {
                                index: count,
                                hash: *hash,
                                sha256: state.sha256(),
                            };
                            kept.keep_newest(*actor, &at, state, written)?;
                            if snapshot_due(
                                *always,
                                count,
                                kept.last_snapshot(*actor)?,
                                snapshot_every,
                            ) {
                                kept.snapshot(*actor, &at, state, written)?;
                            }
                        }
                        if let Some(number) = delivered {
                            inbox.remove((*actor, *number)).map_err(failed(path))?;
                        }
                        Ok(())
                    } else {
                        Err(format!(
                            "cannot append event {} to the chain of actor {} in {}: it links to {} but the chain's head is {}",
                            hex::encode(hash),
                            actor_of(*actor),
                            path.display(),
                            describe(*parent),
                            describe(head_hash),
                        ))
                    }
                }
                Request::Accept {
                    actor,
                    number,
                    message,
                    ..
                } => {
                    inbox
                        .insert((*actor, *number), message.as_slice())
                        .map_err(failed(path))?;
                    Ok(())
                }
                Request::Import {
                    actor, events: new, ..
                } => {
                    let exists = moved.contains_key(actor)
                        || heads.get(*actor).map_err(failed(path))?.is_some();
                    if exists {
                        Err(format!("actor {} already has a chain", actor_of(*actor)))
                    } else {
                        for (seq, (_, bytes)) in new.iter().enumerate() {
                            events
                                .insert((*actor, seq as u64), bytes.as_slice())
                                .map_err(failed(path))?;
                        }
                        let (last, _) = new.last().expect("imports are not empty");
                        moved.insert(*actor, (new.len() as u64, *last));
                        stored += new.len() as u64;
                        Ok(())
                    }
                }
                Request::SaveActor { actor, record, .. } => {
                    actors
                        .insert(*actor, record.as_slice())
                        .map_err(failed(path))?;
                    Ok(())
                }
                Request::SetRunning { actor, running, .. } => {
                    let stored = actors.get(*actor).map_err(failed(path))?;
                    let record = stored
                        .map(|bytes| serde_json::from_slice::<ActorRecord>(bytes.value()))
                        .transpose();
                    if !*running {
                        // It will not be resumed to run what it was sent.
                        inbox
                            .retain_in(range_of_key(*actor), |_, _| false)
                            .map_err(failed(path))?;
                    }
                    match record {
                        Ok(Some(mut record)) if record.running != *running => {
                            record.running = *running;
                            let json = serde_json::to_vec(&record).expect("records serialize");
                            actors
                                .insert(*actor, json.as_slice())
                                .map_err(failed(path))?;
                            Ok(())
                        }
                        Ok(_) => Ok(()),
                        Err(e) => Err(format!(
                            "the record of actor {} cannot be read: {e}",
                            actor_of(*actor)
                        )),
                    }
                }
                Request::Sync { .. } => Ok(()),
            };
            outcomes.push(outcome);
        }
        for (actor, head) in moved {
            heads.insert(actor, head).map_err(failed(path))?;
        }
    }
    tx.commit().map_err(failed(path))?;
    Ok(Committed {
        outcomes,
        events: stored,
        written,
    })
}

/// States a batch wrote (not those it found stored already).
#[derive(Default)]
struct Written {
    states: u64,
    bytes: u64,
}

/// The writer's side of kept states: the references to them, and the
/// states themselves, stored once by SHA-256 and counted, so that an
/// unchanged or repeated state is not written again and a state no
/// reference names is removed.
struct KeptStates<'tx> {
    path: &'tx Path,
    newest: Table<'tx, [u8; 16], &'static [u8]>,
    snapshots: Table<'tx, ([u8; 16], u64), &'static [u8]>,
    blobs: Table<'tx, [u8; 32], &'static [u8]>,
    refs: Table<'tx, [u8; 32], u64>,
}

impl<'tx> KeptStates<'tx> {
    fn open(tx: &'tx WriteTransaction, path: &'tx Path) -> Result<Self, StorageError> {
        Ok(Self {
            path,
            newest: tx.open_table(STATES).map_err(failed(path))?,
            snapshots: tx.open_table(SNAPSHOTS).map_err(failed(path))?,
            blobs: tx.open_table(STATE_BLOBS).map_err(failed(path))?,
            refs: tx.open_table(STATE_REFS).map_err(failed(path))?,
        })
    }

    /// Makes the state `at` names `actor`'s newest.
    fn keep_newest(
        &mut self,
        actor: [u8; 16],
        at: &StateRef,
        state: &KeptState,
        written: &mut Written,
    ) -> Result<(), StorageError> {
        let path = self.path;
        let before = self
            .newest
            .get(actor)
            .map_err(failed(path))?
            .and_then(|old| codec::decode_state_ref(old.value()).ok())
            .and_then(|old| old.sha256);
        if before != at.sha256 {
            self.add_ref(state, written)?;
            self.drop_ref(before)?;
        }
        self.newest
            .insert(actor, codec::encode_state_ref(at).as_slice())
            .map_err(failed(path))?;
        Ok(())
    }

    /// Index of `actor`'s newest snapshot.
    fn last_snapshot(&self, actor: [u8; 16]) -> Result<Option<u64>, StorageError> {
        let path = self.path;
        Ok(self
            .snapshots
            .range(range_of_key(actor))
            .map_err(failed(path))?
            .next_back()
            .transpose()
            .map_err(failed(path))?
            .map(|(key, _)| key.value().1))
    }

    /// Keeps the state `at` names as a snapshot of `actor`.
    fn snapshot(
        &mut self,
        actor: [u8; 16],
        at: &StateRef,
        state: &KeptState,
        written: &mut Written,
    ) -> Result<(), StorageError> {
        self.snapshots
            .insert((actor, at.index), codec::encode_state_ref(at).as_slice())
            .map_err(failed(self.path))?;
        self.add_ref(state, written)
    }

    /// One more reference to `state`: stored if it is the first.
    fn add_ref(&mut self, state: &KeptState, written: &mut Written) -> Result<(), StorageError> {
        let path = self.path;
        let Some(sha256) = state.sha256() else {
            return Ok(());
        };
        let count = self
            .refs
            .get(sha256)
            .map_err(failed(path))?
            .map_or(0, |count| count.value());
        if count == 0 {
            let bytes = state.state().as_deref().unwrap_or_default();
            self.blobs.insert(sha256, bytes).map_err(failed(path))?;
            written.states += 1;
            written.bytes += bytes.len() as u64;
        }
        self.refs.insert(sha256, count + 1).map_err(failed(path))?;
        Ok(())
    }

    /// One reference fewer to the state `sha256`: removed if it was the last.
    fn drop_ref(&mut self, sha256: Option<Hash>) -> Result<(), StorageError> {
        let path = self.path;
        let Some(sha256) = sha256 else {
            return Ok(());
        };
        let count = self
            .refs
            .get(sha256)
            .map_err(failed(path))?
            .map_or(0, |count| count.value());
        if count > 1 {
            self.refs.insert(sha256, count - 1).map_err(failed(path))?;
        } else {
            self.refs.remove(sha256).map_err(failed(path))?;
            self.blobs.remove(sha256).map_err(failed(path))?;
        }
        Ok(())
    }
}

/// Converts a database of layout 1, which kept a copy of the state in
/// every entry of [`STATES`] and [`SNAPSHOTS`], to keeping each state once.
fn migrate_inline_states(tx: &WriteTransaction, path: &Path) -> Result<(), StorageError> {
    let mut kept = KeptStates::open(tx, path)?;
    let unreadable = |e: String| StorageError::Unreadable {
        path: path.to_owned(),
        detail: format!("a state kept by layout 1 cannot be read: {e}"),
    };
    let mut newest = Vec::new();
    for row in kept.newest.iter().map_err(failed(path))? {
        let (key, value) = row.map_err(failed(path))?;
        newest.push((key.value(), value.value().to_vec()));
    }
    for (actor, bytes) in newest {
        let snapshot = codec::decode_v1_snapshot(&bytes).map_err(unreadable)?;
        let state = KeptState::new(snapshot.state);
        let at = StateRef {
            index: snapshot.index,
            hash: snapshot.hash,
            sha256: state.sha256(),
        };
        kept.newest
            .insert(actor, codec::encode_state_ref(&at).as_slice())
            .map_err(failed(path))?;
        kept.add_ref(&state, &mut Written::default())?;
    }
    let mut snapshots = Vec::new();
    for row in kept.snapshots.iter().map_err(failed(path))? {
        let (key, value) = row.map_err(failed(path))?;
        snapshots.push((key.value(), value.value().to_vec()));
    }
    for ((actor, _), bytes) in snapshots {
        let snapshot = codec::decode_v1_snapshot(&bytes).map_err(unreadable)?;
        let state = KeptState::new(snapshot.state);
        let at = StateRef {
            index: snapshot.index,
            hash: snapshot.hash,
            sha256: state.sha256(),
        };
        kept.snapshot(actor, &at, &state, &mut Written::default())?;
    }
    Ok(())
}

/// The highest number in any inbox, `None` if every inbox is empty.
fn last_accepted(tx: &WriteTransaction, path: &Path) -> Result<Option<u64>, StorageError> {
    let inbox = tx.open_table(INBOX).map_err(failed(path))?;
    let mut last = None;
    for row in inbox.iter().map_err(failed(path))? {
        let number = row.map_err(failed(path))?.0.value().1;
        last = last.max(Some(number));
    }
    Ok(last)
}

fn describe(hash: Option<Hash>) -> String {
    hash.map_or_else(|| "nothing (a first event)".to_owned(), hex::encode)
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    fn event(parent: Option<Hash>, n: u64) -> ChainEvent {
        ChainEvent::new(
            parent,
            "call",
            RawValue::from_string(format!(r#"{{"n":{n},"pad":"marker-{n:06}"}}"#)).unwrap(),
            1_700_000_000_000 + n,
            format!("call {n}"),
        )
    }

    /// Appends `n` linked events to `actor`'s chain, after `head`.
    async fn append_chain(
        log: &RedbEventLog,
        actor: &ActorId,
        mut head: Option<Hash>,
        n: u64,
    ) -> Option<Hash> {
        for i in 0..n {
            let next = event(head, i);
            head = Some(next.hash);
            log.append(actor, next).await.unwrap();
        }
        head
    }

    /// Appends a state transition, as the executor does.
    async fn append_state(
        log: &RedbEventLog,
        actor: &ActorId,
        event: ChainEvent,
        state: crate::wasm::StateBytes,
    ) {
        let state = KeptState::new(state);
        let entry = Entry {
            event,
            state: Some(&state),
            delivered: None,
        };
        log.append_entry(actor, entry).await.unwrap();
    }

    fn temp_db() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("chains.redb");
        (dir, path)
    }

    /// Rewrites the stored bytes of `actor`'s event `seq` with a raw redb
    /// handle (the log must be closed).
    fn tamper(path: &Path, actor: &ActorId, seq: u64, change: impl FnOnce(&mut Vec<u8>)) {
        let db = Database::open(path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut events = tx.open_table(EVENTS).unwrap();
            let mut bytes = events
                .get((key_of(actor), seq))
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            change(&mut bytes);
            events
                .insert((key_of(actor), seq), bytes.as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
    }

    fn remove(path: &Path, actor: &ActorId, seq: u64) {
        let db = Database::open(path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(EVENTS)
            .unwrap()
            .remove((key_of(actor), seq))
            .unwrap();
        tx.commit().unwrap();
    }

    #[tokio::test]
    async fn events_survive_reopening_byte_for_byte() {
        let (_dir, path) = temp_db();
        let actor = ActorId::new();
        let written: Vec<ChainEvent> = {
            let log = RedbEventLog::open(&path).unwrap();
            let head = append_chain(&log, &actor, None, 5).await;
            assert_eq!(log.head(&actor).unwrap().unwrap().hash, head.unwrap());
            assert_eq!(log.stats().syncs, log.stats().commits);
            log.events(&actor).unwrap()
        };
        let log = RedbEventLog::open(&path).unwrap();
        let read = log.events(&actor).unwrap();
        assert_eq!(read.len(), 5);
        for (a, b) in written.iter().zip(&read) {
            assert_eq!(a.hash, b.hash);
            assert_eq!(a.data.get(), b.data.get());
        }
        assert_eq!(chain::verify(&read), Ok(()));
        let head = log.verify_stored(&actor).unwrap().unwrap();
        assert_eq!((head.events, head.hash), (5, read[4].hash));
        assert_eq!(log.actors().unwrap(), vec![actor]);
        assert!(log.events(&ActorId::new()).unwrap().is_empty());
        assert_eq!(log.verify_stored(&ActorId::new()).unwrap(), None);
        // The chain goes on from the stored head after reopening.
        log.append(&actor, event(Some(head.hash), 99))
            .await
            .unwrap();
        assert_eq!(
            log.verify_all().unwrap(),
            VerifySummary {
                chains: 1,
                events: 6
            }
        );
    }

    #[tokio::test]
    async fn an_event_that_does_not_link_to_the_head_is_refused() {
        let (_dir, path) = temp_db();
        let log = RedbEventLog::open(&path).unwrap();
        let actor = ActorId::new();
        let head = append_chain(&log, &actor, None, 2).await;
        let error = log.append(&actor, event(None, 7)).await.unwrap_err();
        assert!(error.0.contains("links to nothing"), "{error}");
        assert!(error.0.contains(&actor.to_string()), "{error}");
        let mut forged = event(head, 8);
        forged.description.push('!');
        let error = log.append(&actor, forged).await.unwrap_err();
        assert!(error.0.contains("does not match its contents"), "{error}");
        assert_eq!(log.events(&actor).unwrap().len(), 2);
        log.verify_all().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appenders_are_group_committed_in_order() {
        let (_dir, path) = temp_db();
        let log = Arc::new(RedbEventLog::open(&path).unwrap());
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let log = log.clone();
                tokio::spawn(async move {
                    let actor = ActorId::new();
                    append_chain(&log, &actor, None, 20).await;
                    actor
                })
            })
            .collect();
        let mut actors = Vec::new();
        for task in tasks {
            actors.push(task.await.unwrap());
        }
        let stats = log.stats();
        assert_eq!(stats.events, 32 * 20);
        assert!(
            stats.events_per_commit() > 1.0,
            "no batching: {stats:?} (events per commit {})",
            stats.events_per_commit()
        );
        for actor in &actors {
            let events = log.events(actor).unwrap();
            let numbers: Vec<u64> = events.iter().map(|e| e.timestamp % 1000).collect();
            assert_eq!(numbers, (0..20).collect::<Vec<_>>());
        }
        assert_eq!(log.verify_all().unwrap().events, 32 * 20);
    }

    #[tokio::test]
    async fn altered_data_is_reported_at_the_first_bad_event() {
        let (_dir, path) = temp_db();
        let (a, b) = (ActorId::new(), ActorId::new());
        {
            let log = RedbEventLog::open(&path).unwrap();
            append_chain(&log, &a, None, 6).await;
            append_chain(&log, &b, None, 3).await;
        }
        // `"n":3` becomes `"n":4`: still JSON, but not what was hashed.
        tamper(&path, &a, 3, |bytes| {
            let at = bytes.windows(4).position(|w| w == br#""n":"#).unwrap() + 4;
            bytes[at] += 1;
        });
        let log = RedbEventLog::open(&path).unwrap();
        let error = log.verify_stored(&a).unwrap_err();
        let damaged = error.damaged_chains();
        assert_eq!(damaged.len(), 1);
        assert_eq!(damaged[0].actor, a);
        assert!(matches!(
            damaged[0].damage,
            Damage::Chain(VerifyError::HashMismatch { index: 3, .. })
        ));
        assert_eq!(damaged[0].damage.first_bad_event(), 3);
        let text = error.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("event 3"), "{text}");
        log.verify_stored(&b).unwrap();
        let all = log.verify_all().unwrap_err();
        assert_eq!(all.damaged_chains().len(), 1);
        assert_eq!(all.damaged_chains()[0].actor, a);
    }

    #[tokio::test]
    async fn unreadable_missing_and_cut_events_are_reported() {
        let (_dir, path) = temp_db();
        let (a, b, c) = (ActorId::new(), ActorId::new(), ActorId::new());
        {
            let log = RedbEventLog::open(&path).unwrap();
            append_chain(&log, &a, None, 4).await;
            append_chain(&log, &b, None, 4).await;
            append_chain(&log, &c, None, 4).await;
        }
        tamper(&path, &a, 2, |bytes| {
            let at = bytes.iter().position(|b| *b == b'{').unwrap();
            bytes[at] = 0xff;
        });
        remove(&path, &b, 1);
        remove(&path, &c, 3);
        let log = RedbEventLog::open(&path).unwrap();
        let damage = |actor: &ActorId| {
            let error = log.verify_stored(actor).unwrap_err();
            let chains = error.damaged_chains();
            assert_eq!(chains.len(), 1, "{error}");
            (chains[0].damage.first_bad_event(), error.to_string())
        };
        let (index, text) = damage(&a);
        assert_eq!(index, 2, "{text}");
        assert!(text.contains("cannot be read"), "{text}");
        let (index, text) = damage(&b);
        assert_eq!(index, 1, "{text}");
        assert!(text.contains("missing"), "{text}");
        let (index, text) = damage(&c);
        assert_eq!(index, 3, "{text}");
        assert!(text.contains("head table records 4 events"), "{text}");
        assert!(log.events(&a).unwrap_err().0.contains("event 2"));
        assert_eq!(log.verify_all().unwrap_err().damaged_chains().len(), 3);
    }

    #[tokio::test]
    async fn export_and_import_round_trip_under_a_new_id() {
        let (_dir, path) = temp_db();
        let log = RedbEventLog::open(&path).unwrap();
        let actor = ActorId::new();
        append_chain(&log, &actor, None, 4).await;
        let json = log.export(&actor).unwrap().to_json();
        let copy = log.import_json(&json).await.unwrap();
        assert_ne!(copy, actor);
        let original = log.events(&actor).unwrap();
        let imported = log.events(&copy).unwrap();
        assert_eq!(
            original.iter().map(|e| e.hash).collect::<Vec<_>>(),
            imported.iter().map(|e| e.hash).collect::<Vec<_>>()
        );
        // The copy's chain goes on from the imported head.
        let head = log.head(&copy).unwrap().unwrap();
        assert_eq!(head.events, 4);
        log.append(&copy, event(Some(head.hash), 4)).await.unwrap();
        log.verify_all().unwrap();

        let error = log
            .import_as(actor, &ChainExport::from_json(&json).unwrap())
            .await
            .unwrap_err();
        assert!(error.to_string().contains("already has a chain"), "{error}");
        let mut altered = ChainExport::from_json(&json).unwrap();
        altered.events[2].timestamp += 1;
        let error = log.import(&altered).await.unwrap_err();
        assert!(error.to_string().contains("event 2"), "{error}");
        let error = log.import_json("{}").await.unwrap_err();
        assert!(error.to_string().contains("not a chain export"), "{error}");
        assert_eq!(log.actors().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn buffered_appends_are_visible_at_once_and_durable_after_drop() {
        let (_dir, path) = temp_db();
        let actor = ActorId::new();
        let options = LogOptions {
            durability: Durability::Buffered {
                max_unsynced: Duration::from_secs(60),
            },
            ..LogOptions::default()
        };
        {
            let log = RedbEventLog::open_with(&path, options.clone()).unwrap();
            append_chain(&log, &actor, None, 10).await;
            assert_eq!(log.events(&actor).unwrap().len(), 10);
            assert_eq!(log.stats().syncs, 0);
            log.sync().await.unwrap();
            assert_eq!(log.stats().syncs, 1);
            append_chain(&log, &actor, log.head(&actor).unwrap().map(|h| h.hash), 3).await;
        }
        let log = RedbEventLog::open(&path).unwrap();
        assert_eq!(log.verify_stored(&actor).unwrap().unwrap().events, 13);
    }

    #[tokio::test]
    async fn buffered_commits_are_synced_within_the_bound() {
        let (_dir, path) = temp_db();
        let options = LogOptions {
            durability: Durability::Buffered {
                max_unsynced: Duration::from_millis(20),
            },
            ..LogOptions::default()
        };
        let log = RedbEventLog::open_with(&path, options).unwrap();
        append_chain(&log, &ActorId::new(), None, 3).await;
        // Not a timing assertion: the idle writer syncs on its own, however
        // long that takes.
        while log.stats().syncs == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(log.stats().events, 3);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chains.redb");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let error = RedbEventLog::open(&path).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.starts_with("cannot open the chain database"), "{text}");
    }

    #[test]
    fn another_layout_is_refused() {
        let (_dir, path) = temp_db();
        drop(RedbEventLog::open(&path).unwrap());
        {
            let db = Database::open(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META).unwrap().insert("format", 7).unwrap();
            tx.commit().unwrap();
        }
        let error = RedbEventLog::open(&path).unwrap_err();
        assert!(
            matches!(error, StorageError::Format { found: 7, .. }),
            "{error}"
        );
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused_with_a_hint() {
        let (_dir, path) = temp_db();
        let _log = RedbEventLog::open(&path).unwrap();
        let error = RedbEventLog::open(&path).unwrap_err();
        assert!(error.to_string().contains("another process"), "{error}");
    }

    /// A call event recording `state` (by digest), as the executor writes it.
    fn transition(parent: Option<Hash>, state: &crate::wasm::StateBytes) -> ChainEvent {
        let data = crate::chain::record::encode(&serde_json::json!({
            "function": "f",
            "state": StateDigest::of(state),
        }));
        ChainEvent::new(parent, "call", data, 1_700_000_000_000, "f ok".into())
    }

    #[tokio::test]
    async fn states_are_snapshotted_and_a_changed_snapshot_is_reported() {
        let (_dir, path) = temp_db();
        let actor = ActorId::new();
        let log = RedbEventLog::open(&path).unwrap();
        let mut head = None;
        for n in 0..100u32 {
            let state = Some(n.to_string().into_bytes());
            let event = transition(head, &state);
            head = Some(event.hash);
            append_state(&log, &actor, event, state).await;
        }
        let at = |index| log.stored_snapshot(&actor, index).unwrap().unwrap();
        assert_eq!(at(63).index, 0);
        assert_eq!(at(99).index, crate::chain::SNAPSHOT_EVERY);
        assert_eq!(at(99).state, Some(b"64".to_vec()));
        assert_eq!(log.verify_stored(&actor).unwrap().unwrap().events, 100);
        drop(log);

        // One byte of the state snapshotted at event 64, changed on disk.
        let db = Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut blobs = tx.open_table(STATE_BLOBS).unwrap();
            let key: Hash = Sha256::digest(b"64").into();
            let mut bytes = blobs.get(key).unwrap().unwrap().value().to_vec();
            *bytes.last_mut().unwrap() = b'5';
            blobs.insert(key, bytes.as_slice()).unwrap();
        }
        tx.commit().unwrap();
        drop(db);

        let log = RedbEventLog::open(&path).unwrap();
        let error = log.verify_stored(&actor).unwrap_err();
        let damage = &error.damaged_chains()[0].damage;
        assert!(matches!(damage, Damage::State { index: 64, .. }), "{error}");
        assert!(
            error.to_string().contains("state stored for event 64"),
            "{error}"
        );
        assert_eq!(log.verify_all().unwrap_err().damaged_chains().len(), 1);
        let failure = EventLog::verify(&log, &actor).unwrap_err();
        assert_eq!(failure.first_bad_event, Some(64));
    }

    #[tokio::test]
    async fn each_state_is_stored_once_and_removed_when_nothing_names_it() {
        let (_dir, path) = temp_db();
        let log = RedbEventLog::open(&path).unwrap();
        let state = |text: &str| Some(text.as_bytes().to_vec());
        let (a, b) = (ActorId::new(), ActorId::new());
        let mut head = None;
        for text in ["one", "one", "one", "two", "two", "three"] {
            let event = transition(head, &state(text));
            head = Some(event.hash);
            append_state(&log, &a, event, state(text)).await;
        }
        append_state(&log, &b, transition(None, &state("three")), state("three")).await;
        // "one" (kept by the snapshot of event 0), "two" and "three" were
        // each written once; "two" is gone, named by nothing.
        let stats = log.stats();
        assert_eq!((stats.states_written, stats.state_bytes_written), (3, 11));
        let tx = log.shared.db.begin_read().unwrap();
        let blobs = tx.open_table(STATE_BLOBS).unwrap();
        let stored: Vec<Vec<u8>> = blobs
            .iter()
            .unwrap()
            .map(|row| row.unwrap().1.value().to_vec())
            .collect();
        assert_eq!(stored.len(), 2);
        assert!(stored.contains(&b"one".to_vec()) && stored.contains(&b"three".to_vec()));
        let refs = tx.open_table(STATE_REFS).unwrap();
        let three: Hash = Sha256::digest(b"three").into();
        assert_eq!(refs.get(three).unwrap().unwrap().value(), 3);
        assert_eq!(log.verify_all().unwrap().events, 7);
        assert_eq!(
            log.stored_snapshot(&a, 5).unwrap().unwrap().state,
            state("one")
        );
    }

    #[tokio::test]
    async fn a_database_of_layout_1_is_converted_on_open() {
        let (_dir, path) = temp_db();
        let actor = ActorId::new();
        let state = Some(b"{\"count\":1}".to_vec());
        let event = transition(None, &state);
        {
            let log = RedbEventLog::open(&path).unwrap();
            log.append(&actor, event.clone()).await.unwrap();
        }
        // What layout 1 wrote: the state inline, in both tables.
        let mut inline = 0u64.to_be_bytes().to_vec();
        inline.extend_from_slice(&event.hash);
        inline.push(1);
        inline.extend_from_slice(state.as_deref().unwrap());
        {
            let db = Database::open(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META).unwrap().insert("format", 1).unwrap();
            tx.open_table(STATES)
                .unwrap()
                .insert(key_of(&actor), inline.as_slice())
                .unwrap();
            tx.open_table(SNAPSHOTS)
                .unwrap()
                .insert((key_of(&actor), 0), inline.as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let log = RedbEventLog::open(&path).unwrap();
        assert_eq!(log.verify_all().unwrap().events, 1);
        assert_eq!(
            log.stored_snapshot(&actor, 0).unwrap().unwrap().state,
            state
        );
        drop(log);
        let db = Database::open(&path).unwrap();
        let tx = db.begin_read().unwrap();
        let format = tx
            .open_table(META)
            .unwrap()
            .get("format")
            .unwrap()
            .unwrap()
            .value();
        assert_eq!(format, FORMAT);
        assert_eq!(
            tx.open_table(STATE_BLOBS).unwrap().iter().unwrap().count(),
            1
        );
    }

    #[tokio::test]
    async fn an_accepted_message_leaves_the_inbox_with_its_calls_event() {
        let (_dir, path) = temp_db();
        let actor = ActorId::new();
        let message = |n: u32| Accepted {
            function: "f".into(),
            params: RawValue::from_string(format!("[{n}]")).unwrap(),
            origin: None,
        };
        let numbers = {
            let log = RedbEventLog::open(&path).unwrap();
            let mut numbers = Vec::new();
            for n in 0..3 {
                numbers.push(log.accept(&actor, &message(n)).await.unwrap().unwrap());
            }
            // The first one runs: its event takes it out of the inbox.
            let entry = Entry {
                event: event(None, 0),
                state: None,
                delivered: Some(numbers[0]),
            };
            log.append_entry(&actor, entry).await.unwrap();
            numbers
        };
        // The others are still there after a restart, in order, and new
        // numbers do not reuse theirs.
        let log = RedbEventLog::open(&path).unwrap();
        let inbox = log.inbox(&actor).unwrap();
        let kept: Vec<(u64, &str)> = inbox.iter().map(|(n, m)| (*n, m.params.get())).collect();
        assert_eq!(kept, [(numbers[1], "[1]"), (numbers[2], "[2]")]);
        let next = log.accept(&actor, &message(3)).await.unwrap().unwrap();
        assert!(next > numbers[2]);
        // An actor stopped for good drops its inbox.
        log.set_running(&actor, false).await.unwrap();
        assert!(log.inbox(&actor).unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_snapshot_interval_is_an_option() {
        let (_dir, path) = temp_db();
        let options = LogOptions {
            snapshot_every: 10,
            ..LogOptions::default()
        };
        let log = RedbEventLog::open_with(&path, options).unwrap();
        let actor = ActorId::new();
        let mut head = None;
        for n in 0..25u32 {
            let state = Some(n.to_string().into_bytes());
            let event = transition(head, &state);
            head = Some(event.hash);
            append_state(&log, &actor, event, state).await;
        }
        let at = |index| log.stored_snapshot(&actor, index).unwrap().unwrap().index;
        assert_eq!((at(9), at(19), at(24)), (0, 10, 20));
    }

    /// The file as a crash leaves it when only some pages of the last
    /// commit reached the disk: each page that commit changed is either
    /// old or new. Opening it recovers the last complete commit.
    #[tokio::test]
    async fn a_torn_last_commit_is_recovered_to_the_commit_before() {
        const PAGE: usize = 4096;
        let (dir, path) = temp_db();
        let actor = ActorId::new();
        let log = RedbEventLog::open(&path).unwrap();
        let head = append_chain(&log, &actor, None, 20).await;
        let before = std::fs::read(&path).unwrap(); // taken while open, as a crash leaves it
        // One commit of one event several pages long.
        let pad = "x".repeat(5 * PAGE);
        let data = RawValue::from_string(format!(r#"{{"pad":"{pad}"}}"#)).unwrap();
        let last = ChainEvent::new(head, "call", data, 1_700_000_001_000, "big".into());
        log.append(&actor, last).await.unwrap();
        let after = std::fs::read(&path).unwrap();
        drop(log);

        // Every changed page new (the commit whole), or every other one
        // new (the commit torn, either way round).
        for (keep_new, expected) in [(None, 21), (Some(0), 20), (Some(1), 20)] {
            let mut torn = after.clone();
            let changed = (0..after.len().div_ceil(PAGE)).filter(|page| {
                let range = page * PAGE..((page + 1) * PAGE).min(after.len());
                before.get(range.clone()) != Some(&after[range])
            });
            for (n, page) in changed.enumerate() {
                let (start, end) = (page * PAGE, ((page + 1) * PAGE).min(before.len()));
                if keep_new.is_some_and(|keep| n % 2 != keep) && start < end {
                    torn[start..end].copy_from_slice(&before[start..end]);
                }
            }
            let copy = dir.path().join(format!("torn-{keep_new:?}.redb"));
            std::fs::write(&copy, &torn).unwrap();
            let log = RedbEventLog::open(&copy).unwrap();
            assert_eq!(log.verify_all().unwrap().events, expected, "{keep_new:?}");
            assert_eq!(log.head(&actor).unwrap().unwrap().events, expected);
        }
    }

    #[tokio::test]
    async fn a_truncated_file_is_refused_by_name() {
        let (_dir, path) = temp_db();
        let log = RedbEventLog::open(&path).unwrap();
        append_chain(&log, &ActorId::new(), None, 200).await;
        drop(log);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        file.set_len(len / 2).unwrap();
        drop(file);
        let error = RedbEventLog::open(&path).unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(
            error.contains("the file is damaged (File truncated"),
            "{error}"
        );
    }
}
