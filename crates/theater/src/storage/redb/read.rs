//! Reading back what the chain database holds: chains (whole, from an
//! index, a page), heads, snapshots and the records of saved actors. Each
//! read is one redb read transaction, so it sees one consistent commit.

use std::ops::{Bound, RangeBounds};
use std::path::Path;

use redb::{ReadTransaction, ReadableTable};

use super::RedbEventLog;
use super::error::{ChainDamage, Damage, StorageError, failed};
use super::layout::{ACTORS, EVENTS, HEADS, SNAPSHOTS, STATE_BLOBS, STATES, actor_of, key_of};
use crate::chain::{ChainEvent, Hash};
use crate::id::ActorId;
use crate::storage::codec::{self, StateRef};
use crate::storage::{ActorRecord, SavedActor, Snapshot};

/// The newest event of a stored chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// How many events the chain has.
    pub events: u64,
    pub hash: Hash,
}

/// (sequence number, stored bytes) of one actor's events, in order.
pub(super) type Rows = Vec<(u64, Vec<u8>)>;

/// The rows of actor `key` with sequence numbers in `seqs`, read in `tx`.
pub(super) fn read_rows(
    tx: &ReadTransaction,
    key: [u8; 16],
    seqs: impl RangeBounds<u64>,
    path: &Path,
) -> Result<Rows, StorageError> {
    let events = tx.open_table(EVENTS).map_err(failed(path))?;
    // Unbounded ends stay within the actor's keys.
    let bound = |seq: Bound<&u64>, open: u64| match seq {
        Bound::Included(seq) => Bound::Included((key, *seq)),
        Bound::Excluded(seq) => Bound::Excluded((key, *seq)),
        Bound::Unbounded => Bound::Included((key, open)),
    };
    let keys = (
        bound(seqs.start_bound(), 0),
        bound(seqs.end_bound(), u64::MAX),
    );
    let mut rows = Vec::new();
    for row in events.range(keys).map_err(failed(path))? {
        let (key, value) = row.map_err(failed(path))?;
        rows.push((key.value().1, value.value().to_vec()));
    }
    Ok(rows)
}

/// The events of `rows`, the first expected at index `start`, up to the
/// first that is missing or cannot be read, and what is wrong with it.
pub(super) fn decode_rows(rows: Rows, start: u64) -> (Vec<ChainEvent>, Option<Damage>) {
    let mut events = Vec::with_capacity(rows.len());
    for (index, (seq, bytes)) in (start..).zip(rows) {
        if seq != index {
            return (events, Some(Damage::Missing { index, found: seq }));
        }
        match codec::decode(&bytes) {
            Ok(event) => events.push(event),
            Err(source) => return (events, Some(Damage::Unreadable { index, source })),
        }
    }
    (events, None)
}

impl RedbEventLog {
    /// Every actor with a stored chain.
    pub fn actors(&self) -> Result<Vec<ActorId>, StorageError> {
        let path = &self.shared.path;
        let tx = self.begin_read()?;
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
        let tx = self.begin_read()?;
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
        let path = &self.shared.path;
        let tx = self.begin_read()?;
        let rows = read_rows(&tx, key_of(actor), start..end, path)?;
        match decode_rows(rows, start) {
            (events, None) => Ok(events),
            (_, Some(damage)) => Err(self.damaged(vec![ChainDamage {
                actor: *actor,
                damage,
            }])),
        }
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

    /// The newest snapshot of `actor` at or before event `index`.
    pub fn stored_snapshot(
        &self,
        actor: &ActorId,
        index: u64,
    ) -> Result<Option<Snapshot>, StorageError> {
        let path = &self.shared.path;
        let tx = self.begin_read()?;
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
        let tx = self.begin_read()?;
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
        let tx = self.begin_read()?;
        let records = tx.open_table(ACTORS).map_err(failed(path))?;
        let record = records.get(key_of(actor)).map_err(failed(path))?;
        record
            .map(|record| self.saved(&tx, key_of(actor), record.value()))
            .transpose()
    }

    /// Every actor with a stored record, without reading their states.
    pub fn stored_actor_ids(&self) -> Result<Vec<ActorId>, StorageError> {
        let path = &self.shared.path;
        let tx = self.begin_read()?;
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
        let unreadable = |e: &dyn std::fmt::Display| {
            self.unreadable(format!(
                "a stored state of actor {actor} cannot be read: {e}"
            ))
        };
        let StateRef {
            index,
            hash,
            sha256,
        } = codec::decode_state_ref(encoded).map_err(|e| unreadable(&e))?;
        let state = match sha256 {
            None => None,
            Some(sha256) => {
                let blobs = tx.open_table(STATE_BLOBS).map_err(failed(path))?;
                let bytes = blobs.get(sha256).map_err(failed(path))?.ok_or_else(|| {
                    unreadable(&format_args!(
                        "state {} of event {index} is not stored",
                        hex::encode(sha256)
                    ))
                })?;
                Some(bytes.value().to_vec())
            }
        };
        Ok(Snapshot { index, hash, state })
    }
}
