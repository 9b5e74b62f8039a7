//! The actor's task: takes one call at a time off its queue, runs it, and
//! commits the outcome to its state and chain before answering.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::value::{RawValue, to_raw_value};
use tokio::sync::mpsc;

use super::handle::{ActorCounters, ActorHandle, Op};
use super::instance::{ActorInstance, ActorTemplate, Called, recorded};
use super::{
    ActorStore, ChainRecorder, Extensions, INIT_FUNCTION, MemoryLimitExceeded, TimeLimitExceeded,
};
use crate::chain::Hash;
use crate::chain::record::{
    self, CallErrorRecord, CallRecord, InitRecord, Origin, ResumeRecord, RevertRecord,
    ShutdownRecord,
};
use crate::error::{ActorError, SpawnError};
use crate::id::ActorId;
use crate::manifest::Limits;
use crate::runtime::{ChildEvent, Decision, Ending, WeakRuntime};
use crate::storage::KeptState;
use crate::telemetry::Traces;
use crate::wasm::{CallFailure, CallOutput, StateBytes};

/// Longest `Err` message of an actor kept whole; the rest is cut. Guards
/// the chain database and callers against an actor that fails with
/// messages without bound: they are meant for people.
pub const MAX_ERROR_BYTES: usize = 64 * 1024;

/// How an actor's chain begins or goes on when its task starts.
pub(crate) enum Start {
    /// A new chain: its first event is `actor-init`, naming the actor and
    /// event it was forked from, if any.
    New { forked_from: Option<Origin> },
    /// The chain the recorder continues: an `actor-resume` event.
    Resume,
}

/// An actor whose `init` has run and whose task has not started yet. The
/// runtime registers it first, so that whatever the task does at once
/// (end, when `init` asked to shut down) finds it registered.
pub(crate) struct Spawned {
    pub handle: ActorHandle,
    executor: Executor,
    queue: mpsc::Receiver<Op>,
}

impl Spawned {
    /// Starts the actor's task.
    pub fn start(self) -> ActorHandle {
        tokio::spawn(self.executor.run(self.queue));
        self.handle
    }
}

/// Instantiates the actor, runs `actor.init` and records the first event of
/// its chain (see [`Start`]).
pub(crate) async fn spawn(
    recorder: ChainRecorder,
    template: Arc<ActorTemplate>,
    init_state: StateBytes,
    extensions: Extensions,
    runtime: WeakRuntime,
    start: Start,
) -> Result<Spawned, SpawnError> {
    let id = recorder.actor();
    let data = ActorStore::new(recorder, extensions, runtime, template.limits.memory_mb);
    let instance = ActorInstance::new(&template, data).await?;
    let (metrics, traces) = match instance.store.data().runtime() {
        Some(runtime) => (
            runtime.metrics().actor(
                id,
                template.exports.exported_names().iter().map(String::as_str),
            ),
            runtime.traces().cloned(),
        ),
        None => Default::default(),
    };
    let mut executor = Executor {
        id,
        template,
        instance,
        state: init_state,
        failure: None,
        counters: Arc::new(ActorCounters::new(metrics)),
        traces,
    };
    executor.init(start).await?;

    let limits = executor.template.limits;
    let (ops, queue) = mpsc::channel(limits.queue_capacity);
    let handle = ActorHandle::new(
        id,
        executor.template.name.as_str().into(),
        ops,
        limits,
        executor.counters.clone(),
        executor.template.exports.clone(),
    );
    Ok(Spawned {
        handle,
        executor,
        queue,
    })
}

struct Executor {
    id: ActorId,
    template: Arc<ActorTemplate>,
    instance: ActorInstance,
    /// The last committed state; only an `Ok` call replaces it.
    state: StateBytes,
    /// Set by a trap: the instance must not be entered again, and the
    /// supervisor decides what comes next.
    failure: Option<String>,
    counters: Arc<ActorCounters>,
    /// Where its calls' spans go, if anywhere.
    traces: Option<Traces>,
}

impl Executor {
    async fn init(&mut self, start: Start) -> Result<(), SpawnError> {
        let params = to_raw_value(&(self.id.to_string(),)).expect("an id serializes");
        let limits = self.template.limits;
        let output = match self
            .instance
            .call(INIT_FUNCTION, self.state.take(), &params, &limits)
            .await
            .map(|called| {
                called
                    .outcome
                    .and_then(|output| within_state_cap(output, &limits))
            }) {
            Some(Ok(output)) => output,
            Some(Err(failure)) => {
                return Err(SpawnError::Init(
                    failure_to_error(INIT_FUNCTION, failure, &self.template).to_string(),
                ));
            }
            None => unreachable!("init is a required export, checked at instantiation"),
        };
        let kept = KeptState::new(output.state);
        let id = self.id.to_string();
        let component = &self.template.compiled.hash_hex;
        let name = &self.template.name;
        let (event_type, data, description) = match start {
            Start::New { forked_from } => {
                let description = match &forked_from {
                    Some(origin) => format!("{name} forked from {}", origin.actor),
                    None => format!("{name} initialized"),
                };
                let data = record::encode(&InitRecord {
                    actor_id: &id,
                    name,
                    component,
                    state: kept.digest(),
                    forked_from,
                });
                (record::ACTOR_INIT, data, description)
            }
            Start::Resume => {
                let data = record::encode(&ResumeRecord {
                    component,
                    state: kept.digest(),
                });
                (record::ACTOR_RESUME, data, format!("{name} resumed"))
            }
        };
        self.recorder()
            .record_transition(event_type, data, description, &kept)
            .await?;
        self.state = kept.into_state();
        Ok(())
    }

    async fn run(mut self, mut queue: mpsc::Receiver<Op>) {
        // `init` may have asked to shut down: then the actor takes no call.
        if let Some(ending) = self.settle().await {
            self.exit(&mut queue, ending).await;
            return;
        }
        let ending = loop {
            let Some(op) = queue.recv().await else {
                break Ending::Stopped;
            };
            match op {
                Op::Call {
                    function,
                    params,
                    origin,
                    reply,
                    caller,
                    delivery,
                } => {
                    let started = Instant::now();
                    let (id, traces) = (self.id, self.traces.clone());
                    let call = self.call(&function, params, origin, delivery);
                    // The span ends before the answer is sent, so that a
                    // caller who got the answer finds it recorded.
                    let outcome = match traces {
                        Some(traces) => {
                            let outcome = crate::metrics::outcome;
                            traces.call(caller, id, &function, call, outcome).await
                        }
                        None => call.await,
                    };
                    let label = crate::metrics::outcome(&outcome);
                    self.counters.called(&function, label, started.elapsed());
                    match reply {
                        Some(reply) => {
                            let _ = reply.send(outcome);
                        }
                        None => {
                            if let Err(e) = outcome {
                                tracing::debug!(actor = %self.id, "message not handled: {e}");
                            }
                        }
                    }
                    if let Some(ending) = self.settle().await {
                        break ending;
                    }
                }
                Op::State { reply } => {
                    let _ = reply.send(self.state.clone());
                }
                Op::Restart { delay, reply } => {
                    tokio::time::sleep(delay).await;
                    let restarted = self.replace_instance().await;
                    if let Some(reply) = reply {
                        let _ = reply.send(());
                    }
                    if !restarted {
                        break Ending::Stopped;
                    }
                }
                Op::Record {
                    event_type,
                    data,
                    description,
                } => {
                    if let Err(e) = self.recorder().record(event_type, data, description).await {
                        tracing::error!(actor = %self.id, "cannot record {event_type} event: {e}");
                    }
                }
                Op::Revert {
                    to,
                    index,
                    state,
                    reply,
                } => {
                    let _ = reply.send(self.revert(to, index, state).await);
                }
                Op::Stop { reply } => {
                    self.exit(&mut queue, Ending::Stopped).await;
                    // The instance, and with it the chain log, is released
                    // before the stop is answered.
                    drop(self);
                    let _ = reply.send(());
                    return;
                }
            }
        };
        self.exit(&mut queue, ending).await;
    }

    /// After a call, a shutdown request or a trapped instance goes to the
    /// supervisor. Returns how the actor ends, when it must.
    async fn settle(&mut self) -> Option<Ending> {
        // The actor asked to end: it does, whatever else its call did.
        let (event, ending) = if let Some(data) = self.instance.store.data_mut().shutdown.take() {
            self.record_shutdown(data.as_deref()).await;
            (ChildEvent::ShutdownRequested, Ending::ByItself(data))
        } else if let Some(error) = self.failure.take() {
            (ChildEvent::Failed(error), Ending::Stopped)
        } else {
            return None;
        };
        let decision = match self.instance.store.data().runtime() {
            Some(runtime) => runtime.supervise(self.id, event),
            None => Decision::Stop,
        };
        match decision {
            Decision::Restart(delay) => {
                tokio::time::sleep(delay).await;
                if self.replace_instance().await {
                    None
                } else {
                    Some(ending)
                }
            }
            Decision::Stop => Some(ending),
        }
    }

    /// Records the actor's request to end, with its data, as the last event
    /// of its chain.
    async fn record_shutdown(&mut self, data: Option<&[u8]>) {
        let record = record::encode(&ShutdownRecord {
            data: data.map(record::readable),
        });
        let description = format!("{} shut down by itself", self.template.name);
        if let Err(e) = self
            .recorder()
            .record(record::SHUTDOWN, record, description)
            .await
        {
            tracing::error!(actor = %self.id, "cannot record the shutdown: {e}");
        }
    }

    /// Tells the runtime this actor is gone, then refuses what is still
    /// queued. The queue closes last, so that once it is closed (what
    /// [`ActorHandle::stopped`] waits for) the runtime has forgotten the
    /// actor, its log says it stopped, and its parent has been told.
    async fn exit(&mut self, queue: &mut mpsc::Receiver<Op>, ending: Ending) {
        if let Some(runtime) = self.instance.store.data().runtime() {
            runtime.actor_exited(self.id, ending).await;
        }
        queue.close();
        drain(queue, self.id);
    }

    /// Runs one call: on `Ok` commits state and a `call` event; otherwise
    /// keeps the state and records a `call-error` event. A call that
    /// delivers an accepted message (`delivery`, its inbox number) settles
    /// it with that event, so it runs once.
    async fn call(
        &mut self,
        function: &str,
        params: Box<RawValue>,
        origin: Option<ActorId>,
        delivery: Option<u64>,
    ) -> Result<Box<RawValue>, ActorError> {
        let limits = self.template.limits;
        let Some(Called {
            outcome,
            redact,
            function,
        }) = self
            .instance
            .call(function, self.state.clone(), &params, &limits)
            .await
        else {
            let error = ActorError::UnknownFunction {
                actor: self.id,
                function: function.to_owned(),
                available: self.instance.export_names(),
            };
            // An accepted message is in the chain once, even when refused.
            if delivery.is_some() {
                self.record_error(function, &params, "unknown-function", &error, delivery)
                    .await?;
            }
            return Err(error);
        };
        // From here on, the function as the actor exports it.
        let function = &*function;
        let recorded_params = recorded(redact, &params);
        match outcome.and_then(|output| within_state_cap(output, &limits)) {
            Ok(output) => {
                let kept = KeptState::new(output.state);
                let data = record::encode(&CallRecord {
                    function,
                    from: origin.map(|id| id.to_string()),
                    params: &recorded_params,
                    result: &recorded(redact, &output.result),
                    state: kept.digest(),
                });
                let description = format!("{} ok", short_name(function));
                self.recorder()
                    .commit(record::CALL, data, description, Some(&kept), delivery)
                    .await?;
                self.state = kept.into_state();
                self.counters.calls_ok.fetch_add(1, Ordering::Relaxed);
                Ok(output.result)
            }
            Err(failure) => {
                let trapped = matches!(failure, CallFailure::Trap(_));
                let error = failure_to_error(function, failure, &self.template);
                if trapped {
                    // Before anything else can fail: this instance must not be reused.
                    self.failure = Some(error.to_string());
                }
                let kind = error_kind(&error);
                self.record_error(function, &recorded_params, kind, &error, delivery)
                    .await?;
                self.counters.calls_failed.fetch_add(1, Ordering::Relaxed);
                Err(error)
            }
        }
    }

    /// Records a `call-error` event for a call that changed nothing.
    async fn record_error(
        &mut self,
        function: &str,
        params: &RawValue,
        kind: &str,
        error: &ActorError,
        delivery: Option<u64>,
    ) -> Result<(), ActorError> {
        let data = record::encode(&CallErrorRecord {
            function,
            params,
            kind,
            message: &error.to_string(),
        });
        let description = format!("{} failed: {kind}", short_name(function));
        self.recorder()
            .commit(record::CALL_ERROR, data, description, None, delivery)
            .await?;
        Ok(())
    }

    async fn revert(
        &mut self,
        to: Hash,
        index: u64,
        state: StateBytes,
    ) -> Result<Hash, ActorError> {
        let to = hex::encode(to);
        let kept = KeptState::new(state);
        let data = record::encode(&RevertRecord {
            to: &to,
            index,
            state: kept.digest(),
        });
        let description = format!("reverted to event {index}");
        let hash = self
            .recorder()
            .record_transition(record::REVERT, data, description, &kept)
            .await?;
        self.state = kept.into_state();
        Ok(hash)
    }

    /// Replaces the instance with a fresh one, keeping the actor's identity,
    /// state and chain head. `false` if that is impossible.
    async fn replace_instance(&mut self) -> bool {
        let old = self.instance.store.data_mut();
        let mut extensions = std::mem::take(&mut old.extensions);
        extensions.release_resources();
        let data = ActorStore::new(
            old.recorder.clone(),
            extensions,
            old.weak_runtime(),
            self.template.limits.memory_mb,
        );
        match ActorInstance::new(&self.template, data).await {
            Ok(instance) => {
                self.instance = instance;
                true
            }
            Err(e) => {
                tracing::error!(actor = %self.id, "stopping: cannot create a fresh instance: {e}");
                false
            }
        }
    }

    fn recorder(&mut self) -> &mut ChainRecorder {
        &mut self.instance.store.data_mut().recorder
    }
}

/// Answers every call still queued behind a stop.
fn drain(queue: &mut mpsc::Receiver<Op>, id: ActorId) {
    while let Ok(op) = queue.try_recv() {
        match op {
            Op::Call { reply, .. } => {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(ActorError::Stopped(id)));
                }
            }
            Op::Stop { reply }
            | Op::Restart {
                reply: Some(reply), ..
            } => {
                let _ = reply.send(());
            }
            Op::Revert { reply, .. } => {
                let _ = reply.send(Err(ActorError::Stopped(id)));
            }
            // Dropping the sender tells a state query the actor is gone.
            Op::State { .. } | Op::Restart { reply: None, .. } | Op::Record { .. } => {}
        }
    }
}

/// Refuses an output whose state is over the actor's `max_state_bytes`.
fn within_state_cap(output: CallOutput, limits: &Limits) -> Result<CallOutput, CallFailure> {
    match output.state.as_ref().map(Vec::len) {
        Some(size) if size > limits.max_state_bytes => Err(CallFailure::StateTooLarge(size)),
        _ => Ok(output),
    }
}

fn failure_to_error(function: &str, failure: CallFailure, template: &ActorTemplate) -> ActorError {
    let function = function.to_owned();
    let limits = &template.limits;
    match failure {
        CallFailure::BadParams(reason) => ActorError::BadParams { function, reason },
        CallFailure::Actor(message) => ActorError::Failed {
            function,
            message: record::cut(message, MAX_ERROR_BYTES),
        },
        CallFailure::StateTooLarge(size) => ActorError::StateTooLarge {
            function,
            size,
            limit: limits.max_state_bytes,
        },
        CallFailure::ResultTooLarge => ActorError::ResultTooLarge {
            function,
            limit: limits.max_result_bytes,
        },
        CallFailure::Trap(error) => {
            if error.downcast_ref::<TimeLimitExceeded>().is_some() {
                ActorError::TimeLimit {
                    function,
                    limit_ms: template.limits.call_timeout_ms,
                }
            } else if error.downcast_ref::<MemoryLimitExceeded>().is_some() {
                ActorError::MemoryLimit {
                    function,
                    limit_mb: template.limits.memory_mb,
                }
            } else {
                ActorError::Trapped {
                    function,
                    reason: format!("{error:#}"),
                }
            }
        }
    }
}

/// The `kind` recorded in a `call-error` event.
fn error_kind(error: &ActorError) -> &'static str {
    match error {
        ActorError::BadParams { .. } => "bad-params",
        ActorError::Failed { .. } => "actor-error",
        ActorError::TimeLimit { .. } => "time-limit",
        ActorError::MemoryLimit { .. } => "memory-limit",
        ActorError::StateTooLarge { .. } => "state-too-large",
        ActorError::ResultTooLarge { .. } => "result-too-large",
        _ => "trap",
    }
}

/// `handle-send` of `ntwk:theater/message-server-client.handle-send`.
fn short_name(function: &str) -> &str {
    function.rsplit('.').next().unwrap_or(function)
}
