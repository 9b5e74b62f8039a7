//! [`ReplicatedLog`]: a node's log in a cluster. Every event goes to the
//! actor's replicated chain in JetStream first, then to the node's own log,
//! and only then is the call acknowledged.
//!
//! Each actor's chain is appended to at the subject sequence this node
//! last saw, and the event must link to the newest event there. So a node
//! that lost an actor (paused past its timeout, cut off, or simply a
//! second copy) cannot fork its chain: its next append is refused, the
//! actor is marked lost here, and every later append of it fails with the
//! same reason. The local log only ever holds events the cluster took.
//!
//! One message of the stream is one [`Replicated`] entry: the event as
//! [`codec`] stores it, the inbox message its call ran, if any, and, for a
//! state transition, the state it leaves.
//!
//! A message accepted for an actor (a `send`) is acknowledged once the
//! cluster's inbox keeps it. A node that takes the actor on runs again
//! the inbox messages no event of the chain names, so none is lost with
//! a node and none runs twice.
//! Each actor's record (how it was started) goes to the cluster's actor
//! records too, and is forgotten there once the actor is stopped. With
//! both, another node can start the actor again from its chain alone.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::codec::{self, CodecError};
use super::{
    AcceptFuture, Accepted, ActorRecord, Entry, EventLog, KeptState, LogError, LogFuture, LogStats,
    SavedActor, Snapshot, VerifyFailure,
};
use crate::chain::{ChainEvent, Hash, SealedEvent};
use crate::cluster::{
    ActorRecords, ChainEnd, Cluster, ClusterError, ReplicatedChains, ReplicatedInboxes,
};
use crate::id::ActorId;

/// How long an append is tried again while JetStream does not answer (a
/// NATS server lost, a stream electing its leader), before its call fails.
const RETRY_FOR: Duration = Duration::from_secs(15);
/// The first pause before trying again; each next one doubles, up to
/// [`LAST_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(1);
/// Messages that ran an actor's inbox keeps, while others wait, before
/// they are dropped from it. With none waiting they are dropped at once,
/// so that a node taking an idle actor on finds its inbox empty.
const RAN_KEPT: usize = 256;

/// A node's event log in a cluster: see the module documentation.
pub struct ReplicatedLog {
    local: Arc<dyn EventLog>,
    inner: Arc<Inner>,
}

struct Inner {
    chains: ReplicatedChains,
    inboxes: ReplicatedInboxes,
    records: ActorRecords,
    /// Each actor's inbox messages not yet run, and how many ran since its
    /// inbox last dropped the ones that did.
    waiting: Mutex<HashMap<ActorId, Waiting>>,
    /// Where each actor's replicated chain stands, as far as this node
    /// knows; read from the stream at an actor's first append here.
    replicas: Mutex<HashMap<ActorId, Replica>>,
}

#[derive(Default)]
struct Waiting {
    messages: BTreeSet<u64>,
    ran: usize,
}

#[derive(Clone)]
enum Replica {
    /// The chain ends at `end`, with the event `head`.
    At { end: ChainEnd, head: Option<Hash> },
    /// This node may not append to the actor's chain any more.
    Lost(String),
}

impl ReplicatedLog {
    /// Replicates to `cluster` what it keeps in `local`.
    pub fn new(local: Arc<dyn EventLog>, cluster: &Cluster) -> Self {
        Self {
            local,
            inner: Arc::new(Inner {
                chains: cluster.chains().clone(),
                inboxes: cluster.inboxes().clone(),
                records: cluster.records().clone(),
                waiting: Mutex::default(),
                replicas: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl Inner {
    fn replica(&self, actor: &ActorId) -> Option<Replica> {
        self.replicas
            .lock()
            .expect("replica lock")
            .get(actor)
            .cloned()
    }

    fn set(&self, actor: ActorId, replica: Replica) {
        self.replicas
            .lock()
            .expect("replica lock")
            .insert(actor, replica);
    }

    /// Where `actor`'s chain stands, read from the stream the first time.
    async fn stand(&self, actor: &ActorId) -> Result<Replica, ClusterError> {
        if let Some(known) = self.replica(actor) {
            return Ok(known);
        }
        let read = match self.chains.last(&actor.to_string()).await? {
            None => Replica::At {
                end: ChainEnd::default(),
                head: None,
            },
            Some((bytes, end)) => match Replicated::decode(&bytes) {
                Ok(last) => Replica::At {
                    end,
                    head: Some(last.event.hash),
                },
                Err(e) => Replica::Lost(format!(
                    "the newest event of its replicated chain is unreadable ({e})"
                )),
            },
        };
        self.set(*actor, read.clone());
        Ok(read)
    }

    /// Appends the event `hash` (a child of `parent`), encoded as
    /// `bytes`, to `actor`'s replicated chain, if it follows on.
    async fn replicate(
        &self,
        actor: ActorId,
        parent: Option<Hash>,
        hash: Hash,
        bytes: Vec<u8>,
    ) -> Result<(), LogError> {
        let lost = |why: String| LogError::new(ClusterError::Lost { actor, why });
        let (end, head) = match self.stand(&actor).await.map_err(LogError::new)? {
            Replica::At { end, head } => (end, head),
            Replica::Lost(why) => return Err(lost(why)),
        };
        if parent != head {
            let why = "its replicated chain has an event this node did not write".to_owned();
            self.set(actor, Replica::Lost(why.clone()));
            return Err(lost(why));
        }
        let name = actor.to_string();
        let bytes = bytes::Bytes::from(bytes);
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        let mut wait = FIRST_RETRY;
        // Whether an earlier attempt may have been stored unanswered.
        let mut unsure = false;
        loop {
            let refused = match self.chains.append(&name, end, bytes.clone()).await {
                Ok(end) => return self.appended(actor, end, hash),
                Err(ClusterError::ChainMoved { .. }) => true,
                Err(e) if tokio::time::Instant::now() + wait > deadline => {
                    // JetStream may have kept the event without saying so:
                    // read the chain's end again before the next append.
                    self.replicas.lock().expect("replica lock").remove(&actor);
                    return Err(LogError::new(e));
                }
                Err(e) => {
                    tracing::warn!(%actor, "appending to the replicated chain, trying again: {e}");
                    false
                }
            };
            if refused {
                // An attempt that went unanswered may be what moved it on.
                if unsure && let Ok(Some((last, end))) = self.chains.last(&name).await {
                    let ours = Replicated::decode(&last).is_ok_and(|e| e.event.hash == hash);
                    if ours {
                        return self.appended(actor, end, hash);
                    }
                }
                let why = "another node appended to its replicated chain".to_owned();
                self.set(actor, Replica::Lost(why.clone()));
                return Err(lost(why));
            }
            unsure = true;
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(LAST_RETRY);
        }
    }

    /// The messages in `actor`'s replicated inbox that no event of its
    /// replicated chain ran, oldest first; from now on they wait here.
    async fn waiting(&self, actor: ActorId) -> Result<Vec<(u64, Accepted)>, LogError> {
        let name = actor.to_string();
        let kept = self.inboxes.read(&name).await.map_err(LogError::new)?;
        if kept.is_empty() {
            return Ok(Vec::new());
        }
        let (chain, _) = self.chains.read(&name).await.map_err(LogError::new)?;
        let mut ran = HashSet::new();
        for bytes in &chain {
            let entry = Replicated::decode(bytes).map_err(LogError::new)?;
            ran.extend(entry.delivered);
        }
        let mut waiting = Vec::new();
        for (sequence, bytes) in kept.into_iter().filter(|(s, _)| !ran.contains(s)) {
            let message = serde_json::from_slice(&bytes).map_err(LogError::new)?;
            waiting.push((sequence, message));
        }
        let mut all = self.waiting.lock().expect("waiting lock");
        all.entry(actor).or_default().messages = waiting.iter().map(|(s, _)| *s).collect();
        Ok(waiting)
    }

    /// Notes that inbox message `sequence` of `actor` ran; now and then
    /// drops the messages that ran from the front of its inbox.
    fn ran(self: &Arc<Self>, actor: ActorId, sequence: u64) {
        let until = {
            let mut all = self.waiting.lock().expect("waiting lock");
            let waiting = all.entry(actor).or_default();
            waiting.messages.remove(&sequence);
            waiting.ran += 1;
            let oldest = waiting.messages.first().copied();
            if oldest.is_some() && waiting.ran < RAN_KEPT {
                return;
            }
            waiting.ran = 0;
            oldest.unwrap_or(sequence + 1)
        };
        let inner = self.clone();
        tokio::spawn(async move {
            let name = actor.to_string();
            if let Err(e) = inner.inboxes.drop_before(&name, Some(until)).await {
                tracing::debug!(%actor, "dropping inbox messages that ran: {e}");
            }
        });
    }

    /// Notes that `actor`'s chain now ends at `end`, with `hash`.
    fn appended(&self, actor: ActorId, end: ChainEnd, hash: Hash) -> Result<(), LogError> {
        let head = Some(hash);
        self.set(actor, Replica::At { end, head });
        Ok(())
    }
}

impl EventLog for ReplicatedLog {
    fn append_entry(&self, actor: &ActorId, entry: Entry<'_>) -> LogFuture {
        let Entry {
            event,
            state,
            delivered,
        } = entry;
        let bytes = Replicated::encode_parts(&event, delivered, state.map(KeptState::state));
        let (parent, hash) = (event.parent_hash, event.hash);
        // The local append waits for the cluster's: it owns what it keeps.
        let state = state.cloned();
        let (actor, inner, local) = (*actor, self.inner.clone(), self.local.clone());
        Box::pin(async move {
            inner.replicate(actor, parent, hash, bytes).await?;
            if let Some(sequence) = delivered {
                inner.ran(actor, sequence);
            }
            // The inbox is the cluster's: the local log keeps none.
            let entry = Entry {
                event,
                state: state.as_ref(),
                delivered: None,
            };
            if let Err(e) = local.append_entry(&actor, entry).await {
                let why = format!("this node could not keep an event the cluster took ({e})");
                inner.set(actor, Replica::Lost(why));
                return Err(e);
            }
            Ok(())
        })
    }

    /// Into the local log only: the events came from the cluster. Where
    /// the chain stands is read again before the next append.
    fn import_chain(&self, actor: &ActorId, events: Vec<ChainEvent>) -> LogFuture {
        self.inner
            .replicas
            .lock()
            .expect("replica lock")
            .remove(actor);
        self.local.import_chain(actor, events)
    }

    /// Into the cluster's inbox: the message's number is its sequence
    /// there.
    fn accept(&self, actor: &ActorId, message: &Accepted) -> AcceptFuture {
        let bytes = serde_json::to_vec(message).expect("accepted messages serialize");
        let (actor, inner) = (*actor, self.inner.clone());
        Box::pin(async move {
            let name = actor.to_string();
            let sequence = inner
                .inboxes
                .accept(&name, bytes.into())
                .await
                .map_err(LogError::new)?;
            let mut all = inner.waiting.lock().expect("waiting lock");
            all.entry(actor).or_default().messages.insert(sequence);
            Ok(Some(sequence))
        })
    }

    /// For an actor this node's log marks running, the cluster's inbox
    /// messages no event ran (others have none here). Called, as every
    /// read of a log, on a blocking thread: it waits for JetStream there.
    fn inbox(&self, actor: &ActorId) -> Result<Vec<(u64, Accepted)>, LogError> {
        let running = self.local.saved_actor(actor)?;
        if !running.is_some_and(|saved| saved.record.running) {
            return Ok(Vec::new());
        }
        let waiting = self.inner.waiting(*actor);
        tokio::runtime::Handle::current().block_on(waiting)
    }

    fn events(&self, actor: &ActorId) -> Result<Vec<ChainEvent>, LogError> {
        self.local.events(actor)
    }

    fn events_from(&self, actor: &ActorId, start: u64) -> Result<Vec<ChainEvent>, LogError> {
        self.local.events_from(actor, start)
    }

    fn chain_head(&self, actor: &ActorId) -> Result<Option<(u64, Hash)>, LogError> {
        self.local.chain_head(actor)
    }

    fn verify(&self, actor: &ActorId) -> Result<(), VerifyFailure> {
        self.local.verify(actor)
    }

    fn snapshot(&self, actor: &ActorId, index: u64) -> Result<Option<Snapshot>, LogError> {
        self.local.snapshot(actor, index)
    }

    fn save_actor(&self, actor: &ActorId, record: &ActorRecord) -> LogFuture {
        let saved = self.local.save_actor(actor, record);
        let bytes = serde_json::to_vec(record).expect("an actor record serializes");
        let (actor, records) = (actor.to_string(), self.inner.records.clone());
        Box::pin(async move {
            records
                .put(&actor, bytes.into())
                .await
                .map_err(LogError::new)?;
            saved.await
        })
    }

    /// A stopped actor's record leaves the cluster: no node starts it again.
    fn set_running(&self, actor: &ActorId, running: bool) -> LogFuture {
        if !running {
            self.inner
                .waiting
                .lock()
                .expect("waiting lock")
                .remove(actor);
        }
        let set = self.local.set_running(actor, running);
        let (actor, records) = (actor.to_string(), self.inner.records.clone());
        Box::pin(async move {
            if !running {
                records.delete(&actor).await.map_err(LogError::new)?;
            }
            set.await
        })
    }

    fn saved_actors(&self) -> Result<Vec<SavedActor>, LogError> {
        self.local.saved_actors()
    }

    fn saved_actor(&self, actor: &ActorId) -> Result<Option<SavedActor>, LogError> {
        self.local.saved_actor(actor)
    }

    fn saved_ids(&self) -> Result<Vec<ActorId>, LogError> {
        self.local.saved_ids()
    }

    fn events_page(
        &self,
        actor: &ActorId,
        start: u64,
        limit: usize,
    ) -> Result<(Vec<ChainEvent>, u64), LogError> {
        self.local.events_page(actor, start, limit)
    }

    fn stats(&self) -> Option<LogStats> {
        self.local.stats()
    }

    fn size_bytes(&self) -> Option<u64> {
        self.local.size_bytes()
    }
}

/// One message of an actor's replicated chain:
///
/// ```text
/// u32 len ‖ event          the event as `codec` stores it
/// [0x03 ‖ u64 sequence]    the inbox message its call ran, if any
/// 0x00                     not a state transition
/// 0x01                     a transition to no state
/// 0x02 ‖ state             a transition to these bytes (the rest)
/// ```
#[derive(Debug, Clone)]
pub struct Replicated {
    pub event: ChainEvent,
    /// The sequence of the inbox message whose call the event records.
    pub delivered: Option<u64>,
    /// The state the event leaves, if it is a state transition.
    pub state: Option<Option<Vec<u8>>>,
}

/// Why bytes of a replicated chain are not a [`Replicated`] entry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReplicatedError {
    #[error("cut short")]
    CutShort,
    #[error("bad state marker {0}")]
    Marker(u8),
    #[error("{0} bytes after an entry that carries no state")]
    Trailing(usize),
    #[error(transparent)]
    Event(#[from] CodecError),
    #[error("the event's hash does not match its contents")]
    WrongHash,
}

/// Marks the inbox message an entry's call ran.
const DELIVERED: u8 = 3;

impl Replicated {
    pub fn encode(&self) -> Vec<u8> {
        Self::encode_parts(&self.event, self.delivered, self.state.as_ref())
    }

    /// [`encode`](Self::encode) of an entry made of these parts.
    fn encode_parts(
        event: &ChainEvent,
        delivered: Option<u64>,
        state: Option<&Option<Vec<u8>>>,
    ) -> Vec<u8> {
        let event = codec::encode(event);
        let bytes = state.and_then(Option::as_deref);
        let mut out = Vec::with_capacity(4 + event.len() + 10 + bytes.map_or(0, <[u8]>::len));
        out.extend_from_slice(&(event.len() as u32).to_be_bytes());
        out.extend_from_slice(&event);
        if let Some(sequence) = delivered {
            out.push(DELIVERED);
            out.extend_from_slice(&sequence.to_be_bytes());
        }
        match state {
            None => out.push(0),
            Some(None) => out.push(1),
            Some(Some(bytes)) => {
                out.push(2);
                out.extend_from_slice(bytes);
            }
        }
        out
    }

    /// Decodes what [`encode`](Self::encode) wrote, with an event whose
    /// hash recomputes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ReplicatedError> {
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or(ReplicatedError::CutShort)?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() <= len {
            return Err(ReplicatedError::CutShort);
        }
        let (event, rest) = rest.split_at(len);
        let event = SealedEvent::check(codec::decode(event)?)
            .map_err(|_| ReplicatedError::WrongHash)?
            .into_event();
        let (delivered, rest) = match rest.split_first() {
            Some((&DELIVERED, rest)) => {
                let (sequence, rest) = rest
                    .split_first_chunk::<8>()
                    .ok_or(ReplicatedError::CutShort)?;
                (Some(u64::from_be_bytes(*sequence)), rest)
            }
            _ => (None, rest),
        };
        let state = match rest.split_first() {
            None => return Err(ReplicatedError::CutShort),
            Some((0, [])) => None,
            Some((1, [])) => Some(None),
            Some((2, state)) => Some(Some(state.to_vec())),
            Some((0 | 1, extra)) => return Err(ReplicatedError::Trailing(extra.len())),
            Some((marker, _)) => return Err(ReplicatedError::Marker(*marker)),
        };
        Ok(Self {
            event,
            delivered,
            state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::tests::sample_chain;

    fn entry(state: Option<Option<Vec<u8>>>) -> Replicated {
        Replicated {
            event: sample_chain(2).remove(1),
            delivered: None,
            state,
        }
    }

    #[test]
    fn an_entry_reads_back_as_written() {
        for state in [None, Some(None), Some(Some(b"{\"n\":1}".to_vec()))] {
            for delivered in [None, Some(7)] {
                let written = Replicated {
                    delivered,
                    ..entry(state.clone())
                };
                let read = Replicated::decode(&written.encode()).unwrap();
                assert_eq!(read.event.hash, written.event.hash);
                assert_eq!((read.delivered, read.state), (delivered, state.clone()));
            }
        }
    }

    #[test]
    fn bytes_that_are_not_an_entry_are_refused_with_the_reason() {
        let bytes = entry(None).encode();
        let decode = |bytes: &[u8]| Replicated::decode(bytes).unwrap_err();
        assert_eq!(decode(&bytes[..3]), ReplicatedError::CutShort);
        assert_eq!(decode(&bytes[..bytes.len() - 1]), ReplicatedError::CutShort);
        let mut marked = bytes.clone();
        *marked.last_mut().unwrap() = 7;
        assert_eq!(decode(&marked), ReplicatedError::Marker(7));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), ReplicatedError::Trailing(1));
        // The description is the event's last field: alter one byte of it.
        let mut altered = bytes;
        let at = altered.len() - 2;
        altered[at] ^= 1;
        assert_eq!(decode(&altered), ReplicatedError::WrongHash);
    }
}
