//! `theater verify`: check a chain's every hash and link.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use theater::chain::{self, ChainExport};

use crate::EXIT_UNVERIFIED;

/// Verify a chain exported with `theater run --chain-out`: recompute every
/// event's hash and link. Exits 0 if it verifies, 3 if not.
#[derive(Args)]
#[command(after_help = "Example:\n  theater verify --file counter-chain.json")]
pub struct VerifyArgs {
    /// The exported chain (JSON).
    #[arg(long, value_name = "FILE")]
    file: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

pub fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let export = ChainExport::from_json(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let outcome = chain::verify(&export.events);
    if args.json {
        let report = match &outcome {
            Ok(()) => {
                json!({ "verified": true, "events": export.events.len(), "actor_id": export.actor_id })
            }
            Err(e) => {
                json!({ "verified": false, "events": export.events.len(), "actor_id": export.actor_id,
                               "first_bad_event": e.index(), "error": e.to_string() })
            }
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        match &outcome {
            Ok(()) => println!("chain verified: {} events", export.events.len()),
            Err(e) => eprintln!("chain verification failed: {e}"),
        }
    }
    Ok(if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_UNVERIFIED)
    })
}
