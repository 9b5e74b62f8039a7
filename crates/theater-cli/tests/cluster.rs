//! `theater server --cluster`: real `theater server` processes joining a
//! real three-server NATS JetStream cluster, seen through `theater nodes`
//! and `theater list`.

#[path = "../../theater/tests/nats/mod.rs"]
mod nats;
mod support;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nats::NatsCluster;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_theater");

/// A `theater server` node of the cluster, killed when dropped.
struct Node {
    child: Child,
    addr: String,
    home: tempfile::TempDir,
}

impl Node {
    fn start(nats: &NatsCluster, name: &str) -> Self {
        let home = support::home();
        let args = cluster_args(nats, name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (child, addr) = support::spawn_server(BIN, home.path(), &args);
        Self { child, addr, home }
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("THEATER_SERVER", &self.addr)
            .env_remove("THEATER_TOKEN")
            .stdin(Stdio::null())
            .output()
            .expect("theater runs")
    }

    fn json(&self, args: &[&str]) -> Value {
        support::answered_json(args, |args| support::succeeded(args, &self.cli(args)))
    }

    /// `nodes --json`: node name → its entry.
    fn nodes(&self) -> Vec<(String, Value)> {
        let answer = self.json(&["nodes"]);
        let nodes = answer["nodes"].as_array().expect("nodes").clone();
        nodes
            .into_iter()
            .map(|n| (n["node"].as_str().unwrap().to_owned(), n))
            .collect()
    }

    fn node_names(&self) -> Vec<String> {
        self.nodes().into_iter().map(|(name, _)| name).collect()
    }

    /// Sends the server process `signal` (`STOP`, `CONT`).
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fast heartbeats, so that a node's death shows within a test.
fn cluster_args(nats: &NatsCluster, name: &str) -> Vec<String> {
    [
        "--cluster",
        &nats.url_list(),
        "--node",
        name,
        "--cluster-replicas",
        "3",
        "--heartbeat-ms",
        "200",
        "--node-timeout-ms",
        "1000",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Polls `check` until it holds, for up to 10 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn nodes_list_each_other_with_their_load_and_a_killed_node_drops_out() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let n1 = Node::start(&nats, "n1");
    let n2 = Node::start(&nats, "n2");
    assert_eq!(n1.node_names(), ["n1", "n2"]);
    let answer = n2.json(&["nodes"]);
    assert_eq!(answer["node"], "n2", "the answering node says who it is");

    let counter = support::manifest("counter");
    let started = n2.json(&["start", counter.to_str().unwrap()]);
    let id = started["actor"].as_str().unwrap().to_owned();
    let listed = n2.json(&["list"]);
    assert_eq!(listed["actors"][0]["id"], id.as_str());
    assert_eq!(listed["actors"][0]["node"], "n2");
    eventually("n1 sees n2 run one actor", || {
        n1.nodes()
            .iter()
            .any(|(name, node)| name == "n2" && node["actors"] == 1)
    });
    let (_, seen) = &n1.nodes()[1];
    assert_eq!(seen["management"], n2.addr.as_str());

    let text = support::succeeded(&["nodes"], &n1.cli(&["nodes"]));
    assert!(text.contains("n1 (this)"), "{text}");
    assert!(text.contains("LAST SEEN"), "{text}");

    // kill -9: no goodbye; the heartbeat stops and the entry expires.
    let mut n2 = n2;
    n2.child.kill().unwrap();
    n2.child.wait().unwrap();
    eventually("n2 leaves n1's list", || n1.node_names() == ["n1"]);
}

#[test]
fn a_taken_name_an_unreachable_cluster_and_no_cluster_are_clear_errors() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let _n1 = Node::start(&nats, "n1");

    let home = support::home();
    let twin = Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--home"])
        .arg(home.path())
        .args(cluster_args(&nats, "n1"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!twin.status.success());
    support::assert_says(&twin, "node name `n1` is taken");

    let unreachable = Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--home"])
        .arg(home.path())
        .args(["--cluster", "nats://127.0.0.1:1", "--node", "n9"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!unreachable.status.success());
    support::assert_says(
        &unreachable,
        "cannot reach the NATS servers nats://127.0.0.1:1",
    );

    let missing_node = Command::new(BIN)
        .args(["server", "--cluster", &nats.url_list()])
        .output()
        .unwrap();
    assert!(!missing_node.status.success());
    support::assert_says(&missing_node, "--node");

    let (mut alone, addr) = support::spawn_server(BIN, home.path(), &[]);
    let not_clustered = Command::new(BIN)
        .args(["nodes"])
        .env("THEATER_SERVER", &addr)
        .env_remove("THEATER_TOKEN")
        .output()
        .unwrap();
    let _ = alone.kill();
    assert!(!not_clustered.status.success());
    support::assert_says(&not_clustered, "this server is not in a cluster");
}

#[test]
fn a_paused_node_that_lost_its_place_is_fenced() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let n1 = Node::start(&nats, "n1");
    let n2 = Node::start(&nats, "n2");
    assert_eq!(n1.node_names(), ["n1", "n2"]);

    // Paused past the node timeout: the cluster counts n2 as gone.
    n2.signal("STOP");
    eventually("n2 leaves n1's list", || n1.node_names() == ["n1"]);
    // Each NATS server expires entries on its own timer: n1 may read a
    // replica that did before the server that takes n2's writes does.
    // Paused one node timeout more, n2 is gone on every server.
    std::thread::sleep(Duration::from_millis(1500));
    n2.signal("CONT");

    // Back, its next heartbeat finds its entry gone: it is fenced.
    let said = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        n2.log().contains("lost its place")
    });
    assert!(said, "n2 did not say it is fenced:\n{}", n2.log());
    let counter = support::manifest("counter");
    let refused = n2.cli(&["start", counter.to_str().unwrap()]);
    assert!(!refused.status.success());
    support::assert_says(&refused, "node `n2` lost its place in the cluster");
    assert_eq!(
        n2.json(&["list"])["actors"],
        serde_json::json!([]),
        "nothing left running"
    );
    assert_eq!(
        n1.node_names(),
        ["n1"],
        "a fenced node does not come back by itself"
    );
}
