//! The writer's side of kept states: each state's bytes stored once by
//! SHA-256 with a count of the references naming it, so an unchanged or
//! repeated state is not written again and one nothing names is removed.

use std::path::Path;

use redb::{ReadableTable, Table, WriteTransaction};

use super::error::{StorageError, failed};
use super::layout::{SNAPSHOTS, STATE_BLOBS, STATE_REFS, STATES, range_of_key};
use super::options::BatchCounts;
use crate::chain::Hash;
use crate::storage::KeptState;
use crate::storage::codec::{self, StateRef};

/// The writer's side of kept states: the references to them, and the
/// states themselves, stored once by SHA-256 and counted, so that an
/// unchanged or repeated state is not written again and a state no
/// reference names is removed.
pub(super) struct KeptStates<'tx> {
    path: &'tx Path,
    pub newest: Table<'tx, [u8; 16], &'static [u8]>,
    pub snapshots: Table<'tx, ([u8; 16], u64), &'static [u8]>,
    blobs: Table<'tx, [u8; 32], &'static [u8]>,
    refs: Table<'tx, [u8; 32], u64>,
}

impl<'tx> KeptStates<'tx> {
    pub fn open(tx: &'tx WriteTransaction, path: &'tx Path) -> Result<Self, StorageError> {
        Ok(Self {
            path,
            newest: tx.open_table(STATES).map_err(failed(path))?,
            snapshots: tx.open_table(SNAPSHOTS).map_err(failed(path))?,
            blobs: tx.open_table(STATE_BLOBS).map_err(failed(path))?,
            refs: tx.open_table(STATE_REFS).map_err(failed(path))?,
        })
    }

    /// Makes the state `at` names `actor`'s newest.
    pub fn keep_newest(
        &mut self,
        actor: [u8; 16],
        at: &StateRef,
        state: &KeptState,
        counts: &mut BatchCounts,
    ) -> Result<(), StorageError> {
        let path = self.path;
        let before = self
            .newest
            .get(actor)
            .map_err(failed(path))?
            .and_then(|old| codec::decode_state_ref(old.value()).ok())
            .and_then(|old| old.sha256);
        if before != at.sha256 {
            self.add_ref(state, counts)?;
            self.drop_ref(before)?;
        }
        self.newest
            .insert(actor, codec::encode_state_ref(at).as_slice())
            .map_err(failed(path))?;
        Ok(())
    }

    /// Index of `actor`'s newest snapshot.
    pub fn last_snapshot(&self, actor: [u8; 16]) -> Result<Option<u64>, StorageError> {
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
    pub fn snapshot(
        &mut self,
        actor: [u8; 16],
        at: &StateRef,
        state: &KeptState,
        counts: &mut BatchCounts,
    ) -> Result<(), StorageError> {
        self.snapshots
            .insert((actor, at.index), codec::encode_state_ref(at).as_slice())
            .map_err(failed(self.path))?;
        self.add_ref(state, counts)
    }

    /// How many references name the state `sha256`.
    fn ref_count(&self, sha256: Hash) -> Result<u64, StorageError> {
        Ok(self
            .refs
            .get(sha256)
            .map_err(failed(self.path))?
            .map_or(0, |count| count.value()))
    }

    /// One more reference to `state`: stored if it is the first.
    pub fn add_ref(
        &mut self,
        state: &KeptState,
        counts: &mut BatchCounts,
    ) -> Result<(), StorageError> {
        let path = self.path;
        let Some(sha256) = state.sha256() else {
            return Ok(());
        };
        let count = self.ref_count(sha256)?;
        if count == 0 {
            let bytes = state.state().as_deref().unwrap_or_default();
            self.blobs.insert(sha256, bytes).map_err(failed(path))?;
            counts.states += 1;
            counts.state_bytes += bytes.len() as u64;
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
        let count = self.ref_count(sha256)?;
        if count > 1 {
            self.refs.insert(sha256, count - 1).map_err(failed(path))?;
        } else {
            self.refs.remove(sha256).map_err(failed(path))?;
            self.blobs.remove(sha256).map_err(failed(path))?;
        }
        Ok(())
    }
}
