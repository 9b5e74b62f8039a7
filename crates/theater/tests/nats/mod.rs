//! A real NATS cluster for tests: three `nats-server` processes with
//! JetStream on loopback ports, routed to each other, torn down on drop.
//!
//! `cargo xtask test` installs `nats-server`. Elsewhere a test without it
//! skips, saying so, except on CI (`CI` set), where it fails.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a fresh cluster may take to elect its JetStream leader.
const READY_WAIT: Duration = Duration::from_secs(30);
/// Clusters a test binary runs at once. Each is three servers and the
/// test's nodes; more at once than this starve each other on a 2-core
/// machine until elections time out.
const AT_ONCE: usize = 2;

/// Clusters running now in this process.
static RUNNING: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// A place among the [`AT_ONCE`] clusters, given back when dropped.
struct Slot;

impl Slot {
    fn take() -> Self {
        let (running, freed) = &RUNNING;
        let mut running = running.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= AT_ONCE {
            running = freed.wait(running).unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (running, freed) = &RUNNING;
        *running.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        freed.notify_one();
    }
}

pub struct NatsCluster {
    servers: Vec<Child>,
    /// Client URLs, one per server.
    pub urls: Vec<String>,
    _dir: tempfile::TempDir,
    /// Given back once `drop` has killed the servers.
    _slot: Slot,
}

/// The first `nats-server` of 2.10 or later: `$THEATER_NATS_SERVER`, or
/// on the `PATH`, or where Debian puts it.
fn binary() -> Option<PathBuf> {
    let candidates = std::env::var_os("THEATER_NATS_SERVER")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            [
                "nats-server",
                "/usr/sbin/nats-server",
                "/usr/bin/nats-server",
            ]
            .map(PathBuf::from),
        );
    candidates.into_iter().find(|bin| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success() && recent(&String::from_utf8_lossy(&out.stdout)))
    })
}

/// Whether `nats-server --version` (`nats-server: v2.10.4`) names 2.10 or
/// later, whose JetStream answers the client understands.
fn recent(version: &str) -> bool {
    let numbers = version.trim().rsplit('v').next().unwrap_or_default();
    let mut parts = numbers.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (2, 10)
}

/// A free loopback port (free when asked; the servers bind it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl NatsCluster {
    /// Starts three servers and waits until JetStream answers on each;
    /// `None` (after saying why) where `nats-server` is missing and this
    /// is not CI. A cluster that does not come up (a port another process
    /// took meanwhile) is started once more on other ports.
    pub fn start() -> Option<Self> {
        let Some(bin) = binary() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "nats-server is missing; `cargo xtask test` installs it"
            );
            eprintln!("SKIPPED: nats-server is missing; `cargo xtask test` installs it");
            return None;
        };
        let slot = Slot::take();
        let cluster = Self::try_start(&bin).or_else(|why| {
            eprintln!("the NATS cluster did not come up, starting another: {why}");
            Self::try_start(&bin)
        });
        match cluster {
            Ok((servers, urls, dir)) => Some(Self {
                servers,
                urls,
                _dir: dir,
                _slot: slot,
            }),
            Err(why) => panic!("the NATS cluster did not come up: {why}"),
        }
    }

    /// Three servers on fresh ports, once all are healthy: the servers,
    /// their client URLs and their directory.
    fn try_start(bin: &Path) -> Result<(Vec<Child>, Vec<String>, tempfile::TempDir), String> {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16, u16)> = (0..3)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, route, _)| format!("nats://127.0.0.1:{route}"))
            .collect();
        let log = |i: usize| dir.path().join(format!("s{i}.log"));
        let mut servers: Vec<Child> = ports
            .iter()
            .enumerate()
            .map(|(i, (client, route, monitor))| {
                Command::new(bin)
                    .args(["-a", "127.0.0.1", "-p", &client.to_string()])
                    .args(["-n", &format!("s{i}"), "-js", "-sd"])
                    .arg(dir.path().join(format!("s{i}")))
                    .args(["--cluster_name", "theater-test"])
                    .args(["--cluster", &format!("nats://127.0.0.1:{route}")])
                    .args(["--routes", &routes.join(",")])
                    .args(["-m", &monitor.to_string()])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(log(i)).unwrap())
                    .spawn()
                    .expect("nats-server starts")
            })
            .collect();
        for (i, (_, _, monitor)) in ports.iter().enumerate() {
            if !healthy(*monitor) {
                for server in &mut servers {
                    let _ = server.kill();
                    let _ = server.wait();
                }
                let said = std::fs::read_to_string(log(i)).unwrap_or_default();
                let tail: Vec<&str> = said.lines().rev().take(5).collect();
                return Err(format!(
                    "server s{i} not healthy after {READY_WAIT:?}; its log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
        }
        let urls = ports
            .iter()
            .map(|(client, _, _)| format!("nats://127.0.0.1:{client}"))
            .collect();
        Ok((servers, urls, dir))
    }

    /// The client URLs, comma separated, as `--cluster` takes them.
    pub fn url_list(&self) -> String {
        self.urls.join(",")
    }

    /// Kills the server named `s<index>` (`kill -9`): its clients move to
    /// the others.
    pub fn kill(&mut self, index: usize) {
        let server = &mut self.servers[index];
        server.kill().unwrap();
        server.wait().unwrap();
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

/// Whether the server monitored on `port` says, within [`READY_WAIT`],
/// that JetStream is healthy: routed, with a meta leader.
fn healthy(port: u16) -> bool {
    let deadline = Instant::now() + READY_WAIT;
    while Instant::now() < deadline {
        if get(port, "/healthz").is_some_and(|body| body.contains("\"ok\"")) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The body of `GET path` on 127.0.0.1:`port`, if it answers.
fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response.split_once("\r\n\r\n")?.1.to_owned())
}
