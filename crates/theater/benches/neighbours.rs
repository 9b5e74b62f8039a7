//! How much actors stuck in infinite loops slow their neighbours. Run with
//! `cargo xtask bench`.
//!
//! A management server on a durable home, on a tokio runtime with
//! [`WORKERS`] worker threads (as on a 2-core machine), serves a
//! `ping-pong` neighbour. A client on its own thread sends it `request
//! "ping"` one after the other and times each answer, first with no busy
//! actor, then with [`LOOPERS`] actors each running a call that never
//! returns. Prints p50 / p99 / max per phase: the loopers should cost the
//! neighbour little, since every call yields its thread often
//! (`docs/benchmarks.md`). Everything runs twice: with the chain database
//! `fsync`ed on every call (the default) and buffered, which shows the
//! share of the disk in the figures.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use theater::server::protocol::{Op, Payload};
use theater::server::{Client, Server, ServerConfig};
use theater::storage::{Durability, LogOptions};
use theater::{Manifest, RuntimeConfig, TheaterRuntime};

/// Worker threads of the server's runtime.
const WORKERS: usize = 2;
/// Busy actors in the loaded phase.
const LOOPERS: usize = 4;
/// Requests timed per phase...
const REQUESTS: usize = 500;
/// ...unless the phase has run this long.
const PHASE_LIMIT: Duration = Duration::from_secs(30);
/// Long enough for every phase: a looper's call must outlive the bench.
const LOOPER_TIMEOUT_MS: u64 = 120_000;

fn main() {
    println!(
        "neighbour latency bench: `request \"ping\"` to a neighbour over the management protocol, {WORKERS} worker threads"
    );
    for (mode, durability) in [
        ("durable", Durability::Durable),
        (
            "buffered",
            Durability::Buffered {
                max_unsynced: Duration::from_secs(1),
            },
        ),
    ] {
        let options = LogOptions {
            durability,
            ..LogOptions::default()
        };
        phases(mode, options);
    }
}

/// Times the neighbour with no looper, then with [`LOOPERS`], on a fresh
/// home whose chain database is opened with `options`.
fn phases(mode: &str, options: LogOptions) {
    let home = tempfile::tempdir().expect("temp home");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (runtime, addr, neighbour) = rt.block_on(async {
        let config = RuntimeConfig::at_with(home.path(), options).expect("runtime config");
        let runtime = TheaterRuntime::new(config).expect("runtime");
        let neighbour = runtime
            .spawn_file(actor_dir("ping-pong").join("manifest.toml"))
            .await
            .expect("ping-pong spawns");
        let server = Server::bind(runtime.clone(), "127.0.0.1:0", ServerConfig::default())
            .await
            .expect("server binds");
        let addr = server.local_addr().expect("address").to_string();
        tokio::spawn(server.serve());
        (runtime, addr, neighbour.id().to_string())
    });

    report(mode, 0, &time_requests(&addr, &neighbour));
    let looper = looper_manifest();
    rt.block_on(async {
        for _ in 0..LOOPERS {
            let actor = runtime.spawn(&looper).await.expect("looper spawns");
            runtime
                .send(None, actor.id(), b"spin".to_vec())
                .await
                .expect("the looper takes its message");
        }
    });
    report(mode, LOOPERS, &time_requests(&addr, &neighbour));
    // The loopers are still running: leave them to the runtime's shutdown.
    rt.shutdown_timeout(Duration::from_secs(1));
}

/// Times `request "ping"` from a client on its own thread.
fn time_requests(addr: &str, actor: &str) -> Vec<Duration> {
    let (addr, actor) = (addr.to_owned(), actor.to_owned());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("client runtime");
        rt.block_on(async {
            let mut client = Client::connect(&addr, None).await.expect("client connects");
            let started = Instant::now();
            let mut times = Vec::with_capacity(REQUESTS);
            while times.len() < REQUESTS && started.elapsed() < PHASE_LIMIT {
                let op = Op::Request {
                    actor: actor.clone(),
                    payload: Payload::json("ping".into()),
                    timeout_ms: None,
                };
                let start = Instant::now();
                let answer = client.call(op).await.expect("the neighbour answers");
                times.push(start.elapsed());
                assert_eq!(answer["reply"], "pong", "{answer}");
            }
            times
        })
    })
    .join()
    .expect("client thread")
}

fn report(mode: &str, loopers: usize, times: &[Duration]) {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{mode} log, {loopers} looping actors: neighbour p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} requests)",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0)),
        sorted.len()
    );
}

fn actor_dir(name: &str) -> PathBuf {
    let dir = std::env::var_os("THEATER_ACTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../actors")))
        .join(name);
    assert!(
        dir.join(format!("{name}.wasm")).exists(),
        "actors/{name} is not built: run `cargo xtask build-actors`"
    );
    dir
}

/// `infinite-loop` with a time limit longer than the bench.
fn looper_manifest() -> Manifest {
    let dir = actor_dir("infinite-loop");
    let text = format!(
        "name = \"looper\"\ncomponent_path = \"infinite-loop.wasm\"\n[limits]\ncall_timeout_ms = {LOOPER_TIMEOUT_MS}\n"
    );
    Manifest::parse(&text, &dir.join("bench-manifest.toml"), &dir).expect("looper manifest")
}
