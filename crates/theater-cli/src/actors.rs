//! Client commands about actors: start, stop, list, state, events, inspect.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use theater::server::Client;
use theater::server::protocol::Op;

use crate::manifest_arg::manifest_file;
use crate::output::{self, print_json, print_json_line};
use crate::remote::{self, Remote, short, short_hash, table, timestamp};

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

#[derive(Args)]
pub struct TreeArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
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

#[derive(Args)]
#[command(
    after_help = "Examples:\n  theater events 1a2b3c4d --limit 5\n  theater events 1a2b3c4d --follow"
)]
pub struct EventsArgs {
    /// Actor id or an unambiguous prefix of it.
    actor: String,
    /// Only the last N events.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Only events of this type (e.g. `log`, `call`, `call-error`, `host-call`).
    #[arg(long = "type", value_name = "EVENT_TYPE")]
    kind: Option<String>,
    /// Keep printing new events until Ctrl-C or the actor stops.
    #[arg(long)]
    follow: bool,
    /// Print JSON instead of text (one object per line with --follow).
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
        };
        if args.count > 1 {
            return start_many(&args, &mut client, start).await;
        }
        let answer = client
            .call(start)
            .await
            .map_err(|e| args.remote.explain(e))?;
        let id = answer["actor"].as_str().unwrap_or_default().to_owned();
        for warning in answer["warnings"].as_array().into_iter().flatten() {
            errln!("warning: {}", warning.as_str().unwrap_or_default());
        }
        if args.json {
            if args.follow {
                print_json_line(&answer);
            } else {
                print_json(&answer);
            }
        } else if args.id_only {
            outln!("{id}");
        } else {
            outln!(
                "started {} {} ({id})",
                answer["name"].as_str().unwrap_or_default(),
                short(&id)
            );
        }
        if args.follow {
            follow(&args.remote, &mut client, &id, None, args.json).await?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn stop(args: IdArgs) -> anyhow::Result<ExitCode> {
    act_on(args, |actor| Op::Stop { actor }, done("stopped"))
}

/// Sends `op` for one actor and prints the answer: as JSON with `--json`,
/// else as `text` writes it.
fn act_on(
    args: IdArgs,
    op: impl FnOnce(String) -> Op,
    text: impl FnOnce(&Value),
) -> anyhow::Result<ExitCode> {
    remote::block_on(async move {
        let answer = remote::call(&args.remote, op(args.actor)).await?;
        match args.json {
            true => print_json(&answer),
            false => text(&answer),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Reports an answer about one actor as `<what> <short id>`.
fn done(what: &'static str) -> impl FnOnce(&Value) {
    move |answer| {
        outln!(
            "{what} {}",
            short(answer["actor"].as_str().unwrap_or_default())
        )
    }
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
    let mut started = Vec::with_capacity(args.count);
    for _ in 0..args.count {
        let answer = client
            .call(start.clone())
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
            outln!("{}", answer["actor"].as_str().unwrap_or_default());
        }
    } else {
        let name = started[0]["name"].as_str().unwrap_or_default();
        outln!(
            "started {} {name} actors; `theater list` shows them",
            started.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn restart(args: IdArgs) -> anyhow::Result<ExitCode> {
    act_on(args, |actor| Op::Restart { actor }, done("restarted"))
}

pub fn tree(args: TreeArgs) -> anyhow::Result<ExitCode> {
    remote::block_on(async move {
        let answer = remote::call(&args.remote, Op::Tree).await?;
        if args.json {
            print_json(&answer);
            return Ok(ExitCode::SUCCESS);
        }
        let roots = answer["roots"].as_array().cloned().unwrap_or_default();
        if roots.is_empty() {
            outln!("no actors running; start one with `theater start <manifest>`");
        }
        for root in &roots {
            print_tree(root, 0);
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_tree(node: &Value, depth: usize) {
    outln!(
        "{}{}  {}",
        "  ".repeat(depth),
        node["short"].as_str().unwrap_or_default(),
        node["name"].as_str().unwrap_or_default()
    );
    for child in node["children"].as_array().into_iter().flatten() {
        print_tree(child, depth + 1);
    }
}

pub fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    remote::block_on(async move {
        let answer = remote::call(&args.remote, Op::List { all: args.all }).await?;
        if args.json {
            print_json(&answer);
            return Ok(ExitCode::SUCCESS);
        }
        let actors = answer["actors"].as_array().cloned().unwrap_or_default();
        if actors.is_empty() {
            outln!("no actors running; start one with `theater start <manifest>`");
            return Ok(ExitCode::SUCCESS);
        }
        // Stopped actors have no queue or counters.
        let number = |v: &Value| v.as_u64().map_or_else(|| "-".to_owned(), |n| n.to_string());
        let rows: Vec<Vec<String>> = actors
            .iter()
            .map(|a| {
                vec![
                    a["short"].as_str().unwrap_or_default().to_owned(),
                    a["name"].as_str().unwrap_or_default().to_owned(),
                    a["status"].as_str().unwrap_or_default().to_owned(),
                    number(&a["queue_depth"]),
                    number(&a["calls_ok"]),
                    number(&a["calls_failed"]),
                ]
            })
            .collect();
        outln!(
            "{}",
            table(&["ID", "NAME", "STATUS", "QUEUE", "OK", "FAILED"], &rows)
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub fn state(args: IdArgs) -> anyhow::Result<ExitCode> {
    act_on(
        args,
        |actor| Op::State { actor },
        |answer| outln!("{}", remote::show_bytes(answer, "state")),
    )
}

pub fn events(args: EventsArgs) -> anyhow::Result<ExitCode> {
    remote::block_on(async move {
        let mut client = args.remote.connect().await?;
        let explain = |e| args.remote.explain(e);
        // Subscribe first so that nothing recorded meanwhile is missed.
        if args.follow {
            client
                .call(Op::Subscribe {
                    actor: Some(args.actor.clone()),
                })
                .await
                .map_err(explain)?;
        }
        let kind = args.kind.as_deref();
        // With a type filter the limit counts matching events, so fetch all.
        let answer = client
            .call(Op::Events {
                actor: args.actor.clone(),
                limit: if kind.is_some() { None } else { args.limit },
            })
            .await
            .map_err(explain)?;
        let id = answer["actor"].as_str().unwrap_or_default().to_owned();
        let start = answer["start"].as_u64().unwrap_or(0);
        let events = answer["events"].as_array().cloned().unwrap_or_default();
        let mut shown: Vec<(u64, &Value)> = (start..)
            .zip(&events)
            .filter(|(_, e)| kind.is_none_or(|kind| is_kind(e, kind)))
            .collect();
        if kind.is_some()
            && let Some(limit) = args.limit
        {
            shown.drain(..shown.len().saturating_sub(limit));
        }
        if args.json && !args.follow {
            let mut answer = answer.clone();
            if kind.is_some() {
                answer["events"] = shown.iter().map(|(_, e)| (*e).clone()).collect();
                answer["start"] = shown.first().map_or(start, |(i, _)| *i).into();
            }
            print_json(&answer);
            return Ok(ExitCode::SUCCESS);
        }
        for (index, event) in &shown {
            print_event(&id, *index, event, args.json);
        }
        if args.follow {
            let seen: HashSet<String> = events
                .iter()
                .filter_map(|e| e["hash"].as_str().map(str::to_owned))
                .collect();
            let next = answer["total"].as_u64().unwrap_or(0);
            stream(&mut client, &args.remote, Some(seen), next, args.json, kind).await?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn inspect(args: IdArgs) -> anyhow::Result<ExitCode> {
    act_on(args, |actor| Op::Inspect { actor }, print_inspected)
}

/// `inspect` of an actor: what the server knows of it.
fn print_inspected(a: &Value) {
    let text = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let limits = &a["limits"];
    let counters = &a["counters"];
    if a["status"] != "running" {
        return print_stopped(a);
    }
    let rows = [
        ("id", text(&a["id"])),
        ("name", text(&a["name"])),
        ("status", text(&a["status"])),
        (
            "manifest",
            a["manifest"]
                .as_str()
                .unwrap_or("(not started by this server)")
                .to_owned(),
        ),
        (
            "started",
            a["started_ms"]
                .as_u64()
                .map_or_else(|| "-".to_owned(), |ms| format!("{} UTC", timestamp(ms))),
        ),
        (
            "limits",
            format!(
                "memory {} MiB, call timeout {} ms, queue {}, message {} bytes, state {} bytes, result {} bytes",
                limits["memory_mb"],
                limits["call_timeout_ms"],
                limits["queue_capacity"],
                limits["max_message_bytes"],
                limits["max_state_bytes"],
                limits["max_result_bytes"]
            ),
        ),
        ("queue depth", text(&a["queue_depth"])),
        (
            "calls",
            if counters.is_object() {
                format!(
                    "{} ok, {} failed, {} refused (queue full)",
                    counters["calls_ok"], counters["calls_failed"], counters["queue_full"]
                )
            } else {
                "- (not running: counted only while it runs)".to_owned()
            },
        ),
        chain_row(a),
    ];
    print_rows(&rows);
}

/// `inspect` of an actor that is not running: what the log tells.
fn print_stopped(a: &Value) {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let mut rows = vec![
        ("id", text(&a["id"])),
        ("name", text(&a["name"])),
        ("status", text(&a["status"])),
    ];
    if let Some(data) = a.get("shutdown_data") {
        rows.push(("data", data.to_string()));
    }
    rows.push(("manifest", text(&a["manifest"])));
    rows.push(chain_row(a));
    print_rows(&rows);
}

/// The `chain:` row of `inspect`: its length and head.
fn chain_row(a: &Value) -> (&'static str, String) {
    let chain = &a["chain"];
    let head = chain["head"].as_str().unwrap_or("none");
    ("chain", format!("{} events, head {head}", chain["events"]))
}

/// Prints the rows of `inspect`, their values aligned.
fn print_rows(rows: &[(&str, String)]) {
    for (key, value) in rows {
        outln!("{:<12} {value}", format!("{key}:"));
    }
}

/// Prints an actor's new events until Ctrl-C or the actor stops.
pub async fn follow(
    remote: &Remote,
    client: &mut Client,
    actor: &str,
    seen: Option<HashSet<String>>,
    json: bool,
) -> anyhow::Result<()> {
    client
        .call(Op::Subscribe {
            actor: Some(actor.to_owned()),
        })
        .await
        .map_err(|e| remote.explain(e))?;
    // Whatever was recorded before the subscription is printed first.
    let answer = client
        .call(Op::Events {
            actor: actor.to_owned(),
            limit: None,
        })
        .await
        .map_err(|e| remote.explain(e))?;
    let mut seen = seen.unwrap_or_default();
    for (i, event) in answer["events"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(hash) = event["hash"].as_str()
            && seen.insert(hash.to_owned())
        {
            print_event(actor, i as u64, event, json);
        }
    }
    let next = answer["total"].as_u64().unwrap_or(0);
    stream(client, remote, Some(seen), next, json, None).await
}

/// Prints streamed chain events. With `seen`, events of one actor numbered
/// from `next`; without, events of every actor.
pub async fn stream(
    client: &mut Client,
    remote: &Remote,
    mut seen: Option<HashSet<String>>,
    mut next: u64,
    json: bool,
    kind: Option<&str>,
) -> anyhow::Result<()> {
    loop {
        if output::closed() {
            return Ok(());
        }
        let event = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            event = client.next_event() => event.map_err(|e| remote.explain(e))?,
        };
        match event["event"].as_str() {
            Some("chain") => {
                let actor = event["actor"].as_str().unwrap_or_default();
                let chain_event = &event["chain_event"];
                if kind.is_some_and(|kind| !is_kind(chain_event, kind)) {
                    next += 1;
                    continue;
                }
                match &mut seen {
                    Some(seen) => {
                        let hash = chain_event["hash"].as_str().unwrap_or_default();
                        if !seen.insert(hash.to_owned()) {
                            continue;
                        }
                        print_event(actor, next, chain_event, json);
                        next += 1;
                    }
                    None => {
                        if json {
                            print_json_line(&json!({ "actor": actor, "event": chain_event }));
                        } else {
                            outln!("{}  {}", short(actor), event_line(chain_event));
                        }
                    }
                }
            }
            Some("lagged") => {
                errln!(
                    "warning: missed {} events (this client read too slowly)",
                    event["missed"]
                );
            }
            Some("actor_stopped") => {
                if json {
                    print_json_line(&event);
                } else {
                    outln!(
                        "actor {} stopped",
                        short(event["actor"].as_str().unwrap_or_default())
                    );
                }
                return Ok(());
            }
            _ => {}
        }
    }
}

fn is_kind(event: &Value, kind: &str) -> bool {
    event["event_type"].as_str() == Some(kind)
}

/// `theater logs`: the `log` events of `events`.
#[derive(Args)]
#[command(after_help = "Examples:\n  theater logs 1a2b3c4d\n  theater logs 1a2b3c4d --follow")]
pub struct LogsArgs {
    /// Actor id or an unambiguous prefix of it.
    actor: String,
    /// Only the last N log lines.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Keep printing new lines until Ctrl-C or the actor stops.
    #[arg(long)]
    follow: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

pub fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    events(EventsArgs {
        actor: args.actor,
        limit: args.limit,
        kind: Some("log".to_owned()),
        follow: args.follow,
        json: args.json,
        remote: args.remote,
    })
}

fn print_event(actor: &str, index: u64, event: &Value, json: bool) {
    if json {
        print_json_line(&json!({ "actor": actor, "index": index, "event": event }));
    } else {
        outln!("{index:>4}  {}", event_line(event));
    }
}

/// `time  hash  type  description` for people; a failed call also says why.
fn event_line(event: &Value) -> String {
    let mut line = format!(
        "{}  {}  {:<11}  {}",
        timestamp(event["timestamp"].as_u64().unwrap_or(0)),
        short_hash(event["hash"].as_str().unwrap_or_default()),
        event["event_type"].as_str().unwrap_or_default(),
        event["description"].as_str().unwrap_or_default()
    );
    if let Some(reason) = event["data"]["message"].as_str()
        && is_kind(event, "call-error")
    {
        line.push_str(" — ");
        line.push_str(reason);
    }
    line
}
