//! The network side of a server: its listener, the connections it admits
//! and how they end.
//!
//! Network tasks never enter wasm. Connections are seated in an
//! [`Admission`] table: when the server or a peer is full, a new
//! connection closes the one idle longest (between requests, or still
//! sending a head or body) instead of being refused, so clients that hold
//! connections open cannot keep new clients out. Only connections the
//! actor is working on, and WebSockets, keep their seats. Each request is
//! handled by [`super::request`].

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::state::{Running, ServerStats, Shared};
use crate::admission::{Admission, Full, PeerKey, Seat};

/// How long open connections get to finish their requests when a server
/// stops, before they are cut.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long `start-server` waits for a fixed port that is still in use
/// (e.g. by the server of an actor that is stopping) before it gives up.
pub const BIND_RETRY: Duration = Duration::from_secs(1);

/// One running server, shared by its accept loop and connection tasks.
pub struct ServerCtx {
    pub shared: Arc<Shared>,
    pub server: u64,
    /// Cancelled when the server stops (a child of [`Shared::ended`]).
    pub cancel: CancellationToken,
    pub stats: Arc<ServerStats>,
    connections: Arc<Admission>,
}

/// Starts server `id`: binds its port and spawns its accept loop. Returns
/// the bound port; a running server answers its port again.
pub async fn start(shared: &Arc<Shared>, id: u64) -> Result<u16, String> {
    let (ip, candidates) = {
        let registry = shared.lock();
        let server = registry.server(id)?;
        if let Some(running) = &server.running {
            return Ok(running.port);
        }
        let candidates = match (server.port, server.last_port) {
            (Some(port), _) => vec![port],
            // An ephemeral server that ran before tries its old port first,
            // so that its clients find it again.
            (None, Some(port)) => vec![port, 0],
            (None, None) => vec![0],
        };
        (server.ip, candidates)
    };
    let listener = bind(ip, &candidates).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the address of the new listener: {e}"))?;

    let mut registry = shared.lock();
    if shared.ended.is_cancelled() {
        return Err("the actor is stopping".into());
    }
    let server = registry.server_mut(id)?;
    let ctx = Arc::new(ServerCtx {
        shared: shared.clone(),
        server: id,
        cancel: shared.ended.child_token(),
        stats: server.stats.clone(),
        connections: Admission::new(
            shared.config.max_connections,
            shared.config.max_connections_per_peer,
        ),
    });
    server.running = Some(Running {
        port: addr.port(),
        cancel: ctx.cancel.clone(),
        accept: tokio::spawn(accept_loop(ctx, listener)),
        stats: server.stats.clone(),
    });
    server.last_port = Some(addr.port());
    tracing::info!(target: "actor", actor = %shared.actor, server = id, "listening on http://{addr}");
    Ok(addr.port())
}

/// Stops a running server: no new connections, its port released (this
/// waits for that), its WebSockets closed, its open requests finished.
pub async fn stop(shared: &Arc<Shared>, running: Running, id: u64) {
    running.cancel.cancel();
    // The accept loop ends at once; its listener goes with it.
    let _ = running.accept.await;
    tracing::info!(target: "actor", actor = %shared.actor, server = id, port = running.port, "server stopped: {}", running.stats.summary());
}

async fn bind(ip: IpAddr, candidates: &[u16]) -> Result<TcpListener, String> {
    let mut error = None;
    for (i, &port) in candidates.iter().enumerate() {
        let last = i + 1 == candidates.len();
        let started = Instant::now();
        loop {
            match TcpListener::bind((ip, port)).await {
                Ok(listener) => return Ok(listener),
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse
                        && port != 0
                        && last
                        && started.elapsed() < BIND_RETRY =>
                {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Err(e) => {
                    error = Some(format!(
                        "cannot listen on {}: {e}",
                        SocketAddr::new(ip, port)
                    ));
                    break;
                }
            }
        }
    }
    Err(error.unwrap_or_else(|| "no port to listen on".into()))
}

async fn accept_loop(ctx: Arc<ServerCtx>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // E.g. out of file descriptors: wait instead of spinning.
                tracing::warn!(target: "actor", actor = %ctx.shared.actor, server = ctx.server, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let peer = PeerKey::of(peer.ip());
        match ctx.connections.admit(peer) {
            Ok(seat) => {
                tokio::spawn(serve_connection(ctx.clone(), stream, seat));
            }
            Err(full) => {
                let refused = ServerStats::bump(&ctx.stats.connections_refused);
                if refused == 1 || refused.is_multiple_of(100) {
                    let config = &ctx.shared.config;
                    let why = match full {
                        Full::Peer => format!(
                            "{peer} holds {} connections, the most one peer may (`max_connections_per_peer`), all busy",
                            config.max_connections_per_peer
                        ),
                        Full::Total => format!(
                            "{} connections open, the most allowed (`max_connections`), all busy",
                            config.max_connections
                        ),
                    };
                    tracing::warn!(target: "actor", actor = %ctx.shared.actor, server = ctx.server, refused, "connection refused: {why}");
                }
                tokio::spawn(refuse(stream));
            }
        }
    }
}

/// Answers a connection over the limit with a 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    let response = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nretry-after: 1\r\nconnection: close\r\n\r\n";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(response).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

async fn serve_connection(ctx: Arc<ServerCtx>, stream: TcpStream, seat: Seat) {
    let service = {
        let (ctx, seat) = (ctx.clone(), seat.clone());
        service_fn(move |request: Request<Incoming>| {
            let (ctx, seat) = (ctx.clone(), seat.clone());
            async move {
                let metrics = ctx.shared.metrics.clone();
                let response = ctx.handle(request, seat).await;
                metrics.http_response(response.status().as_u16());
                Ok::<_, Infallible>(response)
            }
        })
    };
    // hyper restarts the header timeout whenever a connection waits for a
    // request, so it also closes keep-alive connections left idle.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(ctx.shared.config.header_timeout)
        .max_buf_size(ctx.shared.config.max_header_bytes);
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(actor = %ctx.shared.actor, server = ctx.server, "connection ended: {e}");
            }
        }
        // Its seat went to a newer connection: close without a word.
        () = seat.evicted() => {
            let evicted = ServerStats::bump(&ctx.stats.connections_evicted);
            if evicted == 1 || evicted.is_multiple_of(1000) {
                tracing::info!(target: "actor", actor = %ctx.shared.actor, server = ctx.server, evicted, "closed an idle connection to make room for a new one (`max_connections`, `max_connections_per_peer`)");
            }
        }
        _ = ctx.cancel.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection.as_mut()).await;
        }
    }
}
