//! `theater server`: a runtime that other `theater` commands manage.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use theater::server::{DEFAULT_LISTEN, Server, ServerConfig};
use theater::{RuntimeConfig, TheaterRuntime};

/// Run the management server: a runtime that `theater start`, `list`,
/// `message` and the other client commands talk to.
///
/// It listens on loopback only unless told otherwise; anyone who can reach
/// the address can start actors from files this user can read, so set a
/// --token before listening anywhere else. Prints `listening on ADDR`
/// once ready. Ctrl-C stops every actor and the server.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  theater server\n  theater server --listen 127.0.0.1:0 --home /tmp/theater --token s3cret"
)]
pub struct ServerArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Data directory (compiled component cache); default ~/.theater.
    #[arg(long, value_name = "DIR", env = "THEATER_HOME")]
    home: Option<PathBuf>,
    /// Require this shared secret from every client.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "THEATER_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

pub fn serve(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let mut config = RuntimeConfig::embedded();
    if let Some(home) = args.home {
        config.home = Some(home);
    }
    let theater = TheaterRuntime::new(config)?;
    let token = args.token.filter(|t| !t.is_empty());
    let has_token = token.is_some();
    let server = Server::bind(theater.clone(), &args.listen, ServerConfig { token })
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; is another server running there? pick another with --listen",
                args.listen
            )
        })?;
    let addr = server.local_addr()?;
    if !addr.ip().is_loopback() && !has_token {
        eprintln!(
            "warning: listening on {addr} without a token: anyone who can reach it can start actors from files this user can read; set --token"
        );
    }
    println!("listening on {addr}");
    std::io::stdout().flush()?;
    server.serve_until(shutdown_signal()).await;
    for id in theater.actor_ids() {
        if let Err(e) = theater.stop(id).await {
            tracing::debug!("stopping {id}: {e}");
        }
    }
    eprintln!("server stopped");
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM where there is one.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
