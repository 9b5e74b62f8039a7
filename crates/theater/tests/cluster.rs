//! Nodes joining a real three-server NATS JetStream cluster (replicas 3):
//! heartbeats, names that are taken, actors owned by compare-and-set, and
//! real actors whose every event goes to their replicated chain.

#[path = "it/common/mod.rs"]
mod common;
mod nats;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nats::NatsCluster;
use theater::chain::ChainEvent;
use theater::cluster::{ChainEnd, Cluster, ClusterConfig, ClusterError, NodeInfo};
use theater::dashboard::Dashboard;
use theater::host::HANDLE_SEND;
use theater::metrics::MetricsConfig;
use theater::storage::{Replicated, ReplicatedLog};
use theater::web::WebAccess;
use theater::{ActorHandle, ActorId, RuntimeConfig, TheaterRuntime};

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
async fn the_clusters_buckets_are_read_from_their_leaders() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let _n1 = join(&nats, "n1", 0).await.unwrap();
    // A replica answering a direct get may lag behind an acknowledged
    // write; the leader never does.
    let client = async_nats::connect(nats.urls[0].as_str()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    for stream in [
        "KV_theater-nodes",
        "KV_theater-placement",
        "KV_theater-actors",
        "OBJ_theater-components",
    ] {
        let mut stream = js.get_stream(stream).await.unwrap();
        let info = stream.info().await.unwrap();
        assert!(!info.config.allow_direct, "{}", info.config.name);
        assert_eq!(info.config.num_replicas, 3, "{}", info.config.name);
    }
}

#[tokio::test]
async fn the_dashboard_shows_the_clusters_live_nodes() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let n1 = join(&nats, "n1", 0).await.unwrap();
    let _n2 = join(&nats, "n2", 3).await.unwrap();
    let mut config = in_memory_with_cache();
    config.cluster = Some(n1.clone());
    let runtime = TheaterRuntime::new(config).unwrap();
    let access = WebAccess {
        token: Some("dash-token".into()),
        insecure: false,
    };
    let dashboard = Dashboard::bind(runtime.clone(), "127.0.0.1:0", access)
        .await
        .unwrap();
    let url = format!("http://{}/api/node", dashboard.local_addr().unwrap());
    tokio::spawn(dashboard.serve());
    let answer = reqwest::Client::new()
        .get(url)
        .bearer_auth("dash-token")
        .send()
        .await
        .unwrap();
    let node: serde_json::Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    assert_eq!(node["cluster"]["node"], "n1", "{node}");
    let nodes = node["cluster"]["nodes"].as_array().unwrap();
    let seen: Vec<(&str, u64)> = nodes
        .iter()
        .map(|n| (n["node"].as_str().unwrap(), n["actors"].as_u64().unwrap()))
        .collect();
    assert_eq!(seen, [("n1", 0), ("n2", 3)], "{node}");
    runtime.shutdown().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_of_many_actors_go_out_in_batches_and_a_stale_one_is_refused_alone() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let n1 = join(&nats, "n1", 0).await.unwrap();
    let actors: Vec<String> = (0..200).map(|_| ActorId::new().to_string()).collect();
    let firsts: Vec<ChainEvent> = (0..actors.len() as u64).map(|n| event(None, n)).collect();
    let appended = futures::future::join_all(actors.iter().zip(&firsts).map(|(actor, first)| {
        n1.chains()
            .append(actor, ChainEnd::default(), encoded(first))
    }))
    .await;
    let ends: Vec<ChainEnd> = appended.into_iter().map(Result::unwrap).collect();
    let counts = n1.chains().append_counts();
    assert!(
        counts.batches > 0 && counts.batched > counts.batches,
        "{counts:?}"
    );
    assert_eq!(
        counts.batched + counts.alone,
        actors.len() as u64,
        "{counts:?}"
    );

    // Again, one of them from a stale end: it alone is refused.
    let seconds: Vec<ChainEvent> = firsts.iter().map(|first| event(Some(first), 1)).collect();
    let appended = futures::future::join_all(actors.iter().enumerate().map(|(at, actor)| {
        let after = if at == 7 {
            ChainEnd::default()
        } else {
            ends[at]
        };
        n1.chains().append(actor, after, encoded(&seconds[at]))
    }))
    .await;
    for (at, (actor, appended)) in actors.iter().zip(appended).enumerate() {
        let (read, _) = n1.chains().read(actor).await.unwrap();
        match at {
            7 => {
                let refused = appended.unwrap_err();
                assert!(
                    matches!(refused, ClusterError::ChainMoved { .. }),
                    "{refused}"
                );
                assert_eq!(read.len(), 1);
            }
            _ => {
                assert!(appended.unwrap().0 > ends[at].0);
                let read: Vec<ChainEvent> = read
                    .iter()
                    .map(|b| serde_json::from_slice(b).unwrap())
                    .collect();
                assert_eq!(read.len(), 2);
                theater::chain::verify(&read).unwrap();
            }
        }
    }
    let counts = n1.chains().append_counts();
    assert_eq!((counts.refused, counts.failed), (1, 0), "{counts:?}");
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
    // Bounded and junk skipped: only real nodes are listed (n1, unless
    // more junk than the bound is newer than its heartbeat).
    let nodes = n1.nodes().await.expect("listing still answers");
    let names: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
    assert!(names.is_empty() || names == ["n1"], "{names:?}");
    // The junk expires like any entry; n1 goes on beating.
    common::eventually("n1 is listed again", async || {
        (node_names(&n1).await == ["n1"]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_component_comes_back_whole_and_junk_under_its_name_is_refused() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let n1 = join(&nats, "n1", 0).await.unwrap();
    let store = n1.components();
    let bytes = b"\0asm a component".to_vec();
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    assert!(!store.holds(&hash).await.unwrap());
    assert_eq!(store.fetch(&hash, 1024).await.unwrap(), None);
    store.share(&hash, &bytes).await.unwrap();
    assert!(store.holds(&hash).await.unwrap());
    assert_eq!(store.fetch(&hash, 1024).await.unwrap(), Some(bytes.clone()));
    let too_big = store.fetch(&hash, 4).await.unwrap_err().to_string();
    assert!(
        too_big.contains("more than this node's limit of 4"),
        "{too_big}"
    );
    // A peer with write access to the store puts junk under a hash.
    let junk = hex::encode([7u8; 32]);
    store.share(&junk, b"not that component").await.unwrap();
    let refused = store.fetch(&junk, 1024).await.unwrap_err().to_string();
    assert!(refused.contains("does not hash to its name"), "{refused}");
}

/// A runtime of `node` whose events go to its replicated chains, then to
/// `config`'s own log.
fn replicated_runtime(node: &Cluster, mut config: RuntimeConfig) -> TheaterRuntime {
    let local = config.event_log.clone();
    config.event_log = Arc::new(ReplicatedLog::new(local, node));
    TheaterRuntime::new(config).unwrap()
}

/// Chains in memory; compiled components in the tests' shared cache.
fn in_memory_with_cache() -> RuntimeConfig {
    let mut config = RuntimeConfig::ephemeral();
    config.home = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("theater-home"));
    config
}

async fn add_one(counter: &ActorHandle) -> Result<(), theater::ActorError> {
    counter
        .call_function::<(Vec<u8>,), ()>(HANDLE_SEND, (br#"{"add":1}"#.to_vec(),))
        .await
}

/// `actor`'s replicated chain as any node reads it, and where it ends.
async fn replicated(node: &Cluster, actor: ActorId) -> (Vec<Replicated>, ChainEnd) {
    let (messages, end) = node.chains().read(&actor.to_string()).await.unwrap();
    let entries = messages
        .iter()
        .map(|bytes| Replicated::decode(bytes).expect("a replicated entry"))
        .collect();
    (entries, end)
}

fn hashes<'a>(events: impl IntoIterator<Item = &'a ChainEvent>) -> Vec<[u8; 32]> {
    events.into_iter().map(|e| e.hash).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_replicated_before_its_call_answers() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let n1 = join(&nats, "n1", 0).await.unwrap();
    let runtime = replicated_runtime(&n1, in_memory_with_cache());
    let counter = common::spawn(&runtime, "counter").await;
    for _ in 0..3 {
        add_one(&counter).await.unwrap();
    }

    // Read as soon as the calls answered, from another server.
    let (entries, _) = replicated(&n1, counter.id()).await;
    let local = runtime.chain(counter.id()).unwrap();
    assert_eq!(local.len(), 4, "actor-init and three calls");
    assert_eq!(hashes(entries.iter().map(|e| &e.event)), hashes(&local));
    let events: Vec<ChainEvent> = entries.iter().map(|e| e.event.clone()).collect();
    theater::chain::verify(&events).expect("the replicated chain verifies");
    // Each transition carries its state: another node can rebuild the
    // actor from its chain alone.
    let state = counter.state().await.unwrap();
    assert!(state.is_some());
    assert_eq!(entries[3].state, Some(state));
    assert!(
        entries.iter().all(|e| e.state.is_some()),
        "all are transitions"
    );
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_an_actor_cannot_fork_its_chain() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let n1 = join(&nats, "n1", 0).await.unwrap();
    let n2 = join(&nats, "n2", 0).await.unwrap();
    let mut config = in_memory_with_cache();
    config.cluster = Some(n1.clone());
    config.metrics = Some(MetricsConfig::default());
    let runtime = replicated_runtime(&n1, config);
    let counter = common::spawn(&runtime, "counter").await;
    let name = counter.id().to_string();
    n1.claim(&name).await.unwrap();
    add_one(&counter).await.unwrap();

    // n2 takes the actor over and appends to its chain.
    let owned = n2.owned().await.unwrap();
    let orphan = owned.iter().find(|o| o.actor == name).unwrap();
    assert!(n2.take_over(orphan).await.unwrap());
    assert_eq!(n2.counts().taken_over, 1);
    let (entries, end) = replicated(&n2, counter.id()).await;
    let head = &entries.last().unwrap().event;
    let taken = Replicated {
        delivered: None,
        event: event(Some(head), 99),
        state: None,
    };
    n2.chains()
        .append(&counter.id().to_string(), end, taken.encode().into())
        .await
        .expect("the new owner appends");

    // n1's copy is stale: its next call is refused, and every later one.
    for _ in 0..2 {
        let error = add_one(&counter).await.unwrap_err().to_string();
        assert!(
            error.contains("no longer this node's to run: another node appended"),
            "{error}"
        );
    }

    // No fork: the replicated chain is the new owner's, and n1 kept only
    // what the cluster took.
    let (entries, _) = replicated(&n1, counter.id()).await;
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[2].event.hash, taken.event.hash);
    let events: Vec<ChainEvent> = entries.into_iter().map(|e| e.event).collect();
    theater::chain::verify(&events).unwrap();
    assert_eq!(runtime.chain(counter.id()).unwrap().len(), 2);

    // n1's metrics say what happened to its appends.
    n1.nodes().await.unwrap();
    let scrape = runtime.metrics_text().unwrap();
    let value = |series: &str| {
        let line = scrape
            .lines()
            .find(|l| l.starts_with(&format!("{series} ")));
        let value = line.and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
        value.unwrap_or_else(|| panic!("no {series} in\n{scrape}"))
    };
    // JetStream refused the first stale append; the second call was
    // refused here, without asking.
    assert_eq!(value("theater_cluster_appends_refused_total"), 1);
    assert_eq!(value("theater_cluster_appends_failed_total"), 0);
    let published = value("theater_cluster_appends_batched_total")
        + value("theater_cluster_appends_alone_total");
    assert_eq!(published, 3, "actor-init, the add, and the refused one");
    assert_eq!(value("theater_cluster_nodes"), 2);
    assert_eq!(value("theater_cluster_fenced"), 0);
    assert_eq!(value("theater_cluster_takeovers_total"), 0);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_on_its_store_continues_the_replicated_chain() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let n1 = join(&nats, "n1", 0).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let first = replicated_runtime(&n1, RuntimeConfig::at(home.path()).unwrap());
    let counter = common::spawn(&first, "counter").await;
    let id = counter.id();
    add_one(&counter).await.unwrap();
    first.shutdown().await;
    drop((counter, first));

    // A new runtime knows nothing of where the chain stands: it reads it.
    let second = replicated_runtime(&n1, RuntimeConfig::at(home.path()).unwrap());
    let report = second.resume_all().await.unwrap();
    assert_eq!(report.resumed, [id], "{:?}", report.failed);
    add_one(&second.actor(id).unwrap()).await.unwrap();
    let (entries, _) = replicated(&n1, id).await;
    let local = second.chain(id).unwrap();
    assert_eq!(hashes(entries.iter().map(|e| &e.event)), hashes(&local));
    assert_eq!(local.len(), 4, "init, call, resume, call");
    second.shutdown().await;
    drop(second);

    // While it was down, another node took the actor on: it does not
    // resume here.
    let n2 = join(&nats, "n2", 0).await.unwrap();
    let (entries, end) = replicated(&n2, id).await;
    let taken = Replicated {
        delivered: None,
        event: event(Some(&entries.last().unwrap().event), 99),
        state: None,
    };
    n2.chains()
        .append(&id.to_string(), end, taken.encode().into())
        .await
        .unwrap();
    let third = replicated_runtime(&n1, RuntimeConfig::at(home.path()).unwrap());
    let report = third.resume_all().await.unwrap();
    assert!(report.resumed.is_empty());
    let (failed, reason) = &report.failed[0];
    assert_eq!(*failed, id);
    assert!(
        reason.contains("an event this node did not write"),
        "{reason}"
    );
    assert_eq!(replicated(&n2, id).await.0.len(), 5, "nothing appended");
    third.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_nats_server_under_load_loses_nothing_acknowledged() {
    let Some(mut nats) = NatsCluster::start() else {
        return;
    };
    let mut config = config(&nats, "n1");
    config.heartbeat = Duration::from_millis(500);
    config.node_timeout = Duration::from_secs(5);
    let n1 = Cluster::join(config, NodeInfo::default).await.unwrap();
    let runtime = replicated_runtime(&n1, in_memory_with_cache());
    let mut counters = Vec::new();
    for _ in 0..20 {
        counters.push(common::spawn(&runtime, "counter").await);
    }
    // The server that leads the chain stream is the one to lose.
    let client = async_nats::connect(nats.urls.as_slice()).await.unwrap();
    let mut stream = async_nats::jetstream::new(client)
        .get_stream("THEATER_CHAINS")
        .await
        .unwrap();
    let info = stream.info().await.unwrap();
    let leader = info
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .unwrap();
    let leader: usize = leader.trim_start_matches('s').parse().unwrap();

    // Each counter gets `{"add":1}` after `{"add":1}`, counting answers
    // before and after the kill, and failures.
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = counters
        .iter()
        .cloned()
        .map(|counter| {
            let (killed, stop) = (killed.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut before, mut after, mut failed) = (0u64, 0u64, 0u64);
                let mut error = String::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let late = killed.load(std::sync::atomic::Ordering::Relaxed);
                    match (add_one(&counter).await, late) {
                        (Ok(()), false) => before += 1,
                        (Ok(()), true) => after += 1,
                        (Err(e), _) => {
                            failed += 1;
                            error = e.to_string();
                        }
                    }
                }
                (counter, before, after, failed, error)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    nats.kill(leader);
    killed.store(true, std::sync::atomic::Ordering::Relaxed);
    // Time for the stream to elect a new leader and the client to move.
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    for task in load {
        let (counter, before, after, failed, error) = task.await.unwrap();
        assert!(
            after > 0,
            "counter {} served nothing after the kill ({before} before, {failed} failed: {error})",
            counter.id()
        );
        let state = counter.state().await.unwrap().unwrap();
        let count = serde_json::from_slice::<serde_json::Value>(&state).unwrap()["count"]
            .as_u64()
            .unwrap();
        let acknowledged = before + after;
        assert!(
            (acknowledged..=acknowledged + failed).contains(&count),
            "count {count}, {acknowledged} acknowledged, {failed} failed"
        );
        // The surviving servers have every event the runtime kept.
        let (entries, _) = replicated(&n1, counter.id()).await;
        let local = runtime.chain(counter.id()).unwrap();
        assert_eq!(hashes(entries.iter().map(|e| &e.event)), hashes(&local));
    }
    runtime.shutdown().await;
}

/// A runtime of `node` that reaches actors on other nodes through the
/// cluster, and answers for its own.
fn node_runtime(node: &Cluster) -> TheaterRuntime {
    let mut config = in_memory_with_cache();
    config.cluster = Some(node.clone());
    replicated_runtime(node, config)
}

/// Spawns `name` on `runtime` and claims it for `node`, as `theater start`
/// does.
async fn start(node: &Cluster, runtime: &TheaterRuntime, name: &str) -> ActorId {
    let actor = common::spawn(runtime, name).await;
    node.claim(&actor.id().to_string()).await.unwrap();
    actor.id()
}

/// A request from a client of `runtime` to `to`, JSON both ways.
async fn ask(
    runtime: &TheaterRuntime,
    to: ActorId,
    message: serde_json::Value,
) -> Result<serde_json::Value, theater::ActorError> {
    let message = serde_json::to_vec(&message).unwrap();
    let reply = runtime
        .request(None, to, message, Duration::from_secs(5))
        .await?;
    Ok(serde_json::from_slice(&reply).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_on_different_nodes_reach_each_other_by_id() {
    use serde_json::json;
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let nodes = [
        join(&nats, "n1", 0).await.unwrap(),
        join(&nats, "n2", 0).await.unwrap(),
        join(&nats, "n3", 0).await.unwrap(),
    ];
    let runtimes = nodes.each_ref().map(node_runtime);
    let [r1, r2, r3] = &runtimes;
    let a = start(&nodes[0], r1, "messenger").await;
    let b = start(&nodes[1], r2, "messenger").await;
    let c = start(&nodes[2], r3, "messenger").await;

    // A request from an actor on n1 to one on n2, and from n1's client.
    let relayed = ask(r1, a, json!({"request": {"to": b, "msg": "ping"}})).await;
    assert_eq!(relayed.unwrap(), json!("pong"));
    assert_eq!(ask(r1, b, json!("ping")).await.unwrap(), json!("pong"));

    // A send is accepted by n2 and runs there.
    let sent = ask(r1, a, json!({"send": {"to": b, "msg": {"hello": 1}}})).await;
    assert_eq!(sent.unwrap(), json!(null));
    let b_handle = r2.actor(b).unwrap();
    let received = common::eventually("the send runs on n2", async || {
        let state = b_handle.state().await.unwrap().unwrap();
        let memory: serde_json::Value = serde_json::from_slice(&state).unwrap();
        let received = memory["received"].clone();
        (received != json!([])).then_some(received)
    })
    .await;
    assert_eq!(received, json!([{"via": "send", "msg": {"hello": 1}}]));

    // Cycles of requests across nodes are refused, not left to time out:
    // a (n1) → b (n2) → a, and a (n1) → b (n2) → c (n3) → a.
    let back = json!({"request": {"to": b, "msg": {"request": {"to": a, "msg": "ping"}}}});
    let error = ask(r1, a, back).await.unwrap_err().to_string();
    assert!(error.contains("would wait for each other"), "{error}");
    let around = json!({"request": {"to": b, "msg":
        {"request": {"to": c, "msg": {"request": {"to": a, "msg": "ping"}}}}}});
    let error = ask(r1, a, around).await.unwrap_err().to_string();
    assert!(error.contains("would wait for each other"), "{error}");
    // Once refused, nothing is left waiting: the same actors talk again.
    let fine = json!({"request": {"to": b, "msg": {"request": {"to": c, "msg": "ping"}}}});
    assert_eq!(ask(r1, a, fine).await.unwrap(), json!("pong"));

    // An id no node runs, and an actor whose node is gone.
    let nobody = ActorId::new();
    assert!(matches!(
        ask(r1, nobody, json!("ping")).await,
        Err(theater::ActorError::UnknownActor(id)) if id == nobody
    ));
    r3.shutdown().await;
    drop(runtimes);
    let r1 = node_runtime(&nodes[0]);
    let error = ask(&r1, c, json!("ping")).await.unwrap_err().to_string();
    assert!(error.contains("node `n3` cannot be reached"), "{error}");
    r1.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_junk_from_the_network_with_an_error() {
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let n1 = join(&nats, "n1", 0).await.unwrap();
    let runtime = node_runtime(&n1);
    let client = async_nats::connect(nats.urls.as_slice()).await.unwrap();
    let subject = "theater.node.n1.messages";
    let answer = common::eventually("n1 listens", async || {
        client.request(subject, "junk".into()).await.ok()
    })
    .await;
    let refused = answer
        .headers
        .as_ref()
        .and_then(|h| h.get("Theater-Refused"));
    assert_eq!(refused.map(|v| v.as_str()), Some("failed"));
    let why = String::from_utf8_lossy(&answer.payload);
    assert!(why.contains("unreadable message"), "{why}");

    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Theater-Node", "n9");
    headers.insert("Theater-Delivery", "send");
    headers.insert("Theater-To", "../../etc");
    let answer = client
        .request_with_headers(subject, headers, "x".into())
        .await
        .unwrap();
    let why = String::from_utf8_lossy(&answer.payload);
    assert!(why.contains("is not an actor id"), "{why}");

    // Supervision notes: junk, and a forged parent's stop for an actor
    // that is nobody's child, are refused; the actor runs on.
    let subject = "theater.node.n1.supervision";
    let answer = client.request(subject, "junk".into()).await.unwrap();
    let why = String::from_utf8_lossy(&answer.payload);
    assert!(why.contains("an unreadable note"), "{why}");
    let counter = start(&n1, &runtime, "counter").await;
    let forged =
        serde_json::json!({"child": {"parent": ActorId::new(), "child": counter, "op": "stop"}});
    let forged = serde_json::to_vec(&forged).unwrap();
    let answer = client.request(subject, forged.into()).await.unwrap();
    let why = String::from_utf8_lossy(&answer.payload);
    assert!(
        why.contains(r#""refused""#) && why.contains("is not a child of"),
        "{why}"
    );
    assert!(
        runtime.actor(counter).is_ok(),
        "a forged stop stops nothing"
    );
    runtime.shutdown().await;
}

/// The messenger `actor`'s memory, once `found` says it holds what is
/// awaited.
async fn memory_of(
    runtime: &TheaterRuntime,
    actor: ActorId,
    what: &str,
    found: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let handle = runtime.actor(actor).unwrap();
    common::eventually(what, async || {
        let state = handle.state().await.unwrap().unwrap();
        let memory: serde_json::Value = serde_json::from_slice(&state).unwrap();
        found(&memory).then_some(memory)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_join_actors_and_clients_on_different_nodes() {
    use serde_json::json;
    use theater::runtime::ChannelEvent;
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let n1 = join(&nats, "n1", 0).await.unwrap();
    let n2 = join(&nats, "n2", 0).await.unwrap();
    let (r1, r2) = (node_runtime(&n1), node_runtime(&n2));
    let a = start(&n1, &r1, "messenger").await;
    let b = start(&n2, &r2, "messenger").await;

    // a (n1) opens a channel to b (n2), which greets back.
    let opened = ask(&r1, a, json!({"open": {"to": b, "msg": "greet"}})).await;
    let channel = opened.unwrap().as_str().unwrap().to_owned();
    let hello = json!({"via": channel, "msg": "hello"});
    memory_of(&r1, a, "a hears b's greeting", |m| {
        m["received"].as_array().unwrap().contains(&hello)
    })
    .await;
    // Both ways, in order.
    for n in 0..3 {
        let sent = json!({"channel_send": {"channel": channel, "msg": {"n": n}}});
        ask(&r1, a, sent).await.unwrap();
    }
    let back = json!({"channel_send": {"channel": channel, "msg": "back"}});
    ask(&r2, b, back).await.unwrap();
    let memory = memory_of(&r2, b, "b has a's three", |m| {
        m["received"].as_array().unwrap().len() == 3
    })
    .await;
    let from_a: Vec<_> = (0..3)
        .map(|n| json!({"via": channel, "msg": {"n": n}}))
        .collect();
    assert_eq!(memory["received"], json!(from_a));
    memory_of(&r1, a, "a hears b's answer", |m| {
        m["received"]
            .as_array()
            .unwrap()
            .contains(&json!({"via": channel, "msg": "back"}))
    })
    .await;
    // a closes it: b hears, and neither can use it again.
    ask(&r1, a, json!({"close": channel})).await.unwrap();
    memory_of(&r2, b, "b hears the close", |m| {
        m["closed"].as_array().unwrap().contains(&json!(channel))
    })
    .await;
    let late = json!({"channel_send": {"channel": channel, "msg": "late"}});
    let error = ask(&r2, b, late).await.unwrap_err().to_string();
    assert!(error.contains("no open channel"), "{error}");

    // A refusal travels back as the actor said it.
    let refused = ask(&r1, a, json!({"open": {"to": b, "msg": "reject"}})).await;
    let error = refused.unwrap_err().to_string();
    assert!(error.contains("refused the channel: not today"), "{error}");

    // A client of n1 and b on n2.
    let mut client = r1
        .open_client_channel(b, br#""greet""#.to_vec(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(client.accept_message.as_deref(), Some(&br#""hello""#[..]));
    r1.send_on_channel(None, &client.id, br#""from a client""#.to_vec())
        .await
        .unwrap();
    memory_of(&r2, b, "b hears the client", |m| {
        m["received"]
            .as_array()
            .unwrap()
            .contains(&json!({"via": client.id, "msg": "from a client"}))
    })
    .await;
    let to_client = json!({"channel_send": {"channel": client.id, "msg": 42}});
    ask(&r2, b, to_client).await.unwrap();
    let event = client.events.recv().await.unwrap();
    assert_eq!(event, ChannelEvent::Message(b"42".to_vec()));

    // An actor that stops closes its channels on the other node too.
    let opened = ask(&r1, a, json!({"open": {"to": b, "msg": "hi"}})).await;
    let second = opened.unwrap().as_str().unwrap().to_owned();
    r2.stop(b).await.unwrap();
    memory_of(&r1, a, "a hears b's channel close", |m| {
        m["closed"].as_array().unwrap().contains(&json!(second))
    })
    .await;
    assert_eq!(client.events.recv().await, Some(ChannelEvent::Closed));
    r1.shutdown().await;
    r2.shutdown().await;
}
