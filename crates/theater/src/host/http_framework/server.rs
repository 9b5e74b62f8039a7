//! The network side of a server: its listener, its connections and the way
//! every request becomes a call on the actor's bounded queue.
//!
//! Network tasks never enter wasm. A request is matched to a route here,
//! read (up to the body limit) and then handed to the actor as calls of
//! `handle-middleware` and `handle-request` through its [`ActorHandle`],
//! one queue slot each. A full queue answers 503 at once; nothing waits in
//! an unbounded buffer.
//!
//! Connections are seated in an [`Admission`] table: when the server or a
//! peer is full, a new connection closes the one idle longest (between
//! requests, or still sending a head or body) instead of being refused, so
//! clients that hold connections open cannot keep new clients out. Only
//! connections the actor is working on, and WebSockets, keep their seats.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, TRANSFER_ENCODING, UPGRADE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::value::to_raw_value;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::routing::{find_route, middleware_for};
use super::state::{Running, ServerStats, Shared, WsEndpoint};
use super::types::{HttpRequest, HttpResponse, MiddlewareResult, capped};
use super::{HANDLE_MIDDLEWARE, HANDLE_REQUEST, HTTP_EVENT, websocket};
use crate::actor::ActorHandle;
use crate::admission::{Admission, Full, PeerKey, Seat};
use crate::error::ActorError;

/// How long open connections get to finish their requests when a server
/// stops, before they are cut.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How much of an oversized body is read and discarded so that the client
/// sees the 413 instead of a reset connection. Anything larger is cut.
pub const MAX_DRAIN_BYTES: usize = 8 * 1024 * 1024;
/// How long that discarding may take.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
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

/// Why the actor did not produce a response.
#[derive(Debug)]
pub enum Failure {
    /// A middleware answered `proceed = false`.
    Denied,
    /// The actor's queue was full.
    Overflow,
    /// The actor is not running (any more).
    Unavailable,
    /// The handler answered `Err`, trapped or failed otherwise.
    Handler(String),
    /// No answer within the time limit.
    TimedOut(String),
}

impl From<ActorError> for Failure {
    fn from(error: ActorError) -> Self {
        match error {
            ActorError::QueueFull { .. } => Self::Overflow,
            ActorError::Stopped(_) | ActorError::UnknownActor(_) => Self::Unavailable,
            ActorError::Failed { message, .. } => Self::Handler(message),
            ActorError::TimeLimit { function, limit_ms } => Self::TimedOut(format!(
                "`{}` ran past the actor's time limit of {limit_ms} ms",
                short_name(&function)
            )),
            ActorError::Trapped { function, .. } => {
                Self::Handler(format!("`{}` trapped", short_name(&function)))
            }
            ActorError::MemoryLimit { function, limit_mb } => Self::Handler(format!(
                "`{}` hit the actor's memory limit of {limit_mb} MiB",
                short_name(&function)
            )),
            ActorError::UnknownFunction {
                actor, function, ..
            } => {
                tracing::warn!(target: "actor", %actor, "cannot answer a request: the actor does not export `{function}`");
                Self::Handler(format!(
                    "the actor does not export `{}`",
                    short_name(&function)
                ))
            }
            other => Self::Handler(other.to_string()),
        }
    }
}

fn short_name(function: &str) -> &str {
    function.rsplit('.').next().unwrap_or(function)
}

/// What a request maps to.
enum Plan {
    /// The server was destroyed meanwhile.
    Gone,
    NotFound,
    Route {
        handler: u64,
        middleware: Vec<u64>,
    },
    WebSocket {
        endpoint: WsEndpoint,
        middleware: Vec<u64>,
    },
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

impl ServerCtx {
    fn plan(&self, method: &str, path: &str, upgrade: bool) -> Plan {
        let registry = self.shared.lock();
        let Ok(server) = registry.server(self.server) else {
            return Plan::Gone;
        };
        if upgrade && let Some(endpoint) = server.websockets.get(path) {
            return Plan::WebSocket {
                endpoint: *endpoint,
                middleware: middleware_for(&server.middleware, path),
            };
        }
        match find_route(&server.routes, method, path) {
            Some(route) => Plan::Route {
                handler: route.handler,
                middleware: middleware_for(&server.middleware, path),
            },
            None => Plan::NotFound,
        }
    }

    async fn handle(self: Arc<Self>, request: Request<Incoming>, seat: Seat) -> Response<Body> {
        let started = Instant::now();
        let deadline = started + self.shared.config.request_timeout;
        ServerStats::bump(&self.stats.requests);
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let uri = parts
            .uri
            .path_and_query()
            .map_or_else(|| path.clone(), |pq| pq.as_str().to_owned());
        let method = parts.method.as_str().to_owned();
        let mut exchange = Exchange {
            method: method.clone(),
            uri: uri.clone(),
            started,
            request_body: capped(&[], 0),
        };
        if self.cancel.is_cancelled() {
            return plain(StatusCode::SERVICE_UNAVAILABLE, "server stopped");
        }
        // The parser bounds its buffer only roughly; this is the real limit.
        let head = method.len()
            + uri.len()
            + parts
                .headers
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len() + 4)
                .sum::<usize>();
        let max_head = self.shared.config.max_header_bytes;
        if head > max_head {
            let text = format!("request headers larger than the limit of {max_head} bytes");
            return plain(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, &text);
        }
        let headers = header_pairs(&parts.headers);
        let request = |body| HttpRequest {
            method: method.clone(),
            uri: uri.clone(),
            headers,
            body,
        };
        match self.plan(&method, &path, is_websocket_upgrade(&parts.headers)) {
            Plan::Gone => plain(StatusCode::SERVICE_UNAVAILABLE, "server stopped"),
            Plan::NotFound => {
                let handle = self.shared.current_handle();
                self.answer(
                    handle.as_ref(),
                    &exchange,
                    Answer::empty(StatusCode::NOT_FOUND, "no-route"),
                )
            }
            Plan::WebSocket {
                endpoint,
                middleware,
            } => {
                let upgrade = websocket::Upgrade {
                    path,
                    endpoint,
                    middleware,
                    seat,
                    deadline,
                };
                websocket::upgrade(self, parts, request(None), upgrade).await
            }
            Plan::Route {
                handler,
                middleware,
            } => {
                let limit = self.shared.config.max_body_bytes;
                let body = read_body(body, limit, content_length(&parts.headers));
                let body = match tokio::time::timeout_at(deadline.into(), body).await {
                    Err(_) => {
                        let limit = self.shared.config.request_timeout.as_millis();
                        let text = format!(
                            "the request body did not arrive within {limit} ms (`request_timeout_ms`)"
                        );
                        return plain(StatusCode::REQUEST_TIMEOUT, &text);
                    }
                    Ok(Ok(body)) => body,
                    Ok(Err(BodyError::TooLarge)) => {
                        let handle = self.shared.current_handle();
                        let text = format!("request body larger than the limit of {limit} bytes");
                        return self.answer(
                            handle.as_ref(),
                            &exchange,
                            Answer::text(StatusCode::PAYLOAD_TOO_LARGE, text, "too-large"),
                        );
                    }
                    Ok(Err(BodyError::Broken(e))) => {
                        return plain(
                            StatusCode::BAD_REQUEST,
                            &format!("cannot read the request body: {e}"),
                        );
                    }
                };
                exchange.request_body = capped(&body, self.shared.config.record_body_bytes);
                let request = request((!body.is_empty()).then_some(body));
                // From here on the actor works on it: the seat is not given
                // up to a newcomer.
                let _busy = seat.busy();
                let Some(handle) = self.shared.actor_handle(deadline).await else {
                    return self.failure(None, &exchange, Failure::Unavailable);
                };
                let call = async {
                    let request = self.run_middleware(&handle, &middleware, request).await?;
                    let (response,): (HttpResponse,) = handle
                        .call_function(HANDLE_REQUEST, (handler, request))
                        .await?;
                    Ok::<_, Failure>(response)
                };
                match tokio::time::timeout_at(deadline.into(), call).await {
                    Ok(Ok(response)) => self.respond(&handle, &exchange, response),
                    Ok(Err(failure)) => self.failure(Some(&handle), &exchange, failure),
                    Err(_) => {
                        let limit = self.shared.config.request_timeout.as_millis();
                        let failure = Failure::TimedOut(format!(
                            "the actor did not answer within {limit} ms (`request_timeout_ms`)"
                        ));
                        self.failure(Some(&handle), &exchange, failure)
                    }
                }
            }
        }
    }

    /// Runs `request` through the middleware in order; the request each one
    /// returns goes to the next.
    pub async fn run_middleware(
        &self,
        handle: &ActorHandle,
        middleware: &[u64],
        mut request: HttpRequest,
    ) -> Result<HttpRequest, Failure> {
        for &id in middleware {
            let (result,): (MiddlewareResult,) = handle
                .call_function(HANDLE_MIDDLEWARE, (id, request))
                .await?;
            if !result.proceed {
                return Err(Failure::Denied);
            }
            request = result.request;
        }
        Ok(request)
    }

    /// The response for a failure, counted and logged when it is an overflow.
    pub fn failure_answer(&self, failure: Failure) -> Answer {
        match failure {
            Failure::Denied => Answer::empty(StatusCode::FORBIDDEN, "denied"),
            Failure::Overflow => {
                let total = ServerStats::bump(&self.stats.overflow_rejected);
                if total == 1 || total.is_multiple_of(100) {
                    tracing::warn!(target: "actor", actor = %self.shared.actor, server = self.server, total, "actor queue full: request answered 503");
                }
                let mut answer = Answer::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the actor is busy (its queue is full); retry later".into(),
                    "overflow",
                );
                answer.retry_after = true;
                answer
            }
            Failure::Unavailable => Answer::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the actor is not running".into(),
                "unavailable",
            ),
            Failure::Handler(message) => Answer::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Handler error: {message}"),
                "handler-error",
            ),
            Failure::TimedOut(message) => {
                Answer::text(StatusCode::GATEWAY_TIMEOUT, message, "timeout")
            }
        }
    }

    fn failure(
        &self,
        handle: Option<&ActorHandle>,
        exchange: &Exchange,
        failure: Failure,
    ) -> Response<Body> {
        // A full or gone queue has no room for a chain event either.
        let handle = match failure {
            Failure::Overflow | Failure::Unavailable => None,
            _ => handle,
        };
        let answer = self.failure_answer(failure);
        self.answer(handle, exchange, answer)
    }

    /// Turns the actor's response into HTTP, or a 500 if it is not valid.
    fn respond(
        &self,
        handle: &ActorHandle,
        exchange: &Exchange,
        response: HttpResponse,
    ) -> Response<Body> {
        let Ok(status) = StatusCode::from_u16(response.status) else {
            let message = format!("invalid status code {}", response.status);
            return self.failure(Some(handle), exchange, Failure::Handler(message));
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &response.headers {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) else {
                tracing::warn!(target: "actor", actor = %self.shared.actor, server = self.server, "response header `{name}` dropped: not a valid header");
                continue;
            };
            // The server frames the body itself.
            if name != CONTENT_LENGTH && name != TRANSFER_ENCODING {
                headers.append(name, value);
            }
        }
        let answer = Answer {
            status,
            headers,
            body: response.body.unwrap_or_default(),
            outcome: "handled",
            retry_after: false,
        };
        self.answer(Some(handle), exchange, answer)
    }

    /// Records the exchange in the actor's chain (when it has a handle) and
    /// builds the response.
    fn answer(
        &self,
        handle: Option<&ActorHandle>,
        exchange: &Exchange,
        answer: Answer,
    ) -> Response<Body> {
        if let Some(handle) = handle {
            let cap = self.shared.config.record_body_bytes;
            let data = json!({
                "server": self.server,
                "method": exchange.method,
                "uri": exchange.uri,
                "status": answer.status.as_u16(),
                "outcome": answer.outcome,
                "duration_ms": exchange.started.elapsed().as_millis() as u64,
                "request_body": exchange.request_body,
                "response_body": capped(&answer.body, cap),
            });
            let description = format!(
                "{} {} {}",
                exchange.method,
                exchange.uri,
                answer.status.as_u16()
            );
            if let Ok(data) = to_raw_value(&data) {
                handle.record_later(HTTP_EVENT, data, description);
            }
        }
        answer.into_response()
    }
}

/// What is known of a request when its answer is recorded.
struct Exchange {
    method: String,
    uri: String,
    started: Instant,
    /// As the chain shows it (see [`capped`]).
    request_body: Value,
}

/// A response about to be sent, with what the chain says of it.
pub struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    outcome: &'static str,
    retry_after: bool,
}

impl Answer {
    fn empty(status: StatusCode, outcome: &'static str) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: Vec::new(),
            outcome,
            retry_after: false,
        }
    }

    fn text(status: StatusCode, text: String, outcome: &'static str) -> Self {
        let mut answer = Self::empty(status, outcome);
        answer.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        answer.body = text.into_bytes();
        answer
    }

    pub fn into_response(self) -> Response<Body> {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        if self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    Answer::text(status, text.to_owned(), "").into_response()
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers.get_all(UPGRADE).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("websocket"))
    })
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

enum BodyError {
    TooLarge,
    Broken(String),
}

/// Reads a body of at most `limit` bytes. A larger one is read on (and
/// discarded) up to [`MAX_DRAIN_BYTES`] so the client sees the 413.
async fn read_body(
    mut body: Incoming,
    limit: usize,
    declared: Option<u64>,
) -> Result<Vec<u8>, BodyError> {
    if let Some(declared) = declared
        && declared > limit as u64
    {
        if declared - limit as u64 <= MAX_DRAIN_BYTES as u64 {
            drain(body).await;
        }
        return Err(BodyError::TooLarge);
    }
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                drain(body).await;
                return Err(BodyError::TooLarge);
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

async fn drain(mut body: Incoming) {
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        let mut drained = 0;
        while let Some(Ok(frame)) = body.frame().await {
            drained += frame.data_ref().map_or(0, |d| d.len());
            if drained > MAX_DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}
