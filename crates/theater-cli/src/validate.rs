//! `theater validate`: check a manifest and its component, touching nothing.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use theater::Manifest;
use theater::host::HandlerSet;

use crate::manifest_arg::manifest_file;
use crate::output::print_json;

/// Check a manifest and its component offline: parse the manifest, check
/// the config of every capability it grants, and compare what the
/// component imports and exports, with their types, with what the
/// manifest grants and the capabilities expect. Nothing is started and
/// nothing is written: no home, no port, no store. Exits 0 if every check
/// passes, 1 if not.
#[derive(Args)]
#[command(after_help = "Example:\n  theater validate actors/counter/manifest.toml")]
pub struct ValidateArgs {
    /// The actor's manifest.toml, or its directory.
    manifest: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let path = manifest_file(&args.manifest)?;
    let manifest = Manifest::load(&path)?;
    let report = runtime.block_on(check(&manifest));
    let valid = report["valid"].as_bool().unwrap_or(false);
    if args.json {
        print_json(&report);
    } else {
        print_report(&report);
    }
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Everything `validate` finds, as its `--json` document.
async fn check(manifest: &Manifest) -> Value {
    let found = theater::validate::validate(manifest, &HandlerSet::builtin()).await;
    let handlers: Vec<&str> = manifest.handlers.iter().map(|h| h.kind.as_str()).collect();
    let imports: Vec<Value> = found
        .imports
        .iter()
        .map(|import| {
            let mut entry = json!({ "name": import.name, "granted": import.problem.is_none() });
            if let Some(problem) = &import.problem {
                entry["error"] = problem.as_str().into();
            }
            entry
        })
        .collect();
    let expected: Vec<Value> = found
        .exports
        .iter()
        .map(|export| {
            json!({
                "function": export.function,
                "signature": export.signature,
                "required": export.required,
                "found": export.found,
            })
        })
        .collect();
    let exported = std::fs::read(&manifest.component_path)
        .map(|bytes| exported_functions(&bytes))
        .unwrap_or_default();
    json!({
        "manifest": manifest.source.display().to_string(),
        "name": manifest.name,
        "component": manifest.component_path.display().to_string(),
        "handlers": handlers,
        "warnings": manifest.warnings,
        "imports": imports,
        "exports": { "found": exported, "expected": expected },
        "valid": found.is_valid(),
        "errors": found.errors,
    })
}

/// `interface.function` for every function in every exported interface,
/// read from the component's embedded WIT (no compilation needed).
pub fn exported_functions(bytes: &[u8]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let Ok(decoded) = wit_component::decode(bytes) else {
        return found;
    };
    let wit_component::DecodedWasm::Component(resolve, world) = &decoded else {
        return found;
    };
    for (key, item) in &resolve.worlds[*world].exports {
        let name = resolve.name_world_key(key);
        let interface = name.split('@').next().unwrap_or(&name).to_owned();
        match item {
            wit_parser::WorldItem::Interface { id, .. } => {
                for function in resolve.interfaces[*id].functions.keys() {
                    found.insert(format!("{interface}.{function}"));
                }
            }
            wit_parser::WorldItem::Function(..) => {
                found.insert(interface);
            }
            wit_parser::WorldItem::Type { .. } => {}
        }
    }
    found
}

fn print_report(report: &Value) {
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect()
    };
    outln!(
        "manifest:   {} ({})",
        report["manifest"].as_str().unwrap_or_default(),
        report["name"].as_str().unwrap_or_default()
    );
    outln!(
        "component:  {}",
        report["component"].as_str().unwrap_or_default()
    );
    let handlers = list(&report["handlers"]);
    outln!(
        "handlers:   {}",
        if handlers.is_empty() {
            "none listed".to_owned()
        } else {
            handlers.join(", ")
        }
    );
    for warning in list(&report["warnings"]) {
        outln!("warning:    {warning}");
    }
    if let Some(imports) = report["imports"].as_array() {
        outln!("imports:");
        for import in imports {
            let mark = if import["granted"].as_bool().unwrap_or(false) {
                "ok     "
            } else {
                "MISSING"
            };
            outln!("  {mark}  {}", import["name"].as_str().unwrap_or_default());
        }
    }
    if let Some(expected) = report["exports"]["expected"].as_array() {
        outln!("exports expected:");
        for export in expected {
            let found = export["found"].as_bool().unwrap_or(false);
            let required = export["required"].as_bool().unwrap_or(false);
            let mark = match (found, required) {
                (true, _) => "ok     ",
                (false, true) => "MISSING",
                (false, false) => "absent ",
            };
            outln!(
                "  {mark}  {}{}",
                export["function"].as_str().unwrap_or_default(),
                if required { "" } else { " (optional)" }
            );
        }
    }
    let found = list(&report["exports"]["found"]);
    if !found.is_empty() {
        outln!("exports found: {}", found.join(", "));
    }
    let errors = list(&report["errors"]);
    if errors.is_empty() {
        outln!("valid: every check passed (its `init` was not run)");
    } else {
        for error in &errors {
            outln!("error: {error}");
        }
        outln!("invalid: {} problem(s)", errors.len());
    }
}
