//! An actor's life: spawn, its task, and what happens between calls
//! (supervision, revert, a fresh instance, the end). Each call itself is
//! run by [`super::call`].
//!
//! The executor sits behind a lock. A caller who finds the actor idle (the
//! lock free and nothing queued) runs its call itself, on its own thread;
//! otherwise the call waits in the actor's bounded queue, which the actor's
//! task drains in batches, one operation at a time. The task is started by
//! the first queued operation.

use std::sync::Arc;

use serde_json::value::to_raw_value;
use tokio::sync::{OwnedMutexGuard, mpsc, oneshot};

use super::handle::{ActorCounters, ActorFacts, ActorHandle, Op};
use super::instance::{ActorInstance, ActorTemplate};
use super::outcome::{failure_to_error, within_state_cap};
use super::services::{ChildEvent, Decision, EndRequest, Ending, WeakRuntime};
use super::shared::{InlineCall, Shared};
use super::{ActorStore, ChainRecorder, Extensions, INIT_FUNCTION};
use crate::chain::Hash;
use crate::chain::record::{self, InitRecord, Origin, ResumeRecord, RevertRecord, ShutdownRecord};
use crate::error::{ActorError, SpawnError};
use crate::id::ActorId;
use crate::storage::KeptState;
use crate::telemetry::Traces;
use crate::wasm::StateBytes;

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

/// An actor whose `init` has run and that takes no call yet. The runtime
/// registers it first, so that whatever the actor does at once (end, when
/// `init` asked to shut down) finds it registered.
pub(crate) struct Spawned {
    pub handle: ActorHandle,
}

impl Spawned {
    /// Lets calls in. The actor's task starts with its first queued
    /// operation, or now if `init` left something for the supervisor.
    pub fn start(self) -> ActorHandle {
        self.handle.open();
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
                template
                    .exports
                    .entries()
                    .map(|(_, found)| found.map(|f| &*f.name)),
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

    let facts = ActorFacts {
        id,
        name: executor.template.name.as_str().into(),
        limits: executor.template.limits,
        counters: executor.counters.clone(),
        exports: executor.template.exports.clone(),
    };
    let (ops, queue) = mpsc::channel(facts.limits.queue_capacity);
    let shared = Arc::new(Shared::new(executor, queue));
    let handle = ActorHandle::new(facts, ops, shared);
    Ok(Spawned { handle })
}

/// The actor's task: takes the executor for each batch of queued
/// operations and runs them one at a time, for as long as any are queued.
pub(super) async fn run(shared: Arc<Shared>, mut queue: mpsc::Receiver<Op>) {
    while let Some(op) = queue.recv().await {
        let mut executor = shared.executor().lock_owned().await;
        let Some(running) = executor.as_mut() else {
            return;
        };
        let mut next = Some(op);
        while let Some(op) = next.take() {
            // It leaves the queue's count once it starts, not when it
            // leaves the channel: waiting for the lock, it still waits.
            shared.unowe();
            let step = running.step(op).await;
            if let Step::End(ending, stop) = step {
                end(executor, &mut queue, ending, stop).await;
                return;
            }
            // Counts against the task's share of its thread: a long batch
            // lets other tasks run in between.
            tokio::task::consume_budget().await;
            next = queue.try_recv().ok();
        }
    }
    // Every handle is gone: so is the runtime.
    let executor = shared.executor().lock_owned().await;
    if executor.is_some() {
        end(executor, &mut queue, Ending::Stopped, None).await;
    }
}

/// Ends the actor: see [`Executor::exit`]. The instance, and with it the
/// chain log, is released before a stop is answered.
async fn end(
    mut executor: OwnedMutexGuard<Option<Executor>>,
    queue: &mut mpsc::Receiver<Op>,
    ending: Ending,
    stop: Option<oneshot::Sender<()>>,
) {
    if let Some(running) = executor.as_mut() {
        running.exit(queue, ending).await;
    }
    *executor = None;
    drop(executor);
    if let Some(stop) = stop {
        let _ = stop.send(());
    }
}

/// What became of the actor after one operation.
enum Step {
    Next,
    /// It ends, and answers the stop that ended it, if one did.
    End(Ending, Option<oneshot::Sender<()>>),
}

pub(super) struct Executor {
    pub(super) id: ActorId,
    pub(super) template: Arc<ActorTemplate>,
    pub(super) instance: ActorInstance,
    /// The last committed state; only an `Ok` call replaces it.
    pub(super) state: StateBytes,
    /// Set by a trap: the instance must not be entered again, and the
    /// supervisor decides what comes next.
    pub(super) failure: Option<String>,
    pub(super) counters: Arc<ActorCounters>,
    /// Where its calls' spans go, if anywhere.
    pub(super) traces: Option<Traces>,
}

impl Executor {
    async fn init(&mut self, start: Start) -> Result<(), SpawnError> {
        let params = to_raw_value(&(self.id.to_string(),)).expect("an id serializes");
        let limits = self.template.limits;
        let output = match self
            .instance
            .call(
                self.instance.slot(INIT_FUNCTION),
                self.state.take(),
                &params,
                &limits,
            )
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

    /// Runs one queued operation. Settles first what an earlier call left
    /// (a trap, a shutdown request), as nothing runs before that.
    async fn step(&mut self, op: Op) -> Step {
        if let Some(ending) = self.settle().await {
            return match op {
                Op::Stop { reply } => Step::End(ending, Some(reply)),
                op => {
                    refuse(op, self.id);
                    Step::End(ending, None)
                }
            };
        }
        match op {
            Op::Call {
                function,
                params,
                origin,
                reply,
                caller,
                delivery,
                note,
            } => {
                let call = InlineCall {
                    actor: self.id,
                    function,
                    params,
                    origin,
                    caller,
                    note,
                };
                let outcome = self.serve_delivery(call, delivery).await;
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
                    return Step::End(ending, None);
                }
            }
            // Settled above.
            Op::Settle => {}
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
                    return Step::End(Ending::Stopped, None);
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
            Op::Stop { reply } => return Step::End(Ending::Stopped, Some(reply)),
        }
        Step::Next
    }

    /// Whether a call left work for the supervisor (see [`Self::settle`]).
    pub(super) fn must_settle(&self) -> bool {
        self.failure.is_some()
            || self
                .instance
                .store
                .data()
                .extensions
                .get::<EndRequest>()
                .is_some()
    }

    /// After a call, a shutdown request or a trapped instance goes to the
    /// supervisor. Returns how the actor ends, when it must.
    async fn settle(&mut self) -> Option<Ending> {
        // The actor asked to end: it does, whatever else its call did.
        let asked = self
            .instance
            .store
            .data_mut()
            .extensions
            .take::<EndRequest>();
        let (event, ending) = if let Some(EndRequest(data)) = asked {
            self.record_shutdown(data.as_deref()).await;
            (ChildEvent::ShutdownRequested, Ending::ByItself(data))
        } else if let Some(error) = self.failure.take() {
            (ChildEvent::Failed(error), Ending::Stopped)
        } else {
            return None;
        };
        let decision = match self.instance.store.data().runtime() {
            Some(runtime) => runtime.supervise(self.id, event).await,
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

    pub(super) fn recorder(&mut self) -> &mut ChainRecorder {
        &mut self.instance.store.data_mut().recorder
    }
}

/// Answers every call still queued behind a stop.
fn drain(queue: &mut mpsc::Receiver<Op>, id: ActorId) {
    while let Ok(op) = queue.try_recv() {
        refuse(op, id);
    }
}

/// Answers an operation the ended actor `id` will not run.
fn refuse(op: Op, id: ActorId) {
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
        Op::State { .. } | Op::Restart { reply: None, .. } | Op::Record { .. } | Op::Settle => {}
    }
}
