//! `theater replay`, `fork` and `revert`: an actor's chain run again on its
//! component, and new states taken from its past.

use std::process::ExitCode;

use clap::Args;
use theater::server::protocol::{Forked, Op, Replayed, Reverted};

use crate::EXIT_UNVERIFIED;
use crate::actors::IdArgs;
use crate::output::print_json;
use crate::remote::{self, Remote, short_hash};

/// Events are named by hash, as `theater events` shows them.
const HASH_HELP: &str = "HASH is an event's hash from `theater events <id>`: all 64 hex digits, or at least the first 8 (the 12 that `events` prints will do).";

/// Replay an actor's chain on its component and check every state.
///
/// Runs the recorded calls again, in order, and checks that each leaves
/// the state the chain recorded. Exits 0 if every event was reproduced,
/// 3 if the component diverged from its chain, 1 if the replay stopped at
/// an event it cannot replay (the chain holds only a summary of what it
/// needs there; the reason is printed). The actor may have stopped.
#[derive(Args)]
#[command(after_help = "Examples:\n  theater replay 1a2b3c4d\n  theater replay 1a2b3c4d --json")]
pub struct ReplayArgs {
    #[command(flatten)]
    target: IdArgs,
}

/// Start a new actor from the state an actor had at an event.
///
/// The new actor runs from the same manifest, starting from the state the
/// actor had right after that event of its chain; its first event names
/// the actor and event it was forked from.
#[derive(Args)]
#[command(after_help = format!("{HASH_HELP}\n\nExamples:\n  theater fork 1a2b3c4d --at 65a172ded0b1\n  theater fork 1a2b3c4d --at 65a172ded0b1 --id-only"))]
pub struct ForkArgs {
    /// Actor id or an unambiguous prefix of it; the actor may have stopped.
    actor: String,
    /// The event whose state the new actor starts from.
    #[arg(long, value_name = "HASH")]
    at: String,
    /// Every HTTP server of the fork listens on a free port, whatever port
    /// its state asks for (the original may still hold it).
    #[arg(long)]
    ephemeral_ports: bool,
    /// Print only the new actor's id.
    #[arg(long, conflicts_with = "json")]
    id_only: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

/// Set a running actor back to the state it had at an earlier event.
///
/// Nothing is erased: a `revert` event records the change, and the chain
/// still verifies.
#[derive(Args)]
#[command(after_help = format!("{HASH_HELP}\n\nExamples:\n  theater revert 1a2b3c4d --to 65a172ded0b1\n  theater revert 1a2b3c4d --to 65a172ded0b1 --json"))]
pub struct RevertArgs {
    /// Actor id or an unambiguous prefix of it.
    actor: String,
    /// The event whose state the actor goes back to.
    #[arg(long, value_name = "HASH")]
    to: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

pub fn replay(ReplayArgs { target: args }: ReplayArgs) -> anyhow::Result<ExitCode> {
    remote::block_on(async move {
        let op = Op::Replay { actor: args.actor };
        let replayed: Replayed = remote::ask(&args.remote, op).await?;
        let actor = replayed.actor.short();
        let calls = count(replayed.calls, "call");
        if args.json {
            print_json(&replayed);
        } else if let Some(d) = &replayed.divergence {
            errln!(
                "replay of actor {actor} diverged at {} in {}: {}",
                event(d.index, &d.hash),
                function(&d.function),
                d.reason
            );
        } else if let Some(stop) = &replayed.stopped_at {
            errln!(
                "replay of actor {actor} stopped at {}, after {calls} that matched: {}",
                event(stop.index, &stop.hash),
                stop.reason
            );
        } else {
            outln!(
                "replayed {calls} over {} of actor {actor}: every state matches",
                count(replayed.events, "event")
            );
        }
        Ok(if replayed.divergence.is_some() {
            ExitCode::from(EXIT_UNVERIFIED)
        } else if replayed.stopped_at.is_some() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    })
}

pub fn fork(args: ForkArgs) -> anyhow::Result<ExitCode> {
    let op = Op::Fork {
        actor: args.actor,
        at: args.at,
        ephemeral_ports: args.ephemeral_ports,
    };
    remote::show(&args.remote, args.json, op, |forked: &Forked| {
        let id = forked.actor;
        let from = &forked.forked_from;
        if args.id_only {
            outln!("{id}");
        } else {
            outln!(
                "forked {} {} ({id}) from actor {} at event {}",
                forked.name,
                forked.short,
                from.actor.short(),
                short_hash(&from.event)
            );
        }
    })
}

pub fn revert(args: RevertArgs) -> anyhow::Result<ExitCode> {
    let op = Op::Revert {
        actor: args.actor,
        to: args.to,
    };
    remote::show(&args.remote, args.json, op, |reverted: &Reverted| {
        outln!(
            "reverted {} to the state of event {}, recorded as event {}",
            reverted.actor.short(),
            short_hash(&reverted.to),
            short_hash(&reverted.event)
        )
    })
}

/// `event N (hash prefix)` of a divergence or stop.
fn event(index: usize, hash: &str) -> String {
    format!("event {index} ({})", short_hash(hash))
}

/// `handle-send` of `ntwk:theater/message-server-client.handle-send`.
fn function(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// `1 call`, `4 calls`.
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}
