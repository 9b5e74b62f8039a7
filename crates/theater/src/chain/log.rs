//! Where chains are kept, with what a restarted runtime needs to bring the
//! actors back: how each was started and the state its chain reached.

use std::collections::HashMap;
use std::future::{Future, ready};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::{ChainEvent, Hash, record};
use crate::id::ActorId;
use crate::manifest::Manifest;
use crate::storage::LogStats;
use crate::wasm::StateBytes;

/// Completes once an appended event is as durable as the log promises.
pub type LogFuture = Pin<Box<dyn Future<Output = Result<(), LogError>> + Send>>;

/// A chain, as its log keeps it, does not check out.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct VerifyFailure {
    /// Index of the first bad event, when one event is to blame.
    pub first_bad_event: Option<u64>,
    pub message: String,
}

impl From<LogError> for VerifyFailure {
    fn from(error: LogError) -> Self {
        Self {
            first_bad_event: None,
            message: error.to_string(),
        }
    }
}

/// The log could not keep or read an event.
#[derive(Debug, Clone, thiserror::Error)]
#[error("event log: {0}")]
pub struct LogError(pub String);

/// By default a state is snapshotted with the first event of a chain and
/// then every this many events, so going back to an event replays fewer
/// calls than this.
pub const SNAPSHOT_EVERY: u64 = 64;

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

/// A state an actor's chain reached, with the event that left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Index of the event in the chain (0 for the first).
    pub index: u64,
    pub hash: Hash,
    pub state: StateBytes,
}

/// An actor a log knows, as [`EventLog::saved_actors`] lists it.
#[derive(Debug, Clone)]
pub struct SavedActor {
    pub id: ActorId,
    pub record: ActorRecord,
    /// The newest event of its chain.
    pub head: Option<Hash>,
    /// Its newest state, `None` if its chain holds no state yet.
    pub latest: Option<Snapshot>,
}

/// Storage for every actor's chain. The executor appends one event per state
/// transition and acknowledges the call only when the returned future
/// completes, so a durable log decides what "acknowledged" means.
pub trait EventLog: Send + Sync + 'static {
    /// Appends `event` to the chain of `actor`; the event already links to
    /// the previous head.
    fn append(&self, actor: &ActorId, event: ChainEvent) -> LogFuture;

    /// [`append`](Self::append) for an event that leaves `state` behind:
    /// logs that resume actors keep the newest state with the event, and
    /// a snapshot every so many events ([`SNAPSHOT_EVERY`] by default).
    fn append_with_state(
        &self,
        actor: &ActorId,
        event: ChainEvent,
        state: &StateBytes,
    ) -> LogFuture;

    /// The whole chain of `actor`, oldest first (empty if unknown).
    fn events(&self, actor: &ActorId) -> Result<Vec<ChainEvent>, LogError>;

    /// Reads `actor`'s chain back from where it is kept and checks every
    /// hash and link, and every state kept with it; the error names the
    /// first bad event.
    fn verify(&self, actor: &ActorId) -> Result<(), VerifyFailure>;

    /// The newest snapshot of `actor` at or before event `index`.
    fn snapshot(&self, actor: &ActorId, index: u64) -> Result<Option<Snapshot>, LogError>;

    /// Keeps (or replaces) how `actor` was started.
    fn save_actor(&self, actor: &ActorId, record: &ActorRecord) -> LogFuture;

    /// Marks `actor` as running or not; unknown actors are ignored.
    fn set_running(&self, actor: &ActorId, running: bool) -> LogFuture;

    /// Every actor saved with [`save_actor`](Self::save_actor), oldest first.
    fn saved_actors(&self) -> Result<Vec<SavedActor>, LogError>;

    /// Up to `limit` events of `actor`'s chain from index `start` on, oldest
    /// first, and how many events the chain has. Logs that can read a part
    /// of a chain read no more than they return.
    fn events_page(
        &self,
        actor: &ActorId,
        start: u64,
        limit: usize,
    ) -> Result<(Vec<ChainEvent>, u64), LogError> {
        let events = self.events(actor)?;
        let total = events.len() as u64;
        let page = events
            .into_iter()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
            .take(limit);
        Ok((page.collect(), total))
    }

    /// What its writer has done, for metrics; `None` if it does not count.
    fn stats(&self) -> Option<LogStats> {
        None
    }

    /// Bytes it takes on disk now, for metrics; `None` if it keeps none.
    fn size_bytes(&self) -> Option<u64> {
        None
    }
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

/// Chains kept in memory, lost when the process ends. States are
/// snapshotted every [`SNAPSHOT_EVERY`] events.
#[derive(Default)]
pub struct MemoryEventLog {
    chains: Mutex<HashMap<ActorId, Arc<Mutex<MemoryChain>>>>,
    actors: Mutex<HashMap<ActorId, ActorRecord>>,
}

#[derive(Default)]
struct MemoryChain {
    events: Vec<ChainEvent>,
    snapshots: Vec<Snapshot>,
    latest: Option<Snapshot>,
}

impl MemoryEventLog {
    fn chain(&self, actor: &ActorId) -> Arc<Mutex<MemoryChain>> {
        let mut chains = self.chains.lock().expect("chain map lock");
        chains.entry(*actor).or_default().clone()
    }

    fn push(&self, actor: &ActorId, event: ChainEvent, state: Option<&StateBytes>) {
        let chain = self.chain(actor);
        let mut chain = chain.lock().expect("chain lock");
        let index = chain.events.len() as u64;
        if let Some(state) = state {
            let snapshot = Snapshot {
                index,
                hash: event.hash,
                state: state.clone(),
            };
            let last = chain.snapshots.last().map(|s| s.index);
            if snapshot_due(always_snapshot(&event), index, last, SNAPSHOT_EVERY) {
                chain.snapshots.push(snapshot.clone());
            }
            chain.latest = Some(snapshot);
        }
        chain.events.push(event);
    }
}

impl EventLog for MemoryEventLog {
    fn append(&self, actor: &ActorId, event: ChainEvent) -> LogFuture {
        self.push(actor, event, None);
        Box::pin(ready(Ok(())))
    }

    fn append_with_state(
        &self,
        actor: &ActorId,
        event: ChainEvent,
        state: &StateBytes,
    ) -> LogFuture {
        self.push(actor, event, Some(state));
        Box::pin(ready(Ok(())))
    }

    fn events(&self, actor: &ActorId) -> Result<Vec<ChainEvent>, LogError> {
        let chains = self.chains.lock().expect("chain map lock");
        Ok(chains
            .get(actor)
            .map(|chain| chain.lock().expect("chain lock").events.clone())
            .unwrap_or_default())
    }

    fn verify(&self, actor: &ActorId) -> Result<(), VerifyFailure> {
        super::verify(&self.events(actor)?).map_err(|e| VerifyFailure {
            first_bad_event: Some(e.index() as u64),
            message: e.to_string(),
        })
    }

    fn snapshot(&self, actor: &ActorId, index: u64) -> Result<Option<Snapshot>, LogError> {
        let chains = self.chains.lock().expect("chain map lock");
        Ok(chains.get(actor).and_then(|chain| {
            let chain = chain.lock().expect("chain lock");
            chain
                .snapshots
                .iter()
                .rev()
                .find(|snapshot| snapshot.index <= index)
                .cloned()
        }))
    }

    fn save_actor(&self, actor: &ActorId, record: &ActorRecord) -> LogFuture {
        let mut actors = self.actors.lock().expect("actor records lock");
        actors.insert(*actor, record.clone());
        Box::pin(ready(Ok(())))
    }

    fn set_running(&self, actor: &ActorId, running: bool) -> LogFuture {
        let mut actors = self.actors.lock().expect("actor records lock");
        if let Some(record) = actors.get_mut(actor) {
            record.running = running;
        }
        Box::pin(ready(Ok(())))
    }

    fn saved_actors(&self) -> Result<Vec<SavedActor>, LogError> {
        let actors = self.actors.lock().expect("actor records lock");
        let mut saved: Vec<SavedActor> = actors
            .iter()
            .map(|(id, record)| {
                let chain = self.chain(id);
                let chain = chain.lock().expect("chain lock");
                SavedActor {
                    id: *id,
                    record: record.clone(),
                    head: chain.events.last().map(|event| event.hash),
                    latest: chain.latest.clone(),
                }
            })
            .collect();
        saved.sort_by_key(|actor| actor.record.started_ms);
        Ok(saved)
    }
}
