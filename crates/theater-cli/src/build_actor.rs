//! `theater build`: compile an actor crate into a component.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use theater::Manifest;

use crate::create::manifest_of;
use crate::remote::print_json;
use crate::validate::exported_functions;

/// The target actors are built for.
const TARGET: &str = "wasm32-wasip2";

/// Build an actor crate with `cargo build --release --target wasm32-wasip2`
/// and print the component's path and exports. If the crate has a
/// manifest.toml whose `component_path` is elsewhere (another target
/// directory), the component is copied there.
#[derive(Args)]
#[command(after_help = "Example:\n  theater build greeter")]
pub struct BuildArgs {
    /// The actor crate's directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let dir = std::fs::canonicalize(&args.dir)
        .with_context(|| format!("{} is not a directory", args.dir.display()))?;
    let cargo_toml = dir.join("Cargo.toml");
    if !cargo_toml.exists() {
        bail!(
            "{} has no Cargo.toml; create an actor crate with `theater create <name>`",
            dir.display()
        );
    }
    let started = Instant::now();
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("a valid template"),
    );
    spinner.set_message(format!("building {}", dir.display()));
    spinner.enable_steady_tick(Duration::from_millis(120));

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(cargo)
        .args(["build", "--release", "--target", TARGET])
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&cargo_toml)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo; is Rust installed (https://rustup.rs)?")?;

    let stderr = child.stderr.take().expect("piped");
    let progress = spinner.clone();
    let log = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let status = line.trim();
            if !status.is_empty() {
                progress.set_message(status.chars().take(70).collect::<String>());
            }
            lines.push(line);
        }
        lines
    });
    let mut artifact: Option<PathBuf> = None;
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let ours = message["manifest_path"]
            .as_str()
            .is_some_and(|p| Path::new(p) == cargo_toml);
        let cdylib = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"));
        if ours && cdylib {
            artifact = message["filenames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from);
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    let log = log.join().unwrap_or_default();
    spinner.finish_and_clear();
    if !status.success() {
        for line in &log {
            eprintln!("{line}");
        }
        if log
            .iter()
            .any(|l| l.contains("target may not be installed"))
        {
            bail!("the {TARGET} target is missing; add it with `rustup target add {TARGET}`");
        }
        bail!("cargo build failed ({status}); see the messages above");
    }
    let artifact = artifact.context(
        "cargo built no component; is the crate a `cdylib` (`[lib] crate-type = [\"cdylib\"]`)?",
    )?;

    // Put the component where the manifest says it is.
    let mut component = artifact.clone();
    let manifest_path = manifest_of(&dir);
    let manifest = manifest_path
        .exists()
        .then(|| Manifest::load(&manifest_path))
        .transpose()?;
    if let Some(manifest) = &manifest
        && std::fs::canonicalize(&manifest.component_path).ok()
            != std::fs::canonicalize(&artifact).ok()
    {
        if let Some(parent) = manifest.component_path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::copy(&artifact, &manifest.component_path).with_context(|| {
            format!(
                "copying {} to {}",
                artifact.display(),
                manifest.component_path.display()
            )
        })?;
        component = manifest.component_path.clone();
    }

    let bytes =
        std::fs::read(&component).with_context(|| format!("reading {}", component.display()))?;
    let exports: Vec<String> = exported_functions(&bytes).into_iter().collect();
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        print_json(&json!({
            "component": component.display().to_string(),
            "artifact": artifact.display().to_string(),
            "manifest": manifest.as_ref().map(|_| manifest_path.display().to_string()),
            "exports": exports,
            "bytes": bytes.len(),
            "seconds": seconds,
        }));
    } else {
        println!("built in {seconds:.1} s");
        println!("component: {} ({} bytes)", component.display(), bytes.len());
        println!("exports:");
        for export in &exports {
            println!("  {export}");
        }
        if manifest.is_some() {
            println!("next: theater start {}", manifest_path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
