//! The way into a running actor.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::{RawValue, to_raw_value};
use tokio::sync::{mpsc, oneshot};

use super::ActorStore;
use super::note::CallNote;
use super::shared::{InlineCall, Shared, hand_to_task};
use crate::chain::Hash;
use crate::error::ActorError;
use crate::id::ActorId;
use crate::manifest::Limits;
use crate::metrics::ActorMetrics;
use crate::storage::{Accepted, EventLog};
use crate::telemetry::TraceContext;
use crate::wasm::{ExportTable, StateBytes};

/// Where a call's answer goes: a waiting caller, or nowhere for a message
/// that was sent without waiting.
pub(crate) type Reply = Option<oneshot::Sender<Result<Box<RawValue>, ActorError>>>;

/// Work for an actor's task.
pub(crate) enum Op {
    Call {
        function: String,
        params: Box<RawValue>,
        /// The actor that sent it, recorded in the receiver's chain.
        origin: Option<ActorId>,
        reply: Reply,
        /// Where in a trace the call was made; the call's own span is its child,
        /// so that one trace follows a request from actor to actor.
        caller: Option<TraceContext>,
        /// The inbox number of an accepted message, settled by the call's event.
        delivery: Option<u64>,
        /// The caller's part in the call's chain event.
        note: Option<CallNote>,
    },
    State {
        reply: oneshot::Sender<StateBytes>,
    },
    /// Settle what a call run by its caller left: a trap or a shutdown
    /// request goes to the supervisor.
    Settle,
    /// Replace the instance with a fresh one (state kept) after `delay`.
    Restart {
        delay: Duration,
        reply: Option<oneshot::Sender<()>>,
    },
    /// Append an event the runtime decided on (e.g. a supervision decision).
    Record {
        event_type: &'static str,
        data: Box<RawValue>,
        description: String,
    },
    /// Set the state back to `state`, which event `index` (`to`) of the
    /// chain left, and record that.
    Revert {
        to: Hash,
        index: u64,
        state: StateBytes,
        reply: oneshot::Sender<Result<Hash, ActorError>>,
    },
    Stop {
        reply: oneshot::Sender<()>,
    },
}

/// What an actor has done so far; read without disturbing it.
#[derive(Debug, Default)]
pub struct ActorCounters {
    /// Calls that returned `Ok` and committed a state.
    pub calls_ok: AtomicU64,
    /// Calls that failed (actor `Err`, trap, limit, bad params).
    pub calls_failed: AtomicU64,
    /// Calls refused because the queue was full.
    pub queue_full: AtomicU64,
    /// Microseconds spent running calls, chain appends included.
    pub busy_micros: AtomicU64,
    pub(crate) metrics: ActorMetrics,
}

impl ActorCounters {
    pub(crate) fn new(metrics: ActorMetrics) -> Self {
        Self {
            metrics,
            ..Self::default()
        }
    }

    /// A call of `function` ended with `outcome` after `elapsed`.
    pub(crate) fn called(&self, slot: Option<usize>, outcome: &'static str, elapsed: Duration) {
        let micros = elapsed.as_micros().min(u64::MAX as u128) as u64;
        self.busy_micros.fetch_add(micros, Ordering::Relaxed);
        self.metrics.call(slot, outcome, elapsed);
    }
}

/// What never changes about a running actor, shared by its handles.
pub(crate) struct ActorFacts {
    pub(crate) id: ActorId,
    pub(crate) name: Arc<str>,
    pub(crate) limits: Limits,
    pub(crate) counters: Arc<ActorCounters>,
    /// The exports its component has, to refuse a message it cannot take
    /// before it is queued.
    pub(crate) exports: Arc<ExportTable<ActorStore>>,
}

/// A cheap, clonable reference to a running actor.
#[derive(Clone)]
pub struct ActorHandle {
    facts: Arc<ActorFacts>,
    ops: mpsc::Sender<Op>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ActorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorHandle")
            .field("id", &self.facts.id)
            .field("name", &self.facts.name)
            .finish()
    }
}

/// An [`ActorHandle`] that does not keep the actor's queue open: for
/// something the actor itself owns (a server of its own) that must reach
/// it without keeping it alive.
#[derive(Clone)]
pub struct WeakActorHandle {
    facts: Arc<ActorFacts>,
    ops: mpsc::WeakSender<Op>,
    shared: std::sync::Weak<Shared>,
}

impl WeakActorHandle {
    /// The handle, while anything else still holds one.
    pub fn upgrade(&self) -> Option<ActorHandle> {
        Some(ActorHandle {
            facts: self.facts.clone(),
            ops: self.ops.upgrade()?,
            shared: self.shared.upgrade()?,
        })
    }
}

impl ActorHandle {
    pub fn downgrade(&self) -> WeakActorHandle {
        WeakActorHandle {
            facts: self.facts.clone(),
            ops: self.ops.downgrade(),
            shared: Arc::downgrade(&self.shared),
        }
    }

    pub(crate) fn new(facts: ActorFacts, ops: mpsc::Sender<Op>, shared: Arc<Shared>) -> Self {
        Self {
            facts: Arc::new(facts),
            ops,
            shared,
        }
    }

    /// Lets calls in: see `Spawned::start`.
    pub(crate) fn open(&self) {
        self.shared.open(&self.ops);
    }

    pub fn id(&self) -> ActorId {
        self.facts.id
    }

    /// The manifest's `name`.
    pub fn name(&self) -> &str {
        &self.facts.name
    }

    /// The manifest's `[limits]`.
    pub fn limits(&self) -> &Limits {
        &self.facts.limits
    }

    pub fn counters(&self) -> &ActorCounters {
        &self.facts.counters
    }

    /// Calls pending in the queue right now.
    pub fn queue_depth(&self) -> usize {
        self.shared.waiting()
    }

    /// Calls the export `function` (`interface.name`, e.g.
    /// `ntwk:theater/message-server-client.handle-send`) with `params` and
    /// returns its result once the new state and its chain event are stored.
    pub async fn call_function<P: Serialize, R: DeserializeOwned>(
        &self,
        function: &str,
        params: P,
    ) -> Result<R, ActorError> {
        self.call_function_from(None, function, params).await
    }

    /// [`call_function`](Self::call_function) on behalf of the actor `origin`.
    pub async fn call_function_from<P: Serialize, R: DeserializeOwned>(
        &self,
        origin: Option<ActorId>,
        function: &str,
        params: P,
    ) -> Result<R, ActorError> {
        self.call(origin, function, params, None).await
    }

    /// [`call_function`](Self::call_function) whose chain event `note`
    /// completes: it gives the params as recorded and adds what the caller
    /// made of the outcome (see [`CallNote`]).
    pub async fn call_noted<P: Serialize, R: DeserializeOwned>(
        &self,
        function: &str,
        params: P,
        note: CallNote,
    ) -> Result<R, ActorError> {
        self.call(None, function, params, Some(note)).await
    }

    async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        origin: Option<ActorId>,
        function: &str,
        params: P,
        note: Option<CallNote>,
    ) -> Result<R, ActorError> {
        let call = self.prepare(origin, function, &params, note)?;
        let result = match self.shared.try_call(call, &self.ops) {
            // The actor was idle: the call runs here, with no thread woken.
            Ok(inline) => inline.await?,
            Err(call) => self.queue_call(call)?.await?,
        };
        parse_result(function, &result)
    }

    /// [`call_function`](Self::call_function), always through the queue:
    /// the first poll queues the call (or finds the queue full) and the
    /// actor's task runs it, however long the caller takes to poll again.
    /// For a caller that polls its calls only now and then.
    pub(crate) async fn call_function_queued<P: Serialize, R: DeserializeOwned>(
        &self,
        function: &str,
        params: P,
    ) -> Result<R, ActorError> {
        let call = self.prepare(None, function, &params, None)?;
        let result = self.queue_call(call)?.await?;
        parse_result(function, &result)
    }

    /// A call of `function` with `params`, serialized, in the trace of the
    /// code running now.
    fn prepare<P: Serialize>(
        &self,
        origin: Option<ActorId>,
        function: &str,
        params: &P,
        note: Option<CallNote>,
    ) -> Result<InlineCall, ActorError> {
        Ok(InlineCall {
            actor: self.facts.id,
            function: function.to_owned(),
            params: serialize_params(function, params)?,
            origin,
            caller: crate::telemetry::current(),
            note,
        })
    }

    /// Queues `call`; the answer is its reply.
    fn queue_call(
        &self,
        call: InlineCall,
    ) -> Result<impl Future<Output = Result<Box<RawValue>, ActorError>>, ActorError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Op::Call {
            function: call.function,
            params: call.params,
            origin: call.origin,
            reply: Some(reply),
            caller: call.caller,
            delivery: None,
            note: call.note,
        })?;
        let id = self.facts.id;
        Ok(async move { answer.await.map_err(|_| ActorError::Stopped(id))? })
    }

    /// Queues a call without waiting for it: the caller learns only whether
    /// the actor took it. Its outcome is in the actor's chain. Nothing keeps
    /// it across a crash: see [`deliver`](Self::deliver) for that.
    pub fn cast_function<P: Serialize>(
        &self,
        origin: Option<ActorId>,
        function: &str,
        params: P,
    ) -> Result<(), ActorError> {
        let params = serialize_params(function, &params)?;
        self.enqueue(Op::Call {
            function: function.to_owned(),
            params,
            origin,
            reply: None,
            caller: crate::telemetry::current(),
            delivery: None,
            note: None,
        })
    }

    /// Refuses a call of `function` (`interface.name`) that this actor's
    /// component does not export, as a queued call would fail unrecorded.
    pub fn check_export(&self, function: &str) -> Result<(), ActorError> {
        if self.facts.exports.exports(function) {
            return Ok(());
        }
        Err(ActorError::UnknownFunction {
            actor: self.facts.id,
            function: function.to_owned(),
            available: self.facts.exports.exported_names().join(", "),
        })
    }

    /// [`cast_function`](Self::cast_function) that survives a crash: the
    /// message is kept in `log`'s inbox before this returns, with a place
    /// in the queue held for it meanwhile, and leaves the inbox with the
    /// event of its call. A runtime that resumes the actor after a crash
    /// runs what the inbox still holds, so an accepted message runs once.
    pub async fn deliver<P: Serialize>(
        &self,
        log: &dyn EventLog,
        origin: Option<ActorId>,
        function: &str,
        params: P,
    ) -> Result<(), ActorError> {
        let params = serialize_params(function, &params)?;
        // Counted from here: calls made while the message is being kept
        // queue behind it.
        if !self.shared.try_owe(self.facts.limits.queue_capacity) {
            return Err(self.refused(mpsc::error::TrySendError::Full(())));
        }
        let slot = match self.ops.clone().try_reserve_owned() {
            Ok(slot) => slot,
            Err(e) => {
                self.shared.unowe();
                return Err(self.refused(e));
            }
        };
        let message = Accepted {
            function: function.to_owned(),
            params,
            origin,
        };
        let delivery = match log.accept(&self.facts.id, &message).await {
            Ok(delivery) => delivery,
            Err(e) => {
                self.shared.unowe();
                return Err(e.into());
            }
        };
        slot.send(Op::Call {
            function: message.function,
            params: message.params,
            origin,
            reply: None,
            caller: crate::telemetry::current(),
            delivery,
            note: None,
        });
        self.shared.queued();
        Ok(())
    }

    /// Queues a message the inbox kept from before a restart of the
    /// runtime, waiting for room in the queue.
    pub(crate) async fn redeliver(&self, delivery: u64, message: Accepted) {
        let call = Op::Call {
            function: message.function,
            params: message.params,
            origin: message.origin,
            reply: None,
            // Its sender's trace ended with the runtime that accepted it.
            caller: None,
            delivery: Some(delivery),
            note: None,
        };
        // A stopped actor's inbox is dropped with it.
        self.send_waiting(call).await;
    }

    /// Refuses a message larger than this actor's `limits.max_message_bytes`.
    pub fn check_message_size(&self, size: usize) -> Result<(), ActorError> {
        if size > self.facts.limits.max_message_bytes {
            return Err(ActorError::MessageTooLarge {
                actor: self.facts.id,
                size,
                limit: self.facts.limits.max_message_bytes,
            });
        }
        Ok(())
    }

    /// Sets the state back to `state`, the one event `index` (`to`) of the
    /// chain left, after the calls queued before this; a `revert` event
    /// records it. Returns that event's hash.
    pub(crate) async fn revert(
        &self,
        to: Hash,
        index: u64,
        state: StateBytes,
    ) -> Result<Hash, ActorError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Op::Revert {
            to,
            index,
            state,
            reply,
        })?;
        answer
            .await
            .map_err(|_| ActorError::Stopped(self.facts.id))?
    }

    /// Replaces the actor's instance with a fresh one, keeping its state and
    /// chain, after the calls queued before this.
    pub async fn restart(&self) -> Result<(), ActorError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Op::Restart {
            delay: Duration::ZERO,
            reply: Some(reply),
        })?;
        answer.await.map_err(|_| ActorError::Stopped(self.facts.id))
    }

    /// Queues a restart after `delay` without waiting (a supervisor's
    /// one-for-all / rest-for-one decision).
    pub(crate) fn restart_later(&self, delay: Duration) {
        self.enqueue_from_runtime(Op::Restart { delay, reply: None });
    }

    /// Queues an event for the actor's chain, ordered with its calls.
    pub(crate) fn record_later(
        &self,
        event_type: &'static str,
        data: Box<RawValue>,
        description: String,
    ) {
        self.enqueue_from_runtime(Op::Record {
            event_type,
            data,
            description,
        });
    }

    /// Queues work the runtime itself decided on: see [`hand_to_task`].
    fn enqueue_from_runtime(&self, op: Op) {
        self.shared.owe();
        hand_to_task(&self.shared, &self.ops, op);
    }

    /// The actor's current state, after every call queued before this one.
    pub async fn state(&self) -> Result<StateBytes, ActorError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Op::State { reply })?;
        answer.await.map_err(|_| ActorError::Stopped(self.facts.id))
    }

    /// Stops the actor after the calls queued before this one; calls queued
    /// after it are answered with [`ActorError::Stopped`].
    pub async fn stop(&self) -> Result<(), ActorError> {
        let (reply, answer) = oneshot::channel();
        // Stopping must not be refused by a full queue: wait for a slot.
        if !self.send_waiting(Op::Stop { reply }).await {
            return Err(ActorError::Stopped(self.facts.id));
        }
        answer.await.map_err(|_| ActorError::Stopped(self.facts.id))
    }

    /// Whether the actor's task is still running.
    pub fn is_running(&self) -> bool {
        !self.ops.is_closed()
    }

    /// Completes once the actor's task has ended: it was stopped, failed
    /// for good, or shut down by itself.
    pub async fn stopped(&self) {
        self.ops.closed().await;
    }

    /// Queues `op`, or refuses it when the queue is full.
    fn enqueue(&self, op: Op) -> Result<(), ActorError> {
        if !self.shared.try_owe(self.facts.limits.queue_capacity) {
            return Err(self.refused(mpsc::error::TrySendError::Full(())));
        }
        match self.ops.try_send(op) {
            Ok(()) => {
                self.shared.queued();
                Ok(())
            }
            Err(e) => {
                self.shared.unowe();
                Err(self.refused(e))
            }
        }
    }

    /// Queues `op`, waiting for room. `false` if the actor has ended.
    async fn send_waiting(&self, op: Op) -> bool {
        self.shared.owe();
        let sent = self.ops.send(op).await.is_ok();
        if sent {
            self.shared.queued();
        } else {
            self.shared.unowe();
        }
        sent
    }

    /// Why the queue refused something.
    fn refused<T>(&self, error: mpsc::error::TrySendError<T>) -> ActorError {
        match error {
            mpsc::error::TrySendError::Full(_) => {
                let refused = self
                    .facts
                    .counters
                    .queue_full
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                self.facts.counters.metrics.refused();
                tracing::warn!(actor = %self.facts.id, refused, "queue full ({} calls pending): call refused", self.facts.limits.queue_capacity);
                ActorError::QueueFull {
                    actor: self.facts.id,
                    capacity: self.facts.limits.queue_capacity,
                }
            }
            mpsc::error::TrySendError::Closed(_) => ActorError::Stopped(self.facts.id),
        }
    }
}

fn serialize_params<P: Serialize>(function: &str, params: &P) -> Result<Box<RawValue>, ActorError> {
    to_raw_value(params).map_err(|e| ActorError::BadParams {
        function: function.to_owned(),
        reason: e.to_string(),
    })
}

fn parse_result<R: DeserializeOwned>(function: &str, result: &RawValue) -> Result<R, ActorError> {
    serde_json::from_str(result.get()).map_err(|e| ActorError::BadResult {
        function: function.to_owned(),
        expected: std::any::type_name::<R>(),
        reason: e.to_string(),
    })
}
