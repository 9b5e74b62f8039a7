//! [`MemoryEventLog`]: chains kept in memory, lost when the process ends.

use std::collections::HashMap;
use std::future::ready;
use std::sync::{Arc, Mutex};

use super::{
    ActorRecord, Entry, EventLog, KeptState, LogError, LogFuture, SNAPSHOT_EVERY, SavedActor,
    Snapshot, VerifyFailure, always_snapshot, snapshot_due,
};
use crate::chain::{self, ChainEvent};
use crate::id::ActorId;

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

/// An import for an actor that has a chain here already.
#[derive(Debug, thiserror::Error)]
#[error("actor {0} already has a chain here, which the imported one does not continue")]
struct ChainExists(ActorId);

impl MemoryEventLog {
    fn chain(&self, actor: &ActorId) -> Arc<Mutex<MemoryChain>> {
        let mut chains = self.chains.lock().expect("chain map lock");
        chains.entry(*actor).or_default().clone()
    }

    fn keep_imported(&self, actor: &ActorId, events: Vec<ChainEvent>) -> Result<(), LogError> {
        chain::verify(&events).map_err(LogError::new)?;
        let chain = self.chain(actor);
        let mut chain = chain.lock().expect("chain lock");
        // A chain here may only be a beginning of the imported one: an
        // actor that comes back to a runtime it ran in gets the rest.
        let kept = chain.events.len();
        let continued = kept < events.len()
            && chain
                .events
                .last()
                .is_none_or(|last| last.hash == events[kept - 1].hash);
        if !continued {
            return Err(LogError::new(ChainExists(*actor)));
        }
        chain.events = events;
        Ok(())
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
        self.push(actor, entry.event.into_event(), entry.state);
        Box::pin(ready(Ok(())))
    }

    fn import_chain(&self, actor: &ActorId, events: Vec<ChainEvent>) -> LogFuture {
        Box::pin(ready(self.keep_imported(actor, events)))
    }

    fn events(&self, actor: &ActorId) -> Result<Vec<ChainEvent>, LogError> {
        let chains = self.chains.lock().expect("chain map lock");
        Ok(chains
            .get(actor)
            .map(|chain| chain.lock().expect("chain lock").events.clone())
            .unwrap_or_default())
    }

    fn verify(&self, actor: &ActorId) -> Result<(), VerifyFailure> {
        chain::verify(&self.events(actor)?).map_err(|e| VerifyFailure {
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
