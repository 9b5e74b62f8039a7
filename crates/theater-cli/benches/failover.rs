//! Failover time: how long the actors of a killed node take to serve
//! again on the survivors, against how long the survivors take to see it
//! gone. Run with `cargo bench -p theater-cli --bench failover` (or
//! `cargo xtask bench`, which installs `nats-server` and builds the
//! actors).
//!
//! Three `theater server` processes (n1, n2, n3) join a three-server NATS
//! cluster with JetStream (replicas 3) on loopback, with 0.5 s heartbeats
//! and a 2 s node timeout. Each round starts [`ACTORS`] counters on n3,
//! kills n3 (`kill -9`) and, from the kill, measures:
//!
//! - `seen gone`: until n1's node list no longer has n3, the floor any
//!   failover waits for (n3's entry expires a node timeout after its last
//!   heartbeat, so up to one heartbeat before 2 s);
//! - `failover`: until n1's `list` shows every one of those actors running
//!   on n1 or n2.
//!
//! `ratio failover = failover / seen gone`, medians of [`ROUNDS`] rounds.
//! Then n3 starts again, on a new home, for the next round.

#[path = "../../theater/tests/nats/mod.rs"]
mod nats;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use nats::NatsCluster;
use serde_json::Value;
use theater::server::Client;
use theater::server::protocol::Op;

const BIN: &str = env!("CARGO_BIN_EXE_theater");
const ROUNDS: usize = 3;
/// Actors of the node that is killed, each round.
const ACTORS: usize = 40;
/// Longest a round may take before the bench gives up on it.
const ROUND_LIMIT: Duration = Duration::from_secs(60);
/// How often the survivors are asked.
const POLL: Duration = Duration::from_millis(20);

/// A `theater server` process, its address and its home.
type Node = (support::Killed, String, tempfile::TempDir);

/// Starts node `name` of the cluster.
fn start_node(nats: &NatsCluster, name: &str) -> Node {
    let home = support::home();
    let beats = support::Heartbeats {
        every_ms: 500,
        timeout_ms: 2000,
    };
    let args = support::cluster_args(&nats.url_list(), name, beats);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (child, addr) = support::spawn_server(BIN, home.path(), &args);
    (support::Killed(child), addr, home)
}

/// The answer to `op` from the node at `addr`.
async fn ask(addr: &str, op: Op) -> Value {
    let mut client = Client::connect(addr, None).await.expect("the node answers");
    client.call(op).await.expect("the operation succeeds")
}

/// The names of the live nodes, as the node at `addr` sees them.
async fn node_names(addr: &str) -> HashSet<String> {
    let nodes = ask(addr, Op::Nodes).await;
    let nodes = nodes["nodes"].as_array().cloned().unwrap_or_default();
    nodes
        .iter()
        .filter_map(|n| n["node"].as_str().map(str::to_owned))
        .collect()
}

/// The ids of every running actor of the cluster, as listed through `addr`.
async fn running(addr: &str) -> HashSet<String> {
    let list = ask(addr, Op::List { all: false }).await;
    let actors = list["actors"].as_array().cloned().unwrap_or_default();
    actors
        .iter()
        .filter_map(|a| a["id"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until the node at `addr` sees every node of `names`.
async fn sees_all(addr: &str, names: &[&str]) {
    let deadline = Instant::now() + ROUND_LIMIT;
    loop {
        let seen = node_names(addr).await;
        if names.iter().all(|n| seen.contains(*n)) {
            return;
        }
        assert!(Instant::now() < deadline, "the nodes do not see each other");
        tokio::time::sleep(POLL).await;
    }
}

/// Starts [`ACTORS`] counters on `node` through the node at `addr`.
async fn start_on(addr: &str, node: &str) -> Vec<String> {
    let manifest = support::manifest("counter").display().to_string();
    let mut ids = Vec::with_capacity(ACTORS);
    for _ in 0..ACTORS {
        let op = Op::Start {
            manifest_path: Some(manifest.clone()),
            manifest: None,
            base_dir: None,
            state: None,
            node: Some(node.to_owned()),
        };
        let started = ask(addr, op).await;
        ids.push(started["actor"].as_str().expect("an actor id").to_owned());
    }
    ids
}

/// Kills `victim` (named `name`, `kill -9`), whose actors are `ids`;
/// from the kill, how long until the node at `addr` saw it gone, and
/// until all of `ids` ran on the survivors.
async fn time_failover(
    victim: &mut support::Killed,
    name: &str,
    ids: &[String],
    addr: &str,
) -> (Duration, Duration) {
    let killed = Instant::now();
    victim.kill().expect("the node is killed");
    victim.wait().expect("the node is reaped");
    let (mut gone, mut back) = (None, None);
    let mut pending: Vec<&String> = ids.iter().collect();
    while gone.is_none() || back.is_none() {
        assert!(
            killed.elapsed() < ROUND_LIMIT,
            "{} of {} actors are not serving again",
            pending.len(),
            ids.len()
        );
        if gone.is_none() && !node_names(addr).await.contains(name) {
            gone = Some(killed.elapsed());
        }
        if back.is_none() {
            let running = running(addr).await;
            pending.retain(|id| !running.contains(*id));
            if pending.is_empty() {
                back = Some(killed.elapsed());
            }
        }
        tokio::time::sleep(POLL).await;
    }
    (gone.unwrap(), back.unwrap())
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn main() {
    let Some(nats) = NatsCluster::start() else {
        println!(
            "failover: skipped, no nats-server 2.10 or later (`cargo xtask bench` installs it)"
        );
        return;
    };
    let tokio = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let names = ["n1", "n2", "n3"];
    let mut nodes: Vec<Node> = names.iter().map(|name| start_node(&nats, name)).collect();
    let entry = nodes[0].1.clone();
    tokio.block_on(sees_all(&entry, &names));
    let (mut seen, mut failover) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let ids = tokio.block_on(start_on(&entry, "n3"));
        let (gone, back) = tokio.block_on(time_failover(&mut nodes[2].0, "n3", &ids, &entry));
        println!(
            "round {round}: n3 seen gone after {:.2} s, its {ACTORS} actors serving again after {:.2} s",
            gone.as_secs_f64(),
            back.as_secs_f64()
        );
        seen.push(gone);
        failover.push(back);
        // Its name is free again now that it left the node list.
        nodes[2] = start_node(&nats, "n3");
        tokio.block_on(sees_all(&entry, &names));
    }
    let (seen, failover) = (median(seen), median(failover));
    println!(
        "failover: {ACTORS} actors of a killed node serving again after {:.2} s vs the node seen gone after {:.2} s (2 s node timeout)",
        failover.as_secs_f64(),
        seen.as_secs_f64()
    );
    println!(
        "ratio failover = {:.2}",
        failover.as_secs_f64() / seen.as_secs_f64()
    );
}
