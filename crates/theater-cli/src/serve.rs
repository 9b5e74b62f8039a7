//! `theater server`: a runtime that other `theater` commands manage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use theater::cluster::{Cluster, ClusterConfig, NodeInfo};
use theater::files::{
    DEFAULT_MAX_COMPONENT_BYTES, DEFAULT_MAX_INIT_STATE_BYTES, DEFAULT_MAX_MANIFEST_BYTES,
    FileLimits,
};
use theater::runtime::{DEFAULT_MAX_ACTORS, default_home};
use theater::server::{
    DEFAULT_FRAME_TIMEOUT, DEFAULT_HELLO_TIMEOUT, DEFAULT_LISTEN, DEFAULT_MAX_BYTES_IN_FLIGHT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HELLO_BYTES, DEFAULT_MAX_UNAUTHENTICATED,
    DEFAULT_MAX_UNAUTHENTICATED_PER_PEER, Server, ServerConfig, ServerLimits,
};
use theater::storage::SNAPSHOT_EVERY;
use theater::storage::{Durability, LogOptions, ReplicatedLog};
use theater::web::WebAccess;
use theater::{RuntimeConfig, TheaterRuntime};

use crate::observe::{DashboardArgs, MetricsArgs, serve_dashboard, serve_metrics};

/// Run the management server: a runtime that `theater start`, `list`,
/// `message` and the other client commands talk to.
///
/// It listens on loopback only unless told otherwise; anyone who can reach
/// the address can start actors from files this user can read, so it
/// refuses any other address without a --token (unless --insecure).
/// Prints `listening on ADDR` once ready.
///
/// The connection limits keep operators from being locked out by clients
/// that hold connections open or send large frames; the defaults suit most
/// servers (see docs/security.md).
///
/// Chains, actor records and states are durable in the home directory.
/// Ctrl-C (or SIGTERM) stops the actors and the server; a server started
/// later on the same home resumes every actor that was running, after a
/// crash too, under the same ids and from the states they had reached.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  theater server\n  theater server --listen 127.0.0.1:0 --home /tmp/theater --token s3cret"
)]
pub struct ServerArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Data directory (chains, actor records, compiled components); default ~/.theater.
    #[arg(long, value_name = "DIR", env = "THEATER_HOME")]
    home: Option<PathBuf>,
    /// Require this shared secret from every client.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "THEATER_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Listen on an address other than loopback without a token. Anyone
    /// who can reach it can then start actors from any file this user can
    /// read: only for networks where every host is trusted.
    #[arg(long)]
    insecure: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    dashboard: DashboardArgs,
    /// Keep a snapshot of each actor's state every N events (going back to
    /// an event replays fewer calls than N).
    #[arg(long, value_name = "N", default_value_t = SNAPSHOT_EVERY, value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_every: u64,
    /// Acknowledge calls before their events are flushed to disk, flushing
    /// at most MS milliseconds later: faster, but a crash may lose the
    /// calls of about the last MS ms (see docs/durability.md).
    #[arg(long, value_name = "MS")]
    buffered: Option<u64>,
    /// Most actors it runs at once, children included; starts and spawns
    /// beyond are refused.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ACTORS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_actors: usize,
    /// Largest manifest file it reads.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_MANIFEST_BYTES)]
    max_manifest_bytes: u64,
    /// Largest `init_state` file it reads.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_INIT_STATE_BYTES)]
    max_init_state_bytes: u64,
    /// Largest component file it reads.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_COMPONENT_BYTES)]
    max_component_bytes: u64,
    /// Let actor HTTP servers listen on the address they ask for (such as
    /// 0.0.0.0). Without it they listen on loopback only.
    #[arg(long)]
    public_http: bool,
    /// Have every actor HTTP server listen on this address, whatever it
    /// asks: give each node of a cluster on one machine its own loopback
    /// address (127.0.0.2, 127.0.0.3, …), so an actor that moves between
    /// them keeps its port.
    #[arg(long, value_name = "IP", conflicts_with = "public_http")]
    http_address: Option<std::net::IpAddr>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Joining a cluster on NATS JetStream (docs/cluster.md).
#[derive(Args)]
#[command(next_help_heading = "Cluster")]
struct ClusterArgs {
    /// Join the cluster on these NATS servers (with JetStream on), comma
    /// separated; any one reachable is enough.
    #[arg(
        long,
        value_name = "nats://HOST:PORT[,...]",
        value_delimiter = ',',
        requires = "node"
    )]
    cluster: Vec<String>,
    /// This node's name in the cluster: letters, digits, `-`, `_`.
    #[arg(long, value_name = "NAME", requires = "cluster")]
    node: Option<String>,
    /// How often this node announces itself to the cluster.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    heartbeat_ms: u64,
    /// How long after a node's last heartbeat the cluster counts it as gone.
    #[arg(long, value_name = "MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    node_timeout_ms: u64,
    /// Copies JetStream keeps of the cluster's records (at most the number
    /// of NATS servers; 3 survives the loss of one).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=5))]
    cluster_replicas: usize,
}

impl ClusterArgs {
    /// Joins the cluster, if asked. Its heartbeats announce the load and
    /// management address of the node's runtime once `node` is set.
    async fn join(&self, up: Arc<OnceLock<Node>>) -> anyhow::Result<Option<Cluster>> {
        let Some(name) = &self.node else {
            return Ok(None);
        };
        let mut config = ClusterConfig::new(self.cluster.clone(), name.clone());
        config.heartbeat = Duration::from_millis(self.heartbeat_ms);
        config.node_timeout = Duration::from_millis(self.node_timeout_ms);
        config.replicas = self.cluster_replicas;
        let started_ms = theater::actor::now_ms();
        let info = move || NodeInfo {
            management: up.get().map(|node| node.addr.to_string()),
            actors: up.get().map_or(0, |node| node.theater.actor_count()),
            started_ms,
            ..NodeInfo::default()
        };
        Ok(Some(Cluster::join(config, info).await?))
    }
}

/// What a node's heartbeat tells of it, once it is up.
struct Node {
    theater: TheaterRuntime,
    addr: std::net::SocketAddr,
}

/// The connection limits (docs/security.md).
#[derive(Args)]
#[command(next_help_heading = "Connection limits")]
struct LimitArgs {
    /// Clients that have said hello served at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = at_least_one)]
    max_connections: usize,
    /// Connections still in their hello; when all are taken, a new one
    /// closes the oldest of the peer with the most.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_UNAUTHENTICATED, value_parser = at_least_one)]
    max_unauthenticated: usize,
    /// Connections still in their hello from one address (IPv6: one /64).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_UNAUTHENTICATED_PER_PEER, value_parser = at_least_one)]
    max_unauthenticated_per_peer: usize,
    /// Time a new connection has to send its hello.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_HELLO_TIMEOUT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..))]
    hello_timeout_ms: u64,
    /// Largest hello frame, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_HELLO_BYTES)]
    max_hello_bytes: usize,
    /// Bytes of frames held in memory across all connections (beyond a
    /// small allowance each); at least the 16 MiB frame limit.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BYTES_IN_FLIGHT)]
    max_bytes_in_flight: usize,
    /// Time a frame may take to arrive once begun, or to be read by the
    /// client once sent, before the connection is closed.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_FRAME_TIMEOUT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..))]
    frame_timeout_ms: u64,
}

impl LimitArgs {
    fn limits(&self) -> ServerLimits {
        ServerLimits {
            max_connections: self.max_connections,
            max_unauthenticated: self.max_unauthenticated,
            max_unauthenticated_per_peer: self.max_unauthenticated_per_peer,
            hello_timeout: Duration::from_millis(self.hello_timeout_ms),
            max_hello_bytes: self.max_hello_bytes,
            max_bytes_in_flight: self.max_bytes_in_flight,
            frame_timeout: Duration::from_millis(self.frame_timeout_ms),
        }
    }
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be a whole number, at least 1".into()),
    }
}

pub fn serve(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let durability = match args.buffered {
        Some(ms) => Durability::Buffered {
            max_unsynced: Duration::from_millis(ms),
        },
        None => Durability::Durable,
    };
    let options = LogOptions {
        durability,
        snapshot_every: args.snapshot_every,
        ..LogOptions::default()
    };
    let mut config = RuntimeConfig::at_with(args.home.unwrap_or_else(default_home), options)?;
    config.max_actors = args.max_actors;
    config.metrics = args.metrics.config();
    config.traces = crate::telemetry::traces();
    config.public_http = args.public_http;
    config.http_address = args.http_address;
    config.files = FileLimits {
        manifest_bytes: args.max_manifest_bytes,
        init_state_bytes: args.max_init_state_bytes,
        component_bytes: args.max_component_bytes,
    };
    // Joined first: in a cluster, every event goes to its replicated chain.
    let up = Arc::new(OnceLock::new());
    let cluster = args.cluster.join(up.clone()).await?;
    if let Some(cluster) = &cluster {
        let local = config.event_log.clone();
        config.event_log = Arc::new(ReplicatedLog::new(local, cluster));
    }
    config.cluster = cluster.clone();
    let theater = TheaterRuntime::new(config)?;
    let config = ServerConfig {
        token: args.token.filter(|t| !t.is_empty()),
        insecure: args.insecure,
        limits: args.limits.limits(),
        cluster: None,
    };
    let has_token = config.token.is_some();
    let access = WebAccess {
        token: config.token.clone(),
        insecure: config.insecure,
    };
    // Bound before actors resume, so that a refused address starts nothing.
    let mut server = Server::bind(theater.clone(), &args.listen, config).await?;
    let addr = server.local_addr()?;
    let _ = up.set(Node {
        theater: theater.clone(),
        addr,
    });
    if let Some(cluster) = &cluster {
        server.join(cluster.clone());
    }
    let metrics = args.metrics.bind(&theater, access.clone()).await?;
    let dashboard = args.dashboard.bind(&theater, access).await?;
    let resumed = match &cluster {
        Some(cluster) => resume_claimed(cluster, &theater).await?,
        None => theater.resume_all().await?,
    };
    if !addr.ip().to_canonical().is_loopback() && !has_token {
        errln!(
            "WARNING: --insecure: listening on {addr} WITHOUT A TOKEN. Anyone who can reach this address can start actors from any file this user can read. Set --token unless every host on this network is trusted."
        );
    }
    outln!("listening on {addr}");
    serve_metrics(metrics)?;
    serve_dashboard(dashboard)?;
    if !resumed.resumed.is_empty() {
        outln!("resumed {} actors", resumed.resumed.len());
    }
    if resumed.redelivered > 0 {
        println!(
            "queued again {} accepted messages that had not run",
            resumed.redelivered
        );
    }
    for (id, reason) in &resumed.failed {
        errln!("warning: cannot resume actor {id}: {reason}");
    }
    if let Some(cluster) = &cluster {
        outln!("joined the cluster as node {}", cluster.node());
    }
    server.serve_until(shutdown_signal()).await;
    theater.shutdown().await;
    if let Some(cluster) = &cluster {
        cluster.leave().await;
    }
    errln!("server stopped; its actors resume when it starts again");
    Ok(ExitCode::SUCCESS)
}

/// Resumes the top-level actors this node can claim (with their
/// subtrees): one another node owns now is not run here. A claimed actor
/// that does not resume is given up again.
async fn resume_claimed(
    cluster: &Cluster,
    theater: &TheaterRuntime,
) -> anyhow::Result<theater::runtime::ResumeReport> {
    let mut claimed = std::collections::HashSet::new();
    let saved = theater.saved_actors()?;
    for actor in saved
        .iter()
        .filter(|a| a.record.running && a.record.parent.is_none())
    {
        match cluster.claim(&actor.id.to_string()).await {
            Ok(()) => {
                claimed.insert(actor.id);
            }
            Err(e) => errln!("warning: not running actor {} here: {e}", actor.id),
        }
    }
    let report = theater.resume(|actor| claimed.contains(&actor.id)).await?;
    for (id, _) in report.failed.iter().filter(|(id, _)| claimed.contains(id)) {
        let _ = cluster.release(&id.to_string()).await;
    }
    Ok(report)
}

/// Ctrl-C, or SIGTERM where there is one.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
