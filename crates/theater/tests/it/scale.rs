//! 100,000 idle actors in one runtime. Ignored by default: it takes
//! minutes and several GiB of memory. `cargo xtask bench` runs the `scale`
//! bench, which does the same and times it; run this one with
//! `cargo test --release -p theater --test it scale -- --ignored`.

use serde_json::json;
use theater::Manifest;

use crate::common::{manifest_path, request, runtime};

/// The number of idle actors one runtime is meant to hold.
const ACTORS: usize = 100_000;

/// Either every actor starts, or spawning stops with an error that names
/// the process limit reached; either way the first actor still answers.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "spawns 100,000 actors: minutes and several GiB"]
async fn a_hundred_thousand_idle_actors_in_one_runtime() {
    let runtime = runtime();
    let manifest = Manifest::load(manifest_path("counter")).unwrap();
    let mut actors = Vec::with_capacity(ACTORS);
    let mut refused = None;
    for _ in 0..ACTORS {
        match runtime.spawn(&manifest).await {
            Ok(actor) => actors.push(actor),
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
        }
    }
    if let Some(refused) = refused {
        assert!(
            refused.contains("the process is out of memory mappings (vm.max_map_count = "),
            "spawn {} failed without naming the limit: {refused}",
            actors.len() + 1
        );
    }
    let first = actors.first().expect("the first actor spawns");
    let reply = request(first, json!({}))
        .await
        .expect("the first actor answers");
    assert_eq!(reply, json!({"count": 0}), "{} actors alive", actors.len());
}
