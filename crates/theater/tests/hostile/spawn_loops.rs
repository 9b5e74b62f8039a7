//! Spawn loops: an actor that spawns without end is stopped by its limit of
//! children and by the runtime's limit of actors, time spent spawning counts
//! against its call's time limit, and its neighbours keep serving.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{manifest_path, request, spawn};
use crate::escalation::spawner;
use serde_json::{Value, json};
use theater::{ActorError, ActorHandle, RuntimeConfig, TheaterRuntime};

/// A counter that must keep answering while its neighbour misbehaves.
async fn neighbour_answers(neighbour: &ActorHandle) {
    let started = Instant::now();
    let reply = tokio::time::timeout(Duration::from_secs(10), request(neighbour, json!({})))
        .await
        .expect("the neighbour answers within 10 s")
        .unwrap();
    assert!(reply["count"].is_number(), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

async fn spawn_loop(parent: &ActorHandle, manifest: &str, times: u64, stop: bool) -> Value {
    request(
        parent,
        json!({"spawn_loop": {"manifest": manifest, "times": times, "stop_on_error": stop}}),
    )
    .await
    .expect("the loop call answers")
}

#[tokio::test]
async fn a_spawn_loop_stops_at_the_default_limit_of_children() {
    let runtime = crate::common::runtime();
    let neighbour = spawn(&runtime, "counter").await;
    let parent = spawner(&runtime, "{ spawn_from = [\"..\"] }", "").await;
    let answer = spawn_loop(&parent, "../echo/manifest.toml", 500, true).await;
    let spawned = answer["spawned"].as_u64().unwrap();
    assert_eq!(
        spawned as usize,
        theater::runtime::DEFAULT_MAX_CHILDREN,
        "{answer}"
    );
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("max_children"), "{error}");
    neighbour_answers(&neighbour).await;
    assert_eq!(runtime.children(parent.id()).len(), spawned as usize);
}

#[tokio::test]
async fn a_parent_sets_a_lower_limit_of_children() {
    let runtime = crate::common::runtime();
    let parent = spawner(&runtime, "{ spawn_from = [\"..\"], max_children = 3 }", "").await;
    let answer = spawn_loop(&parent, "../echo/manifest.toml", 50, false).await;
    assert_eq!(answer["spawned"], 3, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("max_children = 3"),
        "{answer}"
    );
    // A stopped child frees its place.
    let first = runtime.children(parent.id())[0];
    runtime.stop(first).await.unwrap();
    let answer = spawn_loop(&parent, "../echo/manifest.toml", 5, true).await;
    assert_eq!(answer["spawned"], 1, "{answer}");
}

#[tokio::test]
async fn the_runtime_limits_actors_in_total() {
    let mut config = RuntimeConfig::ephemeral();
    config.home = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("theater-home"));
    config.max_actors = 6;
    let runtime = TheaterRuntime::new(config).unwrap();
    let neighbour = spawn(&runtime, "counter").await;
    let parent = spawner(&runtime, "{ spawn_from = [\"..\"] }", "").await;
    let answer = spawn_loop(&parent, "../echo/manifest.toml", 50, true).await;
    assert_eq!(answer["spawned"], 4, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("6 actors"),
        "{answer}"
    );
    neighbour_answers(&neighbour).await;
    // The operator is told the same, and a stopped actor frees a place.
    let err = runtime.spawn_file(manifest_path("echo")).await.unwrap_err();
    assert!(err.to_string().contains("max_actors"), "{err}");
    runtime
        .stop(runtime.children(parent.id())[0])
        .await
        .unwrap();
    runtime.spawn_file(manifest_path("echo")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_spent_spawning_counts_against_the_call() {
    let runtime = crate::common::runtime();
    let neighbour = spawn(&runtime, "counter").await;
    let parent = spawner(
        &runtime,
        "{ max_children = 1000 }",
        "[limits]\ncall_timeout_ms = 1000\n",
    )
    .await;
    // Each child spins in `init` for its whole time limit (200 ms): twenty
    // of them take four seconds, four times the parent's limit.
    let slow_child = "name = \"slow\"\ncomponent_path = \"hostile-spawner.wasm\"\ninit_state = '{\"spin\": true}'\n[[handlers]]\ntype = \"supervisor\"\nconfig = { max_children = 0 }\n[limits]\ncall_timeout_ms = 200\n";
    let started = Instant::now();
    let looping = {
        let parent = parent.clone();
        tokio::spawn(async move {
            request(
                &parent,
                json!({"spawn_loop": {"manifest": slow_child, "times": 20, "stop_on_error": false}}),
            )
            .await
        })
    };
    neighbour_answers(&neighbour).await;
    let outcome = looping.await.unwrap();
    let took = started.elapsed();
    assert!(
        matches!(outcome, Err(ActorError::TimeLimit { limit_ms: 1000, .. })),
        "{outcome:?}"
    );
    // Generous: the limit and then some, far below the four seconds of spawns.
    assert!(took < Duration::from_millis(3000), "{took:?}");
    neighbour_answers(&neighbour).await;
}
