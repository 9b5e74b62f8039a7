//! The web dashboard: a page that shows a runtime's actors, supervision
//! tree, chains (decoded and verified), states, call rates and live events.
//!
//! The page is plain HTML, CSS and JavaScript embedded in the binary. It
//! reads a small JSON API ([`api`]) and a stream of live chain events
//! ([`live`]). Both require the server's token, when it has one, as
//! `Authorization: Bearer <token>`; the page asks for it and keeps it in
//! the tab's session storage, never in a URL. Every read is bounded.

mod api;
mod live;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::runtime::TheaterRuntime;
use crate::web::{self, WebAccess, WebError};

/// Where the dashboard listens unless told otherwise.
pub const DEFAULT_DASHBOARD: &str = "127.0.0.1:9091";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// What the API handlers share.
#[derive(Clone)]
struct Dash {
    runtime: TheaterRuntime,
    /// One chain verification at a time: each reads a whole chain.
    verifying: Arc<Semaphore>,
    /// Seats of live-event streams.
    live_seats: Arc<Semaphore>,
}

/// A bound dashboard.
pub struct Dashboard {
    listener: TcpListener,
    router: Router,
}

impl Dashboard {
    /// Binds `addr` (e.g. [`DEFAULT_DASHBOARD`], or port 0 for any free
    /// port). Refuses an address other than loopback without a token
    /// unless `access` says insecure.
    pub async fn bind(
        runtime: TheaterRuntime,
        addr: &str,
        access: WebAccess,
    ) -> Result<Self, WebError> {
        let listener = web::bind("dashboard", addr, &access).await?;
        let token: Option<Arc<str>> = access.token.map(Into::into);
        let dash = Dash {
            runtime,
            verifying: Arc::new(Semaphore::new(1)),
            live_seats: Arc::new(Semaphore::new(live::MAX_LIVE_STREAMS)),
        };
        let api = Router::new()
            .route("/node", get(api::node))
            .route("/actors", get(api::actors))
            .route("/tree", get(api::tree))
            .route("/actors/{id}/chain", get(api::chain))
            .route("/actors/{id}/state", get(api::state))
            .route("/live", get(live::stream))
            .layer(axum::middleware::from_fn(move |request, next| {
                web::require_token(token.clone(), request, next)
            }))
            .with_state(dash);
        let router = Router::new()
            .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
            .route(
                "/app.js",
                get(|| asset("text/javascript; charset=utf-8", APP_JS)),
            )
            .route(
                "/style.css",
                get(|| asset("text/css; charset=utf-8", STYLE_CSS)),
            )
            .nest("/api", api);
        Ok(Self { listener, router })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves the page and its API for ever.
    pub async fn serve(self) {
        web::serve(self.listener, self.router).await;
    }
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The page runs only what it ships and talks only to its origin.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
