//! What the bench binaries share: the example actors' manifests, the
//! process's resident memory, and the plain-wasmtime baseline.

#![allow(dead_code)] // each bench uses a different subset

pub mod raw;

use std::path::PathBuf;
use std::time::Instant;

use theater::host::HANDLE_SEND;
use theater::wasm::Bytes;
use theater::{ActorHandle, Manifest};

/// The manifest of example actor `name` (`actors/<name>/manifest.toml`,
/// or under `$THEATER_ACTORS_DIR`), or exits saying how to build it.
pub fn actor_manifest(name: &str) -> Manifest {
    let dir = std::env::var_os("THEATER_ACTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../actors")));
    let actor = dir.join(name);
    let wasm = actor.join(format!("{name}.wasm"));
    if !wasm.is_file() {
        eprintln!(
            "{} is missing: run `cargo xtask build-actors` first, or use `cargo xtask bench`",
            wasm.display()
        );
        std::process::exit(1);
    }
    Manifest::load(actor.join("manifest.toml")).expect("actor manifest")
}

/// The counter's manifest.
pub fn counter_manifest() -> Manifest {
    actor_manifest("counter")
}

/// Resident set size of this process, from `/proc/self/statm` (4 KiB pages).
pub fn rss_bytes() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("resident pages in statm");
    pages * 4096.0
}

/// One `{"add":1}` to a counter's `handle-send`.
pub async fn add_one(counter: &ActorHandle) {
    counter
        .call_function::<(Bytes,), ()>(HANDLE_SEND, (Bytes(br#"{"add":1}"#.to_vec()),))
        .await
        .expect("handle-send");
}

/// Adds one to each counter in a loop, each counter from its own task,
/// until `deadline`; how many calls were made in all.
pub async fn add_until(counters: &[ActorHandle], deadline: Instant) -> u64 {
    let tasks: Vec<_> = counters
        .iter()
        .cloned()
        .map(|counter| {
            tokio::spawn(async move {
                let mut calls = 0u64;
                while Instant::now() < deadline {
                    add_one(&counter).await;
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let mut calls = 0;
    for task in tasks {
        calls += task.await.expect("caller task");
    }
    calls
}
