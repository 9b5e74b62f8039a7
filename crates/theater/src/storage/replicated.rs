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
//! [`codec`] stores it and, for a state transition, the state it leaves.
//! Each actor's record (how it was started) goes to the cluster's actor
//! records too, and is forgotten there once the actor is stopped. With
//! both, another node can start the actor again from its chain alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::codec::{self, CodecError};
use super::{
    AcceptFuture, Accepted, ActorRecord, Entry, EventLog, KeptState, LogError, LogFuture, LogStats,
    SavedActor, Snapshot, VerifyFailure,
};
use crate::chain::{ChainEvent, Hash, SealedEvent};
use crate::cluster::{ActorRecords, ChainEnd, Cluster, ClusterError, ReplicatedChains};
use crate::id::ActorId;

/// How long an append is tried again while JetStream does not answer (a
/// NATS server lost, a stream electing its leader), before its call fails.
const RETRY_FOR: Duration = Duration::from_secs(15);
/// The first pause before trying again; each next one doubles, up to
/// [`LAST_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(1);

/// A node's event log in a cluster: see the module documentation.
pub struct ReplicatedLog {
    local: Arc<dyn EventLog>,
    inner: Arc<Inner>,
}

struct Inner {
    chains: ReplicatedChains,
    records: ActorRecords,
    /// Where each actor's replicated chain stands, as far as this node
    /// knows; read from the stream at an actor's first append here.
    replicas: Mutex<HashMap<ActorId, Replica>>,
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
                records: cluster.records().clone(),
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

    /// Notes that `actor`'s chain now ends at `end`, with `hash`.
    fn appended(&self, actor: ActorId, end: ChainEnd, hash: Hash) -> Result<(), LogError> {
        let head = Some(hash);
        self.set(actor, Replica::At { end, head });
        Ok(())
    }
}

impl EventLog for ReplicatedLog {
    fn append_entry(&self, actor: &ActorId, entry: Entry<'_>) -> LogFuture {
        let bytes = Replicated::encode_parts(&entry.event, entry.state.map(KeptState::state));
        let (parent, hash) = (entry.event.parent_hash, entry.event.hash);
        let Entry {
            event,
            state,
            delivered,
        } = entry;
        // The local append waits for the cluster's: it owns what it keeps.
        let state = state.cloned();
        let (actor, inner, local) = (*actor, self.inner.clone(), self.local.clone());
        Box::pin(async move {
            inner.replicate(actor, parent, hash, bytes).await?;
            let entry = Entry {
                event,
                state: state.as_ref(),
                delivered,
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

    fn accept(&self, actor: &ActorId, message: &Accepted) -> AcceptFuture {
        self.local.accept(actor, message)
    }

    fn inbox(&self, actor: &ActorId) -> Result<Vec<(u64, Accepted)>, LogError> {
        self.local.inbox(actor)
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
/// 0x00                     not a state transition
/// 0x01                     a transition to no state
/// 0x02 ‖ state             a transition to these bytes (the rest)
/// ```
#[derive(Debug, Clone)]
pub struct Replicated {
    pub event: ChainEvent,
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

impl Replicated {
    pub fn encode(&self) -> Vec<u8> {
        Self::encode_parts(&self.event, self.state.as_ref())
    }

    /// [`encode`](Self::encode) of an entry made of these parts.
    fn encode_parts(event: &ChainEvent, state: Option<&Option<Vec<u8>>>) -> Vec<u8> {
        let event = codec::encode(event);
        let bytes = state.and_then(Option::as_deref);
        let mut out = Vec::with_capacity(4 + event.len() + 1 + bytes.map_or(0, <[u8]>::len));
        out.extend_from_slice(&(event.len() as u32).to_be_bytes());
        out.extend_from_slice(&event);
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
        let state = match rest.split_first() {
            None => return Err(ReplicatedError::CutShort),
            Some((0, [])) => None,
            Some((1, [])) => Some(None),
            Some((2, state)) => Some(Some(state.to_vec())),
            Some((0 | 1, extra)) => return Err(ReplicatedError::Trailing(extra.len())),
            Some((marker, _)) => return Err(ReplicatedError::Marker(*marker)),
        };
        Ok(Self { event, state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::tests::sample_chain;

    fn entry(state: Option<Option<Vec<u8>>>) -> Replicated {
        Replicated {
            event: sample_chain(2).remove(1),
            state,
        }
    }

    #[test]
    fn an_entry_reads_back_as_written() {
        for state in [None, Some(None), Some(Some(b"{\"n\":1}".to_vec()))] {
            let written = entry(state.clone());
            let read = Replicated::decode(&written.encode()).unwrap();
            assert_eq!(read.event.hash, written.event.hash);
            assert_eq!(read.state, state);
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
