//! Compiled components are cached on disk per engine and reused.

use crate::common;

use crate::common::manifest_path;
use theater::{RuntimeConfig, TheaterRuntime};

fn runtime_at(home: &std::path::Path) -> TheaterRuntime {
    let mut config = RuntimeConfig::ephemeral();
    config.home = Some(home.to_owned());
    TheaterRuntime::new(config).unwrap()
}

fn artifacts(home: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(home.join("cache")).unwrap() {
        // Beside the engine directories is the home's key.
        let engine_dir = entry.unwrap().path();
        if !engine_dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(engine_dir).unwrap() {
            found.push(file.unwrap().path());
        }
    }
    found
}

/// Spawns the counter in a fresh runtime at `home`.
async fn spawn_counter(home: &std::path::Path) -> theater::ActorHandle {
    runtime_at(home)
        .spawn_file(manifest_path("counter"))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_compiled_component_is_stored_and_reused() {
    let home = tempfile::tempdir().unwrap();
    spawn_counter(home.path()).await;
    let stored = artifacts(home.path());
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].extension().unwrap(), "cwasm");
    let written = std::fs::metadata(&stored[0]).unwrap().modified().unwrap();

    // A new runtime loads the artifact instead of compiling again.
    spawn_counter(home.path()).await;
    assert_eq!(
        std::fs::metadata(&stored[0]).unwrap().modified().unwrap(),
        written
    );
}

#[tokio::test]
async fn a_corrupt_artifact_is_recompiled() {
    let home = tempfile::tempdir().unwrap();
    spawn_counter(home.path()).await;
    let stored = artifacts(home.path());
    std::fs::write(&stored[0], b"garbage").unwrap();

    let actor = spawn_counter(home.path()).await;
    actor
        .call_function::<(Vec<u8>,), ()>(theater::host::HANDLE_SEND, (br#"{"add":1}"#.to_vec(),))
        .await
        .unwrap();
    assert!(
        std::fs::metadata(&stored[0]).unwrap().len() > 1000,
        "artifact rewritten"
    );
}

#[tokio::test]
async fn a_changed_component_file_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let actors = common::actors_dir();
    let wasm = dir.path().join("actor.wasm");
    let manifest = dir.path().join("manifest.toml");
    std::fs::write(
        &manifest,
        "name = \"swap\"\ncomponent_path = \"actor.wasm\"\n",
    )
    .unwrap();
    let runtime = runtime_at(dir.path());
    std::fs::copy(actors.join("counter/counter.wasm"), &wasm).unwrap();
    let counter = runtime.spawn_file(&manifest).await.unwrap();
    std::fs::copy(actors.join("echo/echo.wasm"), &wasm).unwrap();
    let echo = runtime.spawn_file(&manifest).await.unwrap();
    let ask = |actor: theater::ActorHandle| async move {
        let (reply,) = actor
            .call_function::<(Vec<u8>,), (Vec<u8>,)>(
                theater::host::HANDLE_REQUEST,
                (b"\"x\"".to_vec(),),
            )
            .await
            .unwrap();
        String::from_utf8(reply).unwrap()
    };
    assert_eq!(ask(counter).await, r#"{"count":0}"#);
    assert_eq!(ask(echo).await, r#""x""#);
}
