//! `theater validate`: check a manifest and its component without a server.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use theater::files::FileRules;
use theater::host::HandlerSet;
use theater::runtime::default_home;
use theater::wasm::{self, ComponentCache};
use theater::{Manifest, Package, RuntimeConfig, TheaterRuntime};

use crate::remote::print_json;

/// Check a manifest and its component offline: parse the manifest, load
/// the component, and compare what it imports and exports with what the
/// manifest grants and the handlers expect; then start it once in a
/// private runtime. Exits 0 if the actor would start, 1 if not.
#[derive(Args)]
#[command(after_help = "Example:\n  theater validate actors/counter/manifest.toml")]
pub struct ValidateArgs {
    /// The actor's manifest.toml.
    manifest: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = runtime.block_on(check(&args.manifest))?;
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
async fn check(path: &Path) -> anyhow::Result<Value> {
    let manifest = Manifest::read(path.to_owned(), FileRules::default()).await?;
    let mut errors: Vec<String> = Vec::new();
    let handlers: Vec<&str> = manifest.handlers.iter().map(|h| h.kind.as_str()).collect();
    let mut report = json!({
        "manifest": manifest.source.display().to_string(),
        "name": manifest.name,
        "component": manifest.component_path.display().to_string(),
        "handlers": handlers,
        "warnings": manifest.warnings,
    });

    let set = HandlerSet::builtin();
    let engine = wasm::new_engine().map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let linker = set
        .linker(&engine)
        .map_err(|e| anyhow::anyhow!("linking host functions: {e:#}"))?;
    // Reuse the compiled-component cache of `theater run` and the server.
    let cache_root = default_home().join("cache");
    let cache = ComponentCache::new(engine, linker, Some(&cache_root));
    let compiled = match cache.load(&manifest.component_path).await {
        Ok(compiled) => compiled,
        Err(e) => {
            errors.push(e.to_string());
            report["valid"] = false.into();
            report["errors"] = errors.into();
            return Ok(report);
        }
    };

    let grants = match set.grants(&manifest) {
        Ok(grants) => Some(grants),
        Err(e) => {
            errors.push(e.to_string());
            None
        }
    };
    let imports: Vec<Value> = compiled
        .imports
        .iter()
        .map(|import| {
            let problem = grants
                .as_ref()
                .and_then(|g| g.check_imports(std::slice::from_ref(import)).err());
            let mut entry = json!({ "name": import, "granted": problem.is_none() });
            if let Some(problem) = problem {
                entry["error"] = problem.to_string().into();
                errors.push(problem.to_string());
            }
            entry
        })
        .collect();
    report["imports"] = imports.into();

    let found = exported_functions(&std::fs::read(&manifest.component_path)?);
    let expected: Vec<Value> = grants
        .as_ref()
        .map(|g| {
            g.exports()
                .specs()
                .iter()
                .map(|spec| {
                    // Under either package name, as the runtime finds it.
                    let exported_as = Package::ALL
                        .iter()
                        .map(|package| package.name_of(&spec.full_name()).into_owned())
                        .find(|name| found.contains(name));
                    let present = exported_as.is_some();
                    if spec.required && !present {
                        errors.push(format!(
                            "the component does not export `{}`; expected `{}`",
                            spec.full_name(),
                            spec.signature()
                        ));
                    }
                    json!({
                        "function": exported_as.unwrap_or_else(|| spec.full_name()),
                        "signature": spec.signature(),
                        "required": spec.required,
                        "found": present,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    report["exports"] = json!({ "found": found, "expected": expected });

    // The definitive check: signatures bind and `init` runs, in a runtime
    // that keeps nothing but its compiled-code cache.
    if errors.is_empty() {
        let config = RuntimeConfig {
            home: Some(default_home()),
            ..RuntimeConfig::ephemeral()
        };
        let theater = TheaterRuntime::new(config)?;
        match theater.spawn(&manifest).await {
            Ok(actor) => {
                report["started"] = true.into();
                let _ = theater.stop(actor.id()).await;
            }
            Err(e) => {
                report["started"] = false.into();
                errors.push(e.to_string());
            }
        }
    } else {
        report["started"] = false.into();
    }
    report["valid"] = errors.is_empty().into();
    report["errors"] = errors.into();
    Ok(report)
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
    println!(
        "manifest:   {} ({})",
        report["manifest"].as_str().unwrap_or_default(),
        report["name"].as_str().unwrap_or_default()
    );
    println!(
        "component:  {}",
        report["component"].as_str().unwrap_or_default()
    );
    let handlers = list(&report["handlers"]);
    println!(
        "handlers:   {}",
        if handlers.is_empty() {
            "none listed".to_owned()
        } else {
            handlers.join(", ")
        }
    );
    for warning in list(&report["warnings"]) {
        println!("warning:    {warning}");
    }
    if let Some(imports) = report["imports"].as_array() {
        println!("imports:");
        for import in imports {
            let mark = if import["granted"].as_bool().unwrap_or(false) {
                "ok     "
            } else {
                "MISSING"
            };
            println!("  {mark}  {}", import["name"].as_str().unwrap_or_default());
        }
    }
    if let Some(expected) = report["exports"]["expected"].as_array() {
        println!("exports expected:");
        for export in expected {
            let found = export["found"].as_bool().unwrap_or(false);
            let required = export["required"].as_bool().unwrap_or(false);
            let mark = match (found, required) {
                (true, _) => "ok     ",
                (false, true) => "MISSING",
                (false, false) => "absent ",
            };
            println!(
                "  {mark}  {}{}",
                export["function"].as_str().unwrap_or_default(),
                if required { "" } else { " (optional)" }
            );
        }
    }
    let found = list(&report["exports"]["found"]);
    if !found.is_empty() {
        println!("exports found: {}", found.join(", "));
    }
    let errors = list(&report["errors"]);
    if errors.is_empty() {
        println!("valid: the actor starts");
    } else {
        for error in &errors {
            println!("error: {error}");
        }
        println!("invalid: {} problem(s)", errors.len());
    }
}
