//! `theater create` templates, built with `theater build` and run with
//! `theater run` and `theater dev`, as a new user would.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_theater");
/// Longest wait for a line from a long-running command (a build included).
const LINE_WAIT: Duration = Duration::from_secs(600);

/// Builds share one target directory across tests and test runs, as the
/// actors of one user share the home's.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target")
}

fn theater(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("THEATER_HOME", home)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("THEATER_SERVER")
        .stdin(Stdio::null());
    command
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = theater(home, args).output().unwrap();
    assert!(
        out.status.success(),
        "theater {args:?}:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `theater create NAME --template TEMPLATE` and `theater build`, in a
/// fresh directory; returns the actor's directory.
fn created(work: &Path, name: &str, template: &str) -> PathBuf {
    let dir = work.join(name);
    let home = work.join("home");
    let made = ok(
        &home,
        &[
            "create",
            name,
            "--template",
            template,
            "--dir",
            dir.to_str().unwrap(),
        ],
    );
    assert!(
        made.contains(&format!("theater run {}", dir.display())),
        "{made}"
    );
    let built: Value =
        serde_json::from_str(&ok(&home, &["build", dir.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(
        Path::new(built["component"].as_str().unwrap()),
        dir.join(format!("{name}.wasm"))
    );
    let report: Value =
        serde_json::from_str(&ok(&home, &["validate", dir.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(report["valid"], true, "{report}");
    dir
}

fn run(home: &Path, dir: &Path, messages: &[(&str, &str)]) -> Output {
    let mut args = vec!["run".to_owned(), dir.display().to_string(), "--json".into()];
    for (flag, message) in messages {
        args.push(format!("--{flag}"));
        args.push((*message).to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    theater(home, &args).output().unwrap()
}

#[test]
fn the_message_template_builds_runs_and_replays() {
    let work = tempfile::tempdir().unwrap();
    let dir = created(work.path(), "greeter", "message");
    let home = work.path().join("home");
    let out = run(
        &home,
        &dir,
        &[("send", r#"{"hello": "world"}"#), ("request", "{}")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["replies"][1]["reply"],
        json!({ "messages": 1, "last": { "hello": "world" } })
    );
    assert_eq!(report["chain"]["verified"], true);
}

#[test]
fn the_supervisor_template_restarts_its_crashed_child() {
    let work = tempfile::tempdir().unwrap();
    let dir = created(work.path(), "boss", "supervisor");
    assert!(
        dir.join("child/child.wasm").exists(),
        "the child is built too"
    );
    let home = work.path().join("home");
    let out = run(
        &home,
        &dir,
        &[
            ("request", r#"{"ping": 1}"#),
            ("send", r#""crash""#),
            ("request", r#"{"ping": 2}"#),
            ("request", r#"{"status": null}"#),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let replies = &report["replies"];
    assert_eq!(replies[0]["reply"], json!({ "pong": 1, "pings": 1 }));
    // Restarted after the crash, with the state it had.
    assert_eq!(replies[2]["reply"], json!({ "pong": 2, "pings": 2 }));
    let status = &replies[3]["reply"];
    assert_eq!(status["errors"].as_array().unwrap().len(), 1, "{status}");
    assert!(
        status["errors"][0][1].as_str().unwrap().contains("trapped"),
        "{status}"
    );
    assert_eq!(status["children"], json!([status["child"]]));
}

/// A `theater run` that runs until interrupted; killed when dropped.
struct Running {
    /// Killed when the test is done with it.
    _child: support::Killed,
    /// The lines of its output that tests read.
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn line_with(&self, text: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(LINE_WAIT)
                .unwrap_or_else(|_| panic!("no line with {text:?}"));
            if line.contains(text) {
                return line;
            }
        }
    }
}

fn lines(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// One HTTP/1.1 request; the response's status and body.
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[test]
fn the_http_template_serves_stores_and_announces_notes() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let work = tempfile::tempdir().unwrap();
    let dir = created(work.path(), "notes", "http");
    std::fs::write(dir.join("init.json"), r#"{"port": 0}"#).unwrap();
    let home = work.path().join("home");
    let mut child = theater(&home, &["run", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let running = Running {
        lines: lines(child.stderr.take().unwrap()),
        _child: support::Killed(child),
    };
    let line = running.line_with("notes on http://127.0.0.1:");
    let port: u16 = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .parse()
        .unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = format!("ws://127.0.0.1:{port}/ws");
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        // Once `ping` is answered the actor knows the connection.
        socket.send(Message::text("ping")).await.unwrap();
        let pong = socket.next().await.unwrap().unwrap();
        assert_eq!(pong.to_text().unwrap(), "pong");
        let (status, body) =
            tokio::task::spawn_blocking(move || http(port, "POST", "/notes", "buy milk"))
                .await
                .unwrap();
        assert_eq!(status, 201, "{body}");
        let added: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(added["id"], 1);
        let news = tokio::time::timeout(LINE_WAIT, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let news: Value = serde_json::from_str(news.to_text().unwrap()).unwrap();
        assert_eq!(news, json!({ "note": 1, "size": 8 }));
    });
    assert_eq!(
        http(port, "GET", "/notes/1", ""),
        (200, "buy milk".to_owned())
    );
    let (status, list) = http(port, "GET", "/notes", "");
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["size"], 8, "{list}");
    assert_eq!(http(port, "GET", "/notes/9", "").0, 404);
}

/// `theater dev` rebuilds on a change and restarts the actor with the
/// state it had.
#[test]
fn dev_rebuilds_on_change_and_keeps_the_state() {
    let work = tempfile::tempdir().unwrap();
    let dir = created(work.path(), "live", "message");
    let home = work.path().join("home");
    let mut child = theater(
        &home,
        &["dev", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let running = Running {
        lines: lines(child.stdout.take().unwrap()),
        _child: support::Killed(child),
    };
    let started = running.line_with("started live (");
    let actor = started.split(['(', ')']).nth(1).unwrap().to_owned();
    let server = started
        .rsplit("--server ")
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let client = |args: &[&str]| {
        let mut args = args.to_vec();
        args.extend(["--server", &server]);
        ok(&home, &args)
    };
    client(&["message", "send", &actor, r#"{"n": 1}"#]);

    let source = dir.join("src/lib.rs");
    let code = std::fs::read_to_string(&source).unwrap();
    let edited = code.replace(
        "let reply = serde_json::to_vec(&load(&state)?)",
        "let reply = serde_json::to_vec(&json!({ \"edited\": load(&state)? }))",
    );
    assert_ne!(code, edited, "the template changed: update this test");
    std::fs::write(&source, edited).unwrap();
    running.line_with("reloaded live");
    let reply: Value =
        serde_json::from_str(&client(&["message", "request", &actor, "{}", "--json"])).unwrap();
    assert_eq!(
        reply["reply"],
        json!({ "edited": { "messages": 1, "last": { "n": 1 } } })
    );
    let events = client(&["events", &actor]);
    assert!(events.contains("actor-resume"), "{events}");
}
