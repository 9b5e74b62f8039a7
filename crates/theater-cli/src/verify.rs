//! `theater verify`: check a chain's every hash and link, of a running
//! actor (through the server), of an exported file, or of every chain
//! stored in a home.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use theater::chain::ChainExport;
use theater::runtime::CHAINS_FILE;
use theater::server::protocol::{Op, Verified};
use theater::storage::RedbEventLog;

use crate::EXIT_UNVERIFIED;
use crate::output::{Failure, print_json};
use crate::remote::{self, Remote};

/// Verify an actor's chain: recompute every event's hash and link.
/// Give a running actor's id (asks the server), --file with a chain
/// exported by `theater run --chain-out`, or --home to check every chain
/// and stored state in a home's database (no server may be using it).
/// Exits 0 if it verifies, 3 if not.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  theater verify 1a2b3c4d\n  theater verify --file counter-chain.json\n  theater verify --home ~/.theater"
)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["actor", "file", "home"])))]
pub struct VerifyArgs {
    /// Actor id or an unambiguous prefix of it.
    actor: Option<String>,
    /// The exported chain (JSON).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// A Theater home: verify every chain of its chains.redb.
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

pub fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    match (&args.actor, &args.file, &args.home) {
        (Some(actor), None, None) => verify_live(actor.clone(), args),
        (None, Some(file), None) => verify_file(file.clone(), args.json),
        (None, None, Some(home)) => verify_home(home, args.json),
        _ => unreachable!("clap allows exactly one of <ACTOR>, --file and --home"),
    }
}

fn verify_home(home: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let path = home.join(CHAINS_FILE);
    if !path.exists() {
        anyhow::bail!(
            "{} does not exist: no chains are stored in {}",
            path.display(),
            home.display()
        );
    }
    let log = RedbEventLog::open(&path)?;
    let outcome = log.verify_all();
    let damaged: Vec<_> = match &outcome {
        Err(error) if !error.damaged_chains().is_empty() => error.damaged_chains().iter().collect(),
        Err(error) => anyhow::bail!("{error}"),
        Ok(_) => Vec::new(),
    };
    if json {
        let summary = outcome.as_ref().ok();
        let report = json!({
            "verified": damaged.is_empty(),
            "path": path,
            "chains": summary.map(|s| s.chains),
            "events": summary.map(|s| s.events),
            "damaged": damaged.iter().map(|d| json!({
                "actor": d.actor.to_string(),
                "first_bad_event": d.damage.first_bad_event(),
                "error": d.damage.to_string(),
            })).collect::<Vec<_>>(),
        });
        print_json(&report);
    } else if let Ok(summary) = &outcome {
        outln!(
            "verified {} chains, {} events, and their stored states in {}",
            summary.chains,
            summary.events,
            path.display()
        );
    } else {
        for chain in &damaged {
            errln!("{chain}");
        }
        errln!("{} damaged chains in {}", damaged.len(), path.display());
    }
    Ok(if damaged.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_UNVERIFIED)
    })
}

fn verify_live(actor: String, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    remote::block_on(async move {
        let answer: Verified = remote::ask(&args.remote, Op::Verify { actor }).await?;
        let id = answer.actor.short();
        if args.json {
            print_json(&answer);
        } else if answer.verified {
            outln!(
                "chain verified: {} events (actor {id}, head {})",
                answer.events,
                answer.head.as_deref().unwrap_or("none")
            );
            if let Some(events) = answer.replicated_events {
                outln!("replicated chain verified: {events} events, this node's chain begins it");
            }
        } else {
            errln!(
                "chain verification failed for actor {id}: {}",
                answer.error.as_deref().unwrap_or_default()
            );
        }
        Ok(if answer.verified {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_UNVERIFIED)
        })
    })
}

fn verify_file(file: PathBuf, json: bool) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let export = ChainExport::from_json(&text)
        .map_err(|e| Failure::input(format!("{}: {e}", file.display())))?;
    let outcome = export.verify();
    // A chain cut short at its end still verifies: compare the head with
    // one you trust.
    let head = export
        .events
        .last()
        .map(|e| hex::encode(e.hash))
        .unwrap_or_default();
    // Hashes cover each event's data byte for byte, as exported: a file
    // re-formatted since fails for its layout, not for what it says.
    let reformatted = outcome
        .as_ref()
        .err()
        .and_then(|_| export.first_reformatted_event());
    let error = outcome.as_ref().err().map(|e| match reformatted {
        Some(index) => format!(
            "{} is not in the canonical export form: the data of event {index} is not the compact JSON that was hashed, so the file was re-formatted (by `jq .` or an editor, say) after it was exported. Verify the file as `theater run --chain-out` wrote it; compacting each event's `data` back to one line without spaces restores a copy whose text is otherwise unchanged ({e})",
            file.display()
        ),
        None => e.to_string(),
    });
    if json {
        let report = match &outcome {
            Ok(()) => {
                json!({ "verified": true, "events": export.events.len(), "actor_id": export.actor_id, "head": head })
            }
            Err(e) => {
                json!({ "verified": false, "events": export.events.len(), "actor_id": export.actor_id,
                        "first_bad_event": e.index(), "canonical": reformatted.is_none(), "error": error })
            }
        };
        print_json(&report);
    } else {
        match &error {
            None => outln!(
                "chain verified: {} events (head {head})",
                export.events.len()
            ),
            Some(error) => errln!("chain verification failed: {error}"),
        }
    }
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_UNVERIFIED)
    })
}
