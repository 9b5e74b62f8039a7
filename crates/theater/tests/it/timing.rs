//! Timing through the real `clock` actor: the time, sleeps that hold up the
//! actor but not the runtime, limits, grants and the chain.

use std::time::{Duration, Instant};

use crate::common::{failure, host_calls, request};
use crate::common::{manifest_path, runtime, spawn, spawn_with};
use serde_json::json;
use theater::ActorHandle;
use theater::actor::now_ms;

/// A clock with the timing config `config` and limits `limits`.
async fn clock_with(
    runtime: &theater::TheaterRuntime,
    config: &str,
    limits: &str,
) -> Result<ActorHandle, theater::SpawnError> {
    let manifest = format!(
        "name = \"clock\"\ncomponent_path = \"clock.wasm\"\n\n[[handlers]]\ntype = \"timing\"\nconfig = {config}\n\n[limits]\n{limits}\n"
    );
    spawn_with(runtime, "clock", &manifest).await
}

#[tokio::test]
async fn now_answers_the_time_and_is_recorded() {
    let runtime = runtime();
    let clock = spawn(&runtime, "clock").await;
    let before = now_ms();
    let reply = request(&clock, json!({ "now": null })).await.unwrap();
    let now = reply["now"].as_u64().unwrap();
    assert!((before..=now_ms()).contains(&now), "{now} is not now");
    let calls = host_calls(&runtime, &clock, "ntwk:theater/timing.now");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["result"], json!({ "ok": now }));
}

#[tokio::test]
async fn sleep_and_deadline_wait_and_are_recorded() {
    let runtime = runtime();
    let clock = spawn(&runtime, "clock").await;
    let started = Instant::now();
    let reply = request(&clock, json!({ "sleep": 60 })).await.unwrap();
    assert_eq!(reply, json!({ "slept": 60 }));
    assert!(started.elapsed() >= Duration::from_millis(60));

    let started = Instant::now();
    let at = now_ms() + 80;
    let reply = request(&clock, json!({ "deadline": at })).await.unwrap();
    assert_eq!(reply, json!({ "reached": at }));
    assert!(now_ms() >= at);
    assert!(started.elapsed() >= Duration::from_millis(60));

    // A deadline already passed returns at once.
    let started = Instant::now();
    request(&clock, json!({ "deadline": 1 })).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(50));

    let sleeps = host_calls(&runtime, &clock, "ntwk:theater/timing.sleep");
    assert_eq!(
        sleeps,
        [
            json!({ "function": "ntwk:theater/timing.sleep", "params": [60], "result": { "ok": null } })
        ]
    );
    let deadlines = host_calls(&runtime, &clock, "ntwk:theater/timing.deadline");
    assert_eq!(deadlines.len(), 2);
    assert_eq!(deadlines[0]["params"], json!([at]));
}

#[tokio::test]
async fn a_sleep_beyond_the_limits_is_a_clear_error_and_the_actor_keeps_serving() {
    let runtime = runtime();
    let config = "{ max_sleep_duration = 100, min_sleep_duration = 10 }";
    let clock = clock_with(&runtime, config, "").await.unwrap();

    let started = Instant::now();
    let err = failure(request(&clock, json!({ "sleep": 101 })).await);
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "it slept anyway"
    );
    assert!(
        err.contains("a sleep of 101 ms is longer than this actor's limit of 100 ms"),
        "{err}"
    );
    assert!(err.contains("`max_sleep_duration`"), "{err}");
    let err = failure(request(&clock, json!({ "sleep": 5 })).await);
    assert!(
        err.contains("shorter than this actor's minimum of 10 ms (`min_sleep_duration`"),
        "{err}"
    );
    let err = failure(request(&clock, json!({ "deadline": now_ms() + 60_000 })).await);
    assert!(
        err.contains("longer than this actor's limit of 100 ms"),
        "{err}"
    );

    assert_eq!(
        request(&clock, json!({ "sleep": 100 })).await.unwrap(),
        json!({ "slept": 100 })
    );
    let sleeps = host_calls(&runtime, &clock, "ntwk:theater/timing.sleep");
    assert_eq!(sleeps.len(), 3);
    assert!(
        sleeps[0]["result"]["err"]
            .as_str()
            .unwrap()
            .contains("limit of 100 ms")
    );
}

#[tokio::test]
async fn time_spent_asleep_does_not_count_against_the_call_time_limit() {
    let runtime = runtime();
    let clock = clock_with(&runtime, "{}", "call_timeout_ms = 100")
        .await
        .unwrap();
    let reply = request(&clock, json!({ "sleep": 300 })).await.unwrap();
    assert_eq!(reply, json!({ "slept": 300 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_actors_sleep_at_once_without_holding_up_the_runtime() {
    const SLEEPERS: usize = 1000;
    let runtime = runtime();
    let manifest = theater::Manifest::load(manifest_path("clock")).unwrap();
    let spawning = Instant::now();
    let mut clocks = Vec::with_capacity(SLEEPERS);
    for _ in 0..SLEEPERS {
        clocks.push(runtime.spawn(&manifest).await.unwrap());
    }
    let spawned = spawning.elapsed();

    let started = Instant::now();
    let sleeps: Vec<_> = clocks
        .iter()
        .map(|clock| {
            let clock = clock.clone();
            tokio::spawn(async move { request(&clock, json!({ "sleep": 1000 })).await })
        })
        .collect();
    for sleep in sleeps {
        assert_eq!(sleep.await.unwrap().unwrap(), json!({ "slept": 1000 }));
    }
    let took = started.elapsed();
    println!("{SLEEPERS} clocks spawned in {spawned:?}; all slept 1 s in {took:?}");
    assert!(took >= Duration::from_secs(1));
    assert!(
        took < Duration::from_secs(2),
        "{SLEEPERS} one-second sleeps took {took:?}"
    );
}

#[tokio::test]
async fn a_clock_without_the_timing_handler_does_not_spawn() {
    let runtime = runtime();
    let manifest = "name = \"clock\"\ncomponent_path = \"clock.wasm\"\n";
    let err = spawn_with(&runtime, "clock", manifest)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("`ntwk:theater/timing`"), "{err}");
    assert!(err.contains("type = \"timing\""), "{err}");
}

#[tokio::test]
async fn a_timing_config_whose_minimum_exceeds_its_maximum_does_not_spawn() {
    let runtime = runtime();
    let config = "{ max_sleep_duration = 10, min_sleep_duration = 20 }";
    let err = clock_with(&runtime, config, "")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("test-manifest.toml:6: handler `timing`"),
        "{err}"
    );
    assert!(
        err.contains("`min_sleep_duration` (20) is larger than `max_sleep_duration` (10)"),
        "{err}"
    );
}
