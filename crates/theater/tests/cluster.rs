//! Nodes joining a real three-server NATS JetStream cluster (replicas 3):
//! heartbeats, names that are taken, and actors owned by compare-and-set.

mod nats;

use std::time::Duration;

use nats::NatsCluster;
use theater::ActorId;
use theater::chain::ChainEvent;
use theater::cluster::{ChainEnd, Cluster, ClusterConfig, ClusterError, NodeInfo};

/// Fast timings, so that a node's absence shows within a test.
fn config(cluster: &NatsCluster, node: &str) -> ClusterConfig {
    let mut config = ClusterConfig::new(cluster.urls.clone(), node);
    config.heartbeat = Duration::from_millis(100);
    config.node_timeout = Duration::from_millis(600);
    config.replicas = 3;
    config
}

async fn join(cluster: &NatsCluster, node: &str, actors: usize) -> Result<Cluster, ClusterError> {
    let info = move || NodeInfo {
        actors,
        ..NodeInfo::default()
    };
    Cluster::join(config(cluster, node), info).await
}

async fn node_names(node: &Cluster) -> Vec<String> {
    let nodes = node.nodes().await.expect("listing nodes");
    nodes.into_iter().map(|n| n.node).collect()
}

#[tokio::test]
async fn nodes_see_each_other_and_a_silent_node_leaves_the_list() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let n1 = join(&nats, "n1", 0).await.expect("n1 joins");
    // Each node connects to a different server of the cluster.
    let mut second = config(&nats, "n2");
    second.servers.rotate_left(1);
    let n2 = Cluster::join(second, || NodeInfo {
        actors: 7,
        ..NodeInfo::default()
    })
    .await
    .expect("n2 joins");
    assert_eq!(node_names(&n1).await, ["n1", "n2"]);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let nodes = n1.nodes().await.unwrap();
    let seen_n2 = nodes.iter().find(|n| n.node == "n2").unwrap();
    assert_eq!(seen_n2.info.actors, 7, "the heartbeat carries the load");
    assert!(seen_n2.seen_ms_ago < 600, "{seen_n2:?}");

    // n2 stops beating without leaving: its entry expires.
    drop(n2);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(node_names(&n1).await, ["n1"]);

    // A node that leaves is gone at once.
    let n3 = join(&nats, "n3", 0).await.expect("n3 joins");
    assert_eq!(node_names(&n1).await, ["n1", "n3"]);
    n3.leave().await;
    assert_eq!(node_names(&n1).await, ["n1"]);
}

#[tokio::test]
async fn a_live_nodes_name_is_refused_and_a_dead_ones_is_taken_over() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let first = join(&nats, "twin", 0).await.expect("first joins");
    let refused = join(&nats, "twin", 0).await.unwrap_err();
    assert!(
        matches!(&refused, ClusterError::NameTaken { node, .. } if node == "twin"),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("pick another --node"),
        "{refused}"
    );

    drop(first);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let second = join(&nats, "twin", 0)
        .await
        .expect("a dead node's name is free");
    assert_eq!(node_names(&second).await, ["twin"]);
}

#[tokio::test]
async fn an_actor_has_one_owner_at_a_time() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let n1 = join(&nats, "n1", 0).await.unwrap();
    let n2 = join(&nats, "n2", 0).await.unwrap();
    let actor = "0b7e0c1e-3f4a-4c55-9d2a-7f0e6a5b4c3d";

    n1.claim(actor).await.expect("n1 claims a free actor");
    n1.claim(actor).await.expect("claiming again is a no-op");
    let refused = n2.claim(actor).await.unwrap_err();
    assert!(
        matches!(&refused, ClusterError::Owned { node, .. } if node == "n1"),
        "{refused}"
    );
    assert_eq!(n2.owner(actor).await.unwrap().unwrap().node, "n1");

    // Only the owner's release frees it.
    n2.release(actor).await.unwrap();
    assert_eq!(n1.owner(actor).await.unwrap().unwrap().node, "n1");
    n1.release(actor).await.unwrap();
    assert_eq!(n1.owner(actor).await.unwrap(), None);
    n2.claim(actor).await.expect("a released actor is free");
    assert_eq!(n1.owner(actor).await.unwrap().unwrap().node, "n2");
}

/// The event after `parent`, as the chain encodes it.
fn event(parent: Option<&ChainEvent>, n: u64) -> ChainEvent {
    let data = serde_json::value::to_raw_value(&serde_json::json!({ "n": n })).unwrap();
    ChainEvent::new(parent.map(|p| p.hash), "call", data, n, format!("call {n}"))
}

fn encoded(event: &ChainEvent) -> bytes::Bytes {
    serde_json::to_vec(event).unwrap().into()
}

#[tokio::test]
async fn a_replicated_chain_reads_back_whole_and_a_stale_writer_cannot_fork_it() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let n1 = join(&nats, "n1", 0).await.unwrap();
    let mut second = config(&nats, "n2");
    second.servers.rotate_left(2);
    let n2 = Cluster::join(second, NodeInfo::default).await.unwrap();
    let actor = ActorId::new().to_string();

    let mut written = Vec::new();
    let mut end = ChainEnd::default();
    for n in 0..3 {
        let next = event(written.last(), n);
        end = n1
            .chains()
            .append(&actor, end, encoded(&next))
            .await
            .unwrap();
        written.push(next);
    }
    let (read, read_end) = n2.chains().read(&actor).await.unwrap();
    assert_eq!(read_end, end);
    let read: Vec<ChainEvent> = read
        .iter()
        .map(|bytes| serde_json::from_slice(bytes).unwrap())
        .collect();
    let hashes = |events: &[ChainEvent]| events.iter().map(|e| e.hash).collect::<Vec<_>>();
    assert_eq!(hashes(&read), hashes(&written));
    theater::chain::verify(&read).expect("the replicated chain verifies");

    // n2 takes the actor over and appends; n1, stale, tries from where it
    // last was: refused, and the chain does not fork.
    let taken = event(written.last(), 3);
    n2.chains()
        .append(&actor, read_end, encoded(&taken))
        .await
        .unwrap();
    let stale = event(written.last(), 30);
    let refused = n1
        .chains()
        .append(&actor, end, encoded(&stale))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ClusterError::ChainMoved { .. }),
        "{refused}"
    );
    let refused = n1
        .chains()
        .append(&actor, ChainEnd::default(), encoded(&stale))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ClusterError::ChainMoved { .. }),
        "{refused}"
    );
    let (read, _) = n1.chains().read(&actor).await.unwrap();
    let read: Vec<ChainEvent> = read
        .iter()
        .map(|bytes| serde_json::from_slice(bytes).unwrap())
        .collect();
    assert_eq!(read.len(), 4);
    assert_eq!(read[3].hash, taken.hash);
    theater::chain::verify(&read).unwrap();

    // Another actor's chain is apart; a name that is not an id reaches none.
    let other = ActorId::new().to_string();
    assert_eq!(n1.chains().read(&other).await.unwrap().0.len(), 0);
    for bad in ["a.b", "*", ">", ""] {
        let error = n1.chains().read(bad).await.unwrap_err();
        assert!(error.to_string().contains("is not an actor id"), "{error}");
    }
}

#[tokio::test]
async fn bad_settings_and_unreachable_servers_are_clear_errors() {
    let mut config = ClusterConfig::new(vec!["nats://127.0.0.1:1".into()], "bad name");
    let error = Cluster::join(config.clone(), NodeInfo::default)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("may hold only letters"),
        "{error}"
    );

    config.node = "n1".into();
    config.node_timeout = config.heartbeat;
    let error = Cluster::join(config.clone(), NodeInfo::default)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("must be longer than the heartbeat"),
        "{error}"
    );

    config.node_timeout = Duration::from_secs(2);
    let error = Cluster::join(config, NodeInfo::default).await.unwrap_err();
    assert!(
        matches!(error, ClusterError::Connect { .. }),
        "nothing listens on port 1: {error}"
    );
    assert!(
        error.to_string().contains("is nats-server running there"),
        "{error}"
    );
}

#[tokio::test]
async fn a_flood_of_junk_entries_in_the_node_list_is_skipped() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let n1 = join(&nats, "n1", 0).await.unwrap();
    // A peer with write access to the bucket fills it with junk.
    let client = async_nats::connect(&nats.urls[0]).await.unwrap();
    let bucket = async_nats::jetstream::new(client)
        .get_key_value("theater-nodes")
        .await
        .unwrap();
    for n in 0..1100 {
        bucket
            .put(format!("junk-{n}"), "not a node".into())
            .await
            .unwrap();
    }
    let nodes = n1.nodes().await.expect("listing still answers");
    assert_eq!(
        nodes.iter().map(|n| n.node.as_str()).collect::<Vec<_>>(),
        ["n1"],
        "junk is skipped, and the oldest keys (n1's) are read first"
    );
}
