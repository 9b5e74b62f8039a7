//! `theater dev`: build an actor crate, run it, and on every change to its
//! sources rebuild it and start it again with the state it had.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use notify::{RecursiveMode, Watcher};
use serde_json::{Value, json};
use theater::host::HandlerSet;
use theater::server::{DEFAULT_LISTEN, Server, ServerConfig};
use theater::{ActorId, Manifest, RuntimeConfig, TheaterRuntime};
use tokio::sync::mpsc;

use crate::build_actor::build_crate;
use crate::manifest_arg::{MANIFEST_FILE, manifest_file};
use crate::output::{self, print_json_line};

/// How long the sources must stay unchanged before a rebuild starts: an
/// editor saving several files, or a `git checkout`, makes one rebuild.
pub const QUIET_BEFORE_REBUILD: Duration = Duration::from_millis(300);

/// Least time between the starts of two rebuilds, however often the
/// sources change: a tool rewriting a file in a loop cannot keep cargo
/// and the actor restarting without pause.
pub const MIN_REBUILD_INTERVAL: Duration = Duration::from_secs(2);

/// Build an actor crate, run its actor, and rebuild and restart it on
/// every change to its sources (src/, wit/, Cargo.toml, manifest.toml).
///
/// The actor keeps its id, its chain (an `actor-resume` event marks each
/// restart) and its state, unless the new `init` refuses that state: then
/// it starts from the manifest's `init_state`, and says so. A build that
/// fails, or a component that would not start, leaves the running actor as
/// it is. Other `theater` commands reach it through the management server
/// this command runs (`--listen`). Nothing is kept on disk: chains and
/// stores live in memory until Ctrl-C.
#[derive(Args)]
#[command(after_help = "Examples:\n  theater dev greeter\n  theater dev . --listen 127.0.0.1:9901")]
pub struct DevArgs {
    /// The actor crate's directory.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Address of the management server for the other commands.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Print one JSON object per line for each step instead of text.
    #[arg(long)]
    json: bool,
}

pub fn dev(args: DevArgs) -> anyhow::Result<ExitCode> {
    let dir = std::fs::canonicalize(&args.dir)
        .with_context(|| format!("{} is not a directory", args.dir.display()))?;
    let manifest_path = manifest_file(&dir)?;
    if manifest_path.file_name() != Some(MANIFEST_FILE.as_ref()) {
        anyhow::bail!("{} is not an actor crate's directory", dir.display());
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(Dev::new(args.json, dir, manifest_path).run(&args.listen))
}

struct Dev {
    json: bool,
    dir: PathBuf,
    manifest: PathBuf,
}

impl Dev {
    fn new(json: bool, dir: PathBuf, manifest: PathBuf) -> Self {
        Self {
            json,
            dir,
            manifest,
        }
    }

    async fn run(self, listen: &str) -> anyhow::Result<ExitCode> {
        self.build().await?;
        let theater = TheaterRuntime::new(RuntimeConfig::ephemeral())?;
        let manifest = Manifest::load(&self.manifest)?;
        for warning in &manifest.warnings {
            errln!("warning: {warning}");
        }
        let actor = theater.spawn(&manifest).await?.id();
        let server = Server::bind(theater.clone(), listen, ServerConfig::default()).await?;
        let addr = server.local_addr()?;
        self.say(
            json!({ "event": "started", "actor": actor.to_string(), "name": manifest.name, "listen": addr.to_string() }),
            format!(
                "started {} ({actor}); other commands reach it with --server {addr}\nwatching {} for changes; Ctrl-C to stop",
                manifest.name,
                self.dir.display()
            ),
        );
        let serving = tokio::spawn(server.serve_until(std::future::pending()));
        let (_watcher, mut changes) = watch(&self.dir)?;
        let mut last_build = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                change = changes.recv() => {
                    if change.is_none() || output::closed() {
                        break;
                    }
                    // Let a burst of changes settle, and keep rebuilds apart.
                    while let Ok(Some(())) =
                        tokio::time::timeout(QUIET_BEFORE_REBUILD, changes.recv()).await
                    {}
                    tokio::time::sleep(MIN_REBUILD_INTERVAL.saturating_sub(last_build.elapsed())).await;
                    while changes.try_recv().is_ok() {}
                    last_build = Instant::now();
                    self.rebuild(&theater, actor).await;
                }
            }
        }
        serving.abort();
        theater.shutdown().await;
        Ok(ExitCode::SUCCESS)
    }

    async fn build(&self) -> anyhow::Result<()> {
        let dir = self.dir.clone();
        let progress = !self.json;
        let started = Instant::now();
        tokio::task::spawn_blocking(move || build_crate(&dir, progress))
            .await
            .context("the build task failed")??;
        let seconds = started.elapsed().as_secs_f64();
        self.say(
            json!({ "event": "built", "seconds": seconds }),
            format!("built in {seconds:.1} s"),
        );
        Ok(())
    }

    /// Builds again and restarts the actor on the new component, unless
    /// the build fails or the component would not start.
    async fn rebuild(&self, theater: &TheaterRuntime, actor: ActorId) {
        if let Err(e) = self.build().await {
            let message = output::message(&e);
            self.say(
                json!({ "event": "build_failed", "error": message }),
                format!("build failed: {message}; the actor runs as it was"),
            );
            return;
        }
        let manifest = match Manifest::load(&self.manifest) {
            Ok(manifest) => manifest,
            Err(e) => return self.refused(&[e.to_string()]),
        };
        let checked = theater::validate::validate(&manifest, &HandlerSet::builtin()).await;
        if !checked.is_valid() {
            return self.refused(&checked.errors);
        }
        match theater.reload(actor, &manifest).await {
            Ok(reloaded) => {
                let (kept, how) = match &reloaded.state_reset {
                    None => (true, "state kept".to_owned()),
                    Some(reason) => (
                        false,
                        format!(
                            "state reset to the manifest's: the new init refused the old one ({reason})"
                        ),
                    ),
                };
                self.say(
                    json!({ "event": "reloaded", "actor": actor.to_string(), "state_kept": kept }),
                    format!("reloaded {} ({actor}): {how}", manifest.name),
                );
            }
            Err(e) => self.refused(&[e.to_string()]),
        }
    }

    fn refused(&self, errors: &[String]) {
        self.say(
            json!({ "event": "not_started", "errors": errors }),
            format!(
                "the new build would not start, so the actor runs as it was:\n  {}",
                errors.join("\n  ")
            ),
        );
    }

    fn say(&self, event: Value, text: String) {
        if self.json {
            print_json_line(&event);
        } else {
            outln!("{text}");
        }
    }
}

/// Watches `dir` for changes to the actor's sources; each relevant change
/// is one `()`. The build's own output (target/, *.wasm, Cargo.lock) is
/// not a change.
fn watch(dir: &Path) -> anyhow::Result<(notify::RecommendedWatcher, mpsc::UnboundedReceiver<()>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let root = dir.to_owned();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        if event.paths.iter().any(|path| is_source(&root, path)) {
            let _ = tx.send(());
        }
    })
    .context("watching for changes")?;
    watcher
        .watch(dir, RecursiveMode::Recursive)
        .with_context(|| format!("watching {}", dir.display()))?;
    Ok((watcher, rx))
}

/// Whether a change to `path` can change the build.
fn is_source(root: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(root) else {
        return false;
    };
    let hidden_or_built = relative.components().any(|part| {
        let part = part.as_os_str().to_string_lossy();
        part == "target" || part.starts_with('.')
    });
    let output = path
        .extension()
        .is_some_and(|ext| ext == "wasm" || ext == "lock");
    !hidden_or_built && !output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sources_count_as_changes() {
        let root = Path::new("/work/greeter");
        for source in ["src/lib.rs", "Cargo.toml", "manifest.toml", "wit/world.wit"] {
            assert!(is_source(root, &root.join(source)), "{source}");
        }
        for built in [
            "target/release/x",
            "greeter.wasm",
            "Cargo.lock",
            ".git/index",
            "child/child.wasm",
        ] {
            assert!(!is_source(root, &root.join(built)), "{built}");
        }
        assert!(!is_source(root, Path::new("/elsewhere/src/lib.rs")));
    }
}
