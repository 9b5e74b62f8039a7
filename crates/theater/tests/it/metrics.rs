//! Metrics: after a known sequence of spawns, calls, a trap, restarts and
//! an overflow, the scrape holds exactly the counts that sequence makes.
//! The endpoint serves the OpenMetrics text format, which Prometheus reads.

use std::path::Path;
use std::time::{Duration, Instant};

use theater::host::{HANDLE_REQUEST, HANDLE_SEND};
use theater::metrics::{MetricsConfig, OTHER_EXPORT};
use theater::web::WebAccess;
use theater::{ActorError, ActorHandle, RuntimeConfig, TheaterRuntime};

use crate::common::{manifest_path, spawn, spawn_with};

/// Calls that succeed on the trap actor before it is made to trap.
const N: u64 = 5;

fn counted_runtime(per_actor: bool) -> TheaterRuntime {
    let mut config = RuntimeConfig::ephemeral();
    config.home = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("theater-home"));
    config.metrics = Some(MetricsConfig { per_actor });
    TheaterRuntime::new(config).expect("runtime starts")
}

/// The value of the series named exactly `series` (name and labels as
/// the text format writes them), or 0 if the scrape has no such line.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(series)?;
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
        .unwrap_or(0.0)
}

fn send_series(outcome: &str) -> String {
    format!("theater_calls_total{{export=\"{HANDLE_SEND}\",outcome=\"{outcome}\"}}")
}

async fn send(actor: &ActorHandle, message: &str) -> Result<(), ActorError> {
    actor
        .call_function::<(Vec<u8>,), ()>(HANDLE_SEND, (message.as_bytes().to_vec(),))
        .await
}

/// Waits (within a generous bound) until `actor` has taken every queued
/// call off its queue.
async fn until_taken(actor: &ActorHandle) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while actor.queue_depth() > 0 {
        assert!(Instant::now() < deadline, "the actor never took its call");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_sequence_gives_exact_counts() {
    let runtime = counted_runtime(false);

    // Spawn, N calls, an actor error, a trap (restarted: it has no parent),
    // and one call on the fresh instance.
    let trap = spawn(&runtime, "trap").await;
    for _ in 0..N {
        send(&trap, "tick").await.unwrap();
    }
    assert!(matches!(
        send(&trap, "err").await,
        Err(ActorError::Failed { .. })
    ));
    assert!(matches!(
        send(&trap, "trap").await,
        Err(ActorError::Trapped { .. })
    ));
    send(&trap, "tick").await.unwrap();

    // An overflow: one call spins, one waits, the next is refused. The
    // spinning call ends at its time limit, and that instance restarts too.
    let manifest = r#"
name = "busy"
component_path = "infinite-loop.wasm"
[limits]
call_timeout_ms = 3000
queue_capacity = 1
"#;
    let busy = spawn_with(&runtime, "infinite-loop", manifest)
        .await
        .unwrap();
    busy.cast_function(None, HANDLE_SEND, (b"{}".to_vec(),))
        .unwrap();
    until_taken(&busy).await;
    let waiting = {
        let busy = busy.clone();
        tokio::spawn(async move {
            busy.call_function::<(Vec<u8>,), (Vec<u8>,)>(HANDLE_REQUEST, (b"{}".to_vec(),))
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while busy.queue_depth() == 0 {
        assert!(Instant::now() < deadline, "the request was never queued");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let refused = send(&busy, "{}").await.unwrap_err();
    assert!(matches!(refused, ActorError::QueueFull { .. }), "{refused}");
    waiting
        .await
        .unwrap()
        .expect("the queued request is answered");

    let text = runtime.metrics_text().expect("metrics are enabled");
    let request_ok = format!("theater_calls_total{{export=\"{HANDLE_REQUEST}\",outcome=\"ok\"}}");
    let expected = [
        ("theater_actor_spawns_total".to_owned(), 2.0),
        ("theater_actors{state=\"running\"}".to_owned(), 2.0),
        (send_series("ok"), (N + 1) as f64),
        (send_series("actor-error"), 1.0),
        (send_series("trap"), 1.0),
        (send_series("time-limit"), 1.0),
        (request_ok, 1.0),
        (
            "theater_supervision_decisions_total{decision=\"restart\"}".to_owned(),
            2.0,
        ),
        (
            "theater_queue_overflow_total{policy=\"reject\"}".to_owned(),
            1.0,
        ),
        ("theater_queue_depth".to_owned(), 0.0),
    ];
    for (series, count) in expected {
        assert_eq!(value(&text, &series), count, "{series} in:\n{text}");
    }
    // Every call is in the latency histogram, under its export.
    let sends = format!("theater_call_duration_seconds_count{{export=\"{HANDLE_SEND}\"}}");
    assert_eq!(value(&text, &sends), (N + 4) as f64, "{text}");
    let requests = format!("theater_call_duration_seconds_count{{export=\"{HANDLE_REQUEST}\"}}");
    assert_eq!(value(&text, &requests), 1.0, "{text}");
    let le_inf =
        format!("theater_call_duration_seconds_bucket{{le=\"+Inf\",export=\"{HANDLE_SEND}\"}}");
    assert_eq!(value(&text, &le_inf), (N + 4) as f64, "{text}");
    // Every chain event appended is counted, and no actor id is a label.
    let events = runtime.chain(trap.id()).unwrap().len() + runtime.chain(busy.id()).unwrap().len();
    assert_eq!(
        value(&text, "theater_chain_events_total"),
        events as f64,
        "{text}"
    );
    assert!(!text.contains(&trap.id().to_string()), "{text}");

    runtime.stop(trap.id()).await.unwrap();
    runtime.stop(busy.id()).await.unwrap();
    let text = runtime.metrics_text().unwrap();
    assert_eq!(value(&text, "theater_actor_stops_total"), 2.0, "{text}");
    assert_eq!(value(&text, "theater_actors{state=\"running\"}"), 0.0);
}

#[tokio::test]
async fn two_runtimes_count_apart_and_disabled_metrics_count_nothing() {
    let (one, two) = (counted_runtime(false), counted_runtime(false));
    let actor = spawn(&one, "trap").await;
    send(&actor, "tick").await.unwrap();
    let ok = send_series("ok");
    assert_eq!(value(&one.metrics_text().unwrap(), &ok), 1.0);
    assert_eq!(value(&two.metrics_text().unwrap(), &ok), 0.0);
    assert_eq!(crate::common::runtime().metrics_text(), None);
}

/// A `theater:simple` actor's calls, asked by their canonical name, are
/// counted under its export as it names it, not as calls of no export.
#[tokio::test]
async fn calls_of_a_theater_simple_actor_count_under_its_export() {
    let runtime = counted_runtime(false);
    let actor = spawn(&runtime, "simple-timer").await;
    crate::common::request(&actor, serde_json::json!({ "nap": 1 }))
        .await
        .unwrap();
    let text = runtime.metrics_text().unwrap();
    let exported = "theater:simple/message-server-client.handle-request";
    let ok = format!("theater_calls_total{{export=\"{exported}\",outcome=\"ok\"}}");
    assert_eq!(value(&text, &ok), 1.0, "{text}");
    let other = format!("theater_call_duration_seconds_count{{export=\"{OTHER_EXPORT}\"}}");
    assert_eq!(value(&text, &other), 0.0, "{text}");
}

/// Calls refused for a state or result past the actor's caps have an
/// outcome each.
#[tokio::test]
async fn oversized_states_and_results_have_outcomes_of_their_own() {
    let runtime = counted_runtime(false);
    let manifest = r#"
name = "oversize"
component_path = "oversize.wasm"
[[handlers]]
type = "message-server"
config = {}
[limits]
max_state_bytes = 1024
max_result_bytes = 1024
"#;
    let actor = spawn_with(&runtime, "oversize", manifest).await.unwrap();
    for (command, refused) in [("state", "state-too-large"), ("reply", "result-too-large")] {
        let error = crate::common::request(&actor, serde_json::json!({ command: 4096 }))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("max_"), "{error}");
        let series =
            format!("theater_calls_total{{export=\"{HANDLE_REQUEST}\",outcome=\"{refused}\"}}");
        let text = runtime.metrics_text().unwrap();
        assert_eq!(value(&text, &series), 1.0, "{text}");
    }
}

#[tokio::test]
async fn per_actor_mode_labels_series_with_the_actor_until_it_ends() {
    let runtime = counted_runtime(true);
    let actor = spawn(&runtime, "trap").await;
    send(&actor, "tick").await.unwrap();
    let id = actor.id();
    let series =
        format!("theater_calls_total{{export=\"{HANDLE_SEND}\",outcome=\"ok\",actor=\"{id}\"}}");
    let text = runtime.metrics_text().unwrap();
    assert_eq!(value(&text, &series), 1.0, "{text}");
    assert!(text.contains(&format!("theater_actor_queue_depth{{actor=\"{id}\"}} 0")));
    runtime.stop(id).await.unwrap();
    drop(actor);
    let text = runtime.metrics_text().unwrap();
    assert!(!text.contains(&id.to_string()), "{text}");
}

#[tokio::test]
async fn the_endpoint_serves_the_text_format_and_asks_for_the_token() {
    let runtime = counted_runtime(false);
    let _actor = runtime
        .spawn_file(manifest_path("trap"))
        .await
        .expect("actor spawns");
    let access = WebAccess {
        token: Some("s3cret".into()),
        insecure: false,
    };
    let server = theater::metrics::MetricsServer::bind(runtime.clone(), "127.0.0.1:0", access)
        .await
        .unwrap();
    let url = format!("http://{}/metrics", server.local_addr().unwrap());
    tokio::spawn(server.serve());
    let client = reqwest::Client::new();
    let refused = client.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let wrong = client.get(&url).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let scraped = client.get(&url).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(scraped.status(), 200);
    let content_type = scraped.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = scraped.text().await.unwrap();
    assert_eq!(value(&text, "theater_actor_spawns_total"), 1.0, "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[tokio::test]
async fn an_endpoint_off_loopback_needs_a_token() {
    let runtime = counted_runtime(false);
    let refused = theater::metrics::MetricsServer::bind(runtime, "0.0.0.0:0", WebAccess::default())
        .await
        .err()
        .expect("refused without a token");
    assert!(refused.to_string().contains("--insecure"), "{refused}");
}
