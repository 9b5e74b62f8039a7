//! What the CLI test binaries share: where the built actors are, and one
//! compiled-component cache for every home they make.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A child process, killed (and reaped) when dropped: no test leaves one
/// running, whichever way it ends.
pub struct Killed(pub Child);

impl std::ops::Deref for Killed {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Killed {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How often a cluster node announces itself, and how long after its last
/// announcement the others count it gone.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeats {
    pub every_ms: u64,
    pub timeout_ms: u64,
}

/// The `theater server` arguments that make it node `name` of the NATS
/// cluster at `urls` (comma separated), with three replicas.
pub fn cluster_args(urls: &str, name: &str, beats: Heartbeats) -> Vec<String> {
    let (every, timeout) = (beats.every_ms.to_string(), beats.timeout_ms.to_string());
    [
        "--cluster",
        urls,
        "--node",
        name,
        "--cluster-replicas",
        "3",
        "--heartbeat-ms",
        &every,
        "--node-timeout-ms",
        &timeout,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The `actors/` directory.
pub fn actors_dir() -> PathBuf {
    std::env::var_os("THEATER_ACTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../actors"))
}

/// The manifest of the built actor `actor`.
pub fn manifest(actor: &str) -> PathBuf {
    let dir = actors_dir().join(actor);
    assert!(
        dir.join(format!("{actor}.wasm")).exists(),
        "run `cargo xtask build-actors` first"
    );
    dir.join("manifest.toml")
}

/// Compiled components, shared by every test home so each compiles once.
pub fn shared_cache() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-cache");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh home (one process at a time may use a home's chain database)
/// with the shared cache.
pub fn home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(shared_cache(), home.path().join("cache")).unwrap();
    home
}

/// What a finished command wrote to standard output.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a finished command wrote to standard error.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Checks that a command exited with `code` and said `says` on standard
/// error.
pub fn assert_refused(output: &Output, code: i32, says: &str) {
    assert_eq!(output.status.code(), Some(code), "{}", stderr(output));
    assert_says(output, says);
}

/// Checks that a command said `says` on standard error.
pub fn assert_says(output: &Output, says: &str) {
    let stderr = stderr(output);
    assert!(stderr.contains(says), "expected `{says}` in: {stderr}");
}

/// The standard output of the client command `args`, which must have
/// succeeded.
pub fn succeeded(args: &[&str], output: &Output) -> String {
    assert!(
        output.status.success(),
        "theater {args:?} failed ({:?}):\n{}\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

/// What the client command `args --json` answers, run by `ok` (which
/// checks it succeeded), parsed.
pub fn answered_json(args: &[&str], ok: impl FnOnce(&[&str]) -> String) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    let text = ok(&args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}\n{text}"))
}

/// `theater server` (the binary `bin`) on a free loopback port with `home`
/// and the `extra` arguments, its stdout piped and its log in
/// `home/server.log`.
pub fn server_command(bin: &str, home: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(bin);
    command
        .args(["server", "--listen", "127.0.0.1:0", "--home"])
        .arg(home)
        .args(extra)
        .env_remove("THEATER_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(home.join("server.log")).unwrap(),
        ));
    command
}

/// Starts [`server_command`]; returns the process and the address it
/// listens on, once it does.
pub fn spawn_server(bin: &str, home: &Path, extra: &[&str]) -> (Child, String) {
    let mut child = server_command(bin, home, extra)
        .spawn()
        .expect("theater server starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let Some(addr) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        let log = std::fs::read_to_string(home.join("server.log")).unwrap_or_default();
        panic!("the server did not start: {line:?}\n{log}");
    };
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let addr = addr.to_owned();
    // Keep reading, so that the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    (child, addr)
}
