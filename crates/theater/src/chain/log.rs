//! Where chains are kept, with what a restarted runtime needs to bring the
//! actors back: how each was started and the state its chain reached.

use std::collections::HashMap;
use std::future::{Future, ready};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::record::StateDigest;
use super::{ChainEvent, Hash, record};
use crate::id::ActorId;
use crate::manifest::Manifest;
use crate::storage::LogStats;
use crate::wasm::StateBytes;

/// Completes once an appended event is as durable as the log promises.
pub type LogFuture = Pin<Box<dyn Future<Output = Result<(), LogError>> + Send>>;

/// Completes once an accepted message is as durable as the log promises,
/// with its number in the inbox (`None` from a log that keeps no inbox).
pub type AcceptFuture = Pin<Box<dyn Future<Output = Result<Option<u64>, LogError>> + Send>>;

/// A state kept with the event that left it, with the SHA-256 stored
/// states are keyed by, computed once, here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptState {
    state: StateBytes,
    /// `None` for no state.
    sha256: Option<Hash>,
}

impl KeptState {
    pub fn new(state: StateBytes) -> Self {
        let sha256 = state.as_deref().map(|bytes| Sha256::digest(bytes).into());
        Self { state, sha256 }
    }

    pub fn state(&self) -> &StateBytes {
        &self.state
    }

    pub fn into_state(self) -> StateBytes {
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

/// One event to append, with what it leaves behind and what it settles.
#[derive(Debug)]
pub struct Entry<'a> {
    pub event: ChainEvent,
    /// The state the event leaves, if it is a state transition: logs that
    /// resume actors keep the newest state with the event, and a snapshot
    /// every so many events ([`SNAPSHOT_EVERY`] by default).
    pub state: Option<&'a KeptState>,
    /// The inbox number of the accepted message whose call this event
    /// records: it leaves the inbox in the same atomic step.
    pub delivered: Option<u64>,
}

impl Entry<'_> {
    /// An event that neither changes the state nor delivers a message.
    pub fn event(event: ChainEvent) -> Self {
        Self {
            event,
            state: None,
            delivered: None,
        }
    }
}

/// A message accepted for an actor and not yet run: a call without a
/// waiting caller, kept until its call's event is appended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accepted {
    /// The export it calls, `interface.name`.
    pub function: String,
    pub params: Box<RawValue>,
    /// The actor that sent it, if an actor did.
    pub origin: Option<ActorId>,
}

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
    /// Appends `entry.event` to the chain of `actor` (the event already
    /// links to the previous head), with the state it leaves and the inbox
    /// entry it settles, all in one atomic step.
    fn append_entry(&self, actor: &ActorId, entry: Entry<'_>) -> LogFuture;

    /// [`append_entry`](Self::append_entry) of an event alone.
    fn append(&self, actor: &ActorId, event: ChainEvent) -> LogFuture {
        self.append_entry(actor, Entry::event(event))
    }

    /// Keeps `message` in `actor`'s inbox until the event of its call is
    /// appended with it as [`Entry::delivered`], so that a message accepted
    /// before a crash is run after it, once. Logs that are not durable keep
    /// no inbox and answer `None`.
    fn accept(&self, _actor: &ActorId, _message: &Accepted) -> AcceptFuture {
        Box::pin(ready(Ok(None)))
    }

    /// The messages in `actor`'s inbox, oldest first, with their numbers.
    fn inbox(&self, _actor: &ActorId) -> Result<Vec<(u64, Accepted)>, LogError> {
        Ok(Vec::new())
    }

    /// The whole chain of `actor`, oldest first (empty if unknown).
    fn events(&self, actor: &ActorId) -> Result<Vec<ChainEvent>, LogError>;

    /// The events of `actor`'s chain from index `start` on, oldest first.
    fn events_from(&self, actor: &ActorId, start: u64) -> Result<Vec<ChainEvent>, LogError> {
        let mut events = self.events(actor)?;
        events.drain(..events.len().min(start as usize));
        Ok(events)
    }

    /// How many events `actor`'s chain has, and the newest one's hash.
    fn chain_head(&self, actor: &ActorId) -> Result<Option<(u64, Hash)>, LogError> {
        let events = self.events(actor)?;
        Ok(events.last().map(|event| (events.len() as u64, event.hash)))
    }

    /// Reads `actor`'s chain back from where it is kept and checks every
    /// hash and link, and every state kept with it; the error names the
    /// first bad event.
    fn verify(&self, actor: &ActorId) -> Result<(), VerifyFailure>;

    /// The newest snapshot of `actor` at or before event `index`.
    fn snapshot(&self, actor: &ActorId, index: u64) -> Result<Option<Snapshot>, LogError>;

    /// Keeps (or replaces) how `actor` was started.
    fn save_actor(&self, actor: &ActorId, record: &ActorRecord) -> LogFuture;

    /// Marks `actor` as running or not; unknown actors are ignored. An
    /// actor marked as not running drops what its inbox holds: it will not
    /// be resumed to run it.
    fn set_running(&self, actor: &ActorId, running: bool) -> LogFuture;

    /// Every actor saved with [`save_actor`](Self::save_actor), oldest first.
    fn saved_actors(&self) -> Result<Vec<SavedActor>, LogError>;

    /// The saved actor `actor`, if any.
    fn saved_actor(&self, actor: &ActorId) -> Result<Option<SavedActor>, LogError> {
        Ok(self
            .saved_actors()?
            .into_iter()
            .find(|saved| saved.id == *actor))
    }

    /// The ids of every saved actor, without their states.
    fn saved_ids(&self) -> Result<Vec<ActorId>, LogError> {
        Ok(self
            .saved_actors()?
            .into_iter()
            .map(|saved| saved.id)
            .collect())
    }

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

    fn push(&self, actor: &ActorId, event: ChainEvent, state: Option<&KeptState>) {
        let chain = self.chain(actor);
        let mut chain = chain.lock().expect("chain lock");
        let index = chain.events.len() as u64;
        if let Some(kept) = state {
            let snapshot = Snapshot {
                index,
                hash: event.hash,
                state: kept.state().clone(),
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
    fn append_entry(&self, actor: &ActorId, entry: Entry<'_>) -> LogFuture {
        self.push(actor, entry.event, entry.state);
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
