//! Theater across machines, on NATS JetStream: nodes join a cluster,
//! announce themselves with a heartbeat, and own actors by compare-and-set.
//!
//! Two JetStream key-value buckets hold the cluster's shared facts:
//! - `theater-nodes`: one entry per node, rewritten every heartbeat. Its
//!   entries expire after the node timeout, so a node that stops beating
//!   leaves the list by itself. A node rewrites its entry only at the
//!   revision it last wrote: once another process has taken its name, or
//!   its entry expired while it was paused, it is fenced and stops.
//! - `theater-placement`: which node owns which actor, created only if
//!   absent and removed only at the revision read, so that two nodes can
//!   never both own an actor.
//!
//! - `theater-actors`: how each actor was started ([`records`]), so that
//!   a survivor can start a dead node's actors again.
//!
//! The object store `theater-components` keeps the components they run
//! ([`components`]).
//!
//! Two streams hold actors' chains, `THEATER_CHAINS` (see [`chains`]),
//! and the messages accepted for them and not yet run, `THEATER_INBOXES`
//! (see [`inboxes`]). Messages between actors on different nodes go over core
//! NATS request and reply ([`messages`]).
//!
//! Without `--cluster` none of this exists: one process, its own store.

mod batches;
mod chains;
mod components;
mod inboxes;
mod messages;
mod nodes;
mod placement;
mod records;
mod streams;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};

pub use batches::AppendCounts;
pub use chains::{ChainEnd, Follower, ReplicatedChains};
pub use components::SharedComponents;
pub use inboxes::ReplicatedInboxes;
pub use messages::{
    Answer, Delivery, Envelope, Inbox, Incoming, Listener, MAX_WAITS, Refusal, ReplyTo,
    read_acceptance, write_acceptance,
};
pub use nodes::{NodeInfo, NodeStatus};
pub use placement::{Orphan, Owner};
pub use records::ActorRecords;

/// Bucket of node heartbeats.
const NODES_BUCKET: &str = "theater-nodes";
/// Bucket of actor owners.
const PLACEMENT_BUCKET: &str = "theater-placement";
/// Bucket of actor records.
const RECORDS_BUCKET: &str = "theater-actors";
/// How long a joining node waits for JetStream to answer: a NATS cluster
/// that has just started, on a busy machine, may take a while to elect
/// its leaders and create replicated buckets.
const READY_WAIT: Duration = Duration::from_secs(30);
/// Longest a node name may be; names are keys and NATS subject tokens.
const MAX_NODE_NAME: usize = 64;

/// How to join a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS servers to connect to (`nats://host:port`); any one is enough.
    pub servers: Vec<String>,
    /// This node's name, unique in the cluster.
    pub node: String,
    /// How often this node announces itself.
    pub heartbeat: Duration,
    /// How long after its last heartbeat a node counts as gone.
    pub node_timeout: Duration,
    /// Copies JetStream keeps of the cluster's buckets (at most the number
    /// of NATS servers; 3 survives the loss of one).
    pub replicas: usize,
}

impl ClusterConfig {
    /// Defaults for the timings and replicas: a heartbeat each second, gone
    /// after 2 s of silence, one copy.
    pub fn new(servers: Vec<String>, node: impl Into<String>) -> Self {
        Self {
            servers,
            node: node.into(),
            heartbeat: Duration::from_secs(1),
            node_timeout: Duration::from_secs(2),
            replicas: 1,
        }
    }

    fn check(&self) -> Result<(), ClusterError> {
        let bad = |problem: &str| {
            Err(ClusterError::Config(format!(
                "node name `{}` {problem}",
                self.node
            )))
        };
        if self.node.is_empty() || self.node.len() > MAX_NODE_NAME {
            return bad(&format!("must be 1 to {MAX_NODE_NAME} characters long"));
        }
        if !self
            .node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad("may hold only letters, digits, `-` and `_`");
        }
        if self.servers.is_empty() {
            return Err(ClusterError::Config(
                "name at least one NATS server (nats://host:port)".into(),
            ));
        }
        if self.heartbeat.is_zero() || self.node_timeout <= self.heartbeat {
            return Err(ClusterError::Config(format!(
                "the node timeout ({:?}) must be longer than the heartbeat ({:?})",
                self.node_timeout, self.heartbeat
            )));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(ClusterError::Config(format!(
                "replicas must be 1 to 5, not {}",
                self.replicas
            )));
        }
        Ok(())
    }
}

/// Why this node cannot join or act in its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster setting: {0}")]
    Config(String),
    #[error(
        "cannot reach the NATS servers {servers}: {reason}; is nats-server running there (with JetStream on, `-js`)?"
    )]
    Connect { servers: String, reason: String },
    #[error("JetStream {what} failed: {reason}")]
    JetStream { what: &'static str, reason: String },
    #[error(
        "node name `{node}` is taken: a node of that name was seen {seen_ms} ms ago; stop it or pick another --node"
    )]
    NameTaken { node: String, seen_ms: u64 },
    #[error("actor {actor} is owned by node `{node}`")]
    Owned { actor: String, node: String },
    #[error(
        "actor {actor}'s replicated chain moved on: another node appended to it, so this node no longer owns it"
    )]
    ChainMoved { actor: String },
    #[error("actor {actor} is no longer this node's to run: {why}")]
    Lost {
        actor: crate::id::ActorId,
        why: String,
    },
    #[error("node `{node}` cannot be reached: {reason}")]
    Unreachable { node: String, reason: String },
    #[error(
        "node `{0}` lost its place in the cluster (its heartbeat was taken over or expired); restart it to rejoin"
    )]
    Fenced(String),
}

impl ClusterError {
    fn jetstream(what: &'static str, e: impl std::fmt::Display) -> Self {
        Self::JetStream {
            what,
            reason: e.to_string(),
        }
    }
}

/// This node's membership of a cluster. Cheap to clone; the heartbeat
/// ends when the last clone is dropped or [`Cluster::leave`] is called.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClusterConfig,
    client: async_nats::Client,
    nodes: kv::Store,
    placement: kv::Store,
    chains: ReplicatedChains,
    inboxes: ReplicatedInboxes,
    records: ActorRecords,
    components: SharedComponents,
    /// Tells this process's entries from those of an earlier process of
    /// the same name.
    instance: String,
    fenced: AtomicBool,
    heartbeat: tokio::task::AbortHandle,
    /// The node list as last read, and when.
    last_nodes: Mutex<Option<(Instant, Vec<NodeStatus>)>>,
    taken_over: AtomicU64,
    handed_over: AtomicU64,
}

/// What this node saw and did in the cluster since it joined, for its
/// metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClusterCounts {
    /// Live nodes, this one included, when the node list was last read (a
    /// server reads it every heartbeat).
    pub live_nodes: usize,
    pub fenced: bool,
    pub appends: AppendCounts,
    /// Actors this node took over from nodes that left the cluster.
    pub taken_over: u64,
    /// Ownership hand-overs this node made: migrations from it, and the
    /// return of one that failed.
    pub handed_over: u64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.inner.config.node)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to NATS, opens (or creates) the cluster's buckets and
    /// announces this node. `info` is asked for the node's load at each
    /// heartbeat.
    pub async fn join(
        config: ClusterConfig,
        info: impl Fn() -> NodeInfo + Send + Sync + 'static,
    ) -> Result<Self, ClusterError> {
        config.check()?;
        let client = async_nats::ConnectOptions::new()
            .name(format!("theater-{}", config.node))
            .connect(&config.servers)
            .await
            .map_err(|e| ClusterError::Connect {
                servers: config.servers.join(","),
                reason: e.to_string(),
            })?;
        let js = jetstream::new(client.clone());
        let replicas = config.replicas;
        let timeout = Some(config.node_timeout);
        let nodes = when_ready(async || bucket(&js, NODES_BUCKET, timeout, replicas).await).await?;
        let placement =
            when_ready(async || bucket(&js, PLACEMENT_BUCKET, None, replicas).await).await?;
        let chains = when_ready(async || ReplicatedChains::open(&js, replicas).await).await?;
        let inboxes = when_ready(async || ReplicatedInboxes::open(&js, replicas).await).await?;
        let records =
            when_ready(async || bucket(&js, RECORDS_BUCKET, None, replicas).await).await?;
        let records = ActorRecords::new(records);
        let components = when_ready(async || SharedComponents::open(&js, replicas).await).await?;
        let instance = uuid::Uuid::new_v4().to_string();
        let first = NodeInfo {
            instance: instance.clone(),
            ..info()
        };
        let revision = when_ready(async || {
            nodes::announce(&nodes, &config.node, &first, config.node_timeout).await
        })
        .await?;
        let beat = nodes::Heartbeat {
            nodes: nodes.clone(),
            node: config.node.clone(),
            instance: instance.clone(),
            every: config.heartbeat,
            revision,
        };
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let weak = weak.clone();
            let task = tokio::spawn(beat.run(info, move || {
                if let Some(inner) = weak.upgrade() {
                    inner.fenced.store(true, Ordering::Relaxed);
                }
            }));
            Inner {
                config,
                client,
                nodes,
                placement,
                chains,
                inboxes,
                records,
                components,
                instance,
                fenced: AtomicBool::new(false),
                heartbeat: task.abort_handle(),
                last_nodes: Mutex::new(None),
                taken_over: AtomicU64::new(0),
                handed_over: AtomicU64::new(0),
            }
        });
        Ok(Self { inner })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.inner.config.node
    }

    /// How often this node announces itself.
    pub fn heartbeat(&self) -> std::time::Duration {
        self.inner.config.heartbeat
    }

    /// Every node whose heartbeat has not expired (at most
    /// [`nodes::MAX_LISTED_NODES`]), by name.
    pub async fn nodes(&self) -> Result<Vec<NodeStatus>, ClusterError> {
        let nodes = nodes::list(&self.inner.nodes).await?;
        *self.last_nodes() = Some((Instant::now(), nodes.clone()));
        Ok(nodes)
    }

    /// [`nodes`](Self::nodes), or the list read less than a heartbeat ago:
    /// for views that ask often (a server reads the list every heartbeat),
    /// without a JetStream read each time.
    pub async fn recent_nodes(&self) -> Result<Vec<NodeStatus>, ClusterError> {
        if let Some((read, nodes)) = &*self.last_nodes()
            && read.elapsed() < self.heartbeat()
        {
            return Ok(nodes.clone());
        }
        self.nodes().await
    }

    fn last_nodes(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Vec<NodeStatus>)>> {
        self.inner.last_nodes.lock().expect("node list lock")
    }

    /// What this node saw and did in the cluster since it joined.
    pub fn counts(&self) -> ClusterCounts {
        let inner = &self.inner;
        let live_nodes = self
            .last_nodes()
            .as_ref()
            .map_or(0, |(_, nodes)| nodes.len());
        ClusterCounts {
            live_nodes,
            fenced: self.is_fenced(),
            appends: inner.chains.append_counts(),
            taken_over: inner.taken_over.load(Ordering::Relaxed),
            handed_over: inner.handed_over.load(Ordering::Relaxed),
        }
    }

    /// Records this node as the owner of `actor`; refused if a node
    /// already owns it.
    pub async fn claim(&self, actor: &str) -> Result<(), ClusterError> {
        self.check_fenced()?;
        placement::claim(&self.inner.placement, actor, &self.as_owner(None)).await
    }

    /// [`claim`](Self::claim) for `actor`, a child of `parent`: it goes
    /// where its parent goes.
    pub async fn claim_child(&self, actor: &str, parent: &str) -> Result<(), ClusterError> {
        self.check_fenced()?;
        let owner = self.as_owner(Some(parent.to_owned()));
        placement::claim(&self.inner.placement, actor, &owner).await
    }

    /// This node, as the owner of an actor with `parent`.
    fn as_owner(&self, parent: Option<String>) -> Owner {
        Owner {
            node: self.node().to_owned(),
            instance: self.inner.instance.clone(),
            parent,
        }
    }

    /// Gives up this node's ownership of `actor`, if it has it.
    pub async fn release(&self, actor: &str) -> Result<(), ClusterError> {
        placement::release(&self.inner.placement, actor, self.node()).await
    }

    /// The node that owns `actor`, if any does.
    pub async fn owner(&self, actor: &str) -> Result<Option<Owner>, ClusterError> {
        placement::owner(&self.inner.placement, actor).await
    }

    /// The cluster's replicated chains.
    pub fn chains(&self) -> &ReplicatedChains {
        &self.inner.chains
    }

    /// The cluster's replicated inboxes.
    pub fn inboxes(&self) -> &ReplicatedInboxes {
        &self.inner.inboxes
    }

    /// How the cluster's actors were started.
    pub fn records(&self) -> &ActorRecords {
        &self.inner.records
    }

    /// The components the cluster's actors run.
    pub fn components(&self) -> &SharedComponents {
        &self.inner.components
    }

    /// Every actor a node owns, with its owner (at most
    /// [`placement::MAX_LISTED_ACTORS`]).
    pub async fn owned(&self) -> Result<Vec<Orphan>, ClusterError> {
        placement::list(&self.inner.placement).await
    }

    /// Of `owned`, the actors whose owner is another node, not among the
    /// `live` nodes.
    pub fn orphans(&self, owned: &[Orphan], live: &[String]) -> Vec<Orphan> {
        owned
            .iter()
            .filter(|orphan| orphan.owner.node != self.node() && !live.contains(&orphan.owner.node))
            .cloned()
            .collect()
    }

    /// Makes this node the owner of `orphan`, unless its ownership record
    /// changed since it was read (another node took it first): `false`.
    pub async fn take_over(&self, orphan: &Orphan) -> Result<bool, ClusterError> {
        self.check_fenced()?;
        let owner = self.as_owner(orphan.owner.parent.clone());
        let taken = placement::take_over(&self.inner.placement, orphan, &owner).await?;
        self.inner
            .taken_over
            .fetch_add(u64::from(taken), Ordering::Relaxed);
        Ok(taken)
    }

    /// Makes `to` the owner of `actor`, which node `from` owns; `false` if
    /// `from` does not own it (any longer).
    pub async fn hand_over(
        &self,
        actor: &str,
        from: &str,
        to: &NodeStatus,
    ) -> Result<bool, ClusterError> {
        self.check_fenced()?;
        let owner = Owner {
            node: to.node.clone(),
            instance: to.info.instance.clone(),
            parent: None,
        };
        let handed = placement::hand_over(&self.inner.placement, actor, from, &owner).await?;
        self.inner
            .handed_over
            .fetch_add(u64::from(handed), Ordering::Relaxed);
        Ok(handed)
    }

    /// Stops the heartbeat and removes this node from the list at once,
    /// instead of after the node timeout.
    pub async fn leave(&self) {
        self.inner.heartbeat.abort();
        let _ = self.inner.nodes.delete(&self.inner.config.node).await;
    }

    /// Whether this node lost its place in the cluster (see
    /// [`ClusterError::Fenced`]).
    pub fn is_fenced(&self) -> bool {
        self.inner.fenced.load(Ordering::Relaxed)
    }

    fn check_fenced(&self) -> Result<(), ClusterError> {
        match self.is_fenced() {
            true => Err(ClusterError::Fenced(self.node().to_owned())),
            false => Ok(()),
        }
    }
}

/// `actor` as one key or subject token; refused unless it is one (ids are
/// UUIDs), so that no name reaches another actor's records.
fn actor_token(actor: &str) -> Result<&str, ClusterError> {
    let token = !actor.is_empty()
        && actor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match token {
        true => Ok(actor),
        false => Err(ClusterError::Config(format!(
            "`{actor}` is not an actor id"
        ))),
    }
}

/// `attempt`, tried again for up to [`READY_WAIT`] while JetStream cannot
/// answer yet: a cluster just started elects its leaders, and a bucket or
/// stream just created answers once it has one.
async fn when_ready<T>(
    mut attempt: impl AsyncFnMut() -> Result<T, ClusterError>,
) -> Result<T, ClusterError> {
    let deadline = tokio::time::Instant::now() + READY_WAIT;
    loop {
        match attempt().await {
            Err(ClusterError::JetStream { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            done => return done,
        }
    }
}

/// Opens bucket `name`, creating it with `max_age` (entries expire) and
/// `replicas` copies if it does not exist.
async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Option<Duration>,
    replicas: usize,
) -> Result<kv::Store, ClusterError> {
    let wanted = kv::Config {
        bucket: name.to_owned(),
        history: 1,
        max_age: max_age.unwrap_or_default(),
        num_replicas: replicas,
        ..Default::default()
    };
    let mut store = match js.get_key_value(name).await {
        Ok(store) => store,
        Err(_) => js
            .create_key_value(wanted)
            .await
            .map_err(|e| ClusterError::jetstream("creating a key-value bucket", e))?,
    };
    let what = "reading a key-value bucket from its leader";
    streams::read_from_leader(js, &mut store.stream, what).await?;
    Ok(store)
}
