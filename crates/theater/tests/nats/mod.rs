//! A real NATS cluster for tests: three `nats-server` processes with
//! JetStream on loopback ports, routed to each other, torn down on drop.
//!
//! `cargo xtask test` installs `nats-server`. Elsewhere a test without it
//! skips, saying so, except on CI (`CI` set), where it fails.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
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
    /// is not CI.
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
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16, u16)> = (0..3)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, route, _)| format!("nats://127.0.0.1:{route}"))
            .collect();
        let servers = ports
            .iter()
            .enumerate()
            .map(|(i, (client, route, monitor))| {
                let log = std::fs::File::create(dir.path().join(format!("s{i}.log"))).unwrap();
                Command::new(&bin)
                    .args(["-a", "127.0.0.1", "-p", &client.to_string()])
                    .args(["-n", &format!("s{i}"), "-js", "-sd"])
                    .arg(dir.path().join(format!("s{i}")))
                    .args(["--cluster_name", "theater-test"])
                    .args(["--cluster", &format!("nats://127.0.0.1:{route}")])
                    .args(["--routes", &routes.join(",")])
                    .args(["-m", &monitor.to_string()])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("nats-server starts")
            })
            .collect();
        let cluster = Self {
            servers,
            urls: ports
                .iter()
                .map(|(client, _, _)| format!("nats://127.0.0.1:{client}"))
                .collect(),
            _dir: dir,
            _slot: slot,
        };
        for (_, _, monitor) in &ports {
            wait_healthy(*monitor);
        }
        Some(cluster)
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

/// Waits until the server monitored on `port` says JetStream is healthy:
/// routed, with a meta leader.
fn wait_healthy(port: u16) {
    let deadline = Instant::now() + READY_WAIT;
    loop {
        if get(port, "/healthz").is_some_and(|body| body.contains("\"ok\"")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nats-server on monitor port {port} not healthy after {READY_WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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
