//! Theater on a cluster against Theater on one machine. Run with
//! `cargo bench -p theater --bench cluster` (or `cargo xtask bench`, which
//! installs `nats-server`).
//!
//! The bench starts a three-server NATS cluster with JetStream on
//! loopback (replicas 3) and runs two nodes in this process:
//!
//! 1. Requests: a client of node n1 asks a `messenger` for `"ping"`, once
//!    on n2 (over NATS) and once on n1 (in the process):
//!    `ratio cross_node_request = remote / local`, per request.
//! 2. Acknowledged calls: `counter` actors called (`handle-send`) in a
//!    loop, each by its own task, 1 and 64 at once, on a node whose chains
//!    are replicated (and kept in its own durable home), against a runtime
//!    with only the durable home: `ratio cluster_call_1` and
//!    `ratio cluster_call_64`, per call.
//!
//! Failover time is measured by `cargo bench -p theater-cli --bench
//! failover`, which kills real `theater server` processes.

#[path = "../tests/nats/mod.rs"]
mod nats;
#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nats::NatsCluster;
use theater::cluster::{Cluster, ClusterConfig, NodeInfo};
use theater::storage::ReplicatedLog;
use theater::{ActorHandle, ActorId, Manifest, RuntimeConfig, TheaterRuntime};
use tokio::runtime::Runtime;

/// Rounds per figure; the median is reported.
const ROUNDS: usize = 3;
/// How long one round runs.
const ROUND_TIME: Duration = Duration::from_millis(1500);
/// The concurrent case: actors called at once.
const MANY: usize = 64;

fn main() {
    let Some(nats) = NatsCluster::start() else {
        println!(
            "cluster: skipped, no nats-server 2.10 or later (`cargo xtask bench` installs it)"
        );
        return;
    };
    let rt = Runtime::new().expect("tokio runtime");
    let cache = tempfile::tempdir().expect("temp dir");
    rt.block_on(async {
        let n1 = join(&nats, "n1").await;
        let n2 = join(&nats, "n2").await;
        requests(&n1, &n2, cache.path()).await;
        calls(&n1, cache.path()).await;
    });
}

async fn join(nats: &NatsCluster, node: &str) -> Cluster {
    let mut config = ClusterConfig::new(nats.urls.clone(), node);
    config.replicas = 3;
    Cluster::join(config, NodeInfo::default)
        .await
        .expect("joining the cluster")
}

/// A runtime with a durable home in `home` (and compiled components in
/// `cache`), a node of `cluster` if one is given.
fn runtime(home: &Path, cache: &Path, cluster: Option<&Cluster>) -> TheaterRuntime {
    let mut config = RuntimeConfig::at(home).expect("runtime home");
    config.home = Some(cache.to_owned());
    if let Some(cluster) = cluster {
        let local = config.event_log.clone();
        config.event_log = Arc::new(ReplicatedLog::new(local, cluster));
        config.cluster = Some(cluster.clone());
    }
    TheaterRuntime::new(config).expect("theater runtime")
}

/// Spawns `manifest` on `runtime` and, on a node, claims it there, as
/// `theater start` does.
async fn start(
    runtime: &TheaterRuntime,
    node: Option<&Cluster>,
    manifest: &Manifest,
) -> ActorHandle {
    let actor = runtime.spawn(manifest).await.expect("spawn");
    if let Some(node) = node {
        node.claim(&actor.id().to_string()).await.expect("claim");
    }
    actor
}

async fn requests(n1: &Cluster, n2: &Cluster, cache: &Path) {
    let (home1, home2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (r1, r2) = (
        runtime(home1.path(), cache, Some(n1)),
        runtime(home2.path(), cache, Some(n2)),
    );
    let messenger = support::actor_manifest("messenger");
    let local = start(&r1, Some(n1), &messenger).await.id();
    let remote = start(&r2, Some(n2), &messenger).await.id();
    let ping = |to: ActorId| {
        let r1 = r1.clone();
        async move {
            let reply = r1
                .request(None, to, br#""ping""#.to_vec(), Duration::from_secs(5))
                .await
                .expect("request");
            assert_eq!(reply, br#""pong""#);
        }
    };
    // Warm: the remote owner is looked up once and remembered.
    ping(remote).await;
    ping(local).await;
    let per = |to: ActorId| {
        median(move || async move {
            let (start, mut n) = (Instant::now(), 0u32);
            while start.elapsed() < ROUND_TIME {
                ping(to).await;
                n += 1;
            }
            start.elapsed() / n
        })
    };
    let remote = per(remote).await;
    let local = per(local).await;
    println!(
        "cross-node request: {} per request ({:.0}/s) vs in-process {} ({:.0}/s)",
        micros(remote),
        rate(remote),
        micros(local),
        rate(local)
    );
    println!("ratio cross_node_request = {:.2}", ratio(remote, local));
    r1.shutdown().await;
    r2.shutdown().await;
}

async fn calls(node: &Cluster, cache: &Path) {
    let counter = support::counter_manifest();
    for actors in [1, MANY] {
        let home = tempfile::tempdir().unwrap();
        let on_node = runtime(home.path(), cache, Some(node));
        let clustered = call_cost(on_node, Some(node), &counter, actors).await;
        let home = tempfile::tempdir().unwrap();
        let embedded = call_cost(runtime(home.path(), cache, None), None, &counter, actors).await;
        println!(
            "acknowledged calls, {actors} actors: replicated {:.0}/s vs durable home only {:.0}/s",
            rate(clustered),
            rate(embedded)
        );
        println!(
            "ratio cluster_call_{actors} = {:.2}",
            ratio(clustered, embedded)
        );
    }
}

/// Median time per call with `actors` counters called at once.
async fn call_cost(
    runtime: TheaterRuntime,
    node: Option<&Cluster>,
    counter: &Manifest,
    actors: usize,
) -> Duration {
    let mut handles = Vec::new();
    for _ in 0..actors {
        let actor = start(&runtime, node, counter).await;
        support::add_one(&actor).await;
        handles.push(actor);
    }
    let cost = median(|| {
        let handles = handles.clone();
        async move {
            let start = Instant::now();
            let calls = support::add_until(&handles, start + ROUND_TIME).await;
            start.elapsed() / calls as u32
        }
    })
    .await;
    runtime.shutdown().await;
    cost
}

/// The median of [`ROUNDS`] runs of `round`.
async fn median<F: Future<Output = Duration>>(mut round: impl FnMut() -> F) -> Duration {
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        rounds.push(round().await);
    }
    rounds.sort();
    rounds[ROUNDS / 2]
}

fn ratio(ours: Duration, baseline: Duration) -> f64 {
    ours.as_secs_f64() / baseline.as_secs_f64()
}

fn rate(per: Duration) -> f64 {
    1.0 / per.as_secs_f64()
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}
