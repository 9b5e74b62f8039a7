//! `theater build`: compile an actor crate into components, each placed
//! where its manifest says.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use theater::Manifest;
use theater::runtime::default_home;

use crate::manifest_arg::MANIFEST_FILE;
use crate::output::{Failure, print_json};
use crate::validate::exported_functions;

/// The target actors are built for.
const TARGET: &str = "wasm32-wasip2";

/// The cargo target directory every actor built by `theater` shares, in
/// the home, unless `CARGO_TARGET_DIR` names another: the dependencies
/// every actor has (wit-bindgen, serde) are compiled once, not per actor.
pub const BUILD_DIR: &str = "build";

/// Build an actor crate with `cargo build --release --target wasm32-wasip2`
/// (every crate of its workspace) and print each component's path and
/// exports. A crate with a manifest.toml gets its component copied to the
/// manifest's `component_path`.
///
/// Actors share one cargo target directory, `build/` in the home
/// ($THEATER_HOME, default ~/.theater), so the second actor builds in
/// seconds; set CARGO_TARGET_DIR to use another.
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

/// One component a build made.
pub struct Built {
    /// Where the manifest wants it (or where cargo put it, without one).
    pub component: PathBuf,
    /// Where cargo put it.
    pub artifact: PathBuf,
    /// The manifest.toml beside the crate that made it, if any.
    pub manifest: Option<PathBuf>,
    pub bytes: usize,
    pub exports: Vec<String>,
}

pub fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let built = build_crate(&args.dir, !args.json)?;
    let seconds = started.elapsed().as_secs_f64();
    let dir = std::fs::canonicalize(&args.dir)?;
    if args.json {
        let components: Vec<Value> = built.iter().map(describe).collect();
        let mut report = components.first().cloned().unwrap_or_else(|| json!({}));
        report["components"] = components.into();
        report["seconds"] = seconds.into();
        print_json(&report);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("built in {seconds:.1} s");
    for component in &built {
        outln!(
            "component: {} ({} bytes)",
            component.component.display(),
            component.bytes
        );
        outln!("exports:");
        for export in &component.exports {
            outln!("  {export}");
        }
    }
    if dir.join(MANIFEST_FILE).exists() {
        outln!("next: theater run {}", args.dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(built: &Built) -> Value {
    json!({
        "component": built.component.display().to_string(),
        "artifact": built.artifact.display().to_string(),
        "manifest": built.manifest.as_ref().map(|m| m.display().to_string()),
        "exports": built.exports,
        "bytes": built.bytes,
    })
}

/// Builds the crate in `dir` and its workspace; `progress` shows a spinner
/// on a terminal. The crate's own component comes first.
pub fn build_crate(dir: &Path, progress: bool) -> anyhow::Result<Vec<Built>> {
    let dir = std::fs::canonicalize(dir)
        .map_err(|e| Failure::input(format!("{} is not a directory: {e}", dir.display())))?;
    let cargo_toml = dir.join("Cargo.toml");
    if !cargo_toml.exists() {
        return Err(Failure::input(format!(
            "{} has no Cargo.toml; create an actor crate with `theater create <name>`",
            dir.display()
        ))
        .into());
    }
    let spinner = if progress {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("a valid template"),
    );
    spinner.set_message(format!("building {}", dir.display()));
    spinner.enable_steady_tick(Duration::from_millis(120));

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--workspace", "--target", TARGET])
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&cargo_toml)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        command
            .arg("--target-dir")
            .arg(default_home().join(BUILD_DIR));
    }
    let mut child = command
        .spawn()
        .context("running cargo; is Rust installed (https://rustup.rs)?")?;

    let stderr = child.stderr.take().expect("piped");
    let shown = spinner.clone();
    let log = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let status = line.trim();
            if !status.is_empty() {
                shown.set_message(status.chars().take(70).collect::<String>());
            }
            lines.push(line);
        }
        lines
    });
    // (crate's Cargo.toml, its component as cargo wrote it)
    let mut artifacts: Vec<(PathBuf, PathBuf)> = Vec::new();
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let cdylib = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"));
        let wasm = message["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|f| f.ends_with(".wasm"));
        if let (true, "compiler-artifact", Some(wasm), Some(crate_toml)) = (
            cdylib,
            message["reason"].as_str().unwrap_or_default(),
            wasm,
            message["manifest_path"].as_str(),
        ) {
            artifacts.push((PathBuf::from(crate_toml), PathBuf::from(wasm)));
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    let log = log.join().unwrap_or_default();
    spinner.finish_and_clear();
    if !status.success() {
        for line in &log {
            errln!("{line}");
        }
        if log
            .iter()
            .any(|l| l.contains("target may not be installed"))
        {
            bail!("the {TARGET} target is missing; add it with `rustup target add {TARGET}`");
        }
        bail!("cargo build failed ({status}); see the messages above");
    }
    // The crate's own component first.
    artifacts.sort_by_key(|(crate_toml, _)| *crate_toml != cargo_toml);
    if artifacts
        .first()
        .is_none_or(|(crate_toml, _)| *crate_toml != cargo_toml)
    {
        bail!(
            "cargo built no component of {}; is the crate a `cdylib` (`[lib] crate-type = [\"cdylib\"]`)?",
            cargo_toml.display()
        );
    }
    artifacts
        .into_iter()
        .map(|(crate_toml, artifact)| place(&crate_toml, artifact))
        .collect()
}

/// Copies `artifact` to the `component_path` of the manifest beside
/// `crate_toml`, if there is one.
fn place(crate_toml: &Path, artifact: PathBuf) -> anyhow::Result<Built> {
    let manifest_path = crate_toml.with_file_name(MANIFEST_FILE);
    let manifest = manifest_path
        .exists()
        .then(|| Manifest::load(&manifest_path))
        .transpose()?;
    let mut component = artifact.clone();
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
    Ok(Built {
        exports: exported_functions(&bytes).into_iter().collect(),
        bytes: bytes.len(),
        manifest: manifest.map(|_| manifest_path),
        artifact,
        component,
    })
}
