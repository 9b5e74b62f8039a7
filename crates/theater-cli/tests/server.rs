//! The management server and its client commands: a real `theater server`
//! child process on loopback, driven by the real `theater` binary and by
//! raw sockets speaking (and abusing) the protocol.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_theater");
/// Longest wait for a line from a streaming command.
const LINE_WAIT: Duration = Duration::from_secs(60);

mod support;
use support::{actors_dir, assert_refused, assert_says, stderr, stdout};

fn manifest(actor: &str) -> String {
    support::manifest(actor).display().to_string()
}

/// A `theater server` child process, killed when dropped.
struct Server {
    child: support::Killed,
    addr: String,
    home: tempfile::TempDir,
    token: Option<String>,
}

impl Server {
    fn start() -> Self {
        Self::start_with(None)
    }

    fn start_with(token: Option<&str>) -> Self {
        Self::start_with_args(token, &[])
    }

    /// A server with these extra `theater server` arguments.
    fn start_with_args(token: Option<&str>, extra: &[&str]) -> Self {
        let home = support::home();
        let mut args = extra.to_vec();
        if let Some(token) = token {
            args.extend(["--token", token]);
        }
        let (child, addr) = support::spawn_server(BIN, home.path(), &args);
        Self {
            addr,
            child: support::Killed(child),
            home,
            token: token.map(str::to_owned),
        }
    }

    /// The server process's resident memory now and at its peak, in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server's /proc status");
        let field = |name: &str| -> u64 {
            let line = status
                .lines()
                .find(|line| line.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in /proc status"));
            line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("THEATER_SERVER", &self.addr)
            .env("THEATER_HOME", self.home.path())
            .env_remove("THEATER_TOKEN")
            .stdin(Stdio::null());
        if let Some(token) = &self.token {
            command.env("THEATER_TOKEN", token);
        }
        command
    }

    /// Runs a client command to its end.
    fn cli(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("theater runs")
    }

    /// Runs a client command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        support::succeeded(args, &self.cli(args))
    }

    /// Like [`ok`](Self::ok), parsing stdout as one JSON document.
    fn json(&self, args: &[&str]) -> Value {
        support::answered_json(args, |args| self.ok(args))
    }

    /// Starts an actor; returns its full id.
    fn start_actor(&self, actor: &str) -> String {
        let id = self.ok(&["start", &manifest(actor), "--id-only"]);
        id.trim().to_owned()
    }

    /// Spawns a streaming command with its stdout read line by line; its
    /// stdin stays open until the command is dropped or `stdin` is taken.
    fn spawn(&self, args: &[&str]) -> Streaming {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("theater runs");
        let lines = read_lines(child.stdout.take().unwrap());
        let stdin = child.stdin.take();
        Streaming {
            child: support::Killed(child),
            lines,
            stdin,
        }
    }
}

/// A running client command whose output is read as it comes.
struct Streaming {
    child: support::Killed,
    lines: mpsc::Receiver<String>,
    stdin: Option<std::process::ChildStdin>,
}

impl Streaming {
    fn line(&self) -> String {
        self.lines
            .recv_timeout(LINE_WAIT)
            .expect("a line from the command")
    }

    /// Reads lines until one contains `text`; returns it.
    fn line_with(&self, text: &str) -> String {
        loop {
            let line = self.line();
            if line.contains(text) {
                return line;
            }
        }
    }

    fn wait(mut self) -> std::process::ExitStatus {
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("the command did not end");
    }
}

fn read_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A client speaking the wire protocol by hand.
struct Raw(TcpStream);

impl Raw {
    fn connect(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Self(stream)
    }

    fn send(&mut self, frame: &[u8]) {
        self.0
            .write_all(&(frame.len() as u32).to_be_bytes())
            .unwrap();
        self.0.write_all(frame).unwrap();
    }

    fn send_json(&mut self, value: &Value) {
        self.send(value.to_string().as_bytes());
    }

    /// The next frame, `None` once the server closed the connection.
    fn recv(&mut self) -> Option<Value> {
        let mut len = [0u8; 4];
        match self.0.read_exact(&mut len) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return None;
            }
            Err(e) => panic!("reading a frame: {e}"),
        }
        let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
        self.0.read_exact(&mut frame).unwrap();
        Some(serde_json::from_slice(&frame).expect("the server sends JSON"))
    }

    fn hello(&mut self, token: Option<&str>) -> Value {
        self.send_json(&json!({ "hello": { "version": 1, "token": token } }));
        self.recv().expect("an answer to hello")
    }

    /// Asserts the server closes the connection (after at most a few
    /// frames, which are returned).
    fn closed(&mut self) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Some(frame) = self.recv() {
            frames.push(frame);
            assert!(frames.len() < 5, "the server kept talking: {frames:?}");
        }
        frames
    }
}

/// The server still answers a new, well-behaved client.
fn still_serving(server: &Server) {
    let mut raw = Raw::connect(&server.addr);
    let hello = raw.hello(server.token.as_deref());
    assert_eq!(hello["hello"]["version"], 1, "{hello}");
    raw.send_json(&json!({ "id": 1, "op": "ping" }));
    assert_eq!(raw.recv().unwrap()["ok"]["pong"], true);
}

#[test]
fn actor_commands_work_with_and_without_json() {
    let server = Server::start();
    let counter = manifest("counter");

    let text = server.ok(&["start", &counter]);
    assert!(text.starts_with("started counter "), "{text}");
    let started = server.json(&["start", &counter]);
    let id = started["actor"].as_str().unwrap().to_owned();
    let short = &id[..8];
    assert_eq!(started["short"], short);
    assert_eq!(started["name"], "counter");

    let text = server.ok(&["list"]);
    let header = text.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("NAME") && header.contains("FAILED"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with(short) && l.contains("counter") && l.contains("running")),
        "{text}"
    );
    let list = server.json(&["list"]);
    assert_eq!(list["actors"].as_array().unwrap().len(), 2);

    let text = server.ok(&["message", "send", short, r#"{"add": 2}"#]);
    assert_eq!(text.trim(), format!("queued for {short}"));
    let sent = server.json(&["message", "send", short, r#"{"add": 3}"#]);
    assert_eq!(sent["queued"], true);
    assert_eq!(sent["actor"], id.as_str());

    let text = server.ok(&["message", "request", short, "{}"]);
    assert_eq!(text.trim(), r#"{"count":5}"#);
    let reply = server.json(&["message", "request", &id, "{}"]);
    assert_eq!(reply["reply"]["count"], 5);

    let text = server.ok(&["state", short]);
    assert_eq!(text.trim(), r#"{"count":5}"#);
    let state = server.json(&["state", short]);
    assert_eq!(state["state"]["count"], 5);

    // init + 2 sends + 2 requests
    let text = server.ok(&["events", short]);
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(
        text.lines().next().unwrap().contains("actor-init"),
        "{text}"
    );
    let events = server.json(&["events", short, "--limit", "2"]);
    assert_eq!(events["total"], 5);
    assert_eq!(events["start"], 3);
    assert_eq!(events["events"].as_array().unwrap().len(), 2);
    let text = server.ok(&["events", short, "--limit", "1"]);
    assert!(text.trim_start().starts_with("4 "), "{text}");

    let text = server.ok(&["verify", short]);
    assert!(text.contains("chain verified: 5 events"), "{text}");
    let verified = server.json(&["verify", short]);
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["events"], 5);

    let text = server.ok(&["inspect", short]);
    for key in [
        "id:",
        "name:",
        "manifest:",
        "limits:",
        "queue depth:",
        "calls:",
        "chain:",
    ] {
        assert!(text.contains(key), "{key} in {text}");
    }
    let canonical = std::fs::canonicalize(&counter).unwrap();
    let canonical = canonical.to_str().unwrap();
    assert!(text.contains(canonical), "{text}");
    let inspect = server.json(&["inspect", short]);
    assert_eq!(inspect["id"], id.as_str());
    assert_eq!(inspect["manifest"], canonical);
    assert_eq!(inspect["counters"]["calls_ok"], 4);
    assert_eq!(inspect["chain"]["events"], 5);
    assert_eq!(inspect["chain"]["head"], verified["head"]);
    assert_eq!(inspect["limits"]["queue_capacity"], 1024);

    // A failed call is counted and the state is kept.
    server.ok(&["message", "send", short, r#"{"sub": 1}"#]);
    server.ok(&["message", "request", short, "{}"]);
    let list = server.json(&["list"]);
    let row = list["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str())
        .unwrap();
    assert_eq!(row["calls_failed"], 1, "{row}");
    assert_eq!(row["calls_ok"], 5, "{row}");

    let text = server.ok(&["stop", short]);
    assert_eq!(text.trim(), format!("stopped {short}"));
    let other = list["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] != id.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stopped = server.json(&["stop", &other]);
    assert_eq!(stopped["stopped"], true);
    let text = server.ok(&["list"]);
    assert!(text.contains("no actors running"), "{text}");
    assert_eq!(server.json(&["list"])["actors"], json!([]));

    // The chain of a stopped actor can still be read and verified.
    let verified = server.json(&["verify", short]);
    assert_eq!(verified["verified"], true);
}

#[test]
fn start_takes_an_initial_state() {
    let server = Server::start();
    let counter = manifest("counter");
    let id = server.ok(&[
        "start",
        &counter,
        "--state",
        r#"{"count": 40}"#,
        "--id-only",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 36, "{id}");
    server.ok(&["message", "send", id, r#"{"add": 2}"#]);
    let reply = server.json(&["message", "request", id, "{}"]);
    assert_eq!(reply["reply"]["count"], 42);
}

#[test]
fn mistakes_get_clear_errors_and_exit_codes() {
    let server = Server::start();

    // Nothing listens on port 1 of loopback.
    let out = server
        .command(&["list"])
        .env("THEATER_SERVER", "127.0.0.1:1")
        .output()
        .unwrap();
    assert_refused(
        &out,
        1,
        "no server at 127.0.0.1:1 — start one with `theater server`",
    );
    let out = server.cli(&["list", "--server", "127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1));

    let out = server.cli(&["state", "0000dead"]);
    assert_eq!(out.status.code(), Some(1));
    assert_says(&out, "theater list");

    let out = server.cli(&["start", "/no/such/manifest.toml"]);
    assert_refused(&out, 1, "/no/such/manifest.toml");

    let id = server.start_actor("counter");
    let out = server.cli(&["message", "send", &id, "not json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_says(&out, "is not JSON");

    // Usage errors: exactly one of <ACTOR> and --file.
    assert_eq!(server.cli(&["verify"]).status.code(), Some(2));
    assert_eq!(
        server
            .cli(&["verify", &id, "--file", "chain.json"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(server.cli(&["message", "send"]).status.code(), Some(2));
}

#[test]
fn channels_stream_messages_until_closed() {
    let server = Server::start();
    let messenger = server.start_actor("messenger");

    let open = server.spawn(&["channel", "open", &messenger[..8], r#""greet""#]);
    let first = open.line();
    let channel = first
        .strip_prefix("channel ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    assert!(
        first.ends_with(&format!("open to {}", &messenger[..8])),
        "{first}"
    );
    // The messenger greets a channel opened with "greet".
    assert_eq!(open.line(), r#""hello""#);
    let command = json!({ "channel_send": { "channel": channel, "msg": { "n": 1 } } });
    server.ok(&["message", "request", &messenger, &command.to_string()]);
    assert_eq!(open.line(), r#"{"n":1}"#);
    let command = json!({ "close": channel });
    server.ok(&["message", "request", &messenger, &command.to_string()]);
    assert_eq!(open.line(), "channel closed");
    assert!(open.wait().success());

    // With --json: the open answer, then each event, one per line.
    let open = server.spawn(&["channel", "open", &messenger, r#""hi""#, "--json"]);
    let answer: Value = serde_json::from_str(&open.line()).unwrap();
    let channel = answer["channel"].as_str().unwrap().to_owned();
    assert_eq!(answer["actor"], messenger.as_str());
    let command = json!({ "channel_send": { "channel": channel, "msg": [1, 2] } });
    server.ok(&["message", "request", &messenger, &command.to_string()]);
    let message: Value = serde_json::from_str(&open.line()).unwrap();
    assert_eq!(message["event"], "channel_message");
    assert_eq!(message["message"], json!([1, 2]));
    // Stopping the actor closes its channels.
    server.ok(&["stop", &messenger]);
    let closed: Value = serde_json::from_str(&open.line()).unwrap();
    assert_eq!(closed["event"], "channel_closed");
    assert!(open.wait().success());
}

#[test]
fn a_client_channel_closes_when_its_connection_goes() {
    let server = Server::start();
    let messenger = server.start_actor("messenger");
    let open = server.spawn(&["channel", "open", &messenger, r#""x""#]);
    let channel = open.line().split_whitespace().nth(1).unwrap().to_owned();
    drop(open);
    // The actor hears of the close.
    for _ in 0..100 {
        let state = server.json(&["state", &messenger]);
        if state["state"]["closed"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c == channel.as_str()))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the actor never heard that channel {channel} closed");
}

#[test]
fn subscriptions_and_follow_stream_live_events() {
    let server = Server::start();
    let echo = server.start_actor("echo");
    let short = echo[..8].to_owned();

    let all = server.spawn(&["subscribe", "--json"]);
    let answer: Value = serde_json::from_str(&all.line()).unwrap();
    assert!(answer["subscription"].is_u64(), "{answer}");
    let one = server.spawn(&["subscribe", &short]);
    assert!(one.line().starts_with(&format!("subscribed to {short}")));
    let follow = server.spawn(&["events", &short, "--follow"]);
    assert!(follow.line().contains("actor-init"));

    server.ok(&["message", "send", &short, r#""ping""#]);
    let event: Value = serde_json::from_str(&all.line_with(&echo)).unwrap();
    assert_eq!(event["actor"], echo.as_str());
    assert_eq!(event["event"]["event_type"], "call");
    assert!(one.line().starts_with(&short));
    let line = follow.line();
    assert!(
        line.trim_start().starts_with("1 ") && line.contains("handle-send"),
        "{line}"
    );

    // `start --follow` prints the new actor's events as they come.
    let started = server.spawn(&["start", &manifest("counter"), "--follow"]);
    let first = started.line();
    assert!(first.starts_with("started counter "), "{first}");
    let counter = first.split_whitespace().nth(2).unwrap().to_owned();
    assert!(started.line().contains("actor-init"));
    server.ok(&["message", "send", &counter, r#"{"add": 1}"#]);
    assert!(started.line().contains("handle-send"));
    server.ok(&["stop", &counter]);
    assert_eq!(
        started.line_with("stopped"),
        format!("actor {counter} stopped")
    );
    assert!(started.wait().success());

    // A follower ends when its actor stops.
    server.ok(&["stop", &short]);
    follow.line_with("stopped");
    assert!(follow.wait().success());
}

#[test]
fn validate_reports_grants_imports_and_exports() {
    let server = Server::start();
    let text = server.ok(&["validate", &manifest("counter")]);
    assert!(text.contains("valid: every check passed"), "{text}");
    assert!(text.contains("ntwk:theater/actor.init"), "{text}");
    let report = server.json(&["validate", &manifest("counter")]);
    assert_eq!(report["valid"], true);
    assert_eq!(report["handlers"], json!(["runtime"]));
    let found = report["exports"]["found"].as_array().unwrap();
    assert!(
        found
            .iter()
            .any(|f| f == "ntwk:theater/message-server-client.handle-send")
    );
    assert!(
        report["imports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["granted"] == true)
    );

    // The minimal actor listed with message-server lacks `handle-send`.
    let dir = tempfile::tempdir().unwrap();
    let wasm = actors_dir().join("minimal/minimal.wasm");
    let bad = dir.path().join("manifest.toml");
    std::fs::write(
        &bad,
        format!(
            "name = \"minimal\"\ncomponent_path = {:?}\n\n[[handlers]]\ntype = \"message-server\"\nconfig = {{}}\n",
            wasm.display().to_string()
        ),
    )
    .unwrap();
    let out = server.cli(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("MISSING"), "{}", stdout(&out));
    let out = server.cli(&["validate", bad.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], false);
    let errors = report["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("handle-send")),
        "{errors:?}"
    );

    let out = server.cli(&["validate", &manifest("wrong-signature")]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

#[test]
fn completions_are_printed_for_every_shell() {
    let server = Server::start();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let text = server.ok(&["completions", shell]);
        assert!(text.contains("theater"), "{shell}");
        assert!(text.contains("subscribe"), "{shell}");
    }
    assert_eq!(server.cli(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn a_created_actor_builds_starts_and_answers() {
    let server = Server::start();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("greeter");
    let text = server.ok(&["create", "greeter", "--dir", dir.to_str().unwrap()]);
    assert!(text.contains("theater build"), "{text}");
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "manifest.toml",
        "wit/world.wit",
        "wit/deps/theater/worlds.wit",
        "wit/deps/theater/message-server.wit",
    ] {
        assert!(dir.join(file).exists(), "{file}");
    }
    let created = server.json(&[
        "create",
        "other",
        "--dir",
        work.path().join("other").to_str().unwrap(),
    ]);
    assert_eq!(created["name"], "other");
    assert!(
        created["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "src/lib.rs")
    );
    let out = server.cli(&["create", "greeter", "--dir", dir.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a second create must not overwrite"
    );
    assert_eq!(server.cli(&["create", "Bad_Name"]).status.code(), Some(1));

    // Builds reuse one target directory across test runs.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target");
    let build = |json: bool| {
        let mut command = server.command(&["build", dir.to_str().unwrap()]);
        if json {
            command.arg("--json");
        }
        let out = command.env("CARGO_TARGET_DIR", &target).output().unwrap();
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    let text = build(false);
    assert!(text.contains("component: "), "{text}");
    assert!(
        text.contains("ntwk:theater/message-server-client.handle-request"),
        "{text}"
    );
    let report: Value = serde_json::from_str(&build(true)).unwrap();
    let component = report["component"].as_str().unwrap();
    assert!(Path::new(component).exists(), "{component}");
    assert_eq!(Path::new(component), dir.join("greeter.wasm"));
    assert!(
        report["exports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "ntwk:theater/actor.init")
    );

    let manifest = dir.join("manifest.toml");
    server.ok(&["validate", manifest.to_str().unwrap()]);
    let id = server.ok(&["start", manifest.to_str().unwrap(), "--id-only"]);
    let id = id.trim();
    server.ok(&["message", "send", id, r#"{"hello": "world"}"#]);
    let reply = server.json(&["message", "request", id, "{}"]);
    assert_eq!(
        reply["reply"],
        json!({ "messages": 1, "last": { "hello": "world" } })
    );
    assert_eq!(server.json(&["verify", id])["verified"], true);
}

#[test]
fn a_client_without_the_token_is_refused_and_changes_nothing() {
    let server = Server::start_with(Some("s3cret"));
    let counter = manifest("counter");

    // No token: an error frame, then the connection closes.
    let mut raw = Raw::connect(&server.addr);
    let answer = raw.hello(None);
    assert_eq!(answer["error"]["kind"], "unauthorized", "{answer}");
    assert!(raw.closed().is_empty());

    // A wrong token, then a start request anyway.
    let mut raw = Raw::connect(&server.addr);
    raw.send_json(&json!({ "hello": { "version": 1, "token": "guess" } }));
    raw.send_json(&json!({ "id": 1, "op": "start", "manifest_path": counter }));
    let answer = raw.recv().unwrap();
    assert_eq!(answer["error"]["kind"], "unauthorized", "{answer}");
    for frame in raw.closed() {
        assert!(frame.get("ok").is_none(), "{frame}");
    }

    // No hello at all: a request as the first frame.
    let mut raw = Raw::connect(&server.addr);
    raw.send_json(&json!({ "id": 1, "op": "start", "manifest_path": counter }));
    let answer = raw.recv().unwrap();
    assert_eq!(answer["error"]["kind"], "handshake_required", "{answer}");
    raw.closed();

    // The CLI without the token is refused and says what to do.
    let out = server
        .command(&["start", &counter])
        .env_remove("THEATER_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_says(&out, "token");
    let out = server
        .command(&["list"])
        .env("THEATER_TOKEN", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));

    // Nothing was started.
    assert_eq!(server.json(&["list"])["actors"], json!([]));
    let out = server.cli(&["list", "--token", "s3cret"]);
    assert!(out.status.success());
    still_serving(&server);
}

#[test]
fn the_server_listens_on_loopback_by_default() {
    assert!(theater::server::DEFAULT_LISTEN.starts_with("127.0.0.1:"));
    let out = Command::new(BIN)
        .args(["server", "--help"])
        .output()
        .unwrap();
    let help = stdout(&out);
    assert!(help.contains("[default: 127.0.0.1:9000]"), "{help}");
    assert!(help.contains("--token"), "{help}");
    assert!(help.contains("--insecure"), "{help}");
    assert!(
        help.contains("--max-unauthenticated-per-peer <N>"),
        "{help}"
    );
    assert!(help.contains("[default: 3000]"), "{help}");
    let out = Command::new(BIN)
        .args(["list", "--help"])
        .env_remove("THEATER_SERVER")
        .output()
        .unwrap();
    assert!(stdout(&out).contains("[default: 127.0.0.1:9000]"));
}

#[test]
fn hostile_frames_get_an_error_or_a_clean_close() {
    let server = Server::start();

    // Malformed JSON: an error frame, and the connection goes on.
    let mut raw = Raw::connect(&server.addr);
    assert_eq!(raw.hello(None)["hello"]["version"], 1);
    raw.send(b"{\"id\": 1, \"op\": ");
    let answer = raw.recv().unwrap();
    assert_eq!(answer["error"]["kind"], "bad_frame", "{answer}");
    raw.send(&[0xff, 0x00, 0xfe]);
    assert_eq!(raw.recv().unwrap()["error"]["kind"], "bad_frame");
    raw.send_json(&json!({ "id": 7, "op": "fly" }));
    let answer = raw.recv().unwrap();
    assert_eq!(answer["id"], 7);
    assert_eq!(answer["error"]["kind"], "bad_request");
    raw.send_json(&json!({ "id": 8, "op": "send", "actor": "zz", "message": 1 }));
    assert_eq!(raw.recv().unwrap()["error"]["kind"], "bad_request");
    raw.send_json(&json!({ "id": 9, "op": "list" }));
    assert_eq!(raw.recv().unwrap()["id"], 9);

    // A bad hello.
    let mut raw = Raw::connect(&server.addr);
    raw.send(b"hello?");
    assert_eq!(raw.recv().unwrap()["error"]["kind"], "handshake_required");
    raw.closed();
    let mut raw = Raw::connect(&server.addr);
    raw.send_json(&json!({ "hello": { "version": 99 } }));
    assert_eq!(raw.recv().unwrap()["error"]["kind"], "unsupported_version");
    raw.closed();

    // Truncated: a length prefix, part of the frame, then the client leaves.
    for before_hello in [true, false] {
        let mut raw = Raw::connect(&server.addr);
        if !before_hello {
            raw.hello(None);
        }
        raw.0.write_all(&100u32.to_be_bytes()).unwrap();
        raw.0.write_all(b"{\"id\": 1").unwrap();
        raw.0.shutdown(Shutdown::Write).unwrap();
        assert!(raw.closed().is_empty());
        still_serving(&server);
    }

    // Oversized: one byte over the limit, and a 4 GiB length prefix.
    let limit = theater::server::MAX_FRAME_BYTES as u32;
    for (length, before_hello) in [(limit + 1, false), (u32::MAX, false), (u32::MAX, true)] {
        let mut raw = Raw::connect(&server.addr);
        if !before_hello {
            raw.hello(None);
        }
        raw.0.write_all(&length.to_be_bytes()).unwrap();
        raw.0.write_all(&[b'x'; 4096]).unwrap();
        let frames = raw.closed();
        assert!(
            frames
                .iter()
                .all(|f| f["error"]["kind"] == "frame_too_large"),
            "{frames:?}"
        );
        still_serving(&server);
    }

    // Other clients were served throughout.
    assert_eq!(server.json(&["list"])["actors"], json!([]));
}

/// Opens `count` connections on threads that each send `opening` (a write
/// the server may stop taking), and hands back the open sockets.
fn flood(
    server: &Server,
    count: usize,
    opening: impl Fn(&mut Raw) + Send + Sync + 'static,
) -> Vec<Raw> {
    let opening = std::sync::Arc::new(opening);
    let threads: Vec<_> = (0..count)
        .map(|_| {
            let (addr, opening) = (server.addr.clone(), opening.clone());
            std::thread::spawn(move || {
                let mut raw = Raw::connect(&addr);
                raw.0
                    .set_write_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                opening(&mut raw);
                raw
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn memory_stays_bounded_under_floods_of_large_frames() {
    const MIB: u64 = 1024;
    let server = Server::start_with_args(Some("s3cret"), &["--frame-timeout-ms", "60000"]);
    still_serving(&server);
    let (before, _) = server.memory_kib();
    let announce = (theater::server::MAX_FRAME_BYTES as u32).to_be_bytes();

    // 256 connections announce a 16 MiB hello and send 2 MiB of it.
    let hellos = flood(&server, 256, move |raw| {
        let _ = raw.0.write_all(&announce);
        let _ = raw.0.write_all(&vec![b' '; 2 << 20]);
    });
    still_serving(&server);
    let (_, after_hellos) = server.memory_kib();

    // 32 clients with the token announce 16 MiB frames and send all but
    // the last byte: twice the size of the shared budget, and then some.
    let frames = flood(&server, 32, move |raw| {
        raw.hello(Some("s3cret"));
        let _ = raw.0.write_all(&announce);
        let _ = raw.0.write_all(&vec![b' '; (16 << 20) - 1]);
    });
    still_serving(&server);
    let (now, peak) = server.memory_kib();
    eprintln!(
        "server memory (VmRSS): {} MiB before; peak {} MiB after 256 16-MiB hellos; {} MiB now and {} MiB peak with 32 stalled 16-MiB frames of clients with the token",
        before / MIB,
        after_hellos / MIB,
        now / MIB,
        peak / MIB
    );
    assert!(
        after_hellos - before < 32 * MIB,
        "the hello flood took {} MiB",
        (after_hellos - before) / MIB
    );
    // The shared budget (64 MiB) and some slack.
    assert!(
        peak - before < 128 * MIB,
        "the frame flood took {} MiB",
        (peak - before) / MIB
    );
    drop((hellos, frames));
}

#[test]
fn a_server_on_all_interfaces_needs_a_token_or_insecure() {
    let home = support::home();
    let out = Command::new(BIN)
        .args(["server", "--listen", "0.0.0.0:0", "--home"])
        .arg(home.path())
        .env_remove("THEATER_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!stdout(&out).contains("listening"), "{}", stdout(&out));
    let message = stderr(&out);
    assert!(
        message.contains("refusing to listen on 0.0.0.0:")
            && message.contains("--token")
            && message.contains("--insecure"),
        "{message}"
    );

    let mut insecure = Command::new(BIN)
        .args(["server", "--listen", "0.0.0.0:0", "--insecure", "--home"])
        .arg(home.path())
        .env_remove("THEATER_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(insecure.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    insecure.kill().unwrap();
    let out = insecure.wait_with_output().unwrap();
    assert!(line.starts_with("listening on 0.0.0.0:"), "{line}");
    let warning = stderr(&out);
    assert!(warning.contains("WITHOUT A TOKEN"), "{warning}");
}

#[test]
fn start_takes_manifest_text_and_prefixes_must_be_unambiguous() {
    let server = Server::start();
    let dir = actors_dir().join("counter");
    let mut raw = Raw::connect(&server.addr);
    raw.hello(None);
    let text = "name = \"inline-counter\"\ncomponent_path = \"counter.wasm\"\n";
    raw.send_json(&json!({
        "id": 1, "op": "start", "manifest": text,
        "base_dir": dir.display().to_string(), "state": { "count": 7 }
    }));
    let answer = raw.recv().unwrap();
    assert_eq!(answer["id"], 1);
    assert_eq!(answer["ok"]["name"], "inline-counter", "{answer}");
    let id = answer["ok"]["actor"].as_str().unwrap().to_owned();
    raw.send_json(&json!({ "id": 2, "op": "request", "actor": &id[..8], "message": {} }));
    assert_eq!(raw.recv().unwrap()["ok"]["reply"]["count"], 7);

    // A start without any manifest is refused.
    raw.send_json(&json!({ "id": 3, "op": "start" }));
    assert_eq!(raw.recv().unwrap()["error"]["kind"], "bad_request");

    // Start actors until two share a first hex digit; that prefix is ambiguous.
    let mut ids = vec![id];
    let prefix = loop {
        let next = server.start_actor("counter");
        if let Some(twin) = ids.iter().find(|i| i[..1] == next[..1]) {
            break twin[..1].to_owned();
        }
        ids.push(next);
    };
    raw.send_json(&json!({ "id": 4, "op": "state", "actor": prefix }));
    let answer = raw.recv().unwrap();
    assert_eq!(answer["error"]["kind"], "ambiguous_actor", "{answer}");
    let out = server.cli(&["state", &prefix]);
    assert_refused(&out, 1, "give more characters");
}

#[test]
fn restart_keeps_state_and_tree_shows_supervision() {
    let server = Server::start();
    let counter = server.json(&["start", &manifest("counter")]);
    let short = counter["short"].as_str().unwrap().to_owned();
    server.ok(&["message", "request", &short, "{}"]);
    server.ok(&["message", "send", &short, r#"{"add": 4}"#]);
    let text = server.ok(&["restart", &short]);
    assert!(text.contains(&format!("restarted {short}")), "{text}");
    let restarted = server.json(&["restart", &short]);
    assert_eq!(restarted["restarted"], true);
    assert_eq!(server.json(&["state", &short])["state"]["count"], 4);

    let parent = server.json(&["start", &manifest("supervisor")]);
    let parent_short = parent["short"].as_str().unwrap().to_owned();
    let child = server.json(&[
        "message",
        "request",
        &parent_short,
        r#"{"spawn": "../echo/manifest.toml"}"#,
    ]);
    let child_id = child["reply"].as_str().unwrap().to_owned();

    let tree = server.json(&["tree"]);
    let roots = tree["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 2, "{tree}");
    let supervisor = roots.iter().find(|r| r["name"] == "supervisor").unwrap();
    assert_eq!(supervisor["children"][0]["id"], child_id.as_str());
    assert_eq!(supervisor["children"][0]["name"], "echo");
    let text = server.ok(&["tree"]);
    assert!(
        text.contains(&format!("\n  {}  echo", &child_id[..8])),
        "{text}"
    );
}

#[test]
fn logs_show_only_log_lines() {
    let server = Server::start();
    let echo = server.json(&["start", &manifest("echo")]);
    let short = echo["short"].as_str().unwrap().to_owned();
    server.ok(&["message", "request", &short, r#""hi""#]);
    server.ok(&["message", "request", &short, r#""hello""#]);
    let text = server.ok(&["logs", &short]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("echo: 4 bytes") && lines[1].contains("echo: 7 bytes"),
        "{text}"
    );
    let last = server.json(&["logs", &short, "--limit", "1"]);
    let events = last["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_type"], "log");
    let calls = server.json(&["events", &short, "--type", "call"]);
    assert_eq!(calls["events"].as_array().unwrap().len(), 2);
}

#[test]
fn start_count_starts_many() {
    let server = Server::start();
    let started = server.json(&["start", &manifest("counter"), "--count", "5"]);
    assert_eq!(started["actors"].as_array().unwrap().len(), 5);
    let text = server.ok(&["start", &manifest("counter"), "--count", "3"]);
    assert!(text.contains("started 3 counter actors"), "{text}");
    assert_eq!(
        server.json(&["list"])["actors"].as_array().unwrap().len(),
        8
    );
}

/// The chain events of an actor, oldest first.
fn chain(server: &Server, actor: &str) -> Vec<Value> {
    let events = server.json(&["events", actor]);
    events["events"].as_array().unwrap().clone()
}

fn hash(event: &Value) -> String {
    event["hash"].as_str().unwrap().to_owned()
}

fn count(server: &Server, actor: &str) -> i64 {
    let state = server.json(&["state", actor]);
    state["state"]["count"].as_i64().unwrap()
}

#[test]
fn replay_fork_and_revert_take_states_from_the_chain() {
    let server = Server::start();
    let id = server.start_actor("counter");
    let short = id[..8].to_owned();
    for n in [1, 2, 3] {
        server.ok(&["message", "send", &short, &format!(r#"{{"add": {n}}}"#)]);
    }
    assert_eq!(count(&server, &short), 6);
    // actor-init, then three sends leaving counts 1, 3 and 6.
    let events = chain(&server, &id);
    assert_eq!(events.len(), 4);

    let text = server.ok(&["replay", &short]);
    assert_eq!(
        text.trim(),
        format!("replayed 4 calls over 4 events of actor {short}: every state matches")
    );
    let replay = server.json(&["replay", &id]);
    assert_eq!(replay["actor"], id.as_str());
    assert_eq!(replay["matched"], true);
    assert_eq!(replay["calls"], 4, "init and the three sends");
    assert_eq!(replay["events"], 4);
    assert_eq!(replay["divergence"], Value::Null);
    assert_eq!(replay["stopped_at"], Value::Null);
    assert_eq!(
        replay["state_sha256"], events[3]["data"]["state"]["sha256"],
        "{replay}"
    );

    // A fork from the second send, named by the prefix `events` prints.
    let at = hash(&events[2]);
    let fork = server.json(&["fork", &short, "--at", &at[..12]]);
    let forked = fork["actor"].as_str().unwrap().to_owned();
    assert_ne!(forked, id);
    assert_eq!(fork["short"], &forked[..8]);
    assert_eq!(fork["name"], "counter");
    assert_eq!(fork["forked_from"], json!({ "actor": id, "event": at }));
    assert_eq!(count(&server, &forked), 3);
    let first = &chain(&server, &forked)[0];
    assert_eq!(first["event_type"], "actor-init");
    assert_eq!(
        first["data"]["forked_from"]["event"],
        at.as_str(),
        "{first}"
    );
    // The fork goes on on its own.
    server.ok(&["message", "send", &forked, r#"{"add": 10}"#]);
    assert_eq!(count(&server, &forked), 13);
    assert_eq!(count(&server, &short), 6);
    let first_send = hash(&events[1]);
    let text = server.ok(&["fork", &id, "--at", &first_send]);
    assert!(
        text.starts_with("forked counter ")
            && text.contains(&format!(
                "from actor {short} at event {}",
                &first_send[..12]
            )),
        "{text}"
    );
    let only = server.ok(&["fork", &id, "--at", &hash(&events[0]), "--id-only"]);
    assert_eq!(count(&server, only.trim()), 0);

    // Revert to the first send: the state goes back, the chain grows.
    let to = hash(&events[1]);
    let text = server.ok(&["revert", &short, "--to", &to]);
    assert_eq!(
        text.trim_end(),
        format!(
            "reverted {short} to the state of event {}, recorded as event {}",
            &to[..12],
            &hash(&chain(&server, &id)[4])[..12]
        )
    );
    assert_eq!(count(&server, &short), 1);
    let events = chain(&server, &id);
    assert_eq!(events.len(), 5);
    assert_eq!(events[4]["event_type"], "revert");
    assert_eq!(events[4]["data"]["to"], to.as_str());
    assert_eq!(events[4]["data"]["index"], 1);
    server.ok(&["message", "send", &short, r#"{"add": 100}"#]);
    assert_eq!(count(&server, &short), 101);
    let revert = server.json(&["revert", &short, "--to", &hash(&events[3])[..8]]);
    assert_eq!(revert["actor"], id.as_str());
    assert_eq!(revert["to"], hash(&events[3]).as_str());
    assert_eq!(count(&server, &short), 6);
    let events = chain(&server, &id);
    assert_eq!(revert["event"], hash(events.last().unwrap()).as_str());
    let text = server.ok(&["verify", &short]);
    assert!(text.contains("chain verified: 7 events"), "{text}");
    // Replay follows the reverts too.
    assert_eq!(server.json(&["replay", &short])["matched"], true);

    // A stopped actor can still be replayed and forked by prefix, not reverted.
    server.ok(&["stop", &short]);
    assert_eq!(server.json(&["replay", &short])["matched"], true);
    let fork = server.json(&["fork", &short, "--at", &hash(&events[5])]);
    assert_eq!(count(&server, fork["actor"].as_str().unwrap()), 101);
    let out = server.cli(&["revert", &short, "--to", &to]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is not running") && stderr(&out).contains("theater fork"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn replay_exits_3_when_the_component_diverges_and_1_when_it_stops() {
    let server = Server::start();
    // A counter whose component file will be swapped for another one; both
    // keep the initial state as it is, so they part at the first send.
    let dir = tempfile::tempdir().unwrap();
    let component = dir.path().join("component.wasm");
    std::fs::copy(actors_dir().join("counter/counter.wasm"), &component).unwrap();
    let swapped = dir.path().join("manifest.toml");
    std::fs::write(
        &swapped,
        "name = \"counter\"\ncomponent_path = \"component.wasm\"\ninit_state = '{\"count\": 0}'\n\n[[handlers]]\ntype = \"runtime\"\nconfig = {}\n",
    )
    .unwrap();
    let id = server.ok(&["start", swapped.to_str().unwrap(), "--id-only"]);
    let id = id.trim();
    server.ok(&["message", "send", id, r#"{"add": 1}"#]);
    assert_eq!(count(&server, id), 1);
    assert_eq!(server.json(&["replay", id])["matched"], true);
    // The echo actor keeps the message itself as its state.
    std::fs::copy(actors_dir().join("echo/echo.wasm"), &component).unwrap();
    let out = server.cli(&["replay", id]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    let send = hash(&chain(&server, id)[1]);
    assert!(
        stderr(&out).contains(&format!(
            "diverged at event 1 ({}) in handle-send: state sha256",
            &send[..12]
        )),
        "{}",
        stderr(&out)
    );
    let out = server.cli(&["replay", id, "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let replay: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(replay["matched"], false);
    assert_eq!(replay["stopped_at"], Value::Null);
    assert_eq!(replay["divergence"]["index"], 1);
    assert_eq!(replay["divergence"]["hash"], send.as_str());
    assert_eq!(
        replay["divergence"]["function"],
        "ntwk:theater/message-server-client.handle-send"
    );
    assert!(
        replay["divergence"]["reason"]
            .as_str()
            .unwrap()
            .contains("recorded"),
        "{replay}"
    );

    // `"chain"` makes the echo actor call `runtime.get-chain`, which no
    // chain records: replay cannot go past that call.
    let echo = server.start_actor("echo");
    server.ok(&["message", "request", &echo, r#""hi""#]);
    server.ok(&["message", "request", &echo, r#""chain""#]);
    let out = server.cli(&["replay", &echo]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("stopped at event") && stderr(&out).contains("get-chain"),
        "{}",
        stderr(&out)
    );
    let out = server.cli(&["replay", &echo, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let replay: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(replay["matched"], false);
    assert_eq!(replay["divergence"], Value::Null);
    assert!(replay["stopped_at"]["index"].is_u64(), "{replay}");
    // Nor can a fork rebuild the state that call left, once a later call
    // changed it; the newest state is stored, so a fork at the head works.
    server.ok(&["message", "request", &echo, r#""again""#]);
    let events = chain(&server, &echo);
    let chain_call = hash(&events[events.len() - 2]);
    let out = server.cli(&["fork", &echo, "--at", &chain_call]);
    assert_refused(&out, 1, "cannot be rebuilt");
    let head = hash(events.last().unwrap());
    server.ok(&["fork", &echo, "--at", &head]);
}

#[test]
fn history_commands_refuse_bad_input_and_the_server_goes_on() {
    let server = Server::start();
    let id = server.start_actor("counter");
    let short = id[..8].to_owned();
    server.ok(&["message", "send", &short, r#"{"add": 5}"#]);
    let other = server.start_actor("counter");
    let foreign = hash(&chain(&server, &other)[0]);
    let before = chain(&server, &id);
    let known = hash(&before[1]);

    let refused = |args: &[&str], says: &str| {
        let out = server.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    };
    let unknown = "no actor `0000dead` is running or in this server's log";
    refused(&["replay", "0000dead"], unknown);
    refused(&["fork", "0000dead", "--at", &known], unknown);
    refused(&["revert", "0000dead", "--to", &known], unknown);
    refused(&["replay", "not-an-id"], "is not an actor id");
    let malformed = "does not name an event: give its hash, 64 hex digits";
    refused(&["fork", &short, "--at", "xyz"], malformed);
    refused(&["fork", &short, "--at", &known[..7]], malformed);
    refused(&["revert", &short, "--to", &format!("{known}0")], malformed);
    let absent = format!("no event {foreign} in the chain of actor {id}");
    refused(&["fork", &short, "--at", &foreign], &absent);
    refused(&["revert", &short, "--to", &foreign], &absent);
    refused(
        &["revert", &short, "--to", &"0".repeat(64)],
        "no event 0000",
    );
    // Usage errors.
    assert_eq!(server.cli(&["fork", &short]).status.code(), Some(2));
    assert_eq!(server.cli(&["revert", &short]).status.code(), Some(2));
    assert_eq!(
        server
            .cli(&["fork", &short, "--at", &known, "--id-only", "--json"])
            .status
            .code(),
        Some(2)
    );

    // The error kinds a client sees.
    let mut raw = Raw::connect(&server.addr);
    raw.hello(None);
    let requests = [
        (
            json!({ "op": "replay", "actor": "0000dead" }),
            "unknown_actor",
        ),
        (
            json!({ "op": "fork", "actor": short, "at": "xyz" }),
            "bad_request",
        ),
        (
            json!({ "op": "fork", "actor": short, "at": foreign }),
            "unknown_event",
        ),
        (json!({ "op": "revert", "actor": short }), "bad_request"),
    ];
    for (i, (mut request, kind)) in requests.into_iter().enumerate() {
        request["id"] = i.into();
        raw.send_json(&request);
        let answer = raw.recv().unwrap();
        assert_eq!(answer["id"], i, "{answer}");
        assert_eq!(answer["error"]["kind"], kind, "{request}: {answer}");
    }

    // Nothing changed, and the server goes on serving.
    assert_eq!(chain(&server, &id), before);
    assert_eq!(count(&server, &short), 5);
    assert_eq!(
        server.json(&["list"])["actors"].as_array().unwrap().len(),
        2
    );
    assert_eq!(server.json(&["replay", &short])["matched"], true);
    still_serving(&server);
}

/// A home's chain database belongs to one process: `theater run` on the
/// home of a running server is refused, saying why, and the server goes on.
#[test]
fn run_on_the_home_of_a_running_server_is_refused() {
    let server = Server::start();
    let out = Command::new(BIN)
        .args(["run", &manifest("counter"), "--request", "{}", "--home"])
        .arg(server.home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("chains.redb"), "{text}");
    assert!(
        text.contains("give each running Theater its own home"),
        "{text}"
    );
    server.ok(&["list"]);
}

/// Runs `theater` with its stdout closed before it writes anything.
fn with_stdout_closed(server: &Server, args: &[&str]) -> Output {
    let mut child = server
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("theater runs");
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

/// Every command, given `--json`: with stdout closed early it ends quietly
/// with its usual exit code; given a bad id (or another bad argument) it
/// exits 1 and prints either nothing or a JSON error with a stable kind.
#[test]
fn every_command_ends_quietly_in_a_closed_pipe_and_fails_in_json() {
    let server = Server::start();
    let id = server.start_actor("counter");
    let head = hash(chain(&server, &id).last().unwrap());
    let counter = manifest("counter");
    let work = tempfile::tempdir().unwrap();
    let chain_file = work.path().join("chain.json");
    let chain_out = chain_file.to_str().unwrap();
    let created = work.path().join("made");
    let messenger = server.start_actor("messenger");
    let run_home = work.path().join("run-home");
    let run_home = run_home.to_str().unwrap();
    let good: Vec<(Vec<&str>, i32)> = vec![
        (
            vec![
                "run",
                &counter,
                "--send",
                r#"{"add":1}"#,
                "--chain-out",
                chain_out,
                "--home",
                run_home,
            ],
            0,
        ),
        (vec!["verify", &id], 0),
        (vec!["start", &counter], 0),
        (vec!["restart", &id], 0),
        (vec!["tree"], 0),
        (vec!["list", "--all"], 0),
        (vec!["state", &id], 0),
        (vec!["events", &id], 0),
        (vec!["logs", &id], 0),
        (vec!["inspect", &id], 0),
        (vec!["replay", &id], 0),
        (vec!["fork", &id, "--at", &head], 0),
        (vec!["message", "send", &id, r#"{"add":1}"#], 0),
        (vec!["message", "request", &id, "{}"], 0),
        (vec!["channel", "open", &messenger, "1"], 0),
        (vec!["subscribe", &id], 0),
        (vec!["validate", &counter], 0),
        (
            vec!["create", "made", "--dir", created.to_str().unwrap()],
            0,
        ),
        (vec!["revert", &id, "--to", &head], 0),
        (vec!["stop", &id], 0),
    ];
    for (args, code) in &good {
        let mut args = args.clone();
        args.push("--json");
        let out = with_stdout_closed(&server, &args);
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {}", stderr(&out));
    }
    for args in [vec!["completions", "bash"], vec!["events", &id]] {
        let out = with_stdout_closed(&server, &args);
        assert!(!stderr(&out).contains("panicked"), "{args:?}");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
    }
    assert!(chain_file.exists(), "`run` still wrote its chain");

    let bad = "0000dead";
    let failing: Vec<Vec<&str>> = vec![
        vec!["run", "/no/such/manifest.toml", "--send", "{}"],
        vec!["verify", bad],
        vec!["verify", "--file", "/no/such/chain.json"],
        vec!["start", "/no/such/manifest.toml"],
        vec!["stop", bad],
        vec!["restart", bad],
        vec!["state", bad],
        vec!["events", bad],
        vec!["logs", bad],
        vec!["inspect", bad],
        vec!["replay", bad],
        vec!["fork", bad, "--at", &head],
        vec!["revert", bad, "--to", &head],
        vec!["message", "send", bad, "{}"],
        vec!["message", "request", bad, "{}"],
        vec!["channel", "open", bad, "{}"],
        vec!["subscribe", bad],
        vec!["validate", "/no/such/manifest.toml"],
        vec!["create", "Bad_Name"],
        vec!["build", "/no/such/dir"],
        vec!["dev", "/no/such/dir"],
    ];
    for args in &failing {
        let mut args = args.clone();
        args.push("--json");
        let out = server.cli(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error: "),
            "{args:?}: {}",
            stderr(&out)
        );
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&out)));
        let kind = report["error"]["kind"].as_str().unwrap_or_default();
        assert!(
            kind.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !kind.is_empty(),
            "{args:?}: {report}"
        );
        assert!(report["error"]["message"].is_string(), "{args:?}: {report}");
    }
    let out = server.cli(&["state", bad, "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["error"]["kind"], "unknown_actor");
    let out = server.cli(&["list", "--json", "--server", "127.0.0.1:1"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["error"]["kind"], "no_server");
    // Usage errors are clap's: exit 2, nothing on stdout.
    let out = server.cli(&["state", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

/// The actor behind a template whose `init` logs replays from its first
/// event, `init` included; a send to an actor without `handle-send` is
/// refused, not lost.
#[test]
fn replay_covers_init_and_a_send_nobody_takes_is_refused() {
    let server = Server::start();
    // compat-basic logs in `init`: its chain begins with that log line.
    let basic = server.start_actor("compat-basic");
    server.ok(&["message", "send", &basic, "{}"]);
    assert_eq!(chain(&server, &basic)[0]["event_type"], "log");
    let replay = server.json(&["replay", &basic]);
    assert_eq!(replay["matched"], true, "{replay}");
    assert_eq!(replay["calls"], 2, "init and the send: {replay}");
    let fork = server.json(&["fork", &basic, "--at", &hash(&chain(&server, &basic)[0])]);
    assert!(fork["actor"].is_string(), "{fork}");

    let minimal = server.start_actor("minimal");
    let out = server.cli(&["message", "send", &minimal, "{}"]);
    assert_eq!(out.status.code(), Some(1));
    assert_says(&out, "handle-send");
    let out = server.cli(&["message", "send", &minimal, "{}", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["error"]["kind"], "actor_error", "{report}");
    assert_eq!(
        chain(&server, &minimal).len(),
        1,
        "nothing recorded, nothing lost"
    );
}

/// `validate` needs no home, store or port: it works beside a server that
/// holds the home, writes nothing there, and does not bind the port the
/// actor asks for.
#[test]
fn validate_touches_no_home_store_or_port() {
    let server = Server::start();
    let listing = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing(server.home.path());
    // A port held here: an actor that binds it at `init` would fail.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let hello = actors_dir().join("http-hello/http-hello.wasm");
    let manifest = dir.path().join("manifest.toml");
    std::fs::write(
        &manifest,
        format!(
            "name = \"hello\"\ncomponent_path = {:?}\ninit_state = '{{\"port\": {port}}}'\n\n[[handlers]]\ntype = \"http-framework\"\nconfig = {{}}\n\n[[handlers]]\ntype = \"store\"\nconfig = {{}}\n",
            hello.display().to_string()
        ),
    )
    .unwrap();
    let report = server.json(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(listing(server.home.path()), before, "the home is untouched");
    let fresh = tempfile::tempdir().unwrap();
    let out = server
        .command(&["validate", manifest.to_str().unwrap()])
        .env("THEATER_HOME", fresh.path().join("home"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!fresh.path().join("home").exists(), "no home was made");
    drop(held);
}

/// `channel open` sends each line of its input and, at the end of it,
/// closes the channel once the actor has handled them, and ends.
#[test]
fn channel_open_ends_at_the_end_of_its_input() {
    let server = Server::start();
    let messenger = server.start_actor("messenger");
    let mut open = server.spawn(&["channel", "open", &messenger, r#""x""#]);
    let channel = open.line().split_whitespace().nth(1).unwrap().to_owned();
    let mut stdin = open.stdin.take().unwrap();
    writeln!(stdin, r#"{{"n": 7}}"#).unwrap();
    drop(stdin);
    assert_eq!(open.line_with("channel closed"), "channel closed");
    assert!(open.wait().success());
    let state = server.json(&["state", &messenger]);
    assert!(
        state["state"]["received"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["msg"] == json!({ "n": 7 })),
        "{state}"
    );
    assert!(
        state["state"]["closed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == channel.as_str()),
        "{state}"
    );
}

/// `verify --home` on a home a server holds says why, once.
#[test]
fn a_home_in_use_is_named_once() {
    let server = Server::start();
    let out = server.cli(&["verify", "--home", server.home.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let error = stderr(&out);
    assert_eq!(error.matches("Database already open").count(), 1, "{error}");
}

/// Text `events` says why a call failed; `list --all` shows stopped
/// actors, whose `state` and `inspect` come from their stored record;
/// `start` takes an actor's directory.
#[test]
fn stopped_actors_stay_visible_and_failures_say_why() {
    let server = Server::start();
    let counter = support::manifest("counter");
    let id = server.ok(&[
        "start",
        counter.parent().unwrap().to_str().unwrap(),
        "--id-only",
    ]);
    let id = id.trim().to_owned();
    server.ok(&["message", "send", &id, r#"{"sub": 1}"#]);
    server.ok(&["message", "send", &id, r#"{"add": 4}"#]);
    let events = server.ok(&["events", &id]);
    let failed = events.lines().find(|l| l.contains("call-error")).unwrap();
    assert!(
        failed.contains("handle-send failed: actor-error — "),
        "{failed}"
    );
    assert!(failed.len() > failed.find(" — ").unwrap() + 5, "{failed}");

    server.ok(&["stop", &id]);
    let list = server.ok(&["list"]);
    assert!(!list.contains(&id[..8]), "{list}");
    let all = server.ok(&["list", "--all"]);
    assert!(
        all.lines()
            .any(|l| l.starts_with(&id[..8]) && l.contains("stopped")),
        "{all}"
    );
    assert_eq!(server.ok(&["state", &id]).trim(), r#"{"count":4}"#);
    let inspect = server.json(&["inspect", &id]);
    assert_eq!(inspect["status"], "stopped");
    assert_eq!(inspect["name"], "counter");
    assert_eq!(inspect["chain"]["events"], 3);
    assert!(
        server
            .ok(&["inspect", &id])
            .contains("status:      stopped")
    );
}

/// Actors of the mid/late-2025 era through the server: built against
/// `theater:simple`, started from a 2025 manifest, stopping themselves, and
/// serving a catch-all route on loopback.
#[test]
fn actors_of_2025_run_through_the_server() {
    let server = Server::start();

    // A 2025 manifest with inline handler settings; `theater:simple` exports.
    let report = server.json(&["validate", &manifest("simple-timer")]);
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["handlers"], json!(["message-server", "timing"]));
    let expected = report["exports"]["expected"].as_array().unwrap();
    assert!(
        expected.iter().any(|e| e["function"]
            == "theater:simple/message-server-client.handle-request"
            && e["found"] == true),
        "{expected:?}"
    );
    let timer = server.start_actor("simple-timer");
    let reply = server.ok(&["message", "request", &timer, r#"{"nap": 2}"#]);
    assert!(reply.contains(r#""naps":1"#), "{reply}");

    // Unknown keys of a 2025 manifest are warnings, as in today's form.
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("manifest.toml");
    let text = format!(
        "name = \"timer\"\ncomponent = {:?}\nauthor = \"someone\"\n[[handler]]\ntype = \"message-server\"\n[[handler]]\ntype = \"timing\"\nmax_sleep_duration = 10\n",
        actors_dir()
            .join("simple-timer/simple-timer.wasm")
            .display()
            .to_string()
    );
    std::fs::write(&odd, text).unwrap();
    let report = server.json(&["validate", odd.to_str().unwrap()]);
    assert_eq!(report["valid"], true, "{report}");
    let warnings = report["warnings"].as_array().unwrap();
    assert!(
        warnings.len() == 1
            && warnings[0]
                .as_str()
                .unwrap()
                .ends_with(":3: unused manifest key `author`"),
        "{warnings:?}"
    );
    let started = server.json(&["start", odd.to_str().unwrap()]);
    assert_eq!(started["warnings"], report["warnings"]);

    // An actor that stops itself in `init`: gone from `list`, and shown as
    // stopped by itself by `list --all` and `inspect`.
    let quitter = server.start_actor("simple-quitter");
    let short = &quitter[..8];
    for _ in 0..600 {
        let running = server.json(&["list"]);
        if !running.to_string().contains(&quitter) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!server.ok(&["list"]).contains(short));
    let all = server.json(&["list", "--all"]);
    let entry = all["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == quitter.as_str())
        .unwrap_or_else(|| panic!("{all}"));
    assert_eq!(entry["status"], "stopped by itself");
    assert_eq!(entry["shutdown_data"], "all done");
    let text = server.ok(&["list", "--all"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with(short) && l.contains("stopped by itself")),
        "{text}"
    );
    let text = server.ok(&["inspect", short]);
    assert!(text.contains("status:      stopped by itself"), "{text}");
    assert!(text.contains(r#"data:        "all done""#), "{text}");
    let inspected = server.json(&["inspect", &quitter]);
    assert_eq!(inspected["status"], "stopped by itself");
    assert_eq!(inspected["name"], "simple-quitter");
    assert_eq!(inspected["chain"]["events"], 3);
    assert_eq!(server.json(&["verify", &quitter])["verified"], true);

    // An HTTP actor asking for 0.0.0.0 serves on loopback; its catch-all
    // route reaches documents whose names hold slashes.
    let state = r#"{"host": "0.0.0.0", "port": 0, "store": "docs"}"#;
    let docs = server.ok(&[
        "start",
        &manifest("simple-docs"),
        "--state",
        state,
        "--id-only",
    ]);
    let docs = docs.trim();
    let state = server.json(&["state", docs]);
    let port = state["state"]["port"].as_u64().unwrap();
    let put = http_exchange(port, "PUT /docs/a/b/c HTTP/1.1", "text");
    assert!(put.starts_with("HTTP/1.1 200"), "{put}");
    let get = http_exchange(port, "GET /docs/a/b/c HTTP/1.1", "");
    assert!(get.ends_with("\r\n\r\ntext"), "{get}");
    let log = std::fs::read_to_string(server.home.path().join("server.log")).unwrap();
    assert!(log.contains("it listens on 127.0.0.1 instead"), "{log}");
    still_serving(&server);
}

/// One HTTP/1.1 exchange with 127.0.0.1:`port`; the whole response.
fn http_exchange(port: u64, request_line: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port as u16)).unwrap();
    write!(
        stream,
        "{request_line}\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
