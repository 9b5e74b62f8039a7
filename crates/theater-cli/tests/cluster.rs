//! `theater server --cluster`: real `theater server` processes joining a
//! real three-server NATS JetStream cluster, seen through `theater nodes`
//! and `theater list`.

#[path = "../../theater/tests/nats/mod.rs"]
mod nats;
mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nats::NatsCluster;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_theater");

/// A `theater server` node of the cluster, killed when dropped.
struct Node {
    child: support::Killed,
    addr: String,
    home: tempfile::TempDir,
}

impl Node {
    fn start(nats: &NatsCluster, name: &str) -> Self {
        let home = support::home();
        let args = cluster_args(nats, name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (child, addr) = support::spawn_server(BIN, home.path(), &args);
        Self {
            child: support::Killed(child),
            addr,
            home,
        }
    }

    /// Starts example actor `name` on node `node` through this one; its id.
    fn start_on(&self, name: &str, node: &str) -> String {
        let manifest = support::manifest(name);
        let started = self.json(&["start", manifest.to_str().unwrap(), "--node", node]);
        started["actor"].as_str().unwrap().to_owned()
    }

    /// Starts the node again on its home, after it died.
    fn restart(&mut self, nats: &NatsCluster, name: &str) {
        let args = cluster_args(nats, name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (child, addr) = support::spawn_server(BIN, self.home.path(), &args);
        (self.child, self.addr) = (support::Killed(child), addr);
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

    /// The last `lines` lines of its server log, under its address.
    fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "--- the log of the node at {}:\n{}",
            self.addr,
            tail.join("\n")
        )
    }
}

/// Nodes n1 and n2, once each sees the other.
fn two_nodes(nats: &NatsCluster) -> (Node, Node) {
    let (n1, n2) = (Node::start(nats, "n1"), Node::start(nats, "n2"));
    eventually("n1 sees n2", || n1.node_names() == ["n1", "n2"]);
    (n1, n2)
}

/// Fast heartbeats, so that a node's death shows within a test.
const FAST: support::Heartbeats = support::Heartbeats {
    every_ms: 200,
    timeout_ms: 1000,
};

fn cluster_args(nats: &NatsCluster, name: &str) -> Vec<String> {
    support::cluster_args(&nats.url_list(), name, FAST)
}

/// Waits until `parent`'s state, read through `via`, names each of
/// `children` among its children's failures.
fn hears_failures(via: &Node, parent: &str, children: &[&str]) {
    eventually("the parent hears of every failure", || {
        let memory = via.json(&["state", parent])["state"].clone();
        let errors = memory["errors"].as_array().cloned().unwrap_or_default();
        children.iter().all(|c| errors.iter().any(|e| e[0] == *c))
    });
}

/// What supervision decided for `parent`'s children, as its chain
/// (read through `via`) records it, oldest first.
fn decisions(via: &Node, parent: &str) -> Vec<String> {
    let decided = via.json(&["events", parent, "--type", "supervision"]);
    let events = decided["events"].as_array().expect("events").iter();
    events
        .map(|e| {
            e["data"]["decision"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// Polls `check` until it holds, for up to 10 s.
fn eventually(what: &str, check: impl FnMut() -> bool) {
    eventually_on(&[], what, check);
}

/// [`eventually`], saying what the server logs of `nodes` end with if
/// `check` does not hold: what a node that should take over did.
fn eventually_on(nodes: &[&Node], what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        if Instant::now() >= deadline {
            let logs: Vec<String> = nodes.iter().map(|node| node.log_tail(40)).collect();
            panic!("not within 10 s: {what}\n{}", logs.join("\n"));
        }
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
fn a_paused_node_that_lost_its_place_is_fenced_and_its_actor_runs_on() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let n1 = Node::start(&nats, "n1");
    let n2 = Node::start(&nats, "n2");
    assert_eq!(n1.node_names(), ["n1", "n2"]);
    let counter = support::manifest("counter");
    let started = n2.json(&["start", counter.to_str().unwrap()]);
    let id = started["actor"].as_str().unwrap().to_owned();
    let tokio = tokio::runtime::Runtime::new().unwrap();
    for _ in 0..3 {
        tokio.block_on(add(&n2.addr, &id, 1)).unwrap();
    }

    // Paused past the node timeout: the cluster counts n2 as gone, and n1
    // takes its actor on, with the count it had.
    n2.signal("STOP");
    eventually("n2 leaves n1's list", || n1.node_names() == ["n1"]);
    let addrs = [n1.addr.clone()];
    eventually_on(&[&n1], "n1 runs n2's actor", || {
        tokio.block_on(running_on(&addrs, &id)).is_some()
    });
    assert_eq!(tokio.block_on(add(&n1.addr, &id, 0)), Ok(3));
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
    // Its copy stops; the chain goes on at n1 alone.
    eventually("n2 stops its copy", || {
        let listed = n2.json(&["list"]);
        let actors = listed["actors"].as_array().unwrap().clone();
        actors.iter().all(|actor| actor["node"] == "n1")
    });
    assert_eq!(tokio.block_on(add(&n1.addr, &id, 1)), Ok(4));
    assert_eq!(n1.json(&["verify", &id])["verified"], true);
    let refused = n2.cli(&["start", counter.to_str().unwrap()]);
    assert!(!refused.status.success());
    support::assert_says(&refused, "node `n2` lost its place in the cluster");
    assert_eq!(
        n1.node_names(),
        ["n1"],
        "a fenced node does not come back by itself"
    );
}

#[test]
fn any_node_places_starts_and_answers_for_the_whole_cluster() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let nodes = ["n1", "n2", "n3"].map(|name| Node::start(&nats, name));
    let [n1, n2, n3] = &nodes;
    eventually("every node sees the others", || {
        n1.node_names() == ["n1", "n2", "n3"]
    });
    let counter = support::manifest("counter");
    let counter = counter.to_str().unwrap();

    // Without --node, each start goes to the node with the fewest actors.
    let mut placed = std::collections::BTreeMap::<String, Vec<String>>::new();
    for _ in 0..6 {
        let started = n1.json(&["start", counter]);
        let node = started["node"].as_str().unwrap().to_owned();
        let id = started["actor"].as_str().unwrap().to_owned();
        placed.entry(node).or_default().push(id);
    }
    let spread: Vec<&String> = placed.keys().collect();
    assert_eq!(spread, ["n1", "n2", "n3"], "{placed:?}");
    // With --node, where it says; a node that is not there is refused.
    let on_n3 = n1.json(&[
        "start",
        counter,
        "--node",
        "n3",
        "--state",
        r#"{"count": 7}"#,
    ]);
    assert_eq!(on_n3["node"], "n3");
    let id = on_n3["actor"].as_str().unwrap().to_owned();
    let refused = n1.cli(&["start", counter, "--node", "nope"]);
    assert!(!refused.status.success());
    support::assert_says(&refused, "no live node `nope` in the cluster");

    // Any node lists every actor with its node, and answers for each.
    let listed = n2.json(&["list"]);
    let mut seen: Vec<(String, String)> = listed["actors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["node"].as_str().unwrap().into(),
                a["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    seen.sort();
    let mut expected: Vec<(String, String)> = placed
        .iter()
        .flat_map(|(node, ids)| ids.iter().map(move |id| (node.clone(), id.clone())))
        .chain([("n3".to_owned(), id.clone())])
        .collect();
    expected.sort();
    assert_eq!(seen, expected);
    let text = support::succeeded(&["list"], &n2.cli(&["list"]));
    assert!(text.contains("NODE"), "{text}");
    assert_eq!(
        n1.json(&["state", &id])["state"],
        serde_json::json!({"count": 7})
    );
    let reply = n1.json(&["message", "request", &id, r#"{"add": 1}"#]);
    assert_eq!(reply["reply"], serde_json::json!({"count": 8}));
    let verified = n2.json(&["verify", &id]);
    assert_eq!(verified["verified"], true, "{verified}");
    assert_eq!(verified["replicated_events"], 2, "{verified}");
    let events = n1.json(&["events", &id]);
    assert_eq!(events["total"], 2, "init and the add");
    assert_eq!(n1.json(&["stop", &id])["stopped"], true);
    let left = n3.json(&["list"]);
    assert!(
        left["actors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != id.as_str()),
        "{left}"
    );
}

#[test]
fn a_live_actor_moves_to_another_node_and_back_with_no_call_lost_or_applied_twice() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let (n1, n2) = two_nodes(&nats);
    let id = n1.start_on("counter", "n1");

    // Adds sent through n2 all along, wherever the counter runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let load = tokio.spawn({
        let (addr, id, stop) = (n2.addr.clone(), id.clone(), stop.clone());
        async move {
            let (mut acknowledged, mut failed) = (0i64, 0i64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match add(&addr, &id, 1).await {
                    Ok(_) => acknowledged += 1,
                    Err(_) => failed += 1,
                }
            }
            (acknowledged, failed)
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let moved = n1.json(&["migrate", &id, "--to", "n2"]);
    assert_eq!((&moved["from"], &moved["to"]), (&"n1".into(), &"n2".into()));
    std::thread::sleep(Duration::from_millis(500));
    // Back, through the node it now runs on: n1 holds the beginning of
    // its chain and gets the rest.
    let back = n2.json(&["migrate", &id, "--to", "n1"]);
    assert_eq!(back["to"], "n1");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acknowledged, failed) = tokio.block_on(load).unwrap();
    println!("two moves under load: {acknowledged} adds acknowledged, {failed} refused");

    // Calls that came while it moved waited for it: none failed.
    assert!(acknowledged > 0);
    assert_eq!(failed, 0);
    let count = tokio.block_on(add(&n1.addr, &id, 0)).unwrap();
    assert_eq!(count, acknowledged);
    let listed = n2.json(&["list"]);
    let row = listed["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str())
        .cloned();
    assert_eq!(row.unwrap()["node"], "n1", "{listed}");
    let verified = n2.json(&["verify", &id]);
    assert_eq!(verified["verified"], true, "{verified}");

    // Refusals that change nothing.
    for (to, says) in [
        ("n1", "runs on node `n1` already"),
        ("n9", "no live node `n9`"),
    ] {
        let refused = n1.cli(&["migrate", &id, "--to", to]);
        assert!(!refused.status.success());
        support::assert_says(&refused, says);
    }
    let unknown = n1.cli(&[
        "migrate",
        "00000000-0000-4000-8000-000000000000",
        "--to",
        "n2",
    ]);
    assert!(!unknown.status.success());
    assert_eq!(tokio.block_on(add(&n2.addr, &id, 1)), Ok(count + 1));
}

#[test]
fn an_actor_runs_where_its_files_are_not_and_moves_with_its_component() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let (n1, n2) = two_nodes(&nats);
    // Its files exist only until it started, and only n2 reads them: the
    // node asked to start it, which places it on n1.
    let files = tempfile::tempdir().unwrap();
    let source = support::manifest("counter");
    for file in ["manifest.toml", "counter.wasm", "init.json"] {
        std::fs::copy(source.with_file_name(file), files.path().join(file)).unwrap();
    }
    let manifest = files.path().join("manifest.toml");
    let started = n2.json(&["start", manifest.to_str().unwrap(), "--node", "n1"]);
    assert_eq!(started["node"], "n1", "{started}");
    let id = started["actor"].as_str().unwrap().to_owned();
    n1.json(&["message", "request", &id, r#"{"add": 2}"#]);
    drop(files);

    let moved = n1.json(&["migrate", &id, "--to", "n2"]);
    assert_eq!(moved["to"], "n2", "{moved}");
    let reply = n1.json(&["message", "request", &id, r#"{"add": 1}"#]);
    assert_eq!(reply["reply"]["count"], 3, "{reply}");
    // Each node ran the very bytes n2 read, from its own copy.
    let wasm = std::fs::read(source.with_file_name("counter.wasm")).unwrap();
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wasm));
    for node in [&n1, &n2] {
        let components = node.home.path().join("components");
        let copy = components.join(format!("{hash}.wasm"));
        assert_eq!(std::fs::read(&copy).unwrap(), wasm, "{}", copy.display());
    }
    assert_eq!(n2.json(&["verify", &id])["verified"], true);

    // A manifest the asked node cannot read never reaches another node.
    let missing = n2.cli(&["start", "/nowhere/manifest.toml", "--node", "n1"]);
    assert!(!missing.status.success());
    support::assert_says(&missing, "/nowhere/manifest.toml");
}

#[test]
fn a_killed_nodes_supervisor_runs_on_with_its_children() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let (n1, n2) = two_nodes(&nats);
    let parent = n1.start_on("supervisor", "n2");
    // Through n1: the supervisor and its children run on n2.
    let spawn = r#"{"spawn": "../counter/manifest.toml"}"#;
    let children: Vec<String> = (0..2)
        .map(|_| {
            let spawned = n1.json(&["message", "request", &parent, spawn]);
            spawned["reply"].as_str().unwrap().to_owned()
        })
        .collect();
    let tokio = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(tokio.block_on(add(&n1.addr, &children[0], 5)), Ok(5));
    let listed = n1.json(&["list"]);
    let on_n2 = listed["actors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["node"] == "n2")
        .count();
    assert_eq!(on_n2, 3, "{listed}");

    let mut n2 = n2;
    n2.child.kill().unwrap();
    n2.child.wait().unwrap();
    // n1 takes the supervisor over, then its children, under it again.
    eventually_on(&[&n1], "n1 runs the supervisor and both children", || {
        let tree = n1.json(&["tree"]);
        tree["roots"].as_array().unwrap().iter().any(|root| {
            root["id"] == parent.as_str() && root["children"].as_array().unwrap().len() == 2
        })
    });
    assert_eq!(tokio.block_on(add(&n1.addr, &children[0], 0)), Ok(5));
    let supervised = n1.json(&["message", "request", &parent, r#"{"children": null}"#]);
    let mut listed: Vec<String> = serde_json::from_value(supervised["reply"].clone()).unwrap();
    listed.sort();
    let mut expected = children.clone();
    expected.sort();
    assert_eq!(listed, expected);
    for id in children.iter().chain([&parent]) {
        assert_eq!(n1.json(&["verify", id])["verified"], true);
    }
}

#[test]
fn a_parent_supervises_its_child_on_another_node() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let (n1, n2) = two_nodes(&nats);
    let parent = n1.start_on("supervisor", "n1");
    let ask =
        |command: String| n1.json(&["message", "request", &parent, &command])["reply"].clone();
    let spawn = || ask(r#"{"spawn": "../trap/manifest.toml"}"#.to_owned());
    let child = spawn().as_str().unwrap().to_owned();
    n1.json(&["message", "send", &child, r#""one""#]);
    let migrated = n1.json(&["migrate", &child, "--to", "n2"]);
    assert_eq!(migrated["to"], "n2", "{migrated}");
    let node_of = |id: &str| {
        let listed = n2.json(&["list"]);
        let row = listed["actors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .cloned();
        row.map(|row| row["node"].clone())
    };
    assert_eq!(node_of(&child), Some("n2".into()));
    assert_eq!(node_of(&parent), Some("n1".into()));

    // The parent on n1 still has its child, and reaches it on n2.
    assert_eq!(
        ask(r#"{"children": null}"#.into()),
        serde_json::json!([child])
    );
    assert_eq!(ask(format!(r#"{{"state_of": "{child}"}}"#))["count"], 1);
    assert_eq!(ask(format!(r#"{{"restart": "{child}"}}"#)), Value::Null);
    let replicated = n2.json(&["verify", &child])["replicated_events"].clone();
    assert_eq!(ask(format!(r#"{{"events_of": "{child}"}}"#)), replicated);

    // A failure on n2 is decided on n1, by the parent's policy: restarted
    // there with its state, and the parent hears of it.
    n1.json(&["message", "send", &child, r#""trap""#]);
    eventually("the parent hears of its child's failure", || {
        let memory = n1.json(&["state", &parent])["state"].clone();
        memory["errors"].as_array().is_some_and(|errors| {
            errors
                .iter()
                .any(|e| e[0] == child.as_str() && e[1].as_str().unwrap().contains("trap"))
        })
    });
    let reply = n1.json(&["message", "request", &child, "{}"]);
    assert_eq!(
        reply["reply"]["count"], 1,
        "restarted with its state: {reply}"
    );
    assert_eq!(node_of(&child), Some("n2".into()));
    assert_eq!(decisions(&n1, &parent), ["restart"]);

    // Its parent stops it on n2, and hears that it ended.
    assert_eq!(ask(format!(r#"{{"stop": "{child}"}}"#)), Value::Null);
    eventually("the parent hears that its child ended", || {
        let memory = n1.json(&["state", &parent])["state"].clone();
        memory["exits"]
            .as_array()
            .is_some_and(|exits| exits.iter().any(|e| e[0] == child.as_str()))
    });
    assert_eq!(ask(r#"{"children": null}"#.into()), serde_json::json!([]));
    assert_eq!(node_of(&child), None);

    // Stopping the parent stops its child on the other node too.
    let second = spawn().as_str().unwrap().to_owned();
    n1.json(&["migrate", &second, "--to", "n2"]);
    assert_eq!(node_of(&second), Some("n2".into()));
    n1.json(&["stop", &parent]);
    eventually("the child on n2 stopped with its parent", || {
        node_of(&second).is_none()
    });
    for id in [&parent, &child, &second] {
        assert_eq!(n1.json(&["verify", id])["verified"], true, "{id}");
    }
}

#[test]
fn a_parent_moves_to_another_node_and_supervises_its_children_from_there() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let (n1, n2) = two_nodes(&nats);
    let parent = n1.start_on("supervisor", "n1");
    let ask =
        |command: String| n1.json(&["message", "request", &parent, &command])["reply"].clone();
    let spawn = || {
        let child = ask(r#"{"spawn": "../trap/manifest.toml"}"#.to_owned());
        child.as_str().unwrap().to_owned()
    };
    // One child stays on n1; the other goes ahead of its parent to n2.
    let (stays, ahead) = (spawn(), spawn());
    n1.json(&["migrate", &ahead, "--to", "n2"]);
    let migrated = n1.json(&["migrate", &parent, "--to", "n2"]);
    assert_eq!(migrated["to"], "n2", "{migrated}");
    let node_of = |id: &str| {
        let listed = n1.json(&["list"]);
        let rows = listed["actors"].as_array().unwrap().clone();
        rows.into_iter()
            .find(|a| a["id"] == id)
            .map(|row| row["node"].clone())
    };
    for (id, node) in [(&parent, "n2"), (&stays, "n1"), (&ahead, "n2")] {
        assert_eq!(node_of(id), Some(node.into()), "{id}");
    }
    let mut children: Vec<String> =
        serde_json::from_value(ask(r#"{"children": null}"#.into())).expect("a list of children");
    children.sort();
    let mut expected = vec![stays.clone(), ahead.clone()];
    expected.sort();
    assert_eq!(children, expected);
    assert_eq!(ask(format!(r#"{{"state_of": "{stays}"}}"#))["count"], 0);

    // Both fail; the parent, on n2 now, decides for both.
    for child in [&stays, &ahead] {
        n1.json(&["message", "send", child, r#""trap""#]);
    }
    hears_failures(&n2, &parent, &[&stays, &ahead]);
    assert_eq!(decisions(&n2, &parent), ["restart", "restart"]);
    assert_eq!(node_of(&stays), Some("n1".into()));

    // Stopping the parent on n2 stops its child on n1 too.
    n1.json(&["stop", &parent]);
    eventually("the parent and its children stopped on both nodes", || {
        n1.json(&["list"])["actors"].as_array().unwrap().is_empty()
    });
    for id in [&parent, &stays, &ahead] {
        assert_eq!(n1.json(&["verify", id])["verified"], true, "{id}");
    }
}

#[test]
fn a_parent_that_fails_over_supervises_its_children_on_other_nodes_again() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let [mut n1, n2, n3] = ["n1", "n2", "n3"].map(|name| Node::start(&nats, name));
    eventually("n1 sees n2 and n3", || {
        n1.node_names() == ["n1", "n2", "n3"]
    });
    let parent = n1.start_on("supervisor", "n1");
    let ask = |command: String| {
        let asked = n2.json(&["message", "request", &parent, &command]);
        asked["reply"].clone()
    };
    let spawn = r#"{"spawn": "../trap/manifest.toml"}"#;
    let mut children: Vec<String> = ["n2", "n3"]
        .iter()
        .map(|to| {
            let child = ask(spawn.to_owned()).as_str().unwrap().to_owned();
            n1.json(&["migrate", &child, "--to", to]);
            child
        })
        .collect();
    children.sort();

    n1.child.kill().unwrap();
    n1.child.wait().unwrap();
    // The parent runs on n2 or n3: one child beside it, one on the other
    // node; it supervises both again.
    eventually_on(
        &[&n2, &n3],
        "the parent runs again with both its children",
        || {
            let listed = n2.json(&["message", "request", &parent, r#"{"children": null}"#]);
            let mut listed: Vec<String> = serde_json::from_value(listed["reply"].clone()).unwrap();
            listed.sort();
            listed == children
        },
    );
    for child in &children {
        n3.json(&["message", "send", child, r#""trap""#]);
    }
    let failed: Vec<&str> = children.iter().map(String::as_str).collect();
    hears_failures(&n2, &parent, &failed);
    assert_eq!(decisions(&n3, &parent), ["restart", "restart"]);

    n2.json(&["stop", &parent]);
    eventually("the parent and its children stopped on every node", || {
        let listed = n3.json(&["list"]);
        listed["actors"].as_array().unwrap().is_empty()
    });
}

#[test]
fn a_subscription_follows_an_actor_on_another_node_as_it_moves() {
    use theater::server::protocol::{Event, Op};
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let (n1, n2) = two_nodes(&nats);
    let id = n1.start_on("counter", "n2");
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let mut watcher = tokio.block_on(client(&n1.addr)).unwrap();
    let subscribed = tokio.block_on(watcher.call(Op::Subscribe {
        actor: Some(id.clone()),
    }));
    assert_eq!(subscribed.unwrap()["actor"], id.as_str());
    // The type of each chain event it hears next, up to `count` of them.
    let mut heard = |count: usize| -> Vec<String> {
        tokio.block_on(async {
            let mut types = Vec::new();
            while types.len() < count {
                let next = tokio::time::timeout(Duration::from_secs(10), watcher.next_event());
                match next.await.expect("an event within 10 s").unwrap() {
                    Event::Chain(notice) => {
                        assert_eq!(notice.actor.to_string(), id);
                        types.push(notice.chain_event.event_type);
                    }
                    Event::ActorStopped(_) => types.push("stopped".into()),
                    other => panic!("unexpected {other:?}"),
                }
            }
            types
        })
    };
    // Through n1, of an actor on n2.
    assert_eq!(tokio.block_on(add(&n2.addr, &id, 2)), Ok(2));
    assert_eq!(heard(1), ["call"]);
    // It moves to n1 and on: the subscription goes with it.
    n2.json(&["migrate", &id, "--to", "n1"]);
    assert_eq!(tokio.block_on(add(&n1.addr, &id, 3)), Ok(5));
    assert_eq!(heard(2), ["actor-resume", "call"]);
    n1.json(&["stop", &id]);
    assert_eq!(heard(1), ["stopped"]);

    // An id no node runs is refused.
    let nobody = "00000000-0000-4000-8000-000000000000".to_owned();
    let refused = tokio.block_on(watcher.call(Op::Subscribe {
        actor: Some(nobody),
    }));
    assert!(refused.is_err(), "{refused:?}");
}

/// `GET path` on `addr`: the status line and body, if it answers.
fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

#[test]
fn an_http_actor_of_a_killed_node_listens_again_at_the_survivors_address() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    // Each node has its own loopback address for actor servers.
    let node = |name: &str, ip: &str| {
        let home = support::home();
        let mut args = cluster_args(&nats, name);
        args.extend(["--http-address".to_owned(), ip.to_owned()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (child, addr) = support::spawn_server(BIN, home.path(), &args);
        Node {
            child: support::Killed(child),
            addr,
            home,
        }
    };
    let (n1, mut n2) = (node("n1", "127.0.0.2"), node("n2", "127.0.0.3"));
    eventually("n1 sees n2", || n1.node_names() == ["n1", "n2"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hello = support::manifest("http-hello");
    let state = format!(r#"{{"port": {port}}}"#);
    n1.json(&[
        "start",
        hello.to_str().unwrap(),
        "--node",
        "n2",
        "--state",
        &state,
    ]);
    let greeting = |ip: &str| http_get(&format!("{ip}:{port}"), "/api/greet/you");
    let first = greeting("127.0.0.3").expect("it listens at n2's address");
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(greeting("127.0.0.2").is_none(), "not at n1's");

    n2.child.kill().unwrap();
    n2.child.wait().unwrap();
    eventually_on(&[&n1], "it listens again at n1's address", || {
        greeting("127.0.0.2").is_some_and(|answer| answer.starts_with("HTTP/1.1 200"))
    });
}

#[test]
fn a_node_restarted_after_failover_does_not_run_the_actors_it_lost() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let (n1, n2) = two_nodes(&nats);
    let id = n1.start_on("counter", "n1");
    let tokio = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(tokio.block_on(add(&n2.addr, &id, 3)), Ok(3));

    // n1 dies; n2 takes the counter over.
    let mut n1 = n1;
    n1.child.kill().unwrap();
    n1.child.wait().unwrap();
    let addrs = [n2.addr.clone()];
    eventually("n2 runs the counter", || {
        tokio.block_on(running_on(&addrs, &id)).is_some()
    });
    // Back on its home, n1 finds the counter owned by n2: it leaves it.
    n1.restart(&nats, "n1");
    assert!(n1.log().contains("not running actor"), "{}", n1.log());
    let listed = n1.json(&["list"]);
    let rows = listed["actors"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(rows[0]["node"], "n2");
    assert_eq!(tokio.block_on(add(&n1.addr, &id, 1)), Ok(4));
}

#[test]
fn a_channel_to_a_node_that_dies_closes_at_the_other_end() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let (n1, n2) = two_nodes(&nats);
    let (a, b) = (
        n1.start_on("messenger", "n1"),
        n1.start_on("messenger", "n2"),
    );
    let (a, b) = (a.as_str(), b.as_str());
    let open = format!(r#"{{"open": {{"to": "{b}", "msg": "hi"}}}}"#);
    let opened = n1.json(&["message", "request", a, &open]);
    let channel = opened["reply"].as_str().unwrap().to_owned();

    let mut n2 = n2;
    n2.child.kill().unwrap();
    n2.child.wait().unwrap();
    eventually("a hears its channel to n2 close", || {
        let state = n1.json(&["state", a]);
        state["state"]["closed"]
            .as_array()
            .is_some_and(|closed| closed.contains(&channel.as_str().into()))
    });
}

/// Counters started on each node of the failover test.
const ACTORS_PER_NODE: usize = 40;
/// Clients sending the failover test's load at once.
const LOAD_TASKS: usize = 8;

/// One counter of the failover test, as its load saw it.
#[derive(Default)]
struct Tally {
    /// Node (index) the load last found it on.
    node: usize,
    /// `{"add":1}` requests answered and sends accepted: each added one.
    acknowledged: u64,
    /// Requests and sends that failed without an answer: each added one
    /// or none.
    unanswered: u64,
}

async fn client(addr: &str) -> Option<theater::server::Client> {
    theater::server::Client::connect(addr, None).await.ok()
}

/// Asks `actor` (through the node at `addr`) to add `add`; its count.
async fn add(addr: &str, actor: &str, add: i64) -> Result<i64, String> {
    let mut client = client(addr).await.ok_or("connection refused")?;
    let op = theater::server::protocol::Op::Request {
        actor: actor.to_owned(),
        payload: theater::server::protocol::Payload::json(serde_json::json!({ "add": add })),
        timeout_ms: Some(5_000),
    };
    let answer = client.call(op).await.map_err(|e| e.to_string())?;
    answer["reply"]["count"]
        .as_i64()
        .ok_or_else(|| format!("not a count: {answer}"))
}

/// Sends `{"add": 1}` to `actor` through `addr`: `Ok` once accepted.
async fn send_add(addr: &str, actor: &str) -> Result<(), String> {
    let mut client = client(addr).await.ok_or("connection refused")?;
    let op = theater::server::protocol::Op::Send {
        actor: actor.to_owned(),
        payload: theater::server::protocol::Payload::json(serde_json::json!({ "add": 1 })),
    };
    client.call(op).await.map(drop).map_err(|e| e.to_string())
}

/// The ids of the actors the nodes at `addrs` list as running.
async fn serving(addrs: &[String]) -> std::collections::HashSet<String> {
    let mut serving = std::collections::HashSet::new();
    for addr in addrs {
        let Some(mut client) = client(addr).await else {
            continue;
        };
        if let Ok(list) = client
            .call(theater::server::protocol::Op::List { all: false })
            .await
        {
            let actors = list["actors"].as_array().cloned().unwrap_or_default();
            serving.extend(
                actors
                    .iter()
                    .filter_map(|a| a["id"].as_str().map(str::to_owned)),
            );
        }
    }
    serving
}

/// The node (index into `addrs`) that runs `actor` now, if any does.
async fn running_on(addrs: &[String], actor: &str) -> Option<usize> {
    for (index, addr) in addrs.iter().enumerate() {
        let Some(mut client) = client(addr).await else {
            continue;
        };
        let op = theater::server::protocol::Op::List { all: false };
        if let Ok(list) = client.call(op).await
            && list["actors"]
                .as_array()
                .is_some_and(|actors| actors.iter().any(|a| a["id"] == actor))
        {
            return Some(index);
        }
    }
    None
}

#[test]
fn a_killed_nodes_actors_serve_again_on_the_survivors_with_nothing_lost() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    // A 2 s node timeout, as a deployment might have.
    let beats = support::Heartbeats {
        every_ms: 500,
        timeout_ms: 2000,
    };
    let args = |name: &str| support::cluster_args(&nats.url_list(), name, beats);
    let nodes: Vec<Node> = ["n1", "n2", "n3"]
        .iter()
        .map(|name| {
            let home = support::home();
            let args = args(name);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (child, addr) = support::spawn_server(BIN, home.path(), &args);
            Node {
                child: support::Killed(child),
                addr,
                home,
            }
        })
        .collect();
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let counter = support::manifest("counter");
    let mut tallies = std::collections::BTreeMap::new();
    for (index, node) in nodes.iter().enumerate() {
        let name = format!("n{}", index + 1);
        for _ in 0..ACTORS_PER_NODE {
            let started = node.json(&["start", counter.to_str().unwrap(), "--node", &name]);
            let id = started["actor"].as_str().unwrap().to_owned();
            let tally = Tally {
                node: index,
                ..Tally::default()
            };
            tallies.insert(id, tally);
        }
    }
    let tallies = std::sync::Arc::new(std::sync::Mutex::new(tallies));
    let ids: Vec<String> = tallies.lock().unwrap().keys().cloned().collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    let tokio = tokio::runtime::Runtime::new().unwrap();
    // A steady load: each task adds one to each of its counters in turn,
    // by a request or a send, through the node it last found it on; a
    // failed one finds it again.
    let load: Vec<_> = ids
        .chunks(ids.len().div_ceil(LOAD_TASKS))
        .map(|mine| {
            let (mine, addrs, tallies, stop) =
                (mine.to_vec(), addrs.clone(), tallies.clone(), stop.clone());
            tokio.spawn(async move {
                let mut by_send = false;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    by_send = !by_send;
                    for id in &mine {
                        let node = tallies.lock().unwrap()[id].node;
                        let answered = match by_send {
                            true => send_add(&addrs[node], id).await.is_ok(),
                            false => add(&addrs[node], id, 1).await.is_ok(),
                        };
                        {
                            let mut all = tallies.lock().unwrap();
                            let tally = all.get_mut(id).unwrap();
                            match answered {
                                true => tally.acknowledged += 1,
                                false => tally.unanswered += 1,
                            }
                        }
                        if !answered {
                            match running_on(&addrs, id).await {
                                Some(node) => {
                                    tallies.lock().unwrap().get_mut(id).unwrap().node = node
                                }
                                None => tokio::time::sleep(Duration::from_millis(50)).await,
                            }
                        }
                    }
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(2));
    let mut nodes = nodes;
    let mut dead = nodes.pop().unwrap();
    let orphans: Vec<String> = tallies
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, tally)| tally.node == 2)
        .map(|(id, _)| id.clone())
        .collect();
    let killed = Instant::now();
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let survivors = &addrs[..2];
    let mut pending = orphans.clone();
    while !pending.is_empty() {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "{} actors of the killed node are not serving again:\n{}\n{}",
            pending.len(),
            nodes[0].log(),
            nodes[1].log()
        );
        let serving = tokio.block_on(serving(survivors));
        pending.retain(|id| !serving.contains(id));
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let failover = killed.elapsed();
    println!(
        "failover: {} actors of the killed node serving again on the survivors {:.2} s after it died",
        orphans.len(),
        failover.as_secs_f64()
    );
    // The load goes on for a while on the survivors, then stops.
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        tokio.block_on(task).unwrap();
    }

    // Every acknowledged call (a request answered, a send accepted) is in
    // its counter's count, none twice; a call that was not answered may
    // or may not have been.
    let tallies = tallies.lock().unwrap();
    let (mut acknowledged, mut unanswered) = (0, 0);
    for (id, tally) in tallies.iter() {
        let node = tokio
            .block_on(running_on(survivors, id))
            .unwrap_or_else(|| panic!("actor {id} runs nowhere"));
        let count = tokio.block_on(add(&addrs[node], id, 0)).unwrap() as u64;
        assert!(
            (tally.acknowledged..=tally.acknowledged + tally.unanswered).contains(&count),
            "actor {id}: count {count}, {} acknowledged adds, {} unanswered",
            tally.acknowledged,
            tally.unanswered
        );
        if orphans.contains(id) {
            assert!(tally.acknowledged > 0);
        }
        let verified = nodes[node].json(&["verify", id]);
        assert_eq!(verified["verified"], true, "{verified}");
        acknowledged += tally.acknowledged;
        unanswered += tally.unanswered;
    }
    println!(
        "load: {acknowledged} acknowledged adds to {} counters, {unanswered} unanswered while a node was down",
        tallies.len()
    );
    assert!(acknowledged > 0);
}
