//! The management server: a runtime reachable over TCP with
//! length-delimited JSON frames (see [`protocol`] and `docs/protocol.md`).
//!
//! It listens on loopback by default, can require a shared-secret token,
//! and serves each connection in its own task: a bad or hostile client
//! gets an error frame or is closed, and the others are not disturbed.
//! [`Client`] is the matching client, used by the `theater` CLI.

mod budget;
mod client;
mod connection;
mod failover;
mod forwarded;
pub mod frames;
mod limits;
mod ops;
pub mod protocol;

pub use budget::{Budget, CONNECTION_ALLOWANCE, Charge, ConnectionBudget};
pub use client::{Client, ClientError};
pub use limits::{
    DEFAULT_FRAME_TIMEOUT, DEFAULT_HELLO_TIMEOUT, DEFAULT_MAX_BYTES_IN_FLIGHT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HELLO_BYTES, DEFAULT_MAX_UNAUTHENTICATED,
    DEFAULT_MAX_UNAUTHENTICATED_PER_PEER, ServerLimits,
};
pub use protocol::{ErrorBody, ErrorKind, MAX_FRAME_BYTES, PROTOCOL_VERSION};

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::admission::{Admission, PeerKey};
use crate::id::ActorId;
use crate::runtime::TheaterRuntime;
use crate::tasks::AbortOnDrop;

/// Where the server listens unless told otherwise: loopback only, so
/// nothing outside this machine can reach it.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9000";

/// Frames waiting to be written to one client. A client that does not
/// read its events slows its own subscriptions (they report `lagged`),
/// never the runtime.
pub const OUTBOX_CAPACITY: usize = 1024;

/// Default wait for an actor's answer to `request` and `open_channel`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait a client may ask for.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// How the server behaves.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// When set, every connection must present it in its `hello`.
    pub token: Option<String>,
    /// Listen on an address other than loopback without a token. Anyone
    /// who can reach the address can then start actors from files the
    /// server's user can read; [`Server::bind`] refuses it unless this is
    /// set.
    pub insecure: bool,
    pub limits: ServerLimits,
    /// The cluster this server's node belongs to, if any: actors it starts
    /// are claimed there, and `nodes` lists the cluster's nodes.
    pub cluster: Option<crate::cluster::Cluster>,
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "cannot listen on {addr}: {source}; is another server running there? pick another address"
    )]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "refusing to listen on {addr} without a token: anyone who can reach it could start actors from any file this user can read. Set a token (--token or THEATER_TOKEN), listen on loopback (127.0.0.1), or pass --insecure if every host that can reach {addr} is trusted"
    )]
    NoToken { addr: SocketAddr },
    #[error("server setting `{setting}`: {problem}")]
    Limits {
        setting: &'static str,
        problem: String,
    },
}

/// What the server remembers about actors it started or found running
/// (the runtime keeps their manifests).
#[derive(Debug, Clone)]
pub(crate) struct Started {
    pub started_ms: u64,
}

/// State every connection shares.
pub(crate) struct Shared {
    pub runtime: TheaterRuntime,
    pub config: ServerConfig,
    pub started: Mutex<HashMap<ActorId, Started>>,
    /// Connections still in their `hello`.
    pub unauthenticated: Arc<Admission>,
    /// Seats of authenticated clients.
    pub authenticated: Arc<Semaphore>,
    pub budget: Budget,
    /// Connections closed before their `hello` to make room, for the log.
    pub bumped: AtomicU64,
    /// `hello`s with a wrong or missing token, for the log.
    pub unauthorized: AtomicU64,
    /// Where this server placed actors lately, and when: a node's load
    /// counts them before its next heartbeat does.
    pub placed: Mutex<VecDeque<(String, Instant)>>,
}

impl Shared {
    /// Actors resumed before the server opened keep their first start.
    fn remember_resumed(&self) {
        let runtime = &self.runtime;
        let saved = runtime.saved_actors().unwrap_or_default();
        let mut started = self.started.lock().expect("started lock");
        for saved in saved {
            if runtime.actor(saved.id).is_ok() {
                let started_ms = saved.record.started_ms;
                started.entry(saved.id).or_insert(Started { started_ms });
            }
        }
    }
}

/// A bound management server.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds `addr` (e.g. [`DEFAULT_LISTEN`], or port 0 for any free port).
    ///
    /// Refuses an address other than loopback when `config` has no token,
    /// unless it says [`insecure`](ServerConfig::insecure).
    pub async fn bind(
        runtime: TheaterRuntime,
        addr: &str,
        mut config: ServerConfig,
    ) -> Result<Self, ServerError> {
        config.limits.validate()?;
        config.token = config.token.filter(|token| !token.is_empty());
        let bound = |source| ServerError::Bind {
            addr: addr.to_owned(),
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bound)?;
        let local = listener.local_addr().map_err(bound)?;
        if !local.ip().to_canonical().is_loopback() && config.token.is_none() {
            if !config.insecure {
                return Err(ServerError::NoToken { addr: local });
            }
            tracing::warn!(
                "INSECURE: the management server listens on {local} without a token; anyone who can reach it can start actors from any file this user can read"
            );
        }
        let limits = &config.limits;
        let shared = Shared {
            unauthenticated: Admission::new(
                limits.max_unauthenticated,
                limits.max_unauthenticated_per_peer,
            ),
            authenticated: Arc::new(Semaphore::new(limits.max_connections)),
            budget: Budget::new(limits.max_bytes_in_flight),
            bumped: AtomicU64::new(0),
            unauthorized: AtomicU64::new(0),
            runtime,
            config,
            started: Mutex::new(HashMap::new()),
            placed: Mutex::default(),
        };
        Ok(Self {
            listener,
            shared: Arc::new(shared),
        })
    }

    /// Makes this the management server of a node of `cluster`; called
    /// before it serves.
    pub fn join(&mut self, cluster: crate::cluster::Cluster) {
        let shared = Arc::get_mut(&mut self.shared).expect("a server joins before it serves");
        shared.config.cluster = Some(cluster);
    }

    /// The address it is bound to, with the real port when 0 was asked for.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves connections until `shutdown` completes.
    pub async fn serve_until(self, shutdown: impl Future<Output = ()>) {
        tokio::select! {
            () = self.serve() => {}
            () = shutdown => {}
        }
    }

    /// Serves connections for ever; in a cluster, takes on the actors of
    /// nodes that are gone meanwhile, and answers the operations other
    /// nodes hand it.
    pub async fn serve(self) {
        self.shared.remember_resumed();
        let _cluster = self.shared.config.cluster.clone().map(|cluster| {
            let runtime = self.shared.runtime.clone();
            let forwarded = forwarded::run(cluster.clone(), self.shared.clone());
            [
                AbortOnDrop(tokio::spawn(failover::run(cluster, runtime))),
                AbortOnDrop(tokio::spawn(forwarded)),
            ]
        });
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Running out of descriptors and the like pass; wait a little.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            // Every seat may be taken by a newcomer, so this only fails if
            // the limits are zero, which `bind` does not allow.
            match self.shared.unauthenticated.admit(PeerKey::of(peer.ip())) {
                Ok(seat) => {
                    let shared = self.shared.clone();
                    tokio::spawn(async move {
                        tracing::debug!(%peer, "connection opened");
                        connection::serve(shared, stream, seat).await;
                        tracing::debug!(%peer, "connection closed");
                    });
                }
                Err(_) => refuse(&stream),
            }
        }
    }
}

/// Tells a connection there is no room for it, if its socket takes the
/// frame at once, and closes it: a refusal must cost no waiting.
fn refuse(stream: &TcpStream) {
    let error = ErrorBody::new(
        ErrorKind::TooManyConnections,
        "the server has no room for another connection; retry later",
    );
    let _ = stream.try_write(&protocol::frame(&protocol::error_frame(None, &error)));
}
