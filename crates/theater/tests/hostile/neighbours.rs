//! Noisy neighbours: actors stuck in infinite loops must not starve the
//! others of the runtime's threads, nor the server of its sockets.

use std::time::{Duration, Instant};

use theater::server::protocol::{Op, Payload};
use theater::server::{Client, ServerConfig};
use theater::{RuntimeConfig, TheaterRuntime};

use crate::common;
use crate::common::{manifest_for, manifest_path};

/// Busy actors: two per worker thread of the test's runtime.
const LOOPERS: usize = 4;
/// Requests the neighbour must answer while they spin.
const REQUESTS: usize = 50;
/// Generous: an answer takes about a millisecond when nothing spins, and
/// the benchmark (`benches/neighbours.rs`) expects a p99 of 25 ms.
const SLOWEST_ALLOWED: Duration = Duration::from_millis(500);

/// `infinite-loop` whose calls outlive the test.
const LOOPER: &str = "name = \"looper\"\ncomponent_path = \"infinite-loop.wasm\"\n[limits]\ncall_timeout_ms = 60000\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_neighbour_keeps_answering_over_the_network_while_four_actors_spin() {
    let home = tempfile::tempdir().unwrap();
    let runtime = TheaterRuntime::new(RuntimeConfig::at(home.path()).unwrap()).unwrap();
    let neighbour = runtime
        .spawn_file(manifest_path("ping-pong"))
        .await
        .unwrap();
    let addr = common::serve(runtime.clone(), ServerConfig::default())
        .await
        .to_string();
    let looper = manifest_for("infinite-loop", LOOPER);
    for _ in 0..LOOPERS {
        let actor = runtime.spawn(&looper).await.unwrap();
        runtime
            .send(None, actor.id(), b"spin".to_vec())
            .await
            .unwrap();
    }

    // The client runs on its own thread, as a real one would.
    let actor = neighbour.id().to_string();
    let times = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut client = Client::connect(&addr, None).await.unwrap();
            let mut times = Vec::new();
            for _ in 0..REQUESTS {
                let op = Op::Request {
                    actor: actor.clone(),
                    payload: Payload::json("ping".into()),
                    timeout_ms: None,
                };
                let start = Instant::now();
                let answer = client.call(op).await.unwrap();
                times.push(start.elapsed());
                assert_eq!(answer["reply"], "pong", "{answer}");
            }
            times
        })
    })
    .join()
    .unwrap();

    let slowest = times.iter().max().unwrap();
    assert!(
        *slowest < SLOWEST_ALLOWED,
        "with {LOOPERS} actors spinning, the slowest of {REQUESTS} answers took {slowest:?}"
    );
    // The loopers were spinning the whole time.
    for actor in runtime.actors() {
        if actor.name() == "looper" {
            assert_eq!(
                actor
                    .counters()
                    .calls_ok
                    .load(std::sync::atomic::Ordering::Relaxed),
                0
            );
            assert_eq!(actor.queue_depth(), 0);
        }
    }
}
