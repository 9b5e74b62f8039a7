//! Serves the read-only HTTP endpoints of a runtime (the metrics endpoint
//! and the dashboard): on loopback unless a token guards them, with a
//! bounded number of connections, each with a time limit on its headers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connections one endpoint serves at once; more are closed at once.
/// Guards the runtime against clients that open connections without end.
pub const MAX_WEB_CONNECTIONS: usize = 64;

/// Time a client has to send a request's headers, also how long an idle
/// keep-alive connection stays open. Guards against clients that open a
/// connection and say nothing.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Who may reach an endpoint.
#[derive(Debug, Clone, Default)]
pub struct WebAccess {
    /// When set, every request (but the page's own static files) must carry
    /// `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Listen on an address other than loopback without a token.
    pub insecure: bool,
}

/// An endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("cannot listen for the {what} on {addr}: {source}; pick another address")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "refusing to serve the {what} on {addr} without a token: anyone who can reach it could read every actor's state. Set a token (--token or THEATER_TOKEN), listen on loopback (127.0.0.1), or pass --insecure if every host that can reach {addr} is trusted"
    )]
    NoToken {
        what: &'static str,
        addr: SocketAddr,
    },
}

/// Binds `addr` for the endpoint `what`, refusing an address other than
/// loopback without a token unless `access` says insecure.
pub(crate) async fn bind(
    what: &'static str,
    addr: &str,
    access: &WebAccess,
) -> Result<TcpListener, WebError> {
    let bound = |source| WebError::Bind {
        what,
        addr: addr.to_owned(),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bound)?;
    let local = listener.local_addr().map_err(bound)?;
    if !local.ip().to_canonical().is_loopback() && access.token.is_none() {
        if !access.insecure {
            return Err(WebError::NoToken { what, addr: local });
        }
        tracing::warn!("INSECURE: the {what} is served on {local} without a token");
    }
    Ok(listener)
}

/// Serves `router` on `listener` for ever.
pub(crate) async fn serve(listener: TcpListener, router: Router) {
    let seats = Arc::new(Semaphore::new(MAX_WEB_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Beyond the limit the connection is closed unanswered.
        let Ok(seat) = seats.clone().try_acquire_owned() else {
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(seat);
        });
    }
}

/// Middleware: refuses a request without the bearer `token`, if one is set.
pub(crate) async fn require_token(
    token: Option<Arc<str>>,
    request: Request,
    next: Next,
) -> Result<Response, Infallible> {
    match token {
        Some(token) if !bearer_matches(request.headers(), &token) => Ok((
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "this endpoint requires the server's token as `Authorization: Bearer <token>`",
        )
            .into_response()),
        _ => Ok(next.run(request).await),
    }
}

fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| crate::server::same_secret(given.trim(), token))
}
