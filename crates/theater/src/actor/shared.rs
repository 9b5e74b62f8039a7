//! What an actor's handles and its task share: the lock on its executor
//! (one call at a time), the count of queued operations that bounds its
//! queue, and running a call in its caller's task when the actor is idle.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::task::{Context, Poll};

use serde_json::value::RawValue;
use tokio::sync::{Mutex, mpsc};

use super::CallNote;
use super::executor::{Executor, run};
use super::handle::Op;
use crate::error::ActorError;
use crate::id::ActorId;
use crate::telemetry::TraceContext;

/// What an actor's handles and its task share.
pub(crate) struct Shared {
    /// `None` once the actor has ended. Whoever holds the lock runs the
    /// actor's next operation: one call at a time.
    executor: Arc<Mutex<Option<Executor>>>,
    /// Operations queued (or about to be) and not started: the queue's
    /// depth, bounded by `limits.queue_capacity`. A caller runs its call
    /// itself only when this is zero, so that no call overtakes work queued
    /// before it.
    owed: AtomicUsize,
    /// Until `open`, nothing runs: `init` may have left work for the task.
    open: AtomicBool,
    /// The queue's receiving end until the task starts.
    queue: StdMutex<Option<mpsc::Receiver<Op>>>,
    /// Where the task and detached calls run.
    tokio: tokio::runtime::Handle,
}

impl Shared {
    pub(super) fn new(executor: Executor, queue: mpsc::Receiver<Op>) -> Self {
        Self {
            executor: Arc::new(Mutex::new(Some(executor))),
            owed: AtomicUsize::new(0),
            open: AtomicBool::new(false),
            queue: StdMutex::new(Some(queue)),
            tokio: tokio::runtime::Handle::current(),
        }
    }

    /// The lock whoever runs the actor's next operation holds.
    pub(super) fn executor(&self) -> Arc<Mutex<Option<Executor>>> {
        self.executor.clone()
    }

    /// Counts an operation about to be queued, unless `capacity` are
    /// waiting already. Undo with [`Self::unowe`] if it is not queued.
    pub fn try_owe(&self, capacity: usize) -> bool {
        if self.owed.fetch_add(1, Ordering::SeqCst) < capacity {
            return true;
        }
        self.unowe();
        false
    }

    /// Counts an operation the runtime queues whatever the depth: it waits
    /// for room in the queue instead.
    pub fn owe(&self) {
        self.owed.fetch_add(1, Ordering::SeqCst);
    }

    pub fn unowe(&self) {
        self.owed.fetch_sub(1, Ordering::SeqCst);
    }

    /// Operations waiting to start.
    pub fn waiting(&self) -> usize {
        self.owed.load(Ordering::SeqCst)
    }

    /// An operation was queued: the task must be running to take it.
    pub fn queued(self: &Arc<Self>) {
        if self.open.load(Ordering::SeqCst) {
            self.start_task();
        }
    }

    /// Opens the actor to calls; see [`Spawned::start`].
    pub fn open(self: &Arc<Self>, ops: &mpsc::Sender<Op>) {
        let settle = self
            .executor
            .try_lock()
            .ok()
            .and_then(|executor| executor.as_ref().map(Executor::must_settle))
            .unwrap_or(false);
        if settle {
            self.owe();
            // The queue is new and empty: it has room.
            let _ = ops.try_send(Op::Settle);
        }
        self.open.store(true, Ordering::SeqCst);
        if self.owed.load(Ordering::SeqCst) > 0 {
            self.start_task();
        }
    }

    fn start_task(self: &Arc<Self>) {
        let queue = match self.queue.lock() {
            Ok(mut queue) => queue.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(queue) = queue {
            self.tokio.spawn(run(self.clone(), queue));
        }
    }

    /// Runs a call in the caller's task when the actor is idle; gives the
    /// call back when it must be queued.
    // The call given back is moved on to the queue at once; boxing it would
    // cost every queued call an allocation.
    #[allow(clippy::result_large_err)]
    pub fn try_call(
        self: &Arc<Self>,
        call: InlineCall,
        ops: &mpsc::Sender<Op>,
    ) -> Result<Inline, InlineCall> {
        if !self.open.load(Ordering::SeqCst) {
            return Err(call);
        }
        let Ok(mut executor) = self.executor.clone().try_lock_owned() else {
            return Err(call);
        };
        if self.owed.load(Ordering::SeqCst) > 0 {
            return Err(call);
        }
        let shared = self.clone();
        let ops = ops.clone();
        let run = async move {
            let Some(running) = executor.as_mut() else {
                return Err(ActorError::Stopped(call.actor));
            };
            let outcome = running.serve(call).await;
            if running.must_settle() {
                // Under the lock, so that no call runs before the task has
                // settled it.
                shared.owe();
                hand_to_task(&shared, &ops, Op::Settle);
            }
            drop(executor);
            outcome
        };
        Ok(Inline {
            run: Some(Box::pin(run)),
            tokio: self.tokio.clone(),
        })
    }
}

/// Work the runtime itself decided on must not be lost to a full queue:
/// if there is no slot now, a task waits for one. Such work is rare (one
/// item per supervision decision, trap or connection event), so the
/// waiting tasks stay few. The caller has counted it with [`Shared::owe`].
pub(crate) fn hand_to_task(shared: &Arc<Shared>, ops: &mpsc::Sender<Op>, op: Op) {
    match ops.try_send(op) {
        Ok(()) => shared.queued(),
        Err(mpsc::error::TrySendError::Full(op)) => {
            let ops = ops.clone();
            let shared = shared.clone();
            shared.tokio.clone().spawn(async move {
                match ops.send(op).await {
                    Ok(()) => shared.queued(),
                    Err(_) => shared.unowe(),
                }
            });
        }
        Err(mpsc::error::TrySendError::Closed(_)) => shared.unowe(),
    }
}

/// A call to run: what [`Op::Call`] carries, with a caller waiting.
pub(crate) struct InlineCall {
    pub actor: ActorId,
    pub function: String,
    pub params: Box<RawValue>,
    pub origin: Option<ActorId>,
    pub caller: Option<TraceContext>,
    /// The caller's part in the call's chain event.
    pub note: Option<CallNote>,
}

type CallFuture = Pin<Box<dyn Future<Output = Result<Box<RawValue>, ActorError>> + Send>>;

/// A call running in its caller's task. Dropped before it ends (its caller
/// gave up waiting), it finishes in a task of its own, as a queued call
/// would: a call, once started, always commits or records its failure.
pub(crate) struct Inline {
    run: Option<CallFuture>,
    tokio: tokio::runtime::Handle,
}

impl Future for Inline {
    type Output = Result<Box<RawValue>, ActorError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let run = self.run.as_mut().expect("polled after it ended");
        let outcome = std::task::ready!(run.as_mut().poll(cx));
        self.run = None;
        Poll::Ready(outcome)
    }
}

impl Drop for Inline {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            self.tokio.spawn(async move {
                let _ = run.await;
            });
        }
    }
}
