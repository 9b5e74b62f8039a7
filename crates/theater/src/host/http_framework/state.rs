//! One actor's servers, handlers, routes and middleware, shared by its
//! host functions (which change them) and its network tasks (which read
//! them for every request). Its WebSocket connections are kept in the same
//! registry, by [`super::connections`].
//!
//! The registry belongs to the actor, like its state: the ids it hands out
//! live in that state, and a fresh instance after a trap is not initialized
//! again, so the servers keep running across an instance replacement. When
//! the actor ends, [`HttpFramework`]'s `Drop` cancels [`Shared::ended`], and
//! every listener, connection and queued event goes with it.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::FrameworkConfig;
use super::connections::Connection;
use super::link::ActorLink;
use super::routing::{MethodMatch, Middleware, PathPattern, Route, check_path};
use super::types::{ServerConfig, ServerInfo};
use crate::id::ActorId;
use crate::metrics::Metrics;

/// Servers one actor may have at once. Guards the host against an actor
/// that creates servers in a loop.
pub const MAX_SERVERS: usize = 16;
/// Handlers one actor may register. Guards against registration in a loop.
pub const MAX_HANDLERS: usize = 1024;
/// Routes one server may have. Guards the per-request route search.
pub const MAX_ROUTES: usize = 1024;
/// Middleware one server may have. Each one is a call into the actor for
/// every request under its prefix.
pub const MAX_MIDDLEWARE: usize = 64;
/// WebSocket endpoints one server may have.
pub const MAX_WEBSOCKET_PATHS: usize = 64;

/// The per-actor setting the handler's `configure` inserts. Its `Drop` (when
/// the actor ends) shuts every server of the actor down.
pub struct HttpFramework {
    pub config: Arc<FrameworkConfig>,
    pub shared: Option<Arc<Shared>>,
}

impl Drop for HttpFramework {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.ended.cancel();
            let mut registry = shared.lock();
            for (id, server) in &mut registry.servers {
                if let Some(running) = server.running.take() {
                    tracing::info!(target: "actor", actor = %shared.actor, server = id, port = running.port, "server stopped with its actor: {}", running.stats.summary());
                }
            }
        }
    }
}

/// What the host functions and the network tasks of one actor share.
pub struct Shared {
    pub actor: ActorId,
    /// The actor's handle and the runtime's settings.
    pub link: ActorLink,
    pub config: Arc<FrameworkConfig>,
    registry: Mutex<Registry>,
    /// Cancelled when the actor ends; every server's token is a child.
    pub ended: CancellationToken,
    pub metrics: Metrics,
    /// Whether the log already says that a server of this actor was
    /// narrowed to loopback: once per actor, however often it asks.
    narrowed: AtomicBool,
}

#[derive(Default)]
pub struct Registry {
    next_server: u64,
    next_handler: u64,
    next_route: u64,
    next_middleware: u64,
    pub(super) next_connection: u64,
    /// Handler id to the name it was registered with.
    pub handlers: BTreeMap<u64, String>,
    pub servers: BTreeMap<u64, Server>,
    pub connections: HashMap<u64, Connection>,
}

pub struct Server {
    pub ip: IpAddr,
    /// As the actor gave it (or `127.0.0.1`).
    pub host: String,
    /// As configured; `None` or 0 means any free port.
    pub port: Option<u16>,
    /// The port of the last start, tried first when an ephemeral server
    /// starts again.
    pub last_port: Option<u16>,
    pub routes: Vec<Route>,
    pub middleware: Vec<Middleware>,
    pub websockets: BTreeMap<String, WsEndpoint>,
    pub running: Option<Running>,
    pub stats: Arc<ServerStats>,
}

pub struct Running {
    pub port: u16,
    pub cancel: CancellationToken,
    pub accept: JoinHandle<()>,
    pub stats: Arc<ServerStats>,
}

/// What a server has refused or dropped, for logs and tests.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub requests: AtomicU64,
    /// Requests answered 503 because the actor's queue was full.
    pub overflow_rejected: AtomicU64,
    /// WebSocket connections closed because the actor's queue was full.
    pub ws_overflow_closed: AtomicU64,
    /// WebSocket frames dropped under `overflow = "drop-oldest"`.
    pub ws_frames_dropped: AtomicU64,
    /// Connections refused at `max_connections` or
    /// `max_connections_per_peer`, every seat busy.
    pub connections_refused: AtomicU64,
    /// Idle connections closed to make room for a new one.
    pub connections_evicted: AtomicU64,
}

impl ServerStats {
    /// Adds one to `counter` and returns the new total.
    pub fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        format!(
            "{} requests, {} answered 503 for a full queue, {} WebSockets closed for a full queue, {} WebSocket frames dropped, {} connections refused, {} idle connections closed to make room",
            get(&self.requests),
            get(&self.overflow_rejected),
            get(&self.ws_overflow_closed),
            get(&self.ws_frames_dropped),
            get(&self.connections_refused),
            get(&self.connections_evicted),
        )
    }
}

/// The handlers of one WebSocket path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsEndpoint {
    pub connect: Option<u64>,
    pub message: u64,
    pub disconnect: Option<u64>,
}

fn no_server(id: u64) -> String {
    format!("no HTTP server with id {id} (create one with create-server)")
}

fn no_handler(id: u64) -> String {
    format!("no handler with id {id} (register one with register-handler)")
}

impl Registry {
    pub fn server(&self, id: u64) -> Result<&Server, String> {
        self.servers.get(&id).ok_or_else(|| no_server(id))
    }

    pub fn server_mut(&mut self, id: u64) -> Result<&mut Server, String> {
        self.servers.get_mut(&id).ok_or_else(|| no_server(id))
    }

    fn check_handler(&self, id: u64) -> Result<(), String> {
        match self.handlers.contains_key(&id) {
            true => Ok(()),
            false => Err(no_handler(id)),
        }
    }
}

impl Shared {
    pub fn new(link: ActorLink, config: Arc<FrameworkConfig>) -> Self {
        Self {
            actor: link.actor,
            config,
            metrics: link.metrics(),
            link,
            registry: Mutex::default(),
            ended: CancellationToken::new(),
            narrowed: AtomicBool::new(false),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock leaves plain data behind; go on.
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn create_server(&self, config: ServerConfig) -> Result<u64, String> {
        if config.tls_config.is_some() {
            return Err("TLS is not supported by this runtime: leave `tls-config` empty and terminate TLS in a proxy in front of the server".into());
        }
        let (ip, host) = match config.host.as_deref().map(str::trim) {
            None | Some("") => (IpAddr::V4(Ipv4Addr::LOCALHOST), "127.0.0.1".to_owned()),
            Some("localhost") => (IpAddr::V4(Ipv4Addr::LOCALHOST), "localhost".to_owned()),
            Some(host) => {
                let ip = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    .map_err(|_| {
                        format!("`{host}` is not an IP address to listen on: use e.g. 127.0.0.1, 0.0.0.0 or ::1")
                    })?;
                (ip, host.to_owned())
            }
        };
        let (ip, host) = self.bind_address(ip, host);
        let mut registry = self.lock();
        if registry.servers.len() >= MAX_SERVERS {
            return Err(format!(
                "this actor already has {MAX_SERVERS} servers, the most it may have: destroy one first"
            ));
        }
        registry.next_server += 1;
        let id = registry.next_server;
        registry.servers.insert(
            id,
            Server {
                ip,
                host,
                port: config
                    .port
                    .filter(|&p| p != 0 && !self.config.ephemeral_ports),
                last_port: None,
                routes: Vec::new(),
                middleware: Vec::new(),
                websockets: BTreeMap::new(),
                running: None,
                stats: Arc::default(),
            },
        );
        Ok(id)
    }

    /// The address a server asked to listen on `ip` binds: the operator's
    /// address for actor servers if it set one; else that one if it is
    /// loopback or the operator allows public binds, else loopback of the
    /// same family, which is logged the first time for each actor (an
    /// actor creating servers in a loop does not fill the log).
    fn bind_address(&self, ip: IpAddr, host: String) -> (IpAddr, String) {
        if let Some(address) = self.link.http_address() {
            return (address, address.to_string());
        }
        let public = self.link.public_http();
        if ip.is_loopback() || public {
            return (ip, host);
        }
        let loopback = match ip {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        if self.narrowed.swap(true, Ordering::Relaxed) {
            return (loopback, loopback.to_string());
        }
        tracing::warn!(
            actor = %self.actor,
            "actor asked its HTTP server to listen on {host}; it listens on {loopback} instead: actor servers bind loopback unless the operator allows public binds (`theater server --public-http`, `theater run --public-http`)"
        );
        (loopback, loopback.to_string())
    }

    pub fn info(&self, id: u64) -> Result<ServerInfo, String> {
        let registry = self.lock();
        let server = registry.server(id)?;
        let port = match &server.running {
            Some(running) => running.port,
            None => server.port.or(server.last_port).unwrap_or(0),
        };
        Ok(ServerInfo {
            id,
            port,
            host: server.host.clone(),
            running: server.running.is_some(),
            routes_count: server.routes.len() as u32,
            middleware_count: server.middleware.len() as u32,
            websocket_enabled: !server.websockets.is_empty(),
        })
    }

    pub fn register_handler(&self, name: String) -> Result<u64, String> {
        if name.trim().is_empty() || name.len() > 256 {
            return Err("a handler name must be 1 to 256 bytes long".into());
        }
        let mut registry = self.lock();
        if registry.handlers.len() >= MAX_HANDLERS {
            return Err(format!(
                "this actor already has {MAX_HANDLERS} handlers, the most it may register"
            ));
        }
        registry.next_handler += 1;
        let id = registry.next_handler;
        registry.handlers.insert(id, name);
        Ok(id)
    }

    pub fn add_route(
        &self,
        server: u64,
        path: &str,
        method: &str,
        handler: u64,
    ) -> Result<u64, String> {
        let pattern = PathPattern::parse(path)?;
        let method = MethodMatch::parse(method)?;
        let mut registry = self.lock();
        registry.check_handler(handler)?;
        registry.next_route += 1;
        let id = registry.next_route;
        let routes = &mut registry.server_mut(server)?.routes;
        if let Some(existing) = routes
            .iter()
            .find(|r| r.method == method && r.pattern == pattern)
        {
            return Err(format!(
                "server {server} already has a route for {method} {path} (route {}): remove it first",
                existing.id
            ));
        }
        if routes.len() >= MAX_ROUTES {
            return Err(format!(
                "server {server} already has {MAX_ROUTES} routes, the most it may have"
            ));
        }
        routes.push(Route {
            id,
            method,
            pattern,
            handler,
        });
        Ok(id)
    }

    pub fn remove_route(&self, id: u64) -> Result<(), String> {
        let mut registry = self.lock();
        for server in registry.servers.values_mut() {
            if let Some(at) = server.routes.iter().position(|r| r.id == id) {
                server.routes.remove(at);
                return Ok(());
            }
        }
        Err(format!("no route with id {id}"))
    }

    pub fn add_middleware(&self, server: u64, path: &str, handler: u64) -> Result<u64, String> {
        check_path(path)?;
        let mut registry = self.lock();
        registry.check_handler(handler)?;
        registry.next_middleware += 1;
        let id = registry.next_middleware;
        let middleware = &mut registry.server_mut(server)?.middleware;
        if middleware.len() >= MAX_MIDDLEWARE {
            return Err(format!(
                "server {server} already has {MAX_MIDDLEWARE} middleware, the most it may have"
            ));
        }
        middleware.push(Middleware {
            id,
            prefix: path.to_owned(),
            handler,
        });
        Ok(id)
    }

    pub fn remove_middleware(&self, id: u64) -> Result<(), String> {
        let mut registry = self.lock();
        for server in registry.servers.values_mut() {
            if let Some(at) = server.middleware.iter().position(|m| m.id == id) {
                server.middleware.remove(at);
                return Ok(());
            }
        }
        Err(format!("no middleware with id {id}"))
    }

    pub fn enable_websocket(
        &self,
        server: u64,
        path: &str,
        endpoint: WsEndpoint,
    ) -> Result<(), String> {
        check_path(path)?;
        let mut registry = self.lock();
        for handler in [
            endpoint.connect,
            Some(endpoint.message),
            endpoint.disconnect,
        ]
        .into_iter()
        .flatten()
        {
            registry.check_handler(handler)?;
        }
        let websockets = &mut registry.server_mut(server)?.websockets;
        if !websockets.contains_key(path) && websockets.len() >= MAX_WEBSOCKET_PATHS {
            return Err(format!(
                "server {server} already has {MAX_WEBSOCKET_PATHS} WebSocket paths, the most it may have"
            ));
        }
        // Enabling a path again changes its handlers for new connections.
        websockets.insert(path.to_owned(), endpoint);
        Ok(())
    }

    pub fn disable_websocket(&self, server: u64, path: &str) -> Result<(), String> {
        let mut registry = self.lock();
        if registry
            .server_mut(server)?
            .websockets
            .remove(path)
            .is_none()
        {
            return Err(format!(
                "server {server} has no WebSocket endpoint at {path}"
            ));
        }
        registry.close_connections(server, Some(path), 1001, "WebSocket endpoint disabled");
        Ok(())
    }

    /// Takes the running part of a server, which the caller then stops.
    pub fn take_running(&self, server: u64) -> Result<Option<Running>, String> {
        let mut registry = self.lock();
        let running = registry.server_mut(server)?.running.take();
        if running.is_some() {
            registry.close_connections(server, None, 1001, "server stopped");
        }
        Ok(running)
    }

    pub fn destroy(&self, server: u64) -> Result<Option<Running>, String> {
        let mut registry = self.lock();
        let removed = registry
            .servers
            .remove(&server)
            .ok_or_else(|| no_server(server))?;
        registry.close_connections(server, None, 1001, "server destroyed");
        Ok(removed.running)
    }
}
