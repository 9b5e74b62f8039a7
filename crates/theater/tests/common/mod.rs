//! Shared set-up for integration tests: real actors built by
//! `cargo xtask build-actors`, a real runtime, temp dirs for files.

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};

use theater::{ActorHandle, Manifest, RuntimeConfig, TheaterRuntime};

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

/// Parses `manifest_text` as if it sat in the directory of actor `name`.
pub fn manifest_for(name: &str, manifest_text: &str) -> Manifest {
    let dir = manifest_path(name).parent().unwrap().to_owned();
    Manifest::parse(manifest_text, &dir.join("test-manifest.toml"), &dir)
        .expect("test manifest parses")
}

pub fn json(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}
