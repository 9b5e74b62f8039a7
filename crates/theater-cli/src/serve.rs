//! `theater server`: a runtime that other `theater` commands manage.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use theater::chain::SNAPSHOT_EVERY;
use theater::files::{
    DEFAULT_MAX_COMPONENT_BYTES, DEFAULT_MAX_INIT_STATE_BYTES, DEFAULT_MAX_MANIFEST_BYTES,
    FileLimits,
};
use theater::runtime::{DEFAULT_MAX_ACTORS, default_home};
use theater::server::{DEFAULT_LISTEN, Server, ServerConfig};
use theater::storage::{Durability, LogOptions};
use theater::{RuntimeConfig, TheaterRuntime};

/// Run the management server: a runtime that `theater start`, `list`,
/// `message` and the other client commands talk to.
///
/// It listens on loopback only unless told otherwise; anyone who can reach
/// the address can start actors from files this user can read, so set a
/// --token before listening anywhere else. Prints `listening on ADDR`
/// once ready.
///
/// Chains, actor records and states are durable in the home directory.
/// Ctrl-C (or SIGTERM) stops the actors and the server; a server started
/// later on the same home resumes every actor that was running, after a
/// crash too, under the same ids and from the states they had reached.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  theater server\n  theater server --listen 127.0.0.1:0 --home /tmp/theater --token s3cret"
)]
pub struct ServerArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Data directory (chains, actor records, compiled components); default ~/.theater.
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
    /// Keep a snapshot of each actor's state every N events (going back to
    /// an event replays fewer calls than N).
    #[arg(long, value_name = "N", default_value_t = SNAPSHOT_EVERY, value_parser = clap::value_parser!(u64).range(1..))]
    snapshot_every: u64,
    /// Acknowledge calls before their events are flushed to disk, flushing
    /// at most MS milliseconds later: faster, but a crash may lose the
    /// calls of about the last MS ms (see docs/durability.md).
    #[arg(long, value_name = "MS")]
    buffered: Option<u64>,
    /// Most actors it runs at once, children included; starts and spawns
    /// beyond are refused.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ACTORS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_actors: usize,
    /// Largest manifest file it reads.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_MANIFEST_BYTES)]
    max_manifest_bytes: u64,
    /// Largest `init_state` file it reads.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_INIT_STATE_BYTES)]
    max_init_state_bytes: u64,
    /// Largest component file it reads.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_COMPONENT_BYTES)]
    max_component_bytes: u64,
    /// Let actor HTTP servers listen on the address they ask for (such as
    /// 0.0.0.0). Without it they listen on loopback only.
    #[arg(long)]
    public_http: bool,
}

pub fn serve(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let durability = match args.buffered {
        Some(ms) => Durability::Buffered {
            max_unsynced: Duration::from_millis(ms),
        },
        None => Durability::Durable,
    };
    let options = LogOptions {
        durability,
        snapshot_every: args.snapshot_every,
        ..LogOptions::default()
    };
    let mut config = RuntimeConfig::at_with(args.home.unwrap_or_else(default_home), options)?;
    config.max_actors = args.max_actors;
    config.public_http = args.public_http;
    config.files = FileLimits {
        manifest_bytes: args.max_manifest_bytes,
        init_state_bytes: args.max_init_state_bytes,
        component_bytes: args.max_component_bytes,
    };
    let theater = TheaterRuntime::new(config)?;
    let resumed = theater.resume_all().await?;
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
    if !resumed.resumed.is_empty() {
        println!("resumed {} actors", resumed.resumed.len());
    }
    for (id, reason) in &resumed.failed {
        eprintln!("warning: cannot resume actor {id}: {reason}");
    }
    std::io::stdout().flush()?;
    server.serve_until(shutdown_signal()).await;
    theater.shutdown().await;
    eprintln!("server stopped; its actors resume when it starts again");
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
