//! Traces: a request through three actors is one trace, each actor's call
//! a child of the host call that made it, as the OpenTelemetry SDK's
//! in-memory exporter receives it.

#[path = "it/common/mod.rs"]
mod common;

use opentelemetry::trace::SpanId;
use opentelemetry::{KeyValue, Value as OtelValue};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use serde_json::json;
use theater::host::HANDLE_REQUEST;
use theater::telemetry::Traces;
use theater::{RuntimeConfig, TheaterRuntime};

use common::{request, spawn};

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a OtelValue> {
    span.attributes
        .iter()
        .find(|KeyValue { key: k, .. }| k.as_str() == key)
        .map(|kv| &kv.value)
}

fn text(span: &SpanData, key: &str) -> String {
    attribute(span, key)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// The span whose `key` attribute is `value`, of those named `name`.
fn find<'a>(spans: &'a [SpanData], name: &str, key: &str, value: &str) -> &'a SpanData {
    let found: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name == name && text(s, key) == value)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {name} span with {key} = {value} in {spans:#?}"
    );
    found[0]
}

// Two threads: the caller's span travels with the call, not the thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_through_three_actors_is_one_trace() {
    let exporter = InMemorySpanExporter::default();
    let traces = Traces::export_to(exporter.clone());
    let mut config = RuntimeConfig::ephemeral();
    config.traces = Some(traces.clone());
    let runtime = TheaterRuntime::new(config).unwrap();
    let (a, b, c) = (
        spawn(&runtime, "messenger").await,
        spawn(&runtime, "messenger").await,
        spawn(&runtime, "messenger").await,
    );
    let inner = json!({ "request": { "to": c.id().to_string(), "msg": "ping" } });
    let outer = json!({ "request": { "to": b.id().to_string(), "msg": inner } });
    let answer = request(&a, outer).await.unwrap();
    assert_eq!(answer, json!("pong"));
    traces.flush();

    let spans = exporter.get_finished_spans().unwrap();
    let call =
        |actor: &theater::ActorHandle| find(&spans, "actor.call", "actor", &actor.id().to_string());
    let (call_a, call_b, call_c) = (call(&a), call(&b), call(&c));
    let host_calls: Vec<&SpanData> = spans.iter().filter(|s| s.name == "host.call").collect();
    assert_eq!(host_calls.len(), 2, "{host_calls:#?}");
    let host_child_of = |parent: &SpanData| {
        *host_calls
            .iter()
            .find(|h| h.parent_span_id == parent.span_context.span_id())
            .expect("a host call inside the actor's call")
    };
    let (host_a, host_b) = (host_child_of(call_a), host_child_of(call_b));

    // a's call is the root; every other span is a child of the one before.
    assert_eq!(call_a.parent_span_id, SpanId::INVALID);
    assert_eq!(host_a.parent_span_id, call_a.span_context.span_id());
    assert_eq!(call_b.parent_span_id, host_a.span_context.span_id());
    assert_eq!(host_b.parent_span_id, call_b.span_context.span_id());
    assert_eq!(call_c.parent_span_id, host_b.span_context.span_id());
    let trace = call_a.span_context.trace_id();
    for span in [call_a, host_a, call_b, host_b, call_c] {
        assert_eq!(span.span_context.trace_id(), trace, "{span:#?}");
    }

    // Each call span names its export and outcome, and the chain event it
    // appended; each host call, its function.
    for (span, actor) in [(call_a, &a), (call_b, &b), (call_c, &c)] {
        assert_eq!(text(span, "export"), HANDLE_REQUEST);
        assert_eq!(text(span, "outcome"), "ok");
        let chain = runtime.chain(actor.id()).unwrap();
        let head = hex::encode(chain.last().unwrap().hash);
        assert_eq!(text(span, "event"), head, "{span:#?}");
    }
    for host in [host_a, host_b] {
        assert_eq!(text(host, "function"), "request");
        assert_eq!(text(host, "event").len(), 64, "{host:#?}");
    }
}
