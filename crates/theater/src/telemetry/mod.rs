//! The spans Theater records, for traces: one per actor call, a child per
//! host call it makes, and across actors the callee's call a child of the
//! caller's host call, so that a request through several actors is one
//! trace.
//!
//! Recording is on the call path, so it is kept to a few stores: a span is
//! a small [`Finished`] record pushed to its runtime's [`Traces`], and a
//! thread of its own turns batches of them into OpenTelemetry spans for an
//! exporter (see [`export`]). A runtime without [`Traces`] records nothing
//! and pays one branch per call.
//!
//! Inside a call, the call's place in its trace is a task-local
//! [`Frame`]: host functions find their parent there, and a call queued
//! from there (a message, a request) carries it to the callee.

mod export;

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use export::Sink;
pub use export::{MAX_PENDING_SPANS, Traces};

use crate::chain::Hash;
use crate::id::ActorId;

/// Where a span sits: its trace and its own id, as OpenTelemetry numbers
/// them (never zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace: u128,
    pub span: u64,
}

impl TraceContext {
    fn child(self) -> Self {
        Self {
            trace: self.trace,
            span: new_span_id(),
        }
    }

    fn root() -> Self {
        Self {
            trace: rand::random::<u128>().max(1),
            span: new_span_id(),
        }
    }
}

fn new_span_id() -> u64 {
    rand::random::<u64>().max(1)
}

/// What a span was, kept until its batch is exported.
#[derive(Debug)]
pub(crate) struct Finished {
    context: TraceContext,
    parent: Option<u64>,
    /// Read from the monotonic clock the call path reads anyway; the
    /// exporter turns them into wall-clock times.
    start: Instant,
    end: Instant,
    /// The chain event it appended, if any.
    event: Option<Hash>,
    kind: SpanKind,
}

#[derive(Debug)]
enum SpanKind {
    /// `actor.call`: a call of `export` on `actor`, ended with `outcome`.
    ///
    /// Names are shared or static, never allocated per span: spans are
    /// dropped on the exporter's thread, and memory freed on a thread other
    /// than the one that allocated it is slow to reuse.
    Call {
        actor: ActorId,
        export: Arc<str>,
        outcome: &'static str,
    },
    /// `host.call`: the host function `function` of `interface`.
    Host {
        interface: &'static str,
        function: &'static str,
    },
}

/// The running call's place in its trace, and the chain event most
/// recently appended in it.
struct Frame {
    sink: Arc<Sink>,
    context: Cell<TraceContext>,
    event: Cell<Option<Hash>>,
}

tokio::task_local! {
    static FRAME: Frame;
}

/// The trace context of the code running now: the call (or host call) a
/// call queued here continues. `None` outside any traced call.
pub(crate) fn current() -> Option<TraceContext> {
    FRAME.try_with(|frame| frame.context.get()).ok()
}

/// Records the hash of the chain event just appended on the running span.
pub(crate) fn note_event(hash: &Hash) {
    let _ = FRAME.try_with(|frame| frame.event.set(Some(*hash)));
}

impl Traces {
    /// Starts the span of a call queued in `caller`, begun at `start`: a
    /// child of `caller`, or the root of a new trace.
    pub(crate) fn start(&self, caller: Option<TraceContext>, start: Instant) -> CallSpan {
        CallSpan {
            sink: self.sink().clone(),
            context: caller.map_or_else(TraceContext::root, TraceContext::child),
            parent: caller.map(|c| c.span),
            start,
        }
    }
}

/// The span of one actor call, from [`Traces::start`] to [`CallSpan::end`].
pub(crate) struct CallSpan {
    sink: Arc<Sink>,
    context: TraceContext,
    parent: Option<u64>,
    start: Instant,
}

impl CallSpan {
    /// Runs `call` inside the span: host calls it makes are its children.
    /// Returns its output and the chain event it appended last.
    pub(crate) async fn run<T>(&self, call: impl Future<Output = T>) -> (T, Option<Hash>) {
        let frame = Frame {
            sink: self.sink.clone(),
            context: Cell::new(self.context),
            event: Cell::new(None),
        };
        FRAME
            .scope(frame, async {
                let output = call.await;
                (output, FRAME.with(|frame| frame.event.get()))
            })
            .await
    }

    /// Ends the span of the call of `export` on `actor`, which ended at
    /// `end` with `outcome` and appended `event`.
    pub(crate) fn end(
        self,
        actor: ActorId,
        export: Arc<str>,
        outcome: &'static str,
        event: Option<Hash>,
        end: Instant,
    ) {
        self.sink.push(Finished {
            context: self.context,
            parent: self.parent,
            start: self.start,
            end,
            event,
            kind: SpanKind::Call {
                actor,
                export,
                outcome,
            },
        });
    }
}

/// Runs `work`, the host function `function` of `interface`, as a span
/// inside the running call, when that call is traced; calls it queues
/// continue this span.
pub async fn host_call<T>(
    interface: &'static str,
    function: &'static str,
    work: impl Future<Output = T>,
) -> T {
    let Ok((sink, parent, outer_event)) =
        FRAME.try_with(|frame| (frame.sink.clone(), frame.context.get(), frame.event.take()))
    else {
        return work.await;
    };
    let context = parent.child();
    FRAME.with(|frame| frame.context.set(context));
    let start = Instant::now();
    let result = work.await;
    let end = Instant::now();
    let event = FRAME.with(|frame| {
        frame.context.set(parent);
        frame.event.replace(outer_event)
    });
    sink.push(Finished {
        context,
        parent: Some(parent.span),
        start,
        end,
        event,
        kind: SpanKind::Host {
            interface,
            function,
        },
    });
    result
}
