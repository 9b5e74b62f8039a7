//! The [`EventLog`] trait: where the executor appends chain events and
//! from which a runtime reads chains, states and actor records back.

use std::future::{Future, ready};
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{ActorRecord, KeptState, LogStats, SavedActor, Snapshot};
use crate::chain::{ChainEvent, Hash, SealedEvent};
use crate::id::ActorId;

/// Completes once an appended event is as durable as the log promises.
pub type LogFuture = Pin<Box<dyn Future<Output = Result<(), LogError>> + Send>>;

/// Completes once an accepted message is as durable as the log promises,
/// with its number in the inbox (`None` from a log that keeps no inbox).
pub type AcceptFuture = Pin<Box<dyn Future<Output = Result<Option<u64>, LogError>> + Send>>;

/// One event to append, with what it leaves behind and what it settles.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Sealed when it was built: the log stores it without hashing it again.
    pub event: SealedEvent,
    /// The state the event leaves, if it is a state transition: logs that
    /// resume actors keep the newest state with the event, and a snapshot
    /// every so many events ([`SNAPSHOT_EVERY`](super::SNAPSHOT_EVERY) by default).
    pub state: Option<&'a KeptState>,
    /// The inbox number of the accepted message whose call this event
    /// records: it leaves the inbox in the same atomic step.
    pub delivered: Option<u64>,
}

impl Entry<'_> {
    /// An event that neither changes the state nor delivers a message.
    pub fn event(event: SealedEvent) -> Self {
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

/// The log could not keep or read an event. The cause is kept whole (a
/// [`StorageError`](super::StorageError) from the redb log), so callers can
/// look at it with [`LogError::cause`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("event log: {0}")]
pub struct LogError(Arc<dyn std::error::Error + Send + Sync>);

impl LogError {
    pub fn new(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(cause))
    }

    /// Why the log failed.
    pub fn cause(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

/// Storage for every actor's chain. The executor appends one event per state
/// transition and acknowledges the call only when the returned future
/// completes, so a durable log decides what "acknowledged" means.
pub trait EventLog: Send + Sync + 'static {
    /// Appends `entry.event` to the chain of `actor` (the event already
    /// links to the previous head), with the state it leaves and the inbox
    /// entry it settles, all in one atomic step.
    fn append_entry(&self, actor: &ActorId, entry: Entry<'_>) -> LogFuture;

    /// Stores `events`, a whole chain that verifies, as `actor`'s: a chain
    /// another node kept, for an actor this log's runtime takes on. A chain
    /// `actor` has here already must be a beginning of `events` (the actor
    /// ran here before), and gets the rest; any other is refused. No state
    /// is kept with them; the actor's next transition keeps one.
    fn import_chain(&self, actor: &ActorId, events: Vec<ChainEvent>) -> LogFuture;

    /// [`append_entry`](Self::append_entry) of an event alone.
    fn append(&self, actor: &ActorId, event: SealedEvent) -> LogFuture {
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
