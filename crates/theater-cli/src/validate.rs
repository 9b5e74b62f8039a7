//! `theater validate`: check a manifest and its component, touching nothing.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use theater::Manifest;
use theater::host::HandlerSet;
use theater::validate::{ExportCheck, Validation};

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
    let found = runtime.block_on(theater::validate::validate(
        &manifest,
        &HandlerSet::builtin(),
    ));
    let report = Report::new(&manifest, &found);
    if args.json {
        print_json(&report);
    } else {
        print_report(&report);
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Everything `validate` finds, as its `--json` document.
#[derive(Serialize)]
struct Report<'a> {
    manifest: String,
    name: &'a str,
    component: String,
    handlers: Vec<&'a str>,
    warnings: &'a [String],
    imports: Vec<Import<'a>>,
    exports: Exports<'a>,
    valid: bool,
    errors: &'a [String],
}

/// An interface the component imports, and whether the manifest grants it.
#[derive(Serialize)]
struct Import<'a> {
    name: &'a str,
    granted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct Exports<'a> {
    /// What the component exports, read from its embedded WIT.
    found: BTreeSet<String>,
    /// What the granted handlers call.
    expected: &'a [ExportCheck],
}

impl<'a> Report<'a> {
    fn new(manifest: &'a Manifest, found: &'a Validation) -> Self {
        let imports = found
            .imports
            .iter()
            .map(|import| Import {
                name: &import.name,
                granted: import.problem.is_none(),
                error: import.problem.as_deref(),
            })
            .collect();
        let exported = std::fs::read(&manifest.component_path)
            .map(|bytes| exported_functions(&bytes))
            .unwrap_or_default();
        Report {
            manifest: manifest.source.display().to_string(),
            name: &manifest.name,
            component: manifest.component_path.display().to_string(),
            handlers: manifest.handlers.iter().map(|h| h.kind.as_str()).collect(),
            warnings: &manifest.warnings,
            imports,
            exports: Exports {
                found: exported,
                expected: &found.exports,
            },
            valid: found.is_valid(),
            errors: &found.errors,
        }
    }
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

fn print_report(report: &Report) {
    outln!("manifest:   {} ({})", report.manifest, report.name);
    outln!("component:  {}", report.component);
    outln!(
        "handlers:   {}",
        if report.handlers.is_empty() {
            "none listed".to_owned()
        } else {
            report.handlers.join(", ")
        }
    );
    for warning in report.warnings {
        outln!("warning:    {warning}");
    }
    outln!("imports:");
    for import in &report.imports {
        let mark = if import.granted { "ok     " } else { "MISSING" };
        outln!("  {mark}  {}", import.name);
    }
    outln!("exports expected:");
    for export in report.exports.expected {
        let mark = match (export.found, export.required) {
            (true, _) => "ok     ",
            (false, true) => "MISSING",
            (false, false) => "absent ",
        };
        let optional = if export.required { "" } else { " (optional)" };
        outln!("  {mark}  {}{optional}", export.function);
    }
    let found = &report.exports.found;
    if !found.is_empty() {
        let found: Vec<&str> = found.iter().map(String::as_str).collect();
        outln!("exports found: {}", found.join(", "));
    }
    if report.errors.is_empty() {
        outln!("valid: every check passed (its `init` was not run)");
    } else {
        for error in report.errors {
            outln!("error: {error}");
        }
        outln!("invalid: {} problem(s)", report.errors.len());
    }
}
