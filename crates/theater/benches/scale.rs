//! How many idle actors one runtime holds, and what they cost. Run with
//! `cargo bench -p theater --bench scale` (or `cargo xtask bench`).
//!
//! Spawns [`ACTORS`] idle `counter` actors into one runtime (in-memory
//! chains), one after the other, then calls one of them. Prints the time
//! per spawn, the resident memory and memory mappings each idle actor adds,
//! and the cost of a recorded call with all of them alive against the same
//! call with one actor alive, as `ratio scale_call`.
//!
//! `THEATER_SCALE_ACTORS` sets another number of actors.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};
use support::{counter_manifest, rss_bytes};

use theater::host::HANDLE_SEND;
use theater::wasm::Bytes;
use theater::{ActorHandle, RuntimeConfig, TheaterRuntime};
use tokio::runtime::Runtime;

/// Idle actors alive at once: the scale the runtime is built for.
const ACTORS: usize = 100_000;
/// Rounds of calls timed per figure; the median is reported.
const ROUNDS: usize = 7;
/// Calls per round.
const CALLS: u32 = 2000;
/// Progress is printed every so many spawns.
const PROGRESS_EVERY: usize = 20_000;
const MESSAGE: &[u8] = br#"{"add":1}"#;

fn main() {
    let actors = std::env::var("THEATER_SCALE_ACTORS")
        .ok()
        .map(|n| n.parse().expect("THEATER_SCALE_ACTORS is a number"))
        .unwrap_or(ACTORS);
    let manifest = counter_manifest();
    let rt = Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let runtime = TheaterRuntime::new(RuntimeConfig::ephemeral()).expect("runtime");
        let first = runtime.spawn(&manifest).await.expect("spawn");
        let alone = call_cost(&first).await;

        let (rss, maps) = (rss_bytes(), mappings());
        let start = Instant::now();
        let mut idle = Vec::with_capacity(actors);
        for n in 1..actors {
            match runtime.spawn(&manifest).await {
                Ok(actor) => idle.push(actor),
                Err(e) => panic!("spawn {n} of {actors} failed: {e}"),
            }
            if n % PROGRESS_EVERY == 0 {
                eprintln!("  {n} actors, {:.1?}", start.elapsed());
            }
        }
        let took = start.elapsed();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let spawned = (actors - 1) as f64;
        let rss_per_actor = (rss_bytes() - rss) / spawned;
        let maps_per_actor = (mappings() - maps) as f64 / spawned;

        let crowded = call_cost(&first).await;
        let last = idle.last().unwrap_or(&first);
        send(last).await;
        println!(
            "scale: {actors} idle counter actors in one runtime: spawned in {:.1} s \
             ({:.1} µs each), {:.1} KiB resident and {maps_per_actor:.2} memory mappings each",
            took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / spawned,
            rss_per_actor / 1024.0,
        );
        println!(
            "scale_call: {:.2} µs/call with {actors} actors alive, {:.2} µs/call with 1",
            micros(crowded),
            micros(alone)
        );
        println!(
            "ratio scale_call = {:.2}",
            crowded.as_secs_f64() / alone.as_secs_f64()
        );
    });
}

/// Median cost of one recorded `handle-send` to `actor`.
async fn call_cost(actor: &ActorHandle) -> Duration {
    send(actor).await;
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..CALLS {
            send(actor).await;
        }
        rounds.push(start.elapsed() / CALLS);
    }
    rounds.sort();
    rounds[ROUNDS / 2]
}

async fn send(actor: &ActorHandle) {
    actor
        .call_function::<(Bytes,), ()>(HANDLE_SEND, (Bytes(MESSAGE.to_vec()),))
        .await
        .expect("handle-send");
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Memory mappings of this process: the lines of `/proc/self/maps`.
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps")
        .lines()
        .count()
}
