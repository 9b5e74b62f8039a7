//! Where chains are kept.

use std::collections::HashMap;
use std::future::{Future, ready};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use super::ChainEvent;
use crate::id::ActorId;

/// Completes once an appended event is as durable as the log promises.
pub type LogFuture = Pin<Box<dyn Future<Output = Result<(), LogError>> + Send>>;

/// The log could not keep or read an event.
#[derive(Debug, Clone, thiserror::Error)]
#[error("event log: {0}")]
pub struct LogError(pub String);

/// Storage for every actor's chain. The executor appends one event per state
/// transition and acknowledges the call only when the returned future
/// completes, so a durable log decides what "acknowledged" means.
pub trait EventLog: Send + Sync + 'static {
    /// Appends `event` to the chain of `actor`; the event already links to
    /// the previous head.
    fn append(&self, actor: &ActorId, event: ChainEvent) -> LogFuture;

    /// The whole chain of `actor`, oldest first (empty if unknown).
    fn events(&self, actor: &ActorId) -> Result<Vec<ChainEvent>, LogError>;
}

/// Chains kept in memory, lost when the process ends.
#[derive(Default)]
pub struct MemoryEventLog {
    chains: Mutex<HashMap<ActorId, Arc<Mutex<Vec<ChainEvent>>>>>,
}

impl MemoryEventLog {
    fn chain(&self, actor: &ActorId) -> Arc<Mutex<Vec<ChainEvent>>> {
        let mut chains = self.chains.lock().expect("chain map lock");
        chains.entry(*actor).or_default().clone()
    }
}

impl EventLog for MemoryEventLog {
    fn append(&self, actor: &ActorId, event: ChainEvent) -> LogFuture {
        self.chain(actor).lock().expect("chain lock").push(event);
        Box::pin(ready(Ok(())))
    }

    fn events(&self, actor: &ActorId) -> Result<Vec<ChainEvent>, LogError> {
        let chains = self.chains.lock().expect("chain map lock");
        Ok(chains
            .get(actor)
            .map(|chain| chain.lock().expect("chain lock").clone())
            .unwrap_or_default())
    }
}
