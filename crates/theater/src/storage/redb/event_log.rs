//! The [`EventLog`] trait on a [`RedbEventLog`]: appends and records go
//! to the writer, reads read the database, errors keep their cause.

use super::RedbEventLog;
use super::layout::key_of;
use super::writer::{Answer, Request};
use crate::chain::{ChainEvent, ChainExport, Hash};
use crate::id::ActorId;
use crate::storage::codec;
use crate::storage::{
    AcceptFuture, Accepted, ActorRecord, Entry, EventLog, LogError, LogFuture, LogStats,
    SavedActor, Snapshot, VerifyFailure, always_snapshot,
};

impl EventLog for RedbEventLog {
    /// The event was hashed once, when it was sealed; the writer checks
    /// only that it links to the head.
    fn append_entry(&self, actor: &ActorId, entry: Entry<'_>) -> LogFuture {
        let Entry {
            event,
            state,
            delivered,
        } = entry;
        let state = state.map(|kept| (kept.clone(), always_snapshot(&event)));
        let answer = self.submit(|reply| Request::Append {
            actor: key_of(actor),
            hash: event.hash,
            parent: event.parent_hash,
            bytes: codec::encode(&event),
            state,
            delivered,
            reply,
        });
        Box::pin(settled(answer))
    }

    fn import_chain(&self, actor: &ActorId, events: Vec<ChainEvent>) -> LogFuture {
        let export = ChainExport::new(actor.to_string(), events);
        let stored = self.import_as(*actor, &export);
        Box::pin(async move { stored.await.map_err(LogError::new) })
    }

    fn accept(&self, actor: &ActorId, message: &Accepted) -> AcceptFuture {
        let (number, answer) = self.accept_message(actor, message);
        Box::pin(async move { settled(answer).await.map(|()| Some(number)) })
    }

    fn inbox(&self, actor: &ActorId) -> Result<Vec<(u64, Accepted)>, LogError> {
        self.stored_inbox(actor).map_err(LogError::new)
    }

    fn events_from(&self, actor: &ActorId, start: u64) -> Result<Vec<ChainEvent>, LogError> {
        self.stored_events_from(actor, start).map_err(LogError::new)
    }

    fn chain_head(&self, actor: &ActorId) -> Result<Option<(u64, Hash)>, LogError> {
        self.head(actor)
            .map(|head| head.map(|head| (head.events, head.hash)))
            .map_err(LogError::new)
    }

    fn events(&self, actor: &ActorId) -> Result<Vec<ChainEvent>, LogError> {
        self.stored_events(actor).map_err(LogError::new)
    }

    fn verify(&self, actor: &ActorId) -> Result<(), VerifyFailure> {
        self.verify_stored(actor)
            .map(|_| ())
            .map_err(|error| VerifyFailure {
                first_bad_event: error
                    .damaged_chains()
                    .first()
                    .map(|chain| chain.damage.first_bad_event()),
                message: error.to_string(),
            })
    }

    fn snapshot(&self, actor: &ActorId, index: u64) -> Result<Option<Snapshot>, LogError> {
        self.stored_snapshot(actor, index).map_err(LogError::new)
    }

    fn save_actor(&self, actor: &ActorId, record: &ActorRecord) -> LogFuture {
        let record = serde_json::to_vec(record).expect("records serialize");
        Box::pin(settled(self.submit(|reply| Request::SaveActor {
            actor: key_of(actor),
            record,
            reply,
        })))
    }

    fn set_running(&self, actor: &ActorId, running: bool) -> LogFuture {
        Box::pin(settled(self.submit(|reply| Request::SetRunning {
            actor: key_of(actor),
            running,
            reply,
        })))
    }

    fn saved_actors(&self) -> Result<Vec<SavedActor>, LogError> {
        self.stored_actors().map_err(LogError::new)
    }

    fn saved_actor(&self, actor: &ActorId) -> Result<Option<SavedActor>, LogError> {
        self.stored_actor(actor).map_err(LogError::new)
    }

    fn saved_ids(&self) -> Result<Vec<ActorId>, LogError> {
        self.stored_actor_ids().map_err(LogError::new)
    }

    fn events_page(
        &self,
        actor: &ActorId,
        start: u64,
        limit: usize,
    ) -> Result<(Vec<ChainEvent>, u64), LogError> {
        self.stored_page(actor, start, limit).map_err(LogError::new)
    }

    fn stats(&self) -> Option<LogStats> {
        Some(RedbEventLog::stats(self))
    }

    fn size_bytes(&self) -> Option<u64> {
        std::fs::metadata(&self.shared.path).ok().map(|m| m.len())
    }
}

/// Waits for the writer's answer, as the trait reports it.
async fn settled(answer: Answer) -> Result<(), LogError> {
    match answer.wait().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(LogError::new(error)),
        Err(error) => Err(LogError::new(error)),
    }
}
