//! Shared set-up for integration tests: real actors built by
//! `cargo xtask build-actors`, a real runtime, temp dirs for files.

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};

use serde_json::Value;
use theater::chain::{ChainEvent, record};
use theater::host::HANDLE_REQUEST;
use theater::{ActorError, ActorHandle, ActorId, Manifest, RuntimeConfig, TheaterRuntime};

/// The `actors/` directory.
pub fn actors_dir() -> PathBuf {
    std::env::var_os("THEATER_ACTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../actors"))
}

/// The manifest of the actor `name`, checking its component was built.
pub fn manifest_path(name: &str) -> PathBuf {
    let dir = actors_dir().join(name);
    let component = dir.join(format!("{name}.wasm"));
    assert!(
        component.exists(),
        "{} is missing: run `cargo xtask build-actors` (or `cargo xtask test`)",
        component.display()
    );
    dir.join("manifest.toml")
}

/// A runtime whose compiled-component cache is shared by all tests.
pub fn runtime() -> TheaterRuntime {
    let mut config = RuntimeConfig::ephemeral();
    config.home = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("theater-home"));
    TheaterRuntime::new(config).expect("runtime starts")
}

/// The example supervisor with `config` (a TOML inline table) for its
/// supervisor handler.
pub async fn supervisor_with(runtime: &TheaterRuntime, config: &str) -> ActorHandle {
    let text = format!(
        "name = \"supervisor\"\ncomponent_path = \"supervisor.wasm\"\n\
         [[handlers]]\ntype = \"supervisor\"\nconfig = {config}\n"
    );
    spawn_with(runtime, "supervisor", &text).await.unwrap()
}

/// A supervisor that never restarts a failed child and may spawn any
/// example actor.
pub async fn strict_supervisor(runtime: &TheaterRuntime) -> ActorHandle {
    supervisor_with(runtime, r#"{ restart = "never", spawn_from = [".."] }"#).await
}

/// Spawns the example actor `name` with its own manifest.
pub async fn spawn(runtime: &TheaterRuntime, name: &str) -> ActorHandle {
    runtime
        .spawn_file(manifest_path(name))
        .await
        .expect("actor spawns")
}

/// Spawns the component of actor `name` under `manifest_text` (its
/// `component_path` is rewritten to the built component).
pub async fn spawn_with(
    runtime: &TheaterRuntime,
    name: &str,
    manifest_text: &str,
) -> Result<ActorHandle, theater::SpawnError> {
    let manifest = manifest_for(name, manifest_text);
    runtime.spawn(&manifest).await
}

/// An actor that spins in every call until its `call_timeout_ms`, with
/// room for two calls queued behind the running one.
pub async fn spinning(runtime: &TheaterRuntime, call_timeout_ms: u64) -> ActorHandle {
    let manifest = format!(
        "name = \"busy\"\ncomponent_path = \"infinite-loop.wasm\"\n\
         [limits]\ncall_timeout_ms = {call_timeout_ms}\nqueue_capacity = 2\n"
    );
    spawn_with(runtime, "infinite-loop", &manifest)
        .await
        .expect("spawn the spinning actor")
}

/// Parses `manifest_text` as if it sat in the directory of actor `name`.
pub fn manifest_for(name: &str, manifest_text: &str) -> Manifest {
    let dir = manifest_path(name).parent().unwrap().to_owned();
    Manifest::parse(manifest_text, &dir.join("test-manifest.toml"), &dir)
        .expect("test manifest parses")
}

pub fn json(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

/// Sends `request` (JSON) to `actor` and parses its JSON reply.
pub async fn request(actor: &ActorHandle, request: Value) -> Result<Value, ActorError> {
    let (reply,) = actor
        .call_function::<(Vec<u8>,), (Vec<u8>,)>(
            HANDLE_REQUEST,
            (request.to_string().into_bytes(),),
        )
        .await?;
    Ok(serde_json::from_slice(&reply).expect("the actor answers JSON"))
}

/// The message of a call that failed with `Err` from the actor.
pub fn failure(result: Result<Value, ActorError>) -> String {
    match result {
        Err(ActorError::Failed { message, .. }) => message,
        other => panic!("expected the actor to answer Err, got {other:?}"),
    }
}

/// The data of each event of `event_type` in `actor`'s chain, oldest
/// first; checks that the chain verifies.
pub fn records(runtime: &TheaterRuntime, actor: ActorId, event_type: &str) -> Vec<Value> {
    let events = runtime.chain(actor).expect("the chain is readable");
    theater::chain::verify(&events).expect("the chain verifies");
    events
        .iter()
        .filter(|event| event.event_type == event_type)
        .map(data)
        .collect()
}

/// The data of each `host-call` event of `function` in the actor's chain,
/// oldest first; checks that the chain verifies.
pub fn host_calls(runtime: &TheaterRuntime, actor: &ActorHandle, function: &str) -> Vec<Value> {
    let mut calls = records(runtime, actor.id(), record::HOST_CALL);
    calls.retain(|data| data["function"] == function);
    calls
}

/// An event's data, as JSON.
pub fn data(event: &ChainEvent) -> Value {
    serde_json::from_str(event.data.get()).expect("event data is JSON")
}

/// How long [`eventually`] waits: generous, so a loaded machine does not
/// fail a test that would pass.
pub const EVENTUALLY: std::time::Duration = std::time::Duration::from_secs(10);

/// Polls `check` until it finds something, failing after [`EVENTUALLY`].
pub async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let started = std::time::Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(started.elapsed() < EVENTUALLY, "never happened: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A management server for `runtime` on a free loopback port, serving in
/// the background; its address.
pub async fn serve(
    runtime: TheaterRuntime,
    config: theater::server::ServerConfig,
) -> std::net::SocketAddr {
    let server = theater::server::Server::bind(runtime, "127.0.0.1:0", config)
        .await
        .expect("the server binds");
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve());
    addr
}
