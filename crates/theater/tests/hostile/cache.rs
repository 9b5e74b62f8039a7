//! Item 13: someone who can write under `$THEATER_HOME/cache` tries to make
//! the runtime load native code of their choosing: a changed entry, another
//! component's entry in its place, and a cache directory others may write.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};
use theater::{ActorHandle, RuntimeConfig, TheaterRuntime};

use crate::common::{manifest_path, request};

/// A runtime whose home is `home`, with a cache of its own.
fn runtime_at(home: &Path) -> TheaterRuntime {
    let mut config = RuntimeConfig::ephemeral();
    config.home = Some(home.to_owned());
    TheaterRuntime::new(config).unwrap()
}

async fn spawn_in(home: &Path, actor: &str) -> ActorHandle {
    runtime_at(home)
        .spawn_file(manifest_path(actor))
        .await
        .expect("the actor spawns")
}

/// The cache entry of actor `name`'s component.
fn entry_of(home: &Path, name: &str) -> PathBuf {
    let component = manifest_path(name).with_file_name(format!("{name}.wasm"));
    let hash = hex::encode(Sha256::digest(std::fs::read(component).unwrap()));
    let engines: Vec<_> = std::fs::read_dir(home.join("cache"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    assert_eq!(engines.len(), 1, "{engines:?}");
    engines[0].join(format!("{hash}.cwasm"))
}

/// Asserts `counter` runs the counter's code, not anything put in its place.
async fn assert_is_counter(counter: &ActorHandle) {
    assert_eq!(
        request(counter, json!({})).await.unwrap(),
        json!({ "count": 0 })
    );
}

#[tokio::test]
async fn another_components_artifact_in_an_entrys_place_is_not_loaded() {
    let home = tempfile::tempdir().unwrap();
    spawn_in(home.path(), "counter").await;
    spawn_in(home.path(), "echo").await;
    let (counter, echo) = (
        entry_of(home.path(), "counter"),
        entry_of(home.path(), "echo"),
    );
    // Valid compiled code for this engine, of another component.
    std::fs::copy(&echo, &counter).unwrap();

    assert_is_counter(&spawn_in(home.path(), "counter").await).await;
    let rewritten = std::fs::read(&counter).unwrap();
    assert!(rewritten != std::fs::read(&echo).unwrap(), "not recompiled");

    // The entry written again is a normal cache hit from now on.
    let written = std::fs::metadata(&counter).unwrap().modified().unwrap();
    assert_is_counter(&spawn_in(home.path(), "counter").await).await;
    assert_eq!(
        std::fs::metadata(&counter).unwrap().modified().unwrap(),
        written,
        "a good entry was compiled again"
    );
}

#[tokio::test]
async fn an_entry_with_flipped_bytes_is_not_loaded() {
    let home = tempfile::tempdir().unwrap();
    spawn_in(home.path(), "counter").await;
    let entry = entry_of(home.path(), "counter");
    let mut tampered = std::fs::read(&entry).unwrap();
    // A byte in the code, and one at the end.
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x40;
    *tampered.last_mut().unwrap() ^= 1;
    std::fs::write(&entry, &tampered).unwrap();

    assert_is_counter(&spawn_in(home.path(), "counter").await).await;
    assert!(std::fs::read(&entry).unwrap() != tampered, "not recompiled");
}

#[tokio::test]
async fn a_cache_other_users_may_write_is_not_used() {
    let home = tempfile::tempdir().unwrap();
    spawn_in(home.path(), "counter").await;
    let entry = entry_of(home.path(), "counter");
    let cache = home.path().join("cache");
    std::fs::remove_file(&entry).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();

    // The actor runs, compiled afresh, and nothing is read from or
    // written to a directory anyone could have filled.
    assert_is_counter(&spawn_in(home.path(), "counter").await).await;
    assert!(!entry.exists(), "wrote into a cache others may write");
    assert_eq!(
        std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o777,
        "the runtime must not quietly change the operator's permissions"
    );
}

#[test]
fn a_new_home_is_private_to_its_user() {
    let scratch = tempfile::tempdir().unwrap();
    let home = scratch.path().join("a/home");
    drop(RuntimeConfig::at(&home).unwrap());
    for dir in [&home, &home.with_file_name("")] {
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
}
