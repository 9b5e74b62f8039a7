//! Messages through the management protocol, against the same calls made
//! in-process on the same runtime in the same run.
//!
//! `cargo bench -p theater-cli --bench protocol` (needs the actors built:
//! `cargo xtask build-actors`). Loopback only; a fixed number of messages
//! per case, so it ends by itself.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use theater::host::HANDLE_REQUEST;
use theater::server::protocol::{Op, Payload};
use theater::server::{Client, Server, ServerConfig};
use theater::{ActorHandle, Manifest, RuntimeConfig, TheaterRuntime};

/// Messages per case; split evenly between the clients.
const MESSAGES: usize = 20_000;
const CLIENTS: [usize; 2] = [1, 8];

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let theater = TheaterRuntime::new(RuntimeConfig::ephemeral()).expect("a runtime");
    let server = Server::bind(theater.clone(), "127.0.0.1:0", ServerConfig::default())
        .await
        .expect("binding loopback");
    let addr = server.local_addr().expect("an address").to_string();
    tokio::spawn(server.serve());

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../actors/counter/manifest.toml");
    let mut manifest = Manifest::load(&path).expect("run `cargo xtask build-actors` first");
    // Room for every message of a case, so that no send is refused.
    manifest.limits.queue_capacity = MESSAGES * 2;

    println!(
        "{:<34} {:>8} {:>14} {:>14} {:>8}",
        "case", "clients", "acked msg/s", "done msg/s", "ratio"
    );
    for clients in CLIENTS {
        let actor = theater.spawn(&manifest).await.expect("counter starts");
        let direct = send_direct(&theater, &actor, clients).await;
        let actor = theater.spawn(&manifest).await.expect("counter starts");
        let protocol = send_protocol(&addr, &actor, clients).await;
        report("send, in-process (baseline)", clients, direct, direct.1);
        report("send, over the protocol", clients, protocol, direct.1);

        let actor = theater.spawn(&manifest).await.expect("counter starts");
        let direct = request_direct(&actor, clients).await;
        let protocol = request_protocol(&addr, &actor, clients).await;
        report(
            "request, in-process (baseline)",
            clients,
            (direct, direct),
            direct,
        );
        report(
            "request, over the protocol",
            clients,
            (protocol, protocol),
            direct,
        );
    }
}

fn report(case: &str, clients: usize, (acked, done): (f64, f64), baseline_done: f64) {
    println!(
        "{case:<34} {clients:>8} {acked:>14.0} {done:>14.0} {:>8.2}",
        done / baseline_done
    );
}

/// Waits until the actor has handled `expected` calls in all.
async fn settled(actor: &ActorHandle, expected: u64) {
    while actor.counters().calls_ok.load(Ordering::Relaxed)
        + actor.counters().calls_failed.load(Ordering::Relaxed)
        < expected
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// (acknowledged per second, handled per second)
async fn send_direct(theater: &TheaterRuntime, actor: &ActorHandle, clients: usize) -> (f64, f64) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let theater = theater.clone();
            let id = actor.id();
            tokio::spawn(async move {
                for _ in 0..MESSAGES / clients {
                    theater
                        .send(None, id, br#"{"add":1}"#.to_vec())
                        .await
                        .expect("queued");
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("sender ran");
    }
    let acked = start.elapsed();
    settled(actor, MESSAGES as u64).await;
    (rate(MESSAGES, acked), rate(MESSAGES, start.elapsed()))
}

async fn send_protocol(addr: &str, actor: &ActorHandle, clients: usize) -> (f64, f64) {
    let send = Op::Send {
        actor: actor.id().to_string(),
        payload: Payload::json(json!({ "add": 1 })),
    };
    let start = over_protocol(addr, clients, send).await;
    let acked = start.elapsed();
    settled(actor, MESSAGES as u64).await;
    (rate(MESSAGES, acked), rate(MESSAGES, start.elapsed()))
}

/// Sends `op` `MESSAGES` times, spread over `clients` connections made
/// beforehand, and waits for every answer; when the first was sent.
async fn over_protocol(addr: &str, clients: usize, op: Op) -> Instant {
    let mut connections = Vec::new();
    for _ in 0..clients {
        connections.push(Client::connect(addr, None).await.expect("connected"));
    }
    let start = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|mut client| {
            let op = op.clone();
            tokio::spawn(async move {
                for _ in 0..MESSAGES / clients {
                    client.call(op.clone()).await.expect("answered");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client ran");
    }
    start
}

async fn request_direct(actor: &ActorHandle, clients: usize) -> f64 {
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let actor = actor.clone();
            tokio::spawn(async move {
                for _ in 0..MESSAGES / clients {
                    actor
                        .call_function::<(Vec<u8>,), (Vec<u8>,)>(HANDLE_REQUEST, (b"{}".to_vec(),))
                        .await
                        .expect("answered");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("caller ran");
    }
    rate(MESSAGES, start.elapsed())
}

async fn request_protocol(addr: &str, actor: &ActorHandle, clients: usize) -> f64 {
    let request = Op::Request {
        actor: actor.id().to_string(),
        payload: Payload::json(json!({})),
        timeout_ms: None,
    };
    let start = over_protocol(addr, clients, request).await;
    rate(MESSAGES, start.elapsed())
}
