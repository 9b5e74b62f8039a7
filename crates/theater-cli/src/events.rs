//! `theater events` and `theater logs`: an actor's chain, and the events
//! it records from then on.

use std::collections::HashSet;
use std::process::ExitCode;

use clap::Args;
use serde::Deserialize;
use serde_json::json;
use theater::chain::{ChainEvent, Hash};
use theater::id::ActorId;
use theater::server::Client;
use theater::server::protocol::events::{ActorStopped, ChainNotice, Lagged};
use theater::server::protocol::{Event, Events, Op};

use crate::output::{self, print_json, print_json_line};
use crate::remote::{self, Remote, short_hash, timestamp};

/// What `events` and `logs` both take.
#[derive(Args)]
pub struct ChainArgs {
    /// Actor id or an unambiguous prefix of it.
    actor: String,
    /// Only the last N events shown.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Keep printing new ones until Ctrl-C or the actor stops.
    #[arg(long)]
    follow: bool,
    /// Print JSON instead of text (one object per line with --follow).
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
    #[command(flatten)]
    chain: ChainArgs,
    /// Only events of this type (e.g. `log`, `call`, `call-error`, `host-call`).
    #[arg(long = "type", value_name = "EVENT_TYPE")]
    kind: Option<String>,
}

/// `theater logs`: the `log` events of `events`.
#[derive(Args)]
#[command(after_help = "Examples:\n  theater logs 1a2b3c4d\n  theater logs 1a2b3c4d --follow")]
pub struct LogsArgs {
    #[command(flatten)]
    chain: ChainArgs,
}

pub fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    events(EventsArgs {
        chain: args.chain,
        kind: Some("log".to_owned()),
    })
}

pub fn events(EventsArgs { chain: args, kind }: EventsArgs) -> anyhow::Result<ExitCode> {
    remote::block_on(async move {
        let mut client = args.remote.connect().await?;
        let explain = |e| args.remote.explain(e);
        // Subscribe first so that nothing recorded meanwhile is missed.
        if args.follow {
            let subscribe = Op::Subscribe {
                actor: Some(args.actor.clone()),
            };
            client.call(subscribe).await.map_err(explain)?;
        }
        let kind = kind.as_deref();
        // With a type filter the limit counts matching events, so fetch all.
        let mut answer: Events = client
            .ask(Op::Events {
                actor: args.actor.clone(),
                limit: if kind.is_some() { None } else { args.limit },
            })
            .await
            .map_err(explain)?;
        let id = answer.actor;
        let next = answer.total;
        let seen: HashSet<Hash> = answer.events.iter().map(|e| e.hash).collect();
        let mut shown: Vec<(u64, ChainEvent)> = (answer.start..)
            .zip(std::mem::take(&mut answer.events))
            .filter(|(_, e)| kind.is_none_or(|kind| e.event_type == kind))
            .collect();
        if kind.is_some()
            && let Some(limit) = args.limit
        {
            shown.drain(..shown.len().saturating_sub(limit));
        }
        if args.json && !args.follow {
            if kind.is_some() {
                answer.start = shown.first().map_or(answer.start, |(i, _)| *i);
            }
            answer.events = shown.into_iter().map(|(_, e)| e).collect();
            print_json(&answer);
            return Ok(ExitCode::SUCCESS);
        }
        for (index, event) in &shown {
            print_event(id, *index, event, args.json);
        }
        if args.follow {
            stream(&mut client, &args.remote, Some(seen), next, args.json, kind).await?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints an actor's new events until Ctrl-C or the actor stops.
pub async fn follow(
    remote: &Remote,
    client: &mut Client,
    actor: ActorId,
    seen: Option<HashSet<Hash>>,
    json: bool,
) -> anyhow::Result<()> {
    let actor_text = actor.to_string();
    let subscribe = Op::Subscribe {
        actor: Some(actor_text.clone()),
    };
    client
        .call(subscribe)
        .await
        .map_err(|e| remote.explain(e))?;
    // Whatever was recorded before the subscription is printed first.
    let answer: Events = client
        .ask(Op::Events {
            actor: actor_text,
            limit: None,
        })
        .await
        .map_err(|e| remote.explain(e))?;
    let mut seen = seen.unwrap_or_default();
    for (i, event) in answer.events.iter().enumerate() {
        if seen.insert(event.hash) {
            print_event(actor, i as u64, event, json);
        }
    }
    stream(client, remote, Some(seen), answer.total, json, None).await
}

/// Prints streamed chain events. With `seen`, events of one actor numbered
/// from `next`; without, events of every actor.
pub async fn stream(
    client: &mut Client,
    remote: &Remote,
    mut seen: Option<HashSet<Hash>>,
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
        match &event {
            Event::Chain(ChainNotice {
                actor, chain_event, ..
            }) => {
                if kind.is_some_and(|kind| chain_event.event_type != kind) {
                    next += 1;
                    continue;
                }
                match &mut seen {
                    Some(seen) => {
                        if !seen.insert(chain_event.hash) {
                            continue;
                        }
                        print_event(*actor, next, chain_event, json);
                        next += 1;
                    }
                    None if json => {
                        print_json_line(&json!({ "actor": actor, "event": chain_event }));
                    }
                    None => outln!("{}  {}", actor.short(), event_line(chain_event)),
                }
            }
            Event::Lagged(Lagged { missed, .. }) => {
                errln!("warning: missed {missed} events (this client read too slowly)");
            }
            Event::ActorStopped(ActorStopped { actor, .. }) => {
                if json {
                    print_json_line(&event);
                } else {
                    outln!("actor {} stopped", actor.short());
                }
                return Ok(());
            }
            _ => {}
        }
    }
}

fn print_event(actor: ActorId, index: u64, event: &ChainEvent, json: bool) {
    if json {
        print_json_line(&json!({ "actor": actor, "index": index, "event": event }));
    } else {
        outln!("{index:>4}  {}", event_line(event));
    }
}

/// `time  hash  type  description` for people; a failed call also says why.
fn event_line(event: &ChainEvent) -> String {
    let hash = hex::encode(event.hash);
    let mut line = format!(
        "{}  {}  {:<11}  {}",
        timestamp(event.timestamp),
        short_hash(&hash),
        event.event_type,
        event.description
    );
    if event.event_type == theater::chain::record::CALL_ERROR
        && let Some(reason) = failure_reason(event)
    {
        line.push_str(" — ");
        line.push_str(&reason);
    }
    line
}

/// Why a call failed, from a `call-error` event's data.
fn failure_reason(event: &ChainEvent) -> Option<String> {
    #[derive(Deserialize)]
    struct CallError {
        message: String,
    }
    serde_json::from_str::<CallError>(event.data.get())
        .ok()
        .map(|e| e.message)
}
