//! The flags that make a runtime observable: its metrics endpoint and,
//! on `theater server`, its dashboard.

use clap::Args;
use theater::TheaterRuntime;
use theater::dashboard::{DEFAULT_DASHBOARD, Dashboard};
use theater::metrics::{MetricsConfig, MetricsServer};
use theater::web::WebAccess;

/// Where the metrics endpoint listens when `--metrics` names no address.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9464";

/// Prometheus metrics (docs/metrics.md).
#[derive(Args)]
#[command(next_help_heading = "Metrics")]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics (default address
    /// 127.0.0.1:9464). Off unless given. Loopback only unless the server
    /// has a --token, which scrapes then send as a bearer token.
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = DEFAULT_METRICS
    )]
    metrics: Option<String>,
    /// Label call, latency and queue metrics with actor ids as well: each
    /// actor adds series of its own, so only for deployments with few actors.
    #[arg(long, requires = "metrics")]
    metrics_per_actor: bool,
}

impl MetricsArgs {
    /// What the runtime should count, `None` without `--metrics`.
    pub fn config(&self) -> Option<MetricsConfig> {
        self.metrics.as_ref().map(|_| MetricsConfig {
            per_actor: self.metrics_per_actor,
        })
    }

    /// Binds the endpoint, if asked for.
    pub async fn bind(
        &self,
        runtime: &TheaterRuntime,
        access: WebAccess,
    ) -> anyhow::Result<Option<MetricsServer>> {
        match &self.metrics {
            Some(addr) => Ok(Some(
                MetricsServer::bind(runtime.clone(), addr, access).await?,
            )),
            None => Ok(None),
        }
    }
}

/// Serves a bound metrics endpoint in the background; says where on stdout.
pub fn serve_metrics(server: Option<MetricsServer>) -> anyhow::Result<()> {
    if let Some(server) = server {
        outln!("metrics on http://{}/metrics", server.local_addr()?);
        tokio::spawn(server.serve());
    }
    Ok(())
}

/// The web dashboard (docs/observability.md).
#[derive(Args)]
#[command(next_help_heading = "Dashboard")]
pub struct DashboardArgs {
    /// Serve the web dashboard at http://ADDR/ (default address
    /// 127.0.0.1:9091): actors, supervision tree, chains, states and live
    /// events. Off unless given. Loopback only unless the server has a
    /// --token, which the page then asks for.
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = DEFAULT_DASHBOARD
    )]
    dashboard: Option<String>,
}

impl DashboardArgs {
    /// Binds the dashboard, if asked for.
    pub async fn bind(
        &self,
        runtime: &TheaterRuntime,
        access: WebAccess,
    ) -> anyhow::Result<Option<Dashboard>> {
        match &self.dashboard {
            Some(addr) => Ok(Some(Dashboard::bind(runtime.clone(), addr, access).await?)),
            None => Ok(None),
        }
    }
}

/// Serves a bound dashboard in the background; says where on stdout.
pub fn serve_dashboard(dashboard: Option<Dashboard>) -> anyhow::Result<()> {
    if let Some(dashboard) = dashboard {
        outln!("dashboard on http://{}/", dashboard.local_addr()?);
        tokio::spawn(dashboard.serve());
    }
    Ok(())
}
