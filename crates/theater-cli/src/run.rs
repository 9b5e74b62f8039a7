//! `theater run`: one actor, embedded in this process.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgMatches, Args};
use serde_json::{Map, Value, json};
use theater::chain::{self, ChainExport};
use theater::files::FileRules;
use theater::host::{HANDLE_REQUEST, HANDLE_SEND};
use theater::runtime::ActorStatus;
use theater::server::protocol::put_bytes;
use theater::wasm::Bytes;
use theater::{ActorHandle, ActorId, Manifest, RuntimeConfig, TheaterRuntime};
use tokio::signal::unix::{SignalKind, signal};

use crate::manifest_arg::manifest_file;
use crate::observe::{MetricsArgs, serve_metrics};
use crate::output::print_json;
use crate::remote::{self, show_bytes};

/// Spawn an actor from its manifest in this process, deliver messages, and
/// print replies, the final state and the verified chain.
///
/// Without --send or --request the actor keeps running until Ctrl-C (or
/// until it stops itself), and `--resume` brings it back later. With them,
/// it is stopped at the end. Its chain is durable in the home directory
/// either way.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  theater run actors/counter/manifest.toml --send '{\"add\":2}' --request '{}'\n  theater run actors/counter/manifest.toml --resume --request '{}'"
)]
pub struct RunArgs {
    /// The actor's manifest.toml, or its directory.
    manifest: PathBuf,
    /// Continue the newest running actor started from this manifest (after
    /// Ctrl-C or a crash): same id, state and chain. Starts a new one if
    /// there is none.
    #[arg(long)]
    resume: bool,
    /// Data directory (chains, compiled components); default ~/.theater.
    #[arg(long, value_name = "DIR", env = "THEATER_HOME")]
    home: Option<PathBuf>,
    /// Deliver a message to `handle-send` (repeatable; JSON text, sent as
    /// written).
    #[arg(long, value_name = "JSON")]
    send: Vec<String>,
    /// Deliver a message to `handle-request` and print the reply (repeatable).
    #[arg(long, value_name = "JSON")]
    request: Vec<String>,
    /// Write the actor's chain to FILE (verify it later with `theater verify --file`).
    #[arg(long, value_name = "FILE")]
    chain_out: Option<PathBuf>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    metrics: MetricsArgs,
    /// Let the actor's HTTP servers listen on the address they ask for
    /// (such as 0.0.0.0). Without it they listen on loopback only.
    #[arg(long)]
    public_http: bool,
}

/// A message to deliver, in command-line order.
pub enum Message {
    Send(String),
    Request(String),
}

/// `--send` and `--request` interleaved as the user wrote them.
pub fn message_order(matches: &ArgMatches) -> Vec<(usize, bool)> {
    let positions = |id: &str| matches.indices_of(id).into_iter().flatten();
    let mut order: Vec<(usize, bool)> = positions("send")
        .map(|i| (i, true))
        .chain(positions("request").map(|i| (i, false)))
        .collect();
    order.sort_unstable();
    order
}

pub fn run(args: RunArgs, order: Vec<(usize, bool)>) -> anyhow::Result<ExitCode> {
    let (mut sends, mut requests) = (
        args.send.clone().into_iter(),
        args.request.clone().into_iter(),
    );
    let messages: Vec<Message> = order
        .into_iter()
        .filter_map(|(_, is_send)| {
            if is_send {
                sends.next().map(Message::Send)
            } else {
                requests.next().map(Message::Request)
            }
        })
        .collect();
    // One rule for every command that delivers messages: JSON text only.
    for message in &messages {
        let (Message::Send(text) | Message::Request(text)) = message;
        remote::parse_message(text)?;
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(run_actor(args, messages))
}

async fn run_actor(args: RunArgs, messages: Vec<Message>) -> anyhow::Result<ExitCode> {
    // Absolute, so that `--resume` finds the actor from any directory.
    let path = manifest_file(&args.manifest)?;
    let path = std::fs::canonicalize(&path)
        .with_context(|| format!("cannot read manifest {}", path.display()))?;
    let manifest = Manifest::read(path.clone(), FileRules::default()).await?;
    for warning in &manifest.warnings {
        errln!("warning: {warning}");
    }
    let mut config = match &args.home {
        Some(home) => RuntimeConfig::at(home),
        None => RuntimeConfig::embedded(),
    }?;
    config.metrics = args.metrics.config();
    config.public_http = args.public_http;
    let theater = TheaterRuntime::new(config)?;
    // `run` has no token: its metrics are served on loopback only.
    let metrics = args.metrics.bind(&theater, Default::default()).await?;
    let resumed = match args.resume {
        true => resume(&theater, &manifest).await?,
        false => None,
    };
    let (actor, verb) = match resumed {
        Some(actor) => (actor, "resumed"),
        None => (theater.spawn(&manifest).await?, "started"),
    };
    if !args.json {
        outln!("{verb} {} ({})", manifest.name, actor.id());
        serve_metrics(metrics)?;
    } else if let Some(metrics) = metrics {
        tokio::spawn(metrics.serve());
    }

    let mut replies = Vec::new();
    let mut failed = false;
    if messages.is_empty() {
        // Listening before saying so: a Ctrl-C right after the line is caught.
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
        if !args.json {
            outln!("running; press Ctrl-C to stop");
        }
        tokio::select! {
            _ = interrupt.recv() => {}
            () = actor.stopped() => {}
        }
    }
    for message in &messages {
        let reply = deliver(&actor, message).await;
        failed |= reply.get("error").is_some();
        if !args.json {
            print_reply(&reply);
        }
        replies.push(reply);
    }

    let status = theater.status(actor.id()).await?;
    let state = match status {
        ActorStatus::Running => actor.state().await?,
        _ => last_state(&theater, actor.id())?,
    };
    let events = theater.chain(actor.id())?;
    chain::verify(&events).context("the actor's chain does not verify")?;
    if let Some(path) = &args.chain_out {
        write_chain(path, &actor, events.clone())?;
    }
    match (&status, messages.is_empty()) {
        (ActorStatus::Running, true) => {
            // Interrupted, not finished: it stays resumable.
            theater.shutdown().await;
        }
        (ActorStatus::Running, false) => theater.stop(actor.id()).await?,
        // It ended on its own, and the log says so already.
        _ => {}
    }

    let head = events
        .last()
        .map(|e| hex::encode(e.hash))
        .unwrap_or_default();
    if args.json {
        let mut report = Map::new();
        report.insert("actor_id".into(), actor.id().to_string().into());
        report.insert("name".into(), manifest.name.clone().into());
        report.insert("replies".into(), replies.into());
        put_bytes(&mut report, "state", state.as_deref());
        report.insert(
            "chain".into(),
            json!({ "events": events.len(), "verified": true, "head": head }),
        );
        report.insert("status".into(), status.as_str().into());
        if let ActorStatus::StoppedByItself { data } = &status {
            report.insert("shutdown_data".into(), data.clone());
        }
        print_json(&Value::Object(report));
    } else {
        let mut shown = Map::new();
        put_bytes(&mut shown, "state", state.as_deref());
        outln!("state: {}", show_bytes(&Value::Object(shown), "state"));
        outln!("chain verified: {} events (head {head})", events.len());
        if let Some(path) = &args.chain_out {
            outln!("chain written to {}", path.display());
        }
        match &status {
            ActorStatus::StoppedByItself { data } => {
                outln!(
                    "{} stopped by itself (shutdown data: {data})",
                    manifest.name
                );
            }
            _ if messages.is_empty() => {
                outln!("stopped; `theater run --resume` continues it");
            }
            _ => {}
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The newest state the log keeps of a stopped actor.
fn last_state(theater: &TheaterRuntime, id: ActorId) -> anyhow::Result<Option<Vec<u8>>> {
    let saved = theater.saved_actors()?;
    let actor = saved
        .into_iter()
        .find(|saved| saved.id == id)
        .with_context(|| format!("actor {id} is not in the log"))?;
    Ok(actor.latest.and_then(|snapshot| snapshot.state))
}

/// Resumes the newest running actor started from `manifest`'s file, with
/// its subtree; `None` if there is none.
async fn resume(
    theater: &TheaterRuntime,
    manifest: &Manifest,
) -> anyhow::Result<Option<ActorHandle>> {
    let newest = theater
        .saved_actors()?
        .into_iter()
        .filter(|saved| {
            saved.record.running
                && saved.record.parent.is_none()
                && saved.record.manifest.source == manifest.source
        })
        .max_by_key(|saved| saved.record.started_ms);
    let Some(newest) = newest else {
        return Ok(None);
    };
    let report = theater.resume(|saved| saved.id == newest.id).await?;
    for (id, reason) in &report.failed {
        errln!("warning: cannot resume actor {id}: {reason}");
    }
    match theater.actor(newest.id) {
        Ok(actor) => Ok(Some(actor)),
        Err(_) => anyhow::bail!("cannot resume actor {}", newest.id),
    }
}

async fn deliver(actor: &ActorHandle, message: &Message) -> Value {
    let mut reply = Map::new();
    let outcome = match message {
        Message::Send(text) => {
            reply.insert("send".into(), text.as_str().into());
            actor
                .call_function::<(Bytes,), ()>(HANDLE_SEND, (Bytes(text.as_bytes().to_vec()),))
                .await
                .map(|()| {
                    reply.insert("ok".into(), true.into());
                })
        }
        Message::Request(text) => {
            reply.insert("request".into(), text.as_str().into());
            actor
                .call_function::<(Bytes,), (Vec<u8>,)>(
                    HANDLE_REQUEST,
                    (Bytes(text.as_bytes().to_vec()),),
                )
                .await
                .map(|(bytes,)| put_bytes(&mut reply, "reply", Some(&bytes)))
        }
    };
    if let Err(e) = outcome {
        reply.insert("error".into(), e.to_string().into());
    }
    Value::Object(reply)
}

fn print_reply(reply: &Value) {
    let text = |key: &str| reply[key].as_str().unwrap_or_default().to_owned();
    let what = if reply.get("send").is_some() {
        format!("send {}", text("send"))
    } else {
        format!("request {}", text("request"))
    };
    if let Some(error) = reply.get("error") {
        outln!("{what} -> error: {}", error.as_str().unwrap_or_default());
    } else if reply.get("send").is_some() {
        outln!("{what} -> ok");
    } else {
        outln!("{what} -> {}", show_bytes(reply, "reply"));
    }
}

fn write_chain(
    path: &PathBuf,
    actor: &ActorHandle,
    events: Vec<chain::ChainEvent>,
) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let export = ChainExport::new(actor.id().to_string(), events);
    std::fs::write(path, export.to_json()).with_context(|| format!("writing {}", path.display()))
}
