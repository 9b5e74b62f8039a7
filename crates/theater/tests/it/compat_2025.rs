//! Actors of the mid/late-2025 era: the `theater:simple` package name beside
//! `ntwk:theater`, `runtime.shutdown` (from `init` too), the 2025 manifest
//! form, catch-all routes, named stores and loopback binds. One test per
//! compatibility rule of part 2 (`docs/compatibility.md`).

use std::path::Path;
use std::time::Duration;

use crate::common::{
    actors_dir, data, eventually, failure, json, records, request, runtime, spawn, spawn_with,
};
use serde_json::{Value, json};
use theater::chain::{self, record};
use theater::runtime::ActorStatus;
use theater::{ActorHandle, ActorId, RuntimeConfig, SpawnError, TheaterRuntime};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The `function` of every `call` event of an actor's chain.
fn calls(runtime: &TheaterRuntime, actor: ActorId) -> Vec<String> {
    records(runtime, actor, record::CALL)
        .iter()
        .map(|d| d["function"].as_str().unwrap().to_owned())
        .collect()
}

/// Rule 7: actors of both eras run side by side in one runtime, and each
/// chain names its calls as the actor exports them.
#[tokio::test]
async fn both_package_names_in_one_runtime() {
    let runtime = runtime();
    let old = spawn(&runtime, "counter").await;
    let new = spawn(&runtime, "simple-timer").await;
    old.call_function::<(Vec<u8>,), ()>(theater::host::HANDLE_SEND, (json(r#"{"add": 2}"#),))
        .await
        .unwrap();
    assert_eq!(request(&old, json!({})).await.unwrap()["count"], 2);
    assert_eq!(
        request(&new, json!({ "nap": 1 })).await.unwrap(),
        json!({ "napped": 1, "naps": 1 })
    );
    assert_eq!(
        calls(&runtime, old.id()),
        [
            "ntwk:theater/message-server-client.handle-send",
            "ntwk:theater/message-server-client.handle-request"
        ]
    );
    assert_eq!(
        calls(&runtime, new.id()),
        ["theater:simple/message-server-client.handle-request"]
    );
    // Host calls are named canonically, whichever name the actor imported.
    let sleeps = crate::common::host_calls(&runtime, &new, "ntwk:theater/timing.sleep");
    assert_eq!(sleeps.len(), 1);
    runtime.verify(old.id()).await.unwrap();
    runtime.verify(new.id()).await.unwrap();
}

/// Rule 7, decided: an actor that mixes the two package names (each
/// interface under one of them) works.
#[tokio::test]
async fn an_actor_mixing_both_packages_works() {
    let runtime = runtime();
    let mixed = spawn(&runtime, "compat-mixed").await;
    mixed
        .call_function::<(Vec<u8>,), ()>(theater::host::HANDLE_SEND, (json("{}"),))
        .await
        .unwrap();
    let reply = request(&mixed, json!({})).await.unwrap();
    assert_eq!(reply["messages"], 1);
    assert!(reply["now"].as_u64().unwrap() > 0);
    let logs = records(&runtime, mixed.id(), record::LOG);
    assert!(logs[0]["message"].as_str().unwrap().ends_with("ready"));
    assert_eq!(
        calls(&runtime, mixed.id())[0],
        "theater:simple/message-server-client.handle-send"
    );
    runtime.verify(mixed.id()).await.unwrap();
}

/// Rule 7, decided: one function exported under both names is refused,
/// naming both.
#[tokio::test]
async fn one_function_under_both_package_names_is_refused() {
    let err = runtime()
        .spawn_file(crate::common::manifest_path("compat-twice"))
        .await
        .unwrap_err();
    assert!(matches!(err, SpawnError::ExportedTwice { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("`ntwk:theater/actor.init`")
            && message.contains("`theater:simple/actor.init`"),
        "{message}"
    );
}

/// An import under `theater:simple` needs its grant like any other, and
/// the error shows the entry in the form the manifest uses.
#[tokio::test]
async fn a_missing_grant_is_named_under_the_actors_package_and_form() {
    let text =
        "name = \"t\"\ncomponent = \"simple-timer.wasm\"\n[[handler]]\ntype = \"message-server\"\n";
    let err = spawn_with(&runtime(), "simple-timer", text)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("`theater:simple/timing`")
            && message.contains("[[handler]]\ntype = \"timing\""),
        "{message}"
    );
}

/// Rule 8: `shutdown` called in `init`: the spawn completes with the init
/// state committed, then the actor stops; its chain ends with a `shutdown`
/// event carrying the data, verifies, and the actor is not resumed.
#[tokio::test]
async fn shutdown_in_init_completes_the_spawn_then_stops() {
    let home = tempfile::tempdir().unwrap();
    let runtime = TheaterRuntime::new(RuntimeConfig::at(home.path()).unwrap()).unwrap();
    let quitter = spawn(&runtime, "simple-quitter").await;
    tokio::time::timeout(TIMEOUT, quitter.stopped())
        .await
        .expect("the actor stops after its init");
    assert!(runtime.actor(quitter.id()).is_err());
    assert_eq!(
        runtime.status(quitter.id()).await.unwrap(),
        ActorStatus::StoppedByItself {
            data: json!("all done")
        }
    );
    let events = runtime.chain(quitter.id()).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, [record::LOG, record::ACTOR_INIT, record::SHUTDOWN]);
    assert_eq!(data(&events[2]), json!({ "data": "all done" }));
    assert_eq!(events[2].description, "simple-quitter shut down by itself");
    // The init state was committed with the init event.
    assert!(data(&events[1])["state"]["size"].as_u64().unwrap() > 0);
    runtime.verify(quitter.id()).await.unwrap();
    let saved = runtime.saved_actors().unwrap();
    let state = saved[0].latest.as_ref().unwrap().state.as_deref().unwrap();
    let state: Value = serde_json::from_slice(state).unwrap();
    assert_eq!(state, json!({ "farewell": "all done", "ran": true }));
    assert!(!saved[0].record.running);
    drop(runtime);

    // A runtime started later on the same home does not bring it back.
    let later = TheaterRuntime::new(RuntimeConfig::at(home.path()).unwrap()).unwrap();
    assert!(later.resume_all().await.unwrap().resumed.is_empty());
}

/// Data passed to `shutdown` is bounded: over the limit, `shutdown`
/// answers an error (here the actor's `init` returns it) and nothing is
/// recorded or handed on.
#[tokio::test]
async fn shutdown_data_over_the_limit_is_refused() {
    use theater::host::MAX_SHUTDOWN_DATA_BYTES;
    let runtime = runtime();
    let farewell = "x".repeat(MAX_SHUTDOWN_DATA_BYTES + 1);
    let text = format!(
        "name = \"simple-quitter\"\ncomponent_path = \"simple-quitter.wasm\"\ninit_state = '{{\"farewell\": \"{farewell}\"}}'\n[[handlers]]\ntype = \"runtime\"\nconfig = {{}}\n"
    );
    let error = spawn_with(&runtime, "simple-quitter", &text)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("over the limit of 65536"), "{error}");
    assert!(runtime.actors().is_empty());
}

/// A supervisor whose policy restarts its children `always`. Its calls may
/// take a minute: a spawn compiles the child's component when no cache has
/// it yet, and that is slow in a debug build on a busy machine.
async fn always_restarting_supervisor(runtime: &TheaterRuntime) -> ActorHandle {
    let text = "name = \"supervisor\"\ncomponent_path = \"supervisor.wasm\"\n[[handlers]]\ntype = \"supervisor\"\nconfig = { restart = \"always\", spawn_from = [\"..\"] }\n[limits]\ncall_timeout_ms = 60000\n";
    spawn_with(runtime, "supervisor", text).await.unwrap()
}

async fn memory(actor: &ActorHandle) -> Value {
    serde_json::from_slice(&actor.state().await.unwrap().unwrap()).unwrap()
}

/// Rule 8: the parent's `handle-child-exit` receives the shutdown data, and
/// even a `restart = "always"` policy does not revive the child, whether it
/// stopped itself in `init` or in a later call.
#[tokio::test]
async fn shutdown_data_reaches_the_supervisor_and_no_policy_revives_the_child() {
    let runtime = runtime();
    let parent = always_restarting_supervisor(&runtime).await;
    let quitter = request(
        &parent,
        json!({ "spawn": "../simple-quitter/manifest.toml" }),
    )
    .await
    .unwrap();
    let child = request(&parent, json!({ "spawn": "manifest.toml" }))
        .await
        .unwrap();
    let child_id: ActorId = child.as_str().unwrap().parse().unwrap();
    request(
        &runtime.actor(child_id).unwrap(),
        json!({ "shutdown": "bye" }),
    )
    .await
    .unwrap();
    let exits = eventually("the parent hears both exits", async || {
        let exits = memory(&parent).await["exits"].clone();
        (exits.as_array().unwrap().len() == 2).then_some(exits)
    })
    .await;
    assert!(
        exits
            .as_array()
            .unwrap()
            .contains(&json!([quitter, "all done"]))
    );
    assert!(exits.as_array().unwrap().contains(&json!([child, "bye"])));
    for id in [quitter.as_str().unwrap(), child.as_str().unwrap()] {
        let id: ActorId = id.parse().unwrap();
        assert!(runtime.actor(id).is_err(), "{id} was revived");
        assert!(matches!(
            runtime.status(id).await.unwrap(),
            ActorStatus::StoppedByItself { .. }
        ));
        runtime.verify(id).await.unwrap();
    }
    let decisions = records(&runtime, parent.id(), record::SUPERVISION);
    let stops = decisions
        .iter()
        .filter(|d| d["decision"] == "stop" && d["cause"] == "shutdown")
        .count();
    assert_eq!(stops, 2, "{decisions:?}");
    assert!(!decisions.iter().any(|d| d["decision"] == "restart"));
}

/// The `simple-docs` actor: its server's host and port, from its state.
async fn docs_server(actor: &ActorHandle) -> u16 {
    let state: Value = serde_json::from_slice(&actor.state().await.unwrap().unwrap()).unwrap();
    state["port"].as_u64().unwrap() as u16
}

/// `simple-docs` asking for `0.0.0.0` on a free port, on a store of its own.
async fn docs(runtime: &TheaterRuntime) -> ActorHandle {
    let store = ActorId::new().to_string();
    let text = format!(
        "name = \"simple-docs\"\ncomponent = \"simple-docs.wasm\"\ninit_state = '{}'\n[[handler]]\ntype = \"http-framework\"\n[[handler]]\ntype = \"store\"\n",
        json!({ "host": "0.0.0.0", "port": 0, "store": store })
    );
    spawn_with(runtime, "simple-docs", &text).await.unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(TIMEOUT)
        .build()
        .unwrap()
}

/// Whether something listens on `ip:port`.
async fn reachable(ip: &str, port: u16) -> bool {
    tokio::net::TcpStream::connect((ip, port)).await.is_ok()
}

/// Rules 10 and 11 through a `theater:simple` actor: documents stored
/// under names with slashes in a store named, not made, and read back
/// through a catch-all route; the exact route beside it still wins.
#[tokio::test]
async fn catch_all_routes_serve_a_named_store() {
    let runtime = runtime();
    let docs = docs(&runtime).await;
    let port = docs_server(&docs).await;
    let base = format!("http://127.0.0.1:{port}/docs");
    let http = client();
    let put = http
        .put(format!("{base}/guide/getting-started"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let put: Value = serde_json::from_str(&put.text().await.unwrap()).unwrap();
    assert_eq!(put["name"], "guide/getting-started");
    let get = http
        .get(format!("{base}/guide/getting-started"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.text().await.unwrap(), "hello");
    let list = http.get(&base).send().await.unwrap().text().await.unwrap();
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list, json!(["guide/getting-started"]));
    let missing = http.get(format!("{base}/no/such")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.text().await.unwrap(), "no document `no/such`");
    // A catch-all needs at least one segment.
    let bare = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(bare.status(), 404);
    assert_eq!(bare.text().await.unwrap(), "");
    assert!(
        calls(&runtime, docs.id())
            .iter()
            .all(|f| f == "theater:simple/http-handlers.handle-request")
    );
    runtime.verify(docs.id()).await.unwrap();
}

/// Rule 12: an actor asking for `0.0.0.0` gets loopback unless the
/// runtime allows public binds; with the option it gets what it asked.
#[tokio::test]
async fn a_public_bind_is_narrowed_to_loopback_unless_allowed() {
    let runtime = runtime();
    let narrowed = docs(&runtime).await;
    let port = docs_server(&narrowed).await;
    assert!(reachable("127.0.0.1", port).await);
    if cfg!(target_os = "linux") {
        // All of 127/8 is loopback on Linux: only a wildcard bind answers here.
        assert!(!reachable("127.0.0.2", port).await);
    }

    let mut config = RuntimeConfig::ephemeral();
    config.home = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("theater-home"));
    config.public_http = true;
    let public = TheaterRuntime::new(config).unwrap();
    let wide = docs(&public).await;
    let port = docs_server(&wide).await;
    assert!(reachable("127.0.0.1", port).await);
    if cfg!(target_os = "linux") {
        assert!(reachable("127.0.0.2", port).await);
    }
    let logs = |runtime: &TheaterRuntime, actor: &ActorHandle| -> String {
        records(runtime, actor.id(), record::LOG)
            .iter()
            .map(|d| d["message"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(logs(&public, &wide).contains("http://0.0.0.0:"));
    assert!(logs(&runtime, &narrowed).contains("http://127.0.0.1:"));
}

/// Rule 9: a manifest in the 2025 form, its handler settings inline: the
/// `timing` limits it sets are the ones enforced.
#[tokio::test]
async fn inline_handler_settings_of_a_2025_manifest_apply() {
    let runtime = runtime();
    let timer = spawn(&runtime, "simple-timer").await;
    let manifest = runtime.manifest(timer.id()).unwrap();
    assert!(manifest.warnings.is_empty(), "{:?}", manifest.warnings);
    assert!(manifest.long_description.is_some());
    let refused = failure(request(&timer, json!({ "nap": 5000 })).await);
    assert!(refused.contains("1000"), "{refused}");
    assert_eq!(
        request(&timer, json!({ "naps": null })).await.unwrap(),
        json!({ "naps": 0 })
    );
    chain::verify(&runtime.chain(timer.id()).unwrap()).unwrap();
}

/// Rule 9: paths in a 2025 manifest are relative to the manifest file,
/// the filesystem handler's `path` included.
#[tokio::test]
async fn paths_of_a_2025_manifest_are_relative_to_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let component = actors_dir().join("file-notes/file-notes.wasm");
    std::fs::copy(&component, dir.path().join("notes.wasm")).unwrap();
    let text = "name = \"notes\"\ncomponent = \"notes.wasm\"\n[[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"filesystem\"\npath = \"data\"\n";
    std::fs::write(dir.path().join("manifest.toml"), text).unwrap();
    let runtime = runtime();
    let notes = runtime
        .spawn_file(dir.path().join("manifest.toml"))
        .await
        .unwrap();
    let write = json!({ "write_path": { "path": "hello.txt", "text": "hi" } });
    request(&notes, write).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/hello.txt")).unwrap(),
        "hi"
    );
}

/// Chains of `theater:simple` actors replay: calls are found under the
/// names the chain gives them, host calls under their canonical names, and
/// a chain that begins with what `init` logged, and ends with `shutdown`,
/// replays from the state it was spawned with, `init` included.
#[tokio::test]
async fn actors_built_against_theater_simple_replay() {
    let runtime = runtime();
    let timer = spawn(&runtime, "simple-timer").await;
    request(&timer, json!({ "nap": 1 })).await.unwrap();
    request(&timer, json!({ "nap": 2 })).await.unwrap();
    let quitter = spawn(&runtime, "simple-quitter").await;
    quitter.stopped().await;
    for (id, calls) in [(timer.id(), 3), (quitter.id(), 1)] {
        let report = runtime.replay(id).await.unwrap();
        assert_eq!(report.divergence, None, "{id}");
        assert!(report.stopped_at.is_none(), "{id}: {:?}", report.stopped_at);
        assert_eq!(report.calls, calls, "{id}");
    }
}
