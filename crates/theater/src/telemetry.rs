//! The spans Theater emits, for traces: one per actor call, a child per
//! host call it makes, and across actors the callee's call a child of the
//! caller's span, so that a request through several actors is one trace.
//!
//! The spans are at `info` level under the target [`TARGET`]. With no
//! subscriber interested in them they cost a check of a cached flag; the
//! `theater` binary exports them over OTLP when given `--otlp-endpoint`.

use tracing::field::Empty;
use tracing::{Span, Subscriber};
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::registry::LookupSpan;

use crate::chain::Hash;
use crate::id::ActorId;

/// The target of every span this module makes.
pub const TARGET: &str = "theater";

/// The span of one call of `function` on `actor`, a child of `caller`
/// (the span the call was queued in) when that is a span. Its `outcome`
/// is recorded when the call ends and its `event` (the hash of the chain
/// event it appended) when it is known.
pub(crate) fn call_span(caller: &Span, actor: ActorId, function: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        parent: caller,
        "actor.call",
        actor = %actor,
        export = function,
        outcome = Empty,
        event = Empty,
    )
}

/// The span of the host function `function` of `interface` that the
/// running call makes; the actor it reaches, if any, continues its trace.
pub fn host_call_span(interface: &'static str, function: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "host.call",
        interface,
        function,
        event = Empty,
    )
}

/// The layer that makes OpenTelemetry spans of these spans with `tracer`,
/// keeping what a trace needs: each span's fields and its parent. Source
/// locations, threads, busy and idle times, and activating an OpenTelemetry
/// context on each entry are off: a call's span is entered on every poll of
/// the call, and together they cost more than recording the call.
pub fn otel_layer<S, T>(tracer: T) -> OpenTelemetryLayer<S, T>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    T: opentelemetry::trace::Tracer + 'static,
    T::Span: Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false)
}

/// Records the hash of the event just appended on the current span, if it
/// is a call or host-call span.
pub(crate) fn note_event(hash: &Hash) {
    let span = Span::current();
    if !span.is_disabled() {
        span.record("event", hex::encode(hash));
    }
}
