//! Where finished spans go: a bounded buffer filled on the call path, and a
//! thread that hands them to an OpenTelemetry exporter in batches.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind as OtelKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};

use super::{Finished, SpanKind};

/// Spans kept while the exporter is behind; beyond, new spans are dropped
/// (and counted) rather than let a slow collector grow the host's memory.
pub const MAX_PENDING_SPANS: usize = 65_536;
/// Spans that wake the exporter thread before its interval is up.
const BATCH: usize = 512;
/// How often pending spans are exported when fewer than a batch arrive.
const EXPORT_INTERVAL: Duration = Duration::from_millis(500);

/// A runtime's traces: spans recorded here are exported by a thread of
/// their own. Cheap to clone; the thread ends with [`Traces::shutdown`] or
/// when the last clone is dropped.
#[derive(Clone)]
pub struct Traces {
    sink: Arc<Sink>,
}

pub(super) struct Sink {
    /// The same moment on both clocks: spans are timed on the monotonic
    /// one and exported on the wall clock.
    epoch: (SystemTime, Instant),
    pending: Mutex<Vec<Finished>>,
    dropped: AtomicU64,
    wake: mpsc::SyncSender<Command>,
}

enum Command {
    /// A batch is waiting.
    Batch,
    /// Export what is pending now, then answer.
    Flush(mpsc::Sender<()>),
}

impl std::fmt::Debug for Traces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traces")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl Traces {
    /// Exports spans to `exporter`, in batches, from a thread named
    /// `theater-traces`.
    pub fn export_to<E: SpanExporter + 'static>(exporter: E) -> Self {
        let (wake, commands) = mpsc::sync_channel(1);
        let sink = Arc::new(Sink {
            epoch: (SystemTime::now(), Instant::now()),
            pending: Mutex::new(Vec::with_capacity(BATCH)),
            dropped: AtomicU64::new(0),
            wake,
        });
        let weak = Arc::downgrade(&sink);
        thread::Builder::new()
            .name("theater-traces".into())
            .spawn(move || {
                let scope = InstrumentationScope::builder("theater").build();
                // Swapped with the pending buffer, so that the call path
                // pushes into room made here and never grows a buffer.
                let mut batch = Vec::with_capacity(BATCH);
                loop {
                    let command = commands.recv_timeout(EXPORT_INTERVAL);
                    let Some(sink) = weak.upgrade() else {
                        break;
                    };
                    std::mem::swap(&mut batch, &mut *sink.pending.lock().expect("spans"));
                    let epoch = sink.epoch;
                    drop(sink);
                    if !batch.is_empty() {
                        let spans = batch
                            .drain(..)
                            .map(|s| s.into_otel(&scope, epoch))
                            .collect();
                        if let Err(e) = futures::executor::block_on(exporter.export(spans)) {
                            tracing::warn!("exporting spans failed: {e}");
                        }
                    }
                    match command {
                        Ok(Command::Flush(done)) => {
                            let _ = done.send(());
                        }
                        Ok(Command::Batch) | Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                let _ = exporter.shutdown();
            })
            .expect("starting the span exporter thread");
        Self { sink }
    }

    /// Exports every span recorded so far, and returns once the exporter
    /// has taken them.
    pub fn flush(&self) {
        let (done, answered) = mpsc::channel();
        if self.sink.wake.send(Command::Flush(done)).is_ok() {
            let _ = answered.recv();
        }
    }

    /// Spans dropped because [`MAX_PENDING_SPANS`] were waiting.
    pub fn dropped(&self) -> u64 {
        self.sink.dropped.load(Ordering::Relaxed)
    }

    pub(super) fn sink(&self) -> &Arc<Sink> {
        &self.sink
    }
}

impl Sink {
    pub(super) fn push(&self, span: Finished) {
        let mut pending = self.pending.lock().expect("spans");
        if pending.len() >= MAX_PENDING_SPANS {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.push(span);
        if pending.len() == BATCH {
            // Full channel: a wake-up is already on its way.
            let _ = self.wake.try_send(Command::Batch);
        }
    }
}

impl Finished {
    fn into_otel(self, scope: &InstrumentationScope, epoch: (SystemTime, Instant)) -> SpanData {
        let wall = |at: Instant| {
            let (system, instant) = epoch;
            match at.checked_duration_since(instant) {
                Some(after) => system + after,
                None => system - instant.duration_since(at),
            }
        };
        let (name, mut attributes, status) = match self.kind {
            SpanKind::Call {
                actor,
                export,
                outcome,
            } => (
                "actor.call",
                vec![
                    KeyValue::new("actor", actor.to_string()),
                    KeyValue::new("export", export),
                    KeyValue::new("outcome", outcome),
                ],
                if outcome == "ok" {
                    Status::Unset
                } else {
                    Status::error(outcome)
                },
            ),
            SpanKind::Host {
                interface,
                function,
            } => (
                "host.call",
                vec![
                    KeyValue::new("interface", interface),
                    KeyValue::new("function", function),
                ],
                Status::Unset,
            ),
        };
        if let Some(event) = self.event {
            attributes.push(KeyValue::new("event", hex::encode(event)));
        }
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(self.context.trace),
                SpanId::from(self.context.span),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: self.parent.map_or(SpanId::INVALID, SpanId::from),
            parent_span_is_remote: false,
            span_kind: OtelKind::Internal,
            name: Cow::Borrowed(name),
            start_time: wall(self.start),
            end_time: wall(self.end),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: scope.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_sdk::trace::InMemorySpanExporter;

    use super::*;
    use crate::id::ActorId;
    use crate::telemetry::TraceContext;

    fn span(n: u64) -> Finished {
        let end = Instant::now();
        Finished {
            context: TraceContext { trace: 7, span: n },
            parent: None,
            start: end - Duration::from_millis(3),
            end,
            event: None,
            kind: SpanKind::Call {
                actor: ActorId::new(),
                export: "handle-send".into(),
                outcome: "trap",
            },
        }
    }

    #[test]
    fn spans_reach_the_exporter_in_order_with_their_outcome() {
        let exporter = InMemorySpanExporter::default();
        let traces = Traces::export_to(exporter.clone());
        for n in 1..=3 {
            traces.sink().push(span(n));
        }
        traces.flush();
        let spans = exporter.get_finished_spans().unwrap();
        let ids: Vec<u64> = spans
            .iter()
            .map(|s| u64::from_be_bytes(s.span_context.span_id().to_bytes()))
            .collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(spans[0].status, Status::error("trap"));
        assert_eq!(spans[0].span_context.trace_id(), TraceId::from(7u128));
        // Timed on the monotonic clock, exported on the wall clock.
        let took = spans[0].end_time.duration_since(spans[0].start_time);
        assert_eq!(took.unwrap(), Duration::from_millis(3));
        let age = SystemTime::now().duration_since(spans[0].end_time).unwrap();
        assert!(age < Duration::from_secs(5), "{age:?}");
    }

    #[test]
    fn a_stalled_exporter_bounds_the_spans_kept() {
        // A sink with no exporter thread: nothing leaves it.
        let (wake, _commands) = mpsc::sync_channel(1);
        let sink = Sink {
            epoch: (SystemTime::now(), Instant::now()),
            pending: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            wake,
        };
        for n in 0..MAX_PENDING_SPANS as u64 + 2 {
            sink.push(span(n));
        }
        assert_eq!(sink.pending.lock().unwrap().len(), MAX_PENDING_SPANS);
        assert_eq!(sink.dropped.load(Ordering::Relaxed), 2);
    }
}
