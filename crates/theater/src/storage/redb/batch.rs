//! One batch's transaction: every request the writer gathered, stored in
//! one redb write transaction, each with its own outcome.

use std::collections::HashMap;
use std::path::Path;

use redb::{ReadableTable, Table, WriteTransaction};

use super::Shared;
use super::error::{StorageError, WriteError, failed};
use super::kept::KeptStates;
use super::layout::{ACTORS, EVENTS, HEADS, INBOX, actor_of, range_of_key};
use super::options::BatchCounts;
use super::writer::Request;
use crate::chain::Hash;
use crate::storage::codec::StateRef;
use crate::storage::{ActorRecord, KeptState, snapshot_due};

/// What one committed batch did.
pub(super) struct Committed {
    /// Each request's outcome, in order.
    pub outcomes: Vec<Result<(), WriteError>>,
    pub counts: BatchCounts,
}

/// One transaction for the whole batch; `Err` if the transaction failed,
/// in which case nothing of the batch was stored.
pub(super) fn write_batch(
    shared: &Shared,
    batch: &[Request],
    sync: bool,
    snapshot_every: u64,
) -> Result<Committed, StorageError> {
    let path = &shared.path;
    let mut tx = shared.db.begin_write().map_err(failed(path))?;
    let durability = if sync {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    };
    tx.set_durability(durability).map_err(failed(path))?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut counts = BatchCounts {
        requests: batch.len() as u64,
        ..BatchCounts::default()
    };
    {
        let mut tables = Tables::open(&tx, path, snapshot_every)?;
        for request in batch {
            outcomes.push(tables.write(request, &mut counts)?);
        }
        tables.finish()?;
    }
    tx.commit().map_err(failed(path))?;
    Ok(Committed { outcomes, counts })
}

/// The tables a batch writes, open in its transaction.
struct Tables<'tx> {
    path: &'tx Path,
    snapshot_every: u64,
    events: Table<'tx, ([u8; 16], u64), &'static [u8]>,
    heads: Table<'tx, [u8; 16], (u64, [u8; 32])>,
    kept: KeptStates<'tx>,
    inbox: Table<'tx, ([u8; 16], u64), &'static [u8]>,
    actors: Table<'tx, [u8; 16], &'static [u8]>,
    /// Heads changed by this batch, written once at the end.
    moved: HashMap<[u8; 16], (u64, Hash)>,
}

/// The outcome of one request: `Err(StorageError)` fails the whole batch,
/// `Ok(Err(WriteError))` only the request.
type Outcome = Result<Result<(), WriteError>, StorageError>;

impl<'tx> Tables<'tx> {
    fn open(
        tx: &'tx WriteTransaction,
        path: &'tx Path,
        snapshot_every: u64,
    ) -> Result<Self, StorageError> {
        Ok(Self {
            path,
            snapshot_every,
            events: tx.open_table(EVENTS).map_err(failed(path))?,
            heads: tx.open_table(HEADS).map_err(failed(path))?,
            kept: KeptStates::open(tx, path)?,
            inbox: tx.open_table(INBOX).map_err(failed(path))?,
            actors: tx.open_table(ACTORS).map_err(failed(path))?,
            moved: HashMap::new(),
        })
    }

    fn write(&mut self, request: &Request, counts: &mut BatchCounts) -> Outcome {
        match request {
            Request::Append {
                actor,
                hash,
                parent,
                bytes,
                state,
                delivered,
                ..
            } => {
                let appended = self.append(*actor, *hash, *parent, bytes, counts)?;
                if let (Ok(index), Some((state, always))) = (&appended, state) {
                    self.keep_state(*actor, *index, *hash, state, *always, counts)?;
                }
                if let (Ok(_), Some(number)) = (&appended, delivered) {
                    let path = self.path;
                    self.inbox.remove((*actor, *number)).map_err(failed(path))?;
                }
                Ok(appended.map(|_| ()))
            }
            Request::Accept {
                actor,
                number,
                message,
                ..
            } => {
                self.inbox
                    .insert((*actor, *number), message.as_slice())
                    .map_err(failed(self.path))?;
                Ok(Ok(()))
            }
            Request::Import { actor, events, .. } => self.import(*actor, events, counts),
            Request::SaveActor { actor, record, .. } => {
                self.actors
                    .insert(*actor, record.as_slice())
                    .map_err(failed(self.path))?;
                Ok(Ok(()))
            }
            Request::SetRunning { actor, running, .. } => self.set_running(*actor, *running),
            Request::Sync { .. } => Ok(Ok(())),
        }
    }

    /// The head of `actor`'s chain as this batch left it so far.
    fn head(&self, actor: [u8; 16]) -> Result<Option<(u64, Hash)>, StorageError> {
        match self.moved.get(&actor) {
            Some(head) => Ok(Some(*head)),
            None => Ok(self
                .heads
                .get(actor)
                .map_err(failed(self.path))?
                .map(|head| head.value())),
        }
    }

    /// Stores an event if it links to the head; its index in the chain.
    fn append(
        &mut self,
        actor: [u8; 16],
        hash: Hash,
        parent: Option<Hash>,
        bytes: &[u8],
        counts: &mut BatchCounts,
    ) -> Result<Result<u64, WriteError>, StorageError> {
        let head = self.head(actor)?;
        let (count, head_hash) = head.map_or((0, None), |(n, h)| (n, Some(h)));
        if parent != head_hash {
            return Ok(Err(WriteError::Unlinked {
                path: self.path.to_owned(),
                actor: actor_of(actor),
                event: hex::encode(hash),
                links_to: describe(parent),
                head: describe(head_hash),
            }));
        }
        self.events
            .insert((actor, count), bytes)
            .map_err(failed(self.path))?;
        self.moved.insert(actor, (count + 1, hash));
        counts.events += 1;
        Ok(Ok(count))
    }

    /// Keeps the state event `index` left as `actor`'s newest, and as a
    /// snapshot when one is due.
    fn keep_state(
        &mut self,
        actor: [u8; 16],
        index: u64,
        hash: Hash,
        state: &KeptState,
        always: bool,
        counts: &mut BatchCounts,
    ) -> Result<(), StorageError> {
        let at = StateRef {
            index,
            hash,
            sha256: state.sha256(),
        };
        self.kept.keep_newest(actor, &at, state, counts)?;
        let last = self.kept.last_snapshot(actor)?;
        if snapshot_due(always, index, last, self.snapshot_every) {
            self.kept.snapshot(actor, &at, state, counts)?;
        }
        Ok(())
    }

    /// Stores a whole chain for an actor that has none.
    fn import(
        &mut self,
        actor: [u8; 16],
        events: &[(Hash, Vec<u8>)],
        counts: &mut BatchCounts,
    ) -> Outcome {
        // A chain here may only be a beginning of the imported one: an
        // actor that comes back to a node it ran on gets the rest.
        let kept = match self.head(actor)? {
            None => 0,
            Some((kept, head))
                if (kept as usize) < events.len() && events[kept as usize - 1].0 == head =>
            {
                kept as usize
            }
            Some(_) => {
                return Ok(Err(WriteError::HasChain {
                    actor: actor_of(actor),
                }));
            }
        };
        for (seq, (_, bytes)) in events.iter().enumerate().skip(kept) {
            self.events
                .insert((actor, seq as u64), bytes.as_slice())
                .map_err(failed(self.path))?;
        }
        let (last, _) = events.last().expect("imports are not empty");
        self.moved.insert(actor, (events.len() as u64, *last));
        counts.events += (events.len() - kept) as u64;
        Ok(Ok(()))
    }

    fn set_running(&mut self, actor: [u8; 16], running: bool) -> Outcome {
        let path = self.path;
        let stored = self.actors.get(actor).map_err(failed(path))?;
        let record = stored
            .map(|bytes| serde_json::from_slice::<ActorRecord>(bytes.value()))
            .transpose();
        if !running {
            // It will not be resumed to run what it was sent.
            self.inbox
                .retain_in(range_of_key(actor), |_, _| false)
                .map_err(failed(path))?;
        }
        match record {
            Ok(Some(mut record)) if record.running != running => {
                record.running = running;
                let json = serde_json::to_vec(&record).expect("records serialize");
                self.actors
                    .insert(actor, json.as_slice())
                    .map_err(failed(path))?;
                Ok(Ok(()))
            }
            Ok(_) => Ok(Ok(())),
            Err(source) => Ok(Err(WriteError::BadRecord {
                actor: actor_of(actor),
                source,
            })),
        }
    }

    /// Writes the heads this batch moved.
    fn finish(mut self) -> Result<(), StorageError> {
        for (actor, head) in self.moved {
            self.heads.insert(actor, head).map_err(failed(self.path))?;
        }
        Ok(())
    }
}

fn describe(hash: Option<Hash>) -> String {
    hash.map_or_else(|| "nothing (a first event)".to_owned(), hex::encode)
}
