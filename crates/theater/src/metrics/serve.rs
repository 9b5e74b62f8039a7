//! `GET /metrics`: the runtime's metrics for Prometheus to scrape.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::web::{self, WebAccess, WebError};

/// The content type of the OpenMetrics text format, which Prometheus
/// reads.
const TEXT_FORMAT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whatever renders the metrics a scrape is answered with: the runtime,
/// which knows its actors' queues as well as its counters.
pub trait Scrape: Clone + Send + Sync + 'static {
    /// Everything counted, in the OpenMetrics text format; `None` when
    /// metrics are disabled.
    fn metrics_text(&self) -> Option<String>;
}

/// A bound metrics endpoint.
pub struct MetricsServer {
    listener: TcpListener,
    router: Router,
}

pub type MetricsServerError = WebError;

impl MetricsServer {
    /// Binds `addr` (e.g. `127.0.0.1:9464`, or port 0 for any free port).
    /// Refuses an address other than loopback without a token unless
    /// `access` says insecure.
    pub async fn bind<S: Scrape>(
        runtime: S,
        addr: &str,
        access: WebAccess,
    ) -> Result<Self, WebError> {
        let listener = web::bind("metrics endpoint", addr, &access).await?;
        let token: Option<Arc<str>> = access.token.map(Into::into);
        let router = Router::new()
            .route("/metrics", get(scrape::<S>))
            .layer(axum::middleware::from_fn(move |request, next| {
                web::require_token(token.clone(), request, next)
            }))
            .with_state(runtime);
        Ok(Self { listener, router })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves scrapes for ever.
    pub async fn serve(self) {
        web::serve(self.listener, self.router).await;
    }
}

async fn scrape<S: Scrape>(State(runtime): State<S>) -> impl IntoResponse {
    match runtime.metrics_text() {
        Some(text) => (StatusCode::OK, [(header::CONTENT_TYPE, TEXT_FORMAT)], text),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain")],
            "this runtime keeps no metrics: start it with metrics enabled".to_owned(),
        ),
    }
}
