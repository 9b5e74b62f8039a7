//! The actor's task: takes one call at a time off its queue, runs it, and
//! commits the outcome to its state and chain before answering.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::value::{RawValue, to_raw_value};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::handle::{ActorCounters, ActorHandle, Op};
use super::instance::{ActorInstance, ActorTemplate, Called, recorded};
use super::{
    ActorStore, ChainRecorder, Extensions, INIT_FUNCTION, MemoryLimitExceeded, TimeLimitExceeded,
};
use crate::chain::Hash;
use crate::chain::record::{
    self, CallErrorRecord, CallRecord, InitRecord, Origin, ResumeRecord, RevertRecord, StateDigest,
};
use crate::error::{ActorError, SpawnError};
use crate::id::ActorId;
use crate::runtime::{ChildEvent, Decision, WeakRuntime};
use crate::wasm::{CallFailure, StateBytes};

/// How an actor's chain begins or goes on when its task starts.
pub(crate) enum Start {
    /// A new chain: its first event is `actor-init`, naming the actor and
    /// event it was forked from, if any.
    New { forked_from: Option<Origin> },
    /// The chain the recorder continues: an `actor-resume` event.
    Resume,
}

/// Instantiates the actor, runs `actor.init`, records the first event of its
/// task (see [`Start`]) and starts the task.
pub(crate) async fn spawn(
    recorder: ChainRecorder,
    template: Arc<ActorTemplate>,
    init_state: StateBytes,
    extensions: Extensions,
    runtime: WeakRuntime,
    start: Start,
) -> Result<ActorHandle, SpawnError> {
    let id = recorder.actor();
    let data = ActorStore::new(recorder, extensions, runtime, template.limits.memory_mb);
    let instance = ActorInstance::new(&template, data).await?;
    let metrics = match instance.store.data().runtime() {
        Some(runtime) => runtime.metrics().actor(
            id,
            template.exports.exported_names().iter().map(String::as_str),
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
    tokio::spawn(executor.run(queue));
    Ok(handle)
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
}

impl Executor {
    async fn init(&mut self, start: Start) -> Result<(), SpawnError> {
        let params = to_raw_value(&(self.id.to_string(),)).expect("an id serializes");
        let timeout = self.template.call_timeout();
        let output = match self
            .instance
            .call(INIT_FUNCTION, self.state.take(), &params, timeout)
            .await
            .map(|called| called.outcome)
        {
            Some(Ok(output)) => output,
            Some(Err(failure)) => {
                return Err(SpawnError::Init(
                    failure_to_error(INIT_FUNCTION, failure, &self.template).to_string(),
                ));
            }
            None => unreachable!("init is a required export, checked at instantiation"),
        };
        self.state = output.state;
        let id = self.id.to_string();
        let component = &self.template.compiled.hash_hex;
        let name = &self.template.name;
        let state = StateDigest::of(&self.state);
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
                    state,
                    forked_from,
                });
                (record::ACTOR_INIT, data, description)
            }
            Start::Resume => {
                let data = record::encode(&ResumeRecord { component, state });
                (record::ACTOR_RESUME, data, format!("{name} resumed"))
            }
        };
        let state = self.state.clone();
        self.recorder()
            .record_transition(event_type, data, description, &state)
            .await?;
        Ok(())
    }

    async fn run(mut self, mut queue: mpsc::Receiver<Op>) {
        let exit_data = loop {
            let Some(op) = queue.recv().await else {
                break None;
            };
            match op {
                Op::Call {
                    function,
                    params,
                    origin,
                    reply,
                    caller,
                } => {
                    let span = crate::telemetry::call_span(&caller, self.id, &function);
                    let started = Instant::now();
                    let outcome = self
                        .call(&function, params, origin)
                        .instrument(span.clone())
                        .await;
                    let label = crate::metrics::outcome(&outcome);
                    self.counters.called(&function, label, started.elapsed());
                    span.record("outcome", label);
                    // Closed before the answer, so that a caller who got
                    // the answer finds the span ended.
                    drop(span);
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
                    if let Some(data) = self.settle().await {
                        break data;
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
                        break None;
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
                    self.exit(&mut queue, None).await;
                    // The instance, and with it the chain log, is released
                    // before the stop is answered.
                    drop(self);
                    let _ = reply.send(());
                    return;
                }
            }
        };
        self.exit(&mut queue, exit_data).await;
    }

    /// After a call, a trapped instance or a shutdown request goes to the
    /// supervisor. Returns `Some(exit data)` when the actor must end.
    async fn settle(&mut self) -> Option<Option<Vec<u8>>> {
        let (event, exit_data) = if let Some(error) = self.failure.take() {
            (ChildEvent::Failed(error), None)
        } else if let Some(data) = self.instance.store.data_mut().shutdown.take() {
            (ChildEvent::ShutdownRequested, data)
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
                    Some(exit_data)
                }
            }
            Decision::Stop => Some(exit_data),
        }
    }

    /// Refuses what is still queued and tells the runtime this actor is gone.
    async fn exit(&mut self, queue: &mut mpsc::Receiver<Op>, data: Option<Vec<u8>>) {
        queue.close();
        drain(queue, self.id);
        if let Some(runtime) = self.instance.store.data().runtime() {
            runtime.actor_exited(self.id, data).await;
        }
    }

    /// Runs one call: on `Ok` commits state and a `call` event; otherwise
    /// keeps the state and records a `call-error` event.
    async fn call(
        &mut self,
        function: &str,
        params: Box<RawValue>,
        origin: Option<ActorId>,
    ) -> Result<Box<RawValue>, ActorError> {
        let timeout = self.template.call_timeout();
        let Some(Called { outcome, redact }) = self
            .instance
            .call(function, self.state.clone(), &params, timeout)
            .await
        else {
            return Err(ActorError::UnknownFunction {
                actor: self.id,
                function: function.to_owned(),
                available: self.instance.export_names(),
            });
        };
        let recorded_params = recorded(redact, &params);
        match outcome {
            Ok(output) => {
                let data = record::encode(&CallRecord {
                    function,
                    from: origin.map(|id| id.to_string()),
                    params: &recorded_params,
                    result: &recorded(redact, &output.result),
                    state: StateDigest::of(&output.state),
                });
                self.recorder()
                    .record_transition(
                        record::CALL,
                        data,
                        format!("{} ok", short_name(function)),
                        &output.state,
                    )
                    .await?;
                self.state = output.state;
                self.counters.calls_ok.fetch_add(1, Ordering::Relaxed);
                Ok(output.result)
            }
            Err(failure) => {
                let trapped = matches!(failure, CallFailure::Trap(_));
                let error = failure_to_error(function, failure, &self.template);
                let kind = error_kind(&error);
                let message = error.to_string();
                if trapped {
                    // Before anything else can fail: this instance must not be reused.
                    self.failure = Some(message.clone());
                }
                let data = record::encode(&CallErrorRecord {
                    function,
                    params: &recorded_params,
                    kind,
                    message: &message,
                });
                self.recorder()
                    .record(
                        record::CALL_ERROR,
                        data,
                        format!("{} failed: {kind}", short_name(function)),
                    )
                    .await?;
                self.counters.calls_failed.fetch_add(1, Ordering::Relaxed);

                Err(error)
            }
        }
    }

    async fn revert(
        &mut self,
        to: Hash,
        index: u64,
        state: StateBytes,
    ) -> Result<Hash, ActorError> {
        let to = hex::encode(to);
        let data = record::encode(&RevertRecord {
            to: &to,
            index,
            state: StateDigest::of(&state),
        });
        let description = format!("reverted to event {index}");
        let hash = self
            .recorder()
            .record_transition(record::REVERT, data, description, &state)
            .await?;
        self.state = state;
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

fn failure_to_error(function: &str, failure: CallFailure, template: &ActorTemplate) -> ActorError {
    let function = function.to_owned();
    match failure {
        CallFailure::BadParams(reason) => ActorError::BadParams { function, reason },
        CallFailure::Actor(message) => ActorError::Failed { function, message },
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
        _ => "trap",
    }
}

/// `handle-send` of `ntwk:theater/message-server-client.handle-send`.
fn short_name(function: &str) -> &str {
    function.rsplit('.').next().unwrap_or(function)
}
