//! Checking stored chains from disk: every event readable and in
//! sequence, every hash and link recomputed, the head table right, and
//! every kept state stored intact and recorded by its event.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use redb::{ReadTransaction, ReadableTable};
use sha2::{Digest, Sha256};

use super::RedbEventLog;
use super::error::{ChainDamage, Damage, StateDamage, StorageError, failed};
use super::layout::{
    EVENTS, HEADS, SNAPSHOTS, STATE_BLOBS, STATES, actor_of, key_of, range_of_key,
};
use super::read::{ChainHead, Rows, decode_rows, read_rows};
use crate::chain::record::StateDigest;
use crate::chain::{self, ChainEvent, Hash};
use crate::id::ActorId;
use crate::storage::codec;

/// What [`RedbEventLog::verify_all`] checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifySummary {
    pub chains: u64,
    pub events: u64,
}

impl RedbEventLog {
    /// Re-reads `actor`'s chain from the database and recomputes every hash
    /// and link, and checks it against the recorded head. Returns the head.
    pub fn verify_stored(&self, actor: &ActorId) -> Result<Option<ChainHead>, StorageError> {
        let path = &self.shared.path;
        let tx = self.begin_read()?;
        let heads = tx.open_table(HEADS).map_err(failed(path))?;
        let recorded = heads.get(key_of(actor)).map_err(failed(path))?;
        let recorded = recorded.map(|head| head.value());
        let rows = read_rows(&tx, key_of(actor), .., path)?;
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
        let tx = self.begin_read()?;
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
}

/// The kept states of one actor, as [`check_chain`] checks them.
struct StoredStates {
    /// The encoded references of its snapshots, then of its newest state.
    refs: Vec<Vec<u8>>,
    /// The size of each state they name, or why it is not what its digest says.
    blobs: HashMap<Hash, Result<usize, StateDamage>>,
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
            None => Err(StateDamage::NotStored),
            Some(bytes) if Sha256::digest(bytes.value()).as_slice() != sha256 => {
                Err(StateDamage::WrongDigest)
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
    blobs: &HashMap<Hash, Result<usize, StateDamage>>,
) -> Result<(), Damage> {
    let state = codec::decode_state_ref(encoded).map_err(|source| Damage::State {
        index: u64::from_be_bytes(
            encoded
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .unwrap_or_default(),
        ),
        problem: StateDamage::Reference(source),
    })?;
    let index = state.index;
    let damage = |problem: StateDamage| Damage::State { index, problem };
    let event = usize::try_from(index)
        .ok()
        .and_then(|i| events.get(i))
        .ok_or_else(|| {
            damage(StateDamage::BeyondChain {
                events: events.len(),
            })
        })?;
    if event.hash != state.hash {
        return Err(damage(StateDamage::OtherEvent {
            named: hex::encode(state.hash),
            found: hex::encode(event.hash),
        }));
    }
    let data: serde_json::Value = serde_json::from_str(event.data.get())
        .map_err(|e| damage(StateDamage::DataNotJson(e.to_string())))?;
    let recorded = data
        .get("state")
        .ok_or_else(|| damage(StateDamage::NoStateRecorded))?;
    let stored = match &state.sha256 {
        None => None,
        Some(sha256) => {
            let size = blobs
                .get(sha256)
                .cloned()
                .unwrap_or(Err(StateDamage::NotRead))
                .map_err(&damage)?;
            Some(StateDigest::new(sha256, size))
        }
    };
    let stored = serde_json::to_value(stored).expect("digests serialize");
    if *recorded != stored {
        return Err(damage(StateDamage::Differs {
            recorded: recorded.to_string(),
            stored: stored.to_string(),
        }));
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
    // The events before the first problem that stops reading are verified
    // first, since an earlier bad link is the first bad event.
    let (events, stop) = decode_rows(rows, 0);
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
