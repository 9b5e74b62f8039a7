//! The fuzz targets of `fuzz/`: a short run of each for `cargo xtask test`,
//! and `cargo xtask fuzz <target> [seconds]` for long ones.
//!
//! The engine is libFuzzer (the `libfuzzer-sys` crate, built from source
//! with the C++ compiler), driven by LLVM's SanitizerCoverage through
//! stable `-C` flags that `fuzz/sancov-rustc` adds to the crates under
//! test. Nothing needs nightly or a tool installed beforehand.

use anyhow::{Context, Result, bail};
use std::env;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{cargo, one_off, root, run_cmd, shown};

/// The targets, each a binary of `fuzz/` with a seed corpus in
/// `fuzz/corpus/<target>/`.
pub const TARGETS: &[&str] = &["frames", "manifest", "codec", "chain"];

/// How long `cargo xtask test` fuzzes each target.
const SMOKE_SECONDS: u64 = 5;

/// A default long run, per target.
pub const DEFAULT_SECONDS: u64 = 300;

/// An input that takes longer than this is reported as a hang.
const INPUT_TIMEOUT_SECONDS: u64 = 10;

fn fuzz_dir() -> PathBuf {
    root().join("fuzz")
}

/// The fuzz workspace's own build (`fuzz/target`, or `fuzz` in
/// `CARGO_TARGET_DIR`), with the corpora and failing inputs of its runs
/// (`corpus/`, `artifacts/`, `smoke/`).
fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(
        || fuzz_dir().join("target"),
        |dir| PathBuf::from(dir).join("fuzz"),
    )
}

/// Builds every target with coverage instrumentation; returns where the
/// binaries are.
fn build() -> Result<PathBuf> {
    let dir = target_dir();
    let mut command = cargo();
    command
        .args(["build", "--bins", "--manifest-path"])
        .arg(fuzz_dir().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&dir)
        .env("RUSTC_WRAPPER", fuzz_dir().join("sancov-rustc"));
    run_cmd(one_off(&mut command))
        .context("building the fuzz targets (libFuzzer needs a C++ compiler)")?;
    Ok(dir.join("debug"))
}

/// What a finished run reports.
struct Run {
    executions: u64,
    seconds: u64,
}

/// Fuzzes `target` for `seconds`, starting from its seed corpus, adding
/// what it finds to `work`.
fn fuzz(bin: &Path, target: &str, seconds: u64, work: &Path, quiet: bool) -> Result<Run> {
    let seeds = fuzz_dir().join("corpus").join(target);
    let artifacts = target_dir().join("artifacts").join(target);
    fs::create_dir_all(work)?;
    fs::create_dir_all(&artifacts)?;
    let mut command = Command::new(bin.join(target));
    command
        .arg(work)
        .arg(&seeds)
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECONDS}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1");
    let shown = shown(&command);
    println!("$ {shown}");
    let mut child = command
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{shown}`"))?;
    // libFuzzer reports on stderr: a long run shows it as it goes, a short
    // one only when it fails; both keep it for the final stats.
    let mut log = String::new();
    for line in BufReader::new(child.stderr.take().expect("stderr is piped")).lines() {
        let line = line?;
        if !quiet {
            eprintln!("{line}");
        }
        log.push_str(&line);
        log.push('\n');
    }
    let status = child.wait()?;
    if !status.success() {
        if quiet {
            eprint!("{log}");
        }
        bail!(
            "fuzz target `{target}` failed ({status}); the input is in {}, and `{} <file>` runs it again",
            artifacts.display(),
            bin.join(target).display()
        );
    }
    let stat = |name: &str| {
        log.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<u64>().ok())
            .with_context(|| format!("libFuzzer printed no `{name}`"))
    };
    Ok(Run {
        executions: stat("stat::number_of_executed_units:")?,
        seconds: seconds.max(1),
    })
}

fn report(target: &str, run: &Run) {
    println!(
        "fuzz {target}: {} inputs in {} s ({} per second), no failure",
        run.executions,
        run.seconds,
        run.executions / run.seconds
    );
}

/// A few seconds of each target on its committed corpus, for the tests.
pub fn smoke() -> Result<()> {
    let bin = build()?;
    for target in TARGETS {
        // A fresh work corpus each time: the run starts from the fixed
        // seeds alone.
        let work = target_dir().join("smoke").join(target);
        if work.exists() {
            fs::remove_dir_all(&work)?;
        }
        let run = fuzz(&bin, target, SMOKE_SECONDS, &work, true)?;
        report(target, &run);
    }
    Ok(())
}

/// `cargo xtask fuzz <target> [seconds]`: a long run whose corpus grows
/// from run to run in `target/fuzz/corpus/<target>`.
pub fn long(args: &[String]) -> Result<()> {
    let usage = || {
        format!(
            "usage: cargo xtask fuzz <target> [seconds]   (targets: {}; {DEFAULT_SECONDS} s unless told)",
            TARGETS.join(", ")
        )
    };
    let (target, seconds) = match args {
        [target] => (target.as_str(), DEFAULT_SECONDS),
        [target, seconds] => (
            target.as_str(),
            seconds
                .parse()
                .with_context(|| format!("`{seconds}` is not a number of seconds\n{}", usage()))?,
        ),
        _ => bail!("{}", usage()),
    };
    if !TARGETS.contains(&target) {
        bail!("no fuzz target `{target}`\n{}", usage());
    }
    let bin = build()?;
    let work = target_dir().join("corpus").join(target);
    let run = fuzz(&bin, target, seconds, &work, false)?;
    report(target, &run);
    Ok(())
}
