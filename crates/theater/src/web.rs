//! Serves the read-only HTTP endpoints of a runtime (the metrics endpoint
//! and the dashboard): on loopback unless a token guards them, with a
//! bounded number of connections, each with a time limit on its headers.
//! When every seat is taken, a newcomer closes the connection that has been
//! idle longest ([`admission`](crate::admission)), so peers that open
//! connections and say nothing cannot lock a scraper or a browser out.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};

use crate::admission::{Admission, PeerKey, Seat, same_secret};

/// Connections one endpoint serves at once. Guards the runtime against
/// clients that open connections without end.
pub const MAX_WEB_CONNECTIONS: usize = 64;

/// Of those, connections one peer (address, or IPv6 /64) holds at once;
/// more than the dashboard's live streams, so that one browser with all of
/// them open can still load the page.
pub const MAX_WEB_CONNECTIONS_PER_PEER: usize = 32;

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
    let seats = Admission::new(MAX_WEB_CONNECTIONS, MAX_WEB_CONNECTIONS_PER_PEER);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Every seat busy answering: the newcomer is closed unanswered.
        if let Ok(seat) = seats.admit(PeerKey::of(peer.ip())) {
            tokio::spawn(connection(stream, seat, router.clone()));
        }
    }
}

/// Serves one connection until it ends or its seat is taken while idle.
async fn connection(stream: TcpStream, seat: Seat, router: Router) {
    let routes = TowerToHyperService::new(router);
    let service = {
        let seat = seat.clone();
        service_fn(move |request| {
            // Busy while answering, body included (a live stream is busy
            // while it streams): only idle connections make room.
            let busy = seat.busy();
            let answer = routes.call(request);
            async move {
                let response = answer.await?;
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(body.map_err(move |e| {
                        let _held_until_the_body_ends = &busy;
                        e
                    }))
                }))
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        () = seat.evicted() => {}
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
        .is_some_and(|given| same_secret(given.trim(), token))
}
