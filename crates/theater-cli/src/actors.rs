//! Client commands about actors: start, stop, restart, list, tree, nodes, migrate, state
//! and inspect (`events` and `logs` are in [`crate::events`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use theater::server::Client;
use theater::server::protocol::{
    ActorList, ActorState, Inspected, Migrated, Nodes, Op, Restarted, Started, Status, Stopped,
    Tree, TreeNode,
};

use crate::events::follow;
use crate::manifest_arg::manifest_file;
use crate::output::{print_json, print_json_line};
use crate::remote::{self, Remote, table, timestamp};

#[derive(Args)]
#[command(
    after_help = "Examples:\n  theater start actors/counter/manifest.toml\n  theater start actors/counter/manifest.toml --state '{\"count\": 10}' --id-only"
)]
pub struct StartArgs {
    /// The actor's manifest.toml, or its directory (read by the server).
    manifest: PathBuf,
    /// Initial state (JSON) instead of the manifest's `init_state`.
    #[arg(long, value_name = "JSON")]
    state: Option<String>,
    /// Print only the new actor's id.
    #[arg(long, conflicts_with = "json")]
    id_only: bool,
    /// Keep printing the actor's chain events until Ctrl-C or it stops.
    #[arg(long)]
    follow: bool,
    /// Start this many actors from the manifest, with a progress bar.
    #[arg(long, value_name = "N", default_value_t = 1, conflicts_with = "follow")]
    count: usize,
    /// In a cluster, the node to run it on (`theater nodes` lists them);
    /// without it, the node running the fewest actors.
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

/// An actor, by id or unambiguous prefix (the 8-character short id).
#[derive(Args)]
pub struct IdArgs {
    /// Actor id or an unambiguous prefix of it.
    pub(crate) actor: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) remote: Remote,
}

/// A command that shows one answer of the server.
#[derive(Args)]
pub struct ShowArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    id: IdArgs,
    /// The node to move it to (`theater nodes` lists them).
    #[arg(long, value_name = "NODE")]
    to: String,
}

#[derive(Args)]
pub struct ListArgs {
    /// Also list the actors that stopped (every actor the server's log
    /// knows), with how each ended: `stopped`, or `stopped by itself`.
    #[arg(long)]
    all: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

pub fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    remote::block_on(async move {
        let state = args
            .state
            .as_deref()
            .map(remote::parse_message)
            .transpose()
            .context("--state")?;
        let manifest = manifest_file(&args.manifest)?;
        let manifest = std::fs::canonicalize(&manifest)
            .or_else(|_| std::path::absolute(&manifest))
            .with_context(|| format!("resolving {}", manifest.display()))?;
        let mut client = args.remote.connect().await?;
        let start = Op::Start {
            manifest_path: Some(manifest.display().to_string()),
            manifest: None,
            base_dir: None,
            state,
            node: args.node.clone(),
        };
        if args.count > 1 {
            return start_many(&args, &mut client, start).await;
        }
        let started: Started = client
            .ask(start)
            .await
            .map_err(|e| args.remote.explain(e))?;
        let id = started.actor;
        for warning in &started.warnings {
            errln!("warning: {warning}");
        }
        if args.json {
            if args.follow {
                print_json_line(&started);
            } else {
                print_json(&started);
            }
        } else if args.id_only {
            outln!("{id}");
        } else {
            let on = started.node.as_ref().map(|node| format!(" on node {node}"));
            let on = on.unwrap_or_default();
            outln!("started {} {} ({id}){on}", started.name, started.short);
        }
        if args.follow {
            follow(&args.remote, &mut client, id, None, args.json).await?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn stop(args: IdArgs) -> anyhow::Result<ExitCode> {
    act_on(
        args,
        |actor| Op::Stop { actor },
        |stopped: &Stopped| outln!("stopped {}", stopped.actor.short()),
    )
}

pub fn restart(args: IdArgs) -> anyhow::Result<ExitCode> {
    act_on(
        args,
        |actor| Op::Restart { actor },
        |restarted: &Restarted| outln!("restarted {}", restarted.actor.short()),
    )
}

/// Sends `op` for the actor `args` names and prints its answer `A`.
fn act_on<A: DeserializeOwned + Serialize>(
    args: IdArgs,
    op: impl FnOnce(String) -> Op,
    text: impl FnOnce(&A),
) -> anyhow::Result<ExitCode> {
    remote::show(&args.remote, args.json, op(args.actor), text)
}

pub fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let to = args.to;
    act_on(
        args.id,
        |actor| Op::Migrate { actor, to },
        |moved: &Migrated| {
            outln!(
                "moved {} from node {} to node {}",
                moved.actor.short(),
                moved.from,
                moved.to
            )
        },
    )
}

/// `start --count N`: the same manifest N times, showing progress.
async fn start_many(args: &StartArgs, client: &mut Client, start: Op) -> anyhow::Result<ExitCode> {
    let bar = if args.json || args.id_only {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.count as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} actors started ({per_sec})")
            .expect("a valid template"),
    );
    let mut started: Vec<Started> = Vec::with_capacity(args.count);
    for _ in 0..args.count {
        let answer = client
            .ask(start.clone())
            .await
            .map_err(|e| args.remote.explain(e))?;
        started.push(answer);
        bar.inc(1);
    }
    bar.finish_and_clear();
    if args.json {
        print_json(&json!({ "actors": started }));
    } else if args.id_only {
        for answer in &started {
            outln!("{}", answer.actor);
        }
    } else {
        outln!(
            "started {} {} actors; `theater list` shows them",
            started.len(),
            started[0].name
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn tree(args: ShowArgs) -> anyhow::Result<ExitCode> {
    remote::show(&args.remote, args.json, Op::Tree, |tree: &Tree| {
        if tree.roots.is_empty() {
            outln!("no actors running; start one with `theater start <manifest>`");
        }
        for root in &tree.roots {
            print_tree(root, 0);
        }
    })
}

pub fn nodes(args: ShowArgs) -> anyhow::Result<ExitCode> {
    remote::show(&args.remote, args.json, Op::Nodes, |answer: &Nodes| {
        let rows: Vec<Vec<String>> = answer
            .nodes
            .iter()
            .map(|n| {
                let this = if n.node == answer.node { " (this)" } else { "" };
                vec![
                    format!("{}{this}", n.node),
                    n.info.actors.to_string(),
                    format!("{} ms ago", n.seen_ms_ago),
                    n.info.management.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        let headers = ["NODE", "ACTORS", "LAST SEEN", "MANAGEMENT"];
        outln!("{}", table(&headers, &rows));
    })
}

fn print_tree(node: &TreeNode, depth: usize) {
    outln!("{}{}  {}", "  ".repeat(depth), node.short, node.name);
    for child in &node.children {
        print_tree(child, depth + 1);
    }
}

pub fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let op = Op::List { all: args.all };
    remote::show(&args.remote, args.json, op, |list: &ActorList| {
        for node in &list.unanswered {
            errln!("warning: a node did not answer, its actors are not listed: {node}");
        }
        if list.actors.is_empty() {
            outln!("no actors running; start one with `theater start <manifest>`");
            return;
        }
        // In a cluster, each actor's node.
        let clustered = list.actors.iter().any(|a| a.node.is_some());
        let rows: Vec<Vec<String>> = list
            .actors
            .iter()
            .map(|a| {
                let mut row = vec![
                    a.short.clone(),
                    a.name.clone(),
                    a.ending.status.as_str().to_owned(),
                    or_dash(a.queue_depth),
                    or_dash(a.calls_ok),
                    or_dash(a.calls_failed),
                ];
                if clustered {
                    row.push(or_dash(a.node.as_ref()));
                }
                row
            })
            .collect();
        let headers = ["ID", "NAME", "STATUS", "QUEUE", "OK", "FAILED", "NODE"];
        let headers = &headers[..if clustered { 7 } else { 6 }];
        outln!("{}", table(headers, &rows));
    })
}

/// A count, or `-` where there is none (a stopped actor has no queue).
fn or_dash(count: Option<impl ToString>) -> String {
    count.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

pub fn state(args: IdArgs) -> anyhow::Result<ExitCode> {
    act_on(
        args,
        |actor| Op::State { actor },
        |answer: &ActorState| outln!("{}", answer.state),
    )
}

pub fn inspect(args: IdArgs) -> anyhow::Result<ExitCode> {
    act_on(args, |actor| Op::Inspect { actor }, print_inspected)
}

/// `inspect` of an actor: what the server knows of it.
fn print_inspected(a: &Inspected) {
    if a.ending.status != Status::Running {
        return print_stopped(a);
    }
    let limits = &a.limits;
    let rows = [
        ("id", a.id.to_string()),
        ("name", a.name.clone()),
        ("status", a.ending.status.as_str().to_owned()),
        (
            "manifest",
            a.manifest
                .clone()
                .unwrap_or_else(|| "(not started by this server)".to_owned()),
        ),
        (
            "started",
            a.started_ms
                .map_or_else(|| "-".to_owned(), |ms| format!("{} UTC", timestamp(ms))),
        ),
        (
            "limits",
            format!(
                "memory {} MiB, call timeout {} ms, queue {}, message {} bytes, state {} bytes, result {} bytes",
                limits.memory_mb,
                limits.call_timeout_ms,
                limits.queue_capacity,
                limits.max_message_bytes,
                limits.max_state_bytes,
                limits.max_result_bytes
            ),
        ),
        ("queue depth", or_dash(a.queue_depth)),
        (
            "calls",
            match &a.counters {
                Some(c) => format!(
                    "{} ok, {} failed, {} refused (queue full)",
                    c.calls_ok, c.calls_failed, c.queue_full
                ),
                None => "- (not running: counted only while it runs)".to_owned(),
            },
        ),
        chain_row(a),
    ];
    print_rows(&rows);
}

/// `inspect` of an actor that is not running: what the log tells.
fn print_stopped(a: &Inspected) {
    let mut rows = vec![
        ("id", a.id.to_string()),
        ("name", a.name.clone()),
        ("status", a.ending.status.as_str().to_owned()),
    ];
    if let Some(data) = &a.ending.shutdown_data {
        rows.push(("data", data.to_string()));
    }
    rows.push((
        "manifest",
        a.manifest.clone().unwrap_or_else(|| "null".into()),
    ));
    rows.push(chain_row(a));
    print_rows(&rows);
}

/// The `chain:` row of `inspect`: its length and head.
fn chain_row(a: &Inspected) -> (&'static str, String) {
    let head = a.chain.head.as_deref().unwrap_or("none");
    ("chain", format!("{} events, head {head}", a.chain.events))
}

/// Prints the rows of `inspect`, their values aligned.
fn print_rows(rows: &[(&str, String)]) {
    for (key, value) in rows {
        outln!("{:<12} {value}", format!("{key}:"));
    }
}
