//! Replay through real actors: their recorded calls run again on their
//! components, fed the recorded host results, each state checked against
//! the chain.

use std::path::Path;

use crate::common::{actors_dir, failure, json, request, runtime, spawn};
use serde_json::{Value, json};
use serde_json::value::RawValue;
use theater::chain::{ChainEvent, record};
use theater::host::{HANDLE_REQUEST, HANDLE_SEND, HandlerSet};
use theater::replay::{ReplayReport, ReplayStart, replay};
use theater::wasm::{ComponentCache, new_engine};
use theater::{ActorHandle, TheaterRuntime};
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

/// An actor just spawned, its chain's `actor-init` index and its state
/// there: where replays start.
async fn spawned(runtime: &TheaterRuntime, name: &str) -> (ActorHandle, ReplayStart) {
    let actor = spawn(runtime, name).await;
    let events = runtime.chain(actor.id()).unwrap();
    let index = events
        .iter()
        .position(|e| e.event_type == record::ACTOR_INIT)
        .expect("the chain has an actor-init event");
    let state = actor.state().await.unwrap();
    (actor, ReplayStart { index, state })
}

/// Replays `events` on the component of `name`.
async fn replay_on(
    name: &str,
    events: &[ChainEvent],
    start: &ReplayStart,
    until: Option<usize>,
) -> ReplayReport {
    let (engine, component) = component(name).await;
    replay(&engine, &component, events, start.clone(), until)
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

fn data(event: &ChainEvent) -> Value {
    serde_json::from_str(event.data.get()).unwrap()
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
    assert_eq!(report.calls, 5, "four commits and one failure, each as recorded");
    assert_eq!(report.events, events.len() - 1 - start.index);
    assert_eq!(report.state, counter.state().await.unwrap());
    assert_eq!(report.state.as_deref(), Some(&br#"{"count":4}"#[..]));
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
        send(&counter, &format!(r#"{{"add": {add}}}"#)).await.unwrap();
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
        send(&counter, &format!(r#"{{"add": {add}}}"#)).await.unwrap();
    }
    let events = runtime.chain(counter.id()).unwrap();
    let second = indexes(&events, record::CALL)[1];

    let report = replay_on("counter", &events, &start, Some(second)).await;
    assert_matched(&report);
    assert_eq!(report.calls, 2);
    assert_eq!(report.events, second - start.index);
    assert_eq!(report.state.as_deref(), Some(&br#"{"count":11}"#[..]));

    // From there on, with the state it gave.
    let from = ReplayStart {
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
    let mut events = runtime.chain(counter.id()).unwrap();
    let calls = indexes(&events, record::CALL);

    // A revert to the first call's state, as the runtime records it.
    let to = calls[0];
    let data = json!({
        "to": hex::encode(events[to].hash),
        "index": to,
        "state": data(&events[to])["state"],
    });
    let data = RawValue::from_string(data.to_string()).unwrap();
    let head = events.last().unwrap().hash;
    events.push(ChainEvent::new(Some(head), record::REVERT, data, 0, "revert".into()));
    let report = replay_on("counter", &events, &start, None).await;
    assert_matched(&report);
    assert_eq!(report.state.as_deref(), Some(&br#"{"count":1}"#[..]));

    // A replay that starts after that event cannot know its state.
    let later = ReplayStart {
        index: calls[1],
        state: counter.state().await.unwrap(),
    };
    let report = replay_on("counter", &events, &later, None).await;
    let stop = report.stopped_at.expect("the state is not in the chain");
    assert_eq!(stop.index, events.len() - 1);
    assert!(
        stop.reason.contains(&format!("state of event {}", calls[0])),
        "{stop}"
    );
}
