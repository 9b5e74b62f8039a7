//! Replay through real actors: their recorded calls run again on their
//! components, fed the recorded host results, each state checked against
//! the chain.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{actors_dir, data, failure, json, request, runtime, spawn, spawn_with};
use futures::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use theater::chain::{ChainEvent, record};
use theater::host::{HANDLE_REQUEST, HANDLE_SEND, HandlerSet};
use theater::replay::{ReplayReport, ReplayStart, replay};
use theater::storage::{EventLog, MemoryEventLog};
use theater::wasm::{ComponentCache, new_engine};
use theater::{ActorHandle, RuntimeConfig, TheaterRuntime};
use tokio_tungstenite::tungstenite::Message;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The built component of actor `name`, compiled once for all test runs.
async fn component(name: &str) -> (Engine, Component) {
    let engine = new_engine().unwrap();
    let linker = HandlerSet::builtin().linker(&engine).unwrap();
    let cache_root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("replay-cache");
    let cache = ComponentCache::new(engine.clone(), linker, Some(&cache_root));
    let path = actors_dir().join(name).join(format!("{name}.wasm"));
    let compiled = cache.load(&path).await.expect("the component compiles");
    (engine, compiled.component.clone())
}

/// Where a test's replays start: right after event `index`, the chain's
/// `actor-init`, with the state it left.
#[derive(Clone)]
struct Start {
    index: usize,
    state: Option<Vec<u8>>,
}

/// An actor just spawned, and where replays of its chain start.
async fn spawned(runtime: &TheaterRuntime, name: &str) -> (ActorHandle, Start) {
    let actor = spawn(runtime, name).await;
    let start = start_of(runtime, &actor).await;
    (actor, start)
}

async fn start_of(runtime: &TheaterRuntime, actor: &ActorHandle) -> Start {
    let events = runtime.chain(actor.id()).unwrap();
    let index = events
        .iter()
        .position(|e| e.event_type == record::ACTOR_INIT)
        .expect("the chain has an actor-init event");
    let state = actor.state().await.unwrap();
    Start { index, state }
}

/// Replays `events` on the component of `name`.
async fn replay_on(
    name: &str,
    events: &[ChainEvent],
    start: &Start,
    until: Option<usize>,
) -> ReplayReport {
    let start = ReplayStart::After {
        index: start.index,
        state: start.state.clone(),
    };
    replay_from(name, events, start, until).await
}

/// Replays `events` on the component of `name` from `start`.
async fn replay_from(
    name: &str,
    events: &[ChainEvent],
    start: ReplayStart,
    until: Option<usize>,
) -> ReplayReport {
    let (engine, component) = component(name).await;
    replay(&engine, &component, events, start, until)
        .await
        .expect("the replay runs")
}

async fn send(actor: &ActorHandle, message: &str) -> Result<(), theater::ActorError> {
    actor
        .call_function::<(Vec<u8>,), ()>(HANDLE_SEND, (json(message),))
        .await
}

/// Indexes of the events of type `event_type`.
fn indexes(events: &[ChainEvent], event_type: &str) -> Vec<usize> {
    (0..events.len())
        .filter(|&i| events[i].event_type == event_type)
        .collect()
}

/// `event` with other data; replay does not check hashes, so it takes it.
fn with_data(event: &ChainEvent, data: &Value) -> ChainEvent {
    let mut event = event.clone();
    event.data = RawValue::from_string(data.to_string()).unwrap();
    event
}

fn assert_matched(report: &ReplayReport) {
    assert_eq!(report.divergence, None, "{report:?}");
    assert_eq!(report.stopped_at, None, "{report:?}");
}

#[tokio::test]
async fn a_counter_replays_to_its_live_state() {
    let runtime = runtime();
    let (counter, start) = spawned(&runtime, "counter").await;
    send(&counter, r#"{"add": 2}"#).await.unwrap();
    send(&counter, r#"{"add": 5}"#).await.unwrap();
    send(&counter, "not a number").await.unwrap_err();
    request(&counter, json!({})).await.unwrap();
    send(&counter, r#"{"add": -3}"#).await.unwrap();

    let events = runtime.chain(counter.id()).unwrap();
    let report = replay_on("counter", &events, &start, None).await;
    assert_matched(&report);
    assert_eq!(
        report.calls, 5,
        "four commits and one failure, each as recorded"
    );
    assert_eq!(report.events, events.len() - 1 - start.index);
    assert_eq!(report.state, counter.state().await.unwrap());
    assert_eq!(report.state.as_deref(), Some(&br#"{"count":4}"#[..]));
}

/// Messages sent through the runtime are recorded as base64; a chain with
/// them replays as one whose messages are arrays of numbers does (above).
#[tokio::test]
async fn messages_recorded_as_base64_replay() {
    let runtime = runtime();
    let (counter, start) = spawned(&runtime, "counter").await;
    for message in [r#"{"add": 2}"#, r#"{"add": 5}"#] {
        runtime
            .send(None, counter.id(), json(message))
            .await
            .unwrap();
    }
    request(&counter, json!({})).await.unwrap();

    let events = runtime.chain(counter.id()).unwrap();
    let first_call = &events[indexes(&events, "call")[0]];
    let data: Value = serde_json::from_str(first_call.data.get()).unwrap();
    assert_eq!(data["params"], json!([{"base64": "eyJhZGQiOiAyfQ=="}]));
    let report = replay_on("counter", &events, &start, None).await;
    assert_matched(&report);
    assert_eq!(report.state.as_deref(), Some(&br#"{"count":7}"#[..]));
}

#[tokio::test]
async fn the_clock_replays_on_the_recorded_times() {
    let runtime = runtime();
    let (clock, start) = spawned(&runtime, "clock").await;
    let first = request(&clock, json!({ "now": null })).await.unwrap();
    request(&clock, json!({ "sleep": 5 })).await.unwrap();
    failure(request(&clock, json!({ "sleep": 3_600_000 })).await);
    request(&clock, json!({ "now": null })).await.unwrap();

    let events = runtime.chain(clock.id()).unwrap();
    let report = replay_on("clock", &events, &start, None).await;
    assert_matched(&report);
    assert_eq!(report.calls, 4);

    // The reply holds the time the actor was given: feed it another and
    // the replay answers otherwise than the chain says.
    let now = indexes(&events, record::HOST_CALL)[0];
    let mut altered = events.clone();
    let mut host_call = data(&events[now]);
    assert_eq!(host_call["result"], json!({ "ok": first["now"] }));
    host_call["result"] = json!({ "ok": 1 });
    altered[now] = with_data(&events[now], &host_call);
    let report = replay_on("clock", &altered, &start, None).await;
    let divergence = report.divergence.expect("the replay diverges");
    let call = indexes(&events, record::CALL)[0];
    assert_eq!(divergence.index, call);
    assert_eq!(divergence.function, HANDLE_REQUEST);
    assert!(divergence.reason.contains("another result"), "{divergence}");
    assert_eq!(report.calls, 0);
}

#[tokio::test]
async fn dice_replay_on_the_recorded_random_values() {
    let runtime = runtime();
    let (dice, start) = spawned(&runtime, "dice").await;
    for command in [
        json!({ "roll": 6 }),
        json!({ "bytes": 8 }),
        json!({ "u64": null }),
        json!({ "range": [10, 20] }),
        json!({ "env": "THEATER_REPLAY_UNSET_VAR" }),
        json!({ "vars": null }),
    ] {
        request(&dice, command).await.unwrap();
    }
    failure(request(&dice, json!({ "range": [5, 5] })).await);

    let events = runtime.chain(dice.id()).unwrap();
    let report = replay_on("dice", &events, &start, None).await;
    assert_matched(&report);
    assert_eq!(report.calls, 7);
}

#[tokio::test]
async fn an_altered_state_digest_is_the_first_divergence() {
    let runtime = runtime();
    let (counter, start) = spawned(&runtime, "counter").await;
    for add in [1, 2, 3] {
        send(&counter, &format!(r#"{{"add": {add}}}"#))
            .await
            .unwrap();
    }
    let events = runtime.chain(counter.id()).unwrap();
    let calls = indexes(&events, record::CALL);
    let mut altered = events.clone();
    let mut call = data(&events[calls[1]]);
    let recorded = call["state"]["sha256"].as_str().unwrap().to_owned();
    call["state"]["sha256"] = json!("00".repeat(32));
    altered[calls[1]] = with_data(&events[calls[1]], &call);

    let report = replay_on("counter", &altered, &start, None).await;
    let divergence = report.divergence.expect("the replay diverges");
    assert_eq!(divergence.index, calls[1]);
    assert_eq!(divergence.hash, hex::encode(events[calls[1]].hash));
    assert_eq!(divergence.function, HANDLE_SEND);
    assert_eq!(
        divergence.reason,
        format!(
            "state sha256 000000000000… recorded, sha256 {}… replayed",
            &recorded[..12]
        )
    );
    assert_eq!(report.calls, 1);
    assert_eq!(report.state.as_deref(), Some(&br#"{"count":1}"#[..]));
}

#[tokio::test]
async fn another_component_diverges_at_the_first_call() {
    let runtime = runtime();
    let (echo, start) = spawned(&runtime, "echo").await;
    send(&echo, "hello").await.unwrap();
    send(&echo, "again").await.unwrap();

    let events = runtime.chain(echo.id()).unwrap();
    assert_matched(&replay_on("echo", &events, &start, None).await);
    let report = replay_on("counter", &events, &start, None).await;
    let divergence = report.divergence.expect("the counter does not echo");
    assert_eq!(divergence.index, indexes(&events, record::CALL)[0]);
    assert_eq!(divergence.function, HANDLE_SEND);
    assert!(
        divergence
            .reason
            .starts_with("recorded ok, the replay answered Err(\"expected a message like"),
        "{divergence}"
    );
    assert_eq!(report.state, start.state);
}

#[tokio::test]
async fn until_stops_at_an_event_with_its_state() {
    let runtime = runtime();
    let (counter, start) = spawned(&runtime, "counter").await;
    for add in [1, 10, 100] {
        send(&counter, &format!(r#"{{"add": {add}}}"#))
            .await
            .unwrap();
    }
    let events = runtime.chain(counter.id()).unwrap();
    let second = indexes(&events, record::CALL)[1];

    let report = replay_on("counter", &events, &start, Some(second)).await;
    assert_matched(&report);
    assert_eq!(report.calls, 2);
    assert_eq!(report.events, second - start.index);
    assert_eq!(report.state.as_deref(), Some(&br#"{"count":11}"#[..]));

    // From there on, with the state it gave.
    let from = Start {
        index: second,
        state: report.state,
    };
    let rest = replay_on("counter", &events, &from, None).await;
    assert_matched(&rest);
    assert_eq!(rest.calls, 1);
    assert_eq!(rest.state, counter.state().await.unwrap());
}

#[tokio::test]
async fn logs_are_checked_and_an_unrecorded_host_call_stops_the_replay() {
    let runtime = runtime();
    let (echo, start) = spawned(&runtime, "echo").await;
    request(&echo, json!("abc")).await.unwrap();
    request(&echo, json!("chain")).await.unwrap();

    let events = runtime.chain(echo.id()).unwrap();
    let report = replay_on("echo", &events, &start, None).await;
    assert_eq!(report.divergence, None);
    assert_eq!(report.calls, 1);
    let stop = report.stopped_at.expect("get-chain is not recorded");
    assert_eq!(stop.index, indexes(&events, record::CALL)[1]);
    assert!(stop.reason.contains("runtime.get-chain"), "{stop}");

    // Its log line is what the actor wrote then.
    let log = indexes(&events, record::LOG)[0];
    let mut altered = events.clone();
    altered[log] = with_data(&events[log], &json!({ "message": "echo: 9 bytes" }));
    let divergence = replay_on("echo", &altered, &start, None)
        .await
        .divergence
        .expect("the log differs");
    assert_eq!(divergence.index, log);
    assert_eq!(divergence.function, HANDLE_REQUEST);
    assert_eq!(
        divergence.reason,
        r#"log "echo: 5 bytes" was written where log "echo: 9 bytes" was recorded"#
    );
}

#[tokio::test]
async fn a_revert_goes_on_from_a_state_the_replay_passed() {
    let runtime = runtime();
    let (counter, start) = spawned(&runtime, "counter").await;
    send(&counter, r#"{"add": 1}"#).await.unwrap();
    send(&counter, r#"{"add": 2}"#).await.unwrap();
    let first = indexes(&runtime.chain(counter.id()).unwrap(), record::CALL)[0];
    let to = runtime.chain(counter.id()).unwrap()[first].hash;
    runtime.revert(counter.id(), to).await.unwrap();
    send(&counter, r#"{"add": 10}"#).await.unwrap();

    let events = runtime.chain(counter.id()).unwrap();
    let report = replay_on("counter", &events, &start, None).await;
    assert_matched(&report);
    assert_eq!(report.calls, 3);
    assert_eq!(report.state.as_deref(), Some(&br#"{"count":11}"#[..]));
    assert_eq!(report.state, counter.state().await.unwrap());

    // A replay that starts after that event cannot know its state.
    let second = indexes(&events, record::CALL)[1];
    let later = Start {
        index: second,
        state: Some(br#"{"count":3}"#.to_vec()),
    };
    let report = replay_on("counter", &events, &later, None).await;
    let stop = report.stopped_at.expect("the state is not in the chain");
    assert_eq!(stop.index, indexes(&events, record::REVERT)[0]);
    assert!(
        stop.reason.contains(&format!("the state of event {first}")),
        "{stop}"
    );
}

#[tokio::test]
async fn init_runs_again_where_the_actor_resumed() {
    let log: Arc<dyn EventLog> = Arc::new(MemoryEventLog::default());
    let config = || RuntimeConfig {
        home: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("theater-home")),
        event_log: log.clone(),
        handlers: HandlerSet::builtin(),
        ..RuntimeConfig::ephemeral()
    };
    let before = TheaterRuntime::new(config()).unwrap();
    let (actor, start) = spawned(&before, "compat-basic").await;
    send(&actor, "{}").await.unwrap();
    before.shutdown().await;

    let after = TheaterRuntime::new(config()).unwrap();
    assert_eq!(after.resume_all().await.unwrap().resumed, vec![actor.id()]);
    let actor = after.actor(actor.id()).unwrap();
    send(&actor, "{}").await.unwrap();

    let events = after.chain(actor.id()).unwrap();
    let resumed = indexes(&events, record::ACTOR_RESUME)[0];
    // `init` logged its id again, just before the resume event.
    assert_eq!(events[resumed - 1].event_type, record::LOG);
    let report = replay_on("compat-basic", &events, &start, None).await;
    assert_matched(&report);
    assert_eq!(report.calls, 3, "two sends and the init of the resume");
    assert_eq!(report.state.as_deref(), Some(&br#"{"messages":2}"#[..]));
}

#[tokio::test]
async fn http_and_websocket_calls_replay_up_to_a_redacted_request() {
    let runtime = runtime();
    let manifest = "name = \"http-probe\"\ncomponent_path = \"http-probe.wasm\"\n\n[[handlers]]\ntype = \"message-server\"\nconfig = {}\n\n[[handlers]]\ntype = \"http-framework\"\nconfig = {}\n";
    let probe = spawn_with(&runtime, "http-probe", manifest).await.unwrap();
    let start = start_of(&runtime, &probe).await;
    // Handler ids and the port come from the host, and the state keeps them.
    let served = request(&probe, json!({ "serve": {} })).await.unwrap();
    let (server, port) = (&served["ok"]["server"], &served["ok"]["port"]);
    let info = request(&probe, json!({ "info": server })).await.unwrap();
    assert_eq!(info["ok"]["running"], json!(true), "{info}");

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    for path in ["/hello", "/count", "/count", "/items/7", "/fail"] {
        client.get(url(path)).send().await.unwrap();
    }
    let echoed = client.post(url("/echo")).body("hi").send().await.unwrap();
    assert!(echoed.text().await.unwrap().contains("x-tagged"));

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .unwrap();
    ws.send(Message::text("hey")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("echo: hey")
    );
    ws.send(Message::binary(vec![0xffu8, 1])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![0xffu8, 1])
    );
    ws.close(None).await.unwrap();
    let disconnected = "ntwk:theater/http-handlers.handle-websocket-disconnect";
    let waited = Instant::now();
    while !runtime
        .chain(probe.id())
        .unwrap()
        .iter()
        .any(|e| e.event_type == record::CALL && data(e)["function"] == disconnected)
    {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "no disconnect call"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let live = probe.state().await.unwrap();

    // The chain keeps a secret header as `<redacted>`: replay stops there.
    client
        .post(url("/echo"))
        .header("authorization", "Bearer s3cret")
        .body("secret")
        .send()
        .await
        .unwrap();
    let events = runtime.chain(probe.id()).unwrap();
    let redacted = (0..events.len())
        .find(|&i| {
            events[i].event_type == record::CALL && events[i].data.get().contains("<redacted>")
        })
        .expect("the request is recorded redacted");

    let report = replay_on("http-probe", &events, &start, None).await;
    assert_eq!(report.divergence, None, "{report:?}");
    let stop = report.stopped_at.expect("the params were redacted");
    assert_eq!(stop.index, redacted);
    assert!(
        stop.reason.contains("were redacted for the chain"),
        "{stop}"
    );
    let ran = indexes(&events, record::CALL).len() + indexes(&events, record::CALL_ERROR).len();
    let after = (redacted..events.len())
        .filter(|&i| [record::CALL, record::CALL_ERROR].contains(&events[i].event_type.as_str()))
        .count();
    assert_eq!(report.calls, ran - after);
    assert_eq!(report.state, live);
}

/// `init` logs and calls the host before the chain's `actor-init` event:
/// the runtime replays such chains from their first event, `init` included,
/// and takes states from them.
#[tokio::test]
async fn chains_whose_init_calls_the_host_replay_from_their_first_event() {
    let runtime = runtime();
    let basic = spawn(&runtime, "compat-basic").await;
    send(&basic, "{}").await.unwrap();
    let events = runtime.chain(basic.id()).unwrap();
    assert_eq!(events[0].event_type, record::LOG, "init logs first");
    let report = runtime.replay(basic.id()).await.unwrap();
    assert_matched(&report);
    assert_eq!(report.calls, 2, "init and the send");
    assert_eq!(report.events, events.len());
    assert_eq!(report.state, basic.state().await.unwrap());

    // `init` really runs again: its log line is checked.
    let mut altered = events.clone();
    altered[0] = with_data(&events[0], &json!({ "message": "someone else" }));
    let start = ReplayStart::Spawned { state: None };
    let divergence = replay_from("compat-basic", &altered, start, None)
        .await
        .divergence
        .expect("the log differs");
    assert_eq!(divergence.index, 0);
    assert_eq!(divergence.function, theater::actor::INIT_FUNCTION);

    // An HTTP actor creates, routes and starts its server in `init`.
    let manifest = "name = \"http-hello\"\ncomponent_path = \"http-hello.wasm\"\ninit_state = '{\"port\": 0}'\n\n[[handlers]]\ntype = \"http-framework\"\nconfig = {}\n";
    let hello = spawn_with(&runtime, "http-hello", manifest).await.unwrap();
    let events = runtime.chain(hello.id()).unwrap();
    let init = indexes(&events, record::ACTOR_INIT)[0];
    assert!(init > 5, "host calls come first: {events:?}");
    let report = runtime.replay(hello.id()).await.unwrap();
    assert_matched(&report);
    assert_eq!(report.state, hello.state().await.unwrap());

    // Fork and revert take states from any event, those `init` recorded too.
    let forked = runtime.fork(basic.id(), events_of(&runtime, &basic)[0].hash);
    let forked = forked.await.unwrap();
    assert_eq!(
        forked.state().await.unwrap().as_deref(),
        Some(&br#"{"messages":0}"#[..])
    );
    let first = events_of(&runtime, &basic)[0].hash;
    runtime.revert(basic.id(), first).await.unwrap();
    let report = runtime.replay(basic.id()).await.unwrap();
    assert_matched(&report);
    assert_eq!(report.state, None, "compat-basic was given no state");
    assert_eq!(report.state, basic.state().await.unwrap());
    let report = runtime.replay(forked.id()).await.unwrap();
    assert_matched(&report);
}

fn events_of(runtime: &TheaterRuntime, actor: &ActorHandle) -> Vec<ChainEvent> {
    runtime.chain(actor.id()).unwrap()
}

/// A fork runs `init` again: an HTTP actor on a fixed port asks for the
/// port its original holds. The fork is refused with the way out, and with
/// ephemeral ports it serves on a free port of its own.
#[tokio::test]
async fn a_fork_of_a_fixed_port_actor_is_refused_clearly_or_moved_to_a_free_port() {
    let runtime = runtime();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let manifest = format!(
        "name = \"http-hello\"\ncomponent_path = \"http-hello.wasm\"\ninit_state = '{{\"port\": {port}}}'\n\n[[handlers]]\ntype = \"http-framework\"\nconfig = {{}}\n"
    );
    let hello = spawn_with(&runtime, "http-hello", &manifest).await.unwrap();
    let events = runtime.chain(hello.id()).unwrap();
    let init = events[indexes(&events, record::ACTOR_INIT)[0]].hash;

    let refused = runtime
        .fork(hello.id(), init)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("Address already in use"), "{refused}");
    assert!(refused.contains("--ephemeral-ports"), "{refused}");

    let options = theater::runtime::ForkOptions {
        ephemeral_ports: true,
    };
    let fork = runtime.fork_with(hello.id(), init, options).await.unwrap();
    let state: Value = serde_json::from_slice(&fork.state().await.unwrap().unwrap()).unwrap();
    let moved = state["port"].as_u64().unwrap();
    assert_ne!(moved, u64::from(port), "{state}");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = client
        .get(format!("http://127.0.0.1:{moved}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "Hello from Theater!");
}

/// Chains written before a request's call event carried its `http` record
/// have the call, then an `http` event: they still verify and replay.
#[tokio::test]
async fn http_requests_recorded_in_the_older_form_verify_and_replay() {
    let runtime = runtime();
    let manifest = "name = \"http-hello\"\ncomponent_path = \"http-hello.wasm\"\ninit_state = '{\"port\": 0}'\n\n[[handlers]]\ntype = \"http-framework\"\nconfig = {}\n";
    let hello = spawn_with(&runtime, "http-hello", manifest).await.unwrap();
    let state: Value = serde_json::from_slice(&hello.state().await.unwrap().unwrap()).unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for path in ["/api/greet/ana", "/api/greet/bo", "/"] {
        let url = format!("http://127.0.0.1:{}{path}", state["port"]);
        assert!(client.get(url).send().await.unwrap().status().is_success());
    }
    let live = hello.state().await.unwrap();
    let events = runtime.chain(hello.id()).unwrap();
    let noted = events
        .iter()
        .filter(|e| data(e).get("http").is_some())
        .count();
    assert_eq!(noted, 3, "each request is in its call's event");

    let older = with_separate_http_events(&events);
    assert_eq!(older.len(), events.len() + 3);
    theater::chain::verify(&older).expect("the older form verifies");
    let spawned_with = Some(br#"{"port": 0}"#.to_vec());
    let start = ReplayStart::Spawned {
        state: spawned_with,
    };
    let report = replay_from("http-hello", &older, start, None).await;
    assert_matched(&report);
    assert_eq!(report.state, live);
}

/// `events` as chains recorded HTTP requests before: each `http` field of
/// a call's record moved to an `http` event of its own after the call,
/// with the bodies that event kept; every hash computed again.
fn with_separate_http_events(events: &[ChainEvent]) -> Vec<ChainEvent> {
    let mut older: Vec<ChainEvent> = Vec::new();
    let mut append = |event_type: &str, data: &Value, timestamp: u64, description: String| {
        let data = RawValue::from_string(data.to_string()).unwrap();
        let parent = older.last().map(|e| e.hash);
        older.push(ChainEvent::new(
            parent,
            event_type,
            data,
            timestamp,
            description,
        ));
    };
    for event in events {
        let mut data = data(event);
        let http = data.as_object_mut().unwrap().remove("http");
        let description = event.description.split(", ").next().unwrap().to_owned();
        append(&event.event_type, &data, event.timestamp, description);
        if let Some(mut http) = http {
            http["request_body"] = json!({ "text": "", "size": 0 });
            http["response_body"] = json!({ "text": "…", "size": 20, "truncated": true });
            let description = format!("{} {} {}", http["method"], http["uri"], http["status"]);
            append("http", &http, event.timestamp, description);
        }
    }
    older
}
