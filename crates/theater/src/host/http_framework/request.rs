//! One HTTP request, from its head to the actor and back.
//!
//! A request is matched to a route, its body read (up to the body limit),
//! and then handed to the actor as calls of `handle-middleware` and
//! `handle-request` through its [`ActorHandle`], one queue slot each (one
//! in all for a route without middleware). A full queue answers 503 at
//! once; nothing waits in an unbounded buffer. Each call carries its part
//! of the request's record (see [`super::exchange`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, UPGRADE};
use axum::http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::answer::{Answer, Failure, plain};
use super::exchange::{Exchange, Step};
use super::listener::ServerCtx;
use super::routing::{find_route, middleware_for};
use super::state::{ServerStats, WsEndpoint};
use super::types::{HttpRequest, HttpResponse, MiddlewareResult};
use super::{HANDLE_MIDDLEWARE, HANDLE_REQUEST, websocket};
use crate::actor::ActorHandle;
use crate::admission::Seat;

/// How much of an oversized body is read and discarded so that the client
/// sees the 413 instead of a reset connection. Anything larger is cut.
pub const MAX_DRAIN_BYTES: usize = 8 * 1024 * 1024;
/// How long that discarding may take.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a request whose time limit ran out just as the actor answered
/// it waits for that answer's event to be stored. Guards the client
/// against a chain store that hangs.
pub const COMMIT_GRACE: Duration = Duration::from_secs(5);

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

    pub async fn handle(self: Arc<Self>, request: Request<Incoming>, seat: Seat) -> Response<Body> {
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
        let exchange = Exchange::new(
            self.server,
            &method,
            &uri,
            started,
            self.shared.config.record_body_bytes,
        );
        let request = HttpRequest {
            method,
            uri,
            headers: header_pairs(&parts.headers),
            body: None,
        };
        match self.plan(&request.method, &path, is_websocket_upgrade(&parts.headers)) {
            Plan::Gone => plain(StatusCode::SERVICE_UNAVAILABLE, "server stopped"),
            Plan::NotFound => {
                self.alone(&exchange, Answer::empty(StatusCode::NOT_FOUND, "no-route"))
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
                websocket::upgrade(self, parts, request, upgrade).await
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
                        let text = format!("request body larger than the limit of {limit} bytes");
                        let answer = Answer::text(StatusCode::PAYLOAD_TOO_LARGE, text, "too-large");
                        return self.alone(&exchange, answer);
                    }
                    Ok(Err(BodyError::Broken(e))) => {
                        return plain(
                            StatusCode::BAD_REQUEST,
                            &format!("cannot read the request body: {e}"),
                        );
                    }
                };
                let request = HttpRequest {
                    body: (!body.is_empty()).then_some(body),
                    ..request
                };
                // From here on the actor works on it: the seat is not given
                // up to a newcomer.
                let _busy = seat.busy();
                self.route(&exchange, handler, &middleware, request, deadline)
                    .await
            }
        }
    }

    /// Runs a routed request through its middleware and handler, within
    /// the request's time limit.
    async fn route(
        &self,
        exchange: &Arc<Exchange>,
        handler: u64,
        middleware: &[u64],
        request: HttpRequest,
        deadline: Instant,
    ) -> Response<Body> {
        let Some(handle) = self.shared.link.wait(deadline, &self.shared.ended).await else {
            return self.failure_answer(Failure::Unavailable).into_response();
        };
        let call = async {
            let request = self
                .run_middleware(&handle, middleware, request, Some(exchange))
                .await?;
            let note = exchange.note(Step::Handler, &(handler, &request));
            let (response,): (HttpResponse,) = handle
                .call_noted(HANDLE_REQUEST, (handler, request), note)
                .await?;
            Ok::<_, Failure>(response)
        };
        tokio::pin!(call);
        let outcome = match tokio::time::timeout_at(deadline.into(), &mut call).await {
            Ok(outcome) => outcome,
            Err(_) => {
                let limit = self.shared.config.request_timeout.as_millis();
                let timed_out = Failure::TimedOut(format!(
                    "the actor did not answer within {limit} ms (`request_timeout_ms`)"
                ));
                if exchange.time_out() {
                    Err(timed_out)
                } else {
                    // Answered just now: its event is being stored.
                    let answered = tokio::time::timeout(COMMIT_GRACE, call).await;
                    answered.unwrap_or(Err(timed_out))
                }
            }
        };
        let answer = match outcome.and_then(|response| self.response_answer(response)) {
            Ok(answer) => answer,
            Err(failure) if failure.recordable() => {
                let answer = self.failure_answer(failure);
                // Unless a call's event has it already (it mostly has).
                exchange.record_alone(&handle, answer.status, answer.outcome);
                answer
            }
            // A full or gone queue has no room for a record either.
            Err(failure) => self.failure_answer(failure),
        };
        answer.into_response()
    }

    /// Answers without a call of the actor, recording that in an `http`
    /// event of its own.
    fn alone(&self, exchange: &Exchange, answer: Answer) -> Response<Body> {
        if let Some(handle) = self.shared.link.current() {
            exchange.record_alone(&handle, answer.status, answer.outcome);
        }
        answer.into_response()
    }

    /// Runs `request` through the middleware in order; the request each one
    /// returns goes to the next. Each call records its part of `exchange`,
    /// if given.
    pub async fn run_middleware(
        &self,
        handle: &ActorHandle,
        middleware: &[u64],
        mut request: HttpRequest,
        exchange: Option<&Arc<Exchange>>,
    ) -> Result<HttpRequest, Failure> {
        for &id in middleware {
            let params = (id, request);
            let (result,): (MiddlewareResult,) = match exchange {
                Some(exchange) => {
                    let note = exchange.note(Step::Middleware, &params);
                    handle.call_noted(HANDLE_MIDDLEWARE, params, note).await?
                }
                None => handle.call_function(HANDLE_MIDDLEWARE, params).await?,
            };
            if !result.proceed {
                return Err(Failure::Denied);
            }
            request = result.request;
        }
        Ok(request)
    }
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
