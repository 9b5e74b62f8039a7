//! Appends an actor's events to its chain.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::broadcast;

use crate::chain::record::{self, HostCallRecord};
use crate::chain::{ChainEvent, Hash, SealedEvent};
use crate::id::ActorId;
use crate::metrics::Metrics;
use crate::storage::{Entry, EventLog, KeptState, LogError};

/// A chain event as live subscribers see it.
#[derive(Debug, Clone)]
pub struct ActorEvent {
    pub actor: ActorId,
    pub event: Arc<ChainEvent>,
}

/// Knows the head of one actor's chain and extends it.
#[derive(Clone)]
pub struct ChainRecorder {
    actor: ActorId,
    head: Option<Hash>,
    log: Arc<dyn EventLog>,
    /// Live subscribers; an event is cloned only when someone listens.
    subscribers: broadcast::Sender<ActorEvent>,
    metrics: Metrics,
}

impl ChainRecorder {
    pub(crate) fn new(
        actor: ActorId,
        log: Arc<dyn EventLog>,
        subscribers: broadcast::Sender<ActorEvent>,
    ) -> Self {
        Self {
            actor,
            head: None,
            log,
            subscribers,
            metrics: Metrics::disabled(),
        }
    }

    /// Counts its appends in `metrics`.
    pub(crate) fn counted(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn actor(&self) -> ActorId {
        self.actor
    }

    /// Continues a stored chain whose newest event is `head`.
    pub(crate) fn continuing(mut self, head: Hash) -> Self {
        self.head = Some(head);
        self
    }

    /// The newest event of the chain, `None` before the first.
    pub fn head(&self) -> Option<Hash> {
        self.head
    }

    /// Links a new event to the head and waits until the log holds it.
    pub async fn record(
        &mut self,
        event_type: &str,
        data: Box<RawValue>,
        description: String,
    ) -> Result<Hash, LogError> {
        self.commit(event_type, data, description, None, None).await
    }

    /// [`record`](Self::record) for a state transition: the log keeps
    /// `state` with the event, so the actor can resume from it.
    pub async fn record_transition(
        &mut self,
        event_type: &str,
        data: Box<RawValue>,
        description: String,
        state: &KeptState,
    ) -> Result<Hash, LogError> {
        self.commit(event_type, data, description, Some(state), None)
            .await
    }

    /// Appends an event with the state it leaves, if any, and the inbox
    /// entry whose call it records, if any (see [`Entry`]).
    pub(crate) async fn commit(
        &mut self,
        event_type: &str,
        data: Box<RawValue>,
        description: String,
        state: Option<&KeptState>,
        delivered: Option<u64>,
    ) -> Result<Hash, LogError> {
        let event = SealedEvent::new(self.head, event_type, data, now_ms(), description);
        let hash = event.hash;
        let shared =
            (self.subscribers.receiver_count() > 0).then(|| Arc::new(ChainEvent::clone(&event)));
        let entry = Entry {
            event,
            state,
            delivered,
        };
        self.log.append_entry(&self.actor, entry).await?;
        self.head = Some(hash);
        self.metrics.chain_event();
        crate::telemetry::note_event(&hash);
        if let Some(event) = shared {
            // Only durable events are announced; a send fails only when the
            // last subscriber left meanwhile.
            let _ = self.subscribers.send(ActorEvent {
                actor: self.actor,
                event,
            });
        }
        Ok(hash)
    }

    /// Records a `host-call` event: `function` (`interface.name`) was called
    /// with `params` and gave `result` (`Ok` value or `Err` message).
    pub async fn record_host_call<P: Serialize, T: Serialize, E: Serialize>(
        &mut self,
        function: &str,
        params: P,
        result: &Result<T, E>,
    ) -> Result<Hash, LogError> {
        let result = match result {
            Ok(value) => serde_json::json!({ "ok": value }),
            Err(error) => serde_json::json!({ "err": error }),
        };
        let data = record::encode(&HostCallRecord {
            function,
            params,
            result,
        });
        let name = function.rsplit('/').next().unwrap_or(function);
        self.record(record::HOST_CALL, data, name.to_owned()).await
    }

    /// The actor's chain so far, oldest first.
    pub fn events(&self) -> Result<Vec<ChainEvent>, LogError> {
        self.log.events(&self.actor)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
