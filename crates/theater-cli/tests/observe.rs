//! Observability through the real binary: the metrics endpoint of
//! `theater server`, spans exported to an OTLP receiver in this process,
//! JSON logs, and the dashboard in a real browser.
//!
//! The browser test drives headless Chromium through chromedriver: the page
//! must ask for the server's token, list the actors, show the supervision
//! tree, render a chain marked verified, and show a new event live after a
//! message is sent; on a node of a cluster, it names the live nodes. A
//! screenshot is kept under `target/tmp/dashboard.png`.
//! It needs the Debian packages `chromium` and `chromium-driver`, which
//! `cargo xtask test` installs when it can; without them it says so and
//! skips.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

#[path = "../../theater/tests/nats/mod.rs"]
mod nats;
mod support;

use nats::NatsCluster;

const BIN: &str = env!("CARGO_BIN_EXE_theater");
const TOKEN: &str = "dashboard-test-token";
/// Longest wait for the page to show something. Generous: a loaded
/// machine may be slow to start a browser.
const PAGE_WAIT: Duration = Duration::from_secs(60);

/// `name` on the PATH, if it is there.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A `theater server` with the token and `endpoint` (`--dashboard` or
/// `--metrics`) on a free port, the management address and the endpoint's
/// URL it printed.
fn server(home: &Path, endpoint: &str) -> (support::Killed, String, String) {
    server_with(home, endpoint, &[])
}

/// [`server`] with more `theater server` arguments.
fn server_with(home: &Path, endpoint: &str, more: &[&str]) -> (support::Killed, String, String) {
    let mut extra = vec![endpoint, "127.0.0.1:0", "--token", TOKEN];
    extra.extend(more);
    let mut child = support::server_command(BIN, home, &extra)
        .spawn()
        .expect("theater server starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("a line").expect("readable");
    let listening = next();
    let served = next();
    let addr = listening
        .strip_prefix("listening on ")
        .expect(&listening)
        .to_owned();
    let (_, url) = served.split_once(" on ").expect(&served);
    (support::Killed(child), addr, url.to_owned())
}

fn theater(addr: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("THEATER_SERVER", addr)
        .env("THEATER_TOKEN", TOKEN)
        .output()
        .expect("theater runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "theater {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.trim().to_owned()
}

/// chromedriver on a free port of loopback, once it answers.
fn chromedriver(driver: &Path, log: &Path) -> (support::Killed, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let child = support::Killed(child);
    let deadline = Instant::now() + PAGE_WAIT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, format!("http://127.0.0.1:{port}"))
}

async fn browser(webdriver: &str, chromium: &Path, profile: &Path) -> Client {
    let options = json!({
        "binary": chromium,
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--window-size=1400,1000",
            format!("--user-data-dir={}", profile.display()),
        ],
    });
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(webdriver)
        .await
        .expect("a browser session")
}

/// A browser on the dashboard at `url`, past its login, and the
/// chromedriver behind it; their files go under `home`.
async fn logged_in(
    driver: &Path,
    chromium: &Path,
    home: &Path,
    url: &str,
) -> (support::Killed, Client) {
    let (driver, webdriver) = chromedriver(driver, &home.join("chromedriver.log"));
    let client = browser(&webdriver, chromium, &home.join("profile")).await;
    client.goto(url).await.unwrap();

    // The server has a token: the page asks for it before anything else.
    let login = client
        .wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css("#login:not([hidden]) #token"))
        .await
        .expect("the page asks for the token");
    login.send_keys(TOKEN).await.unwrap();
    client
        .find(Locator::Css("#login button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    (driver, client)
}

/// Waits until the text of the element at `css` satisfies `ready`; returns it.
async fn text_when(client: &Client, css: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PAGE_WAIT;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if ready(&text) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = client.source().await.unwrap_or_default();
    panic!("`{css}` never got ready; last text {last:?}; page:\n{page}");
}

/// N of the chain status "verified · N events".
fn events_in(status: &str) -> usize {
    let (_, rest) = status.split_once("verified · ").expect(status);
    rest.split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect(status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_actors_tree_verified_chain_and_live_events() {
    let (Some(driver), Some(chromium)) = (on_path("chromedriver"), on_path("chromium")) else {
        eprintln!(
            "SKIPPED: the dashboard browser test needs chromium and chromedriver (Debian packages `chromium` and `chromium-driver`; `cargo xtask test` installs them when it runs as root with apt-get)"
        );
        return;
    };
    let home = support::home();
    let (_server, addr, url) = server(home.path(), "--dashboard");
    let supervisor = theater(
        &addr,
        &[
            "start",
            &support::manifest("supervisor").display().to_string(),
            "--id-only",
        ],
    );
    let counter = theater(
        &addr,
        &[
            "start",
            &support::manifest("counter").display().to_string(),
            "--id-only",
        ],
    );
    let spawned = theater(
        &addr,
        &[
            "message",
            "request",
            &supervisor,
            r#"{"spawn": "../trap/manifest.toml"}"#,
        ],
    );
    let child: String = serde_json::from_str::<Value>(&spawned)
        .expect("the child's id")
        .as_str()
        .unwrap()
        .to_owned();
    theater(&addr, &["message", "send", &counter, r#"{"add": 2}"#]);
    // Calls are taken in order: once this answers, the send is in the chain.
    theater(&addr, &["message", "request", &counter, "{}"]);

    let (_driver, client) = logged_in(&driver, &chromium, home.path(), &url).await;

    // The node, not in a cluster.
    let header = text_when(&client, "#node", |text| text.contains("3 actors")).await;
    assert!(!header.contains("node "), "{header}");
    // The actors, by name.
    let actors = text_when(&client, "#actors tbody", |text| {
        ["supervisor", "counter", "trap"]
            .iter()
            .all(|name| text.contains(name))
    })
    .await;
    assert!(actors.contains(&counter[..8]), "{actors}");
    // The tree: the child below its supervisor.
    let nested = format!("#tree li[data-actor=\"{supervisor}\"] li[data-actor=\"{child}\"]");
    let node = text_when(&client, &nested, |text| text.contains("trap")).await;
    assert!(node.contains(&child[..8]), "{node}");

    // The counter's chain, verified, each event marked so.
    let row = format!("#actors tbody tr[data-actor=\"{counter}\"]");
    client
        .find(Locator::Css(&row))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let status = text_when(&client, "#chain-status", |text| text.contains("verified")).await;
    let events = events_in(&status);
    assert!(events >= 3, "init, send and request at least: {status}");
    let marks = client
        .find_all(Locator::Css("#chain tbody tr.event td:first-child"))
        .await
        .unwrap();
    assert_eq!(marks.len(), events);
    for mark in marks {
        assert_eq!(mark.text().await.unwrap(), "✓");
    }
    text_when(&client, "#state", |text| text.contains("\"count\": 2")).await;

    // A message sent now appears live, and the chain and state follow.
    let live = format!("#live li[data-actor=\"{counter}\"]");
    assert!(
        client.find(Locator::Css(&live)).await.is_err(),
        "no live event yet"
    );
    theater(&addr, &["message", "send", &counter, r#"{"add": 3}"#]);
    let event = text_when(&client, &live, |text| text.contains("call")).await;
    assert!(event.contains("handle-send ok"), "{event}");
    let more = format!("verified · {} events", events + 1);
    text_when(&client, "#chain-status", |text| text.contains(&more)).await;
    text_when(&client, "#state", |text| text.contains("\"count\": 5")).await;

    let screenshot = client.screenshot().await.unwrap();
    let artifact = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&artifact, screenshot).unwrap();
    eprintln!("screenshot: {}", artifact.display());
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_of_a_cluster_node_names_the_live_nodes() {
    let (Some(driver), Some(chromium)) = (on_path("chromedriver"), on_path("chromium")) else {
        eprintln!("SKIPPED: the dashboard browser test needs chromium and chromedriver");
        return;
    };
    let Some(nats) = NatsCluster::start() else {
        return;
    };
    let home = support::home();
    let beats = support::Heartbeats {
        every_ms: 200,
        timeout_ms: 1000,
    };
    let cluster = support::cluster_args(&nats.url_list(), "n1", beats);
    let cluster: Vec<&str> = cluster.iter().map(String::as_str).collect();
    let (_server, addr, url) = server_with(home.path(), "--dashboard", &cluster);
    theater(
        &addr,
        &["start", &support::manifest("counter").display().to_string()],
    );
    let (_driver, client) = logged_in(&driver, &chromium, home.path(), &url).await;
    // Its own heartbeat carries its load: "n1 1" once it has beaten.
    text_when(&client, "#node", |text| {
        text.contains("node n1 of 1 · actors: n1 1")
    })
    .await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn the_server_serves_metrics_to_scrapes_with_its_token() {
    let home = support::home();
    let (_server, addr, url) = server(home.path(), "--metrics");
    assert!(url.ends_with("/metrics"), "{url}");
    let counter = theater(
        &addr,
        &[
            "start",
            &support::manifest("counter").display().to_string(),
            "--id-only",
        ],
    );
    theater(&addr, &["message", "request", &counter, "{}"]);
    let client = reqwest::Client::new();
    let refused = client.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let text = client
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "theater_actor_spawns_total 1",
        "theater_actors{state=\"running\"} 1",
        "theater_management_requests_total{op=\"start\",outcome=\"ok\"} 1",
        "theater_calls_total{export=\"ntwk:theater/message-server-client.handle-request\",outcome=\"ok\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    // The durable log reports its own work.
    assert!(text.contains("theater_storage_fsyncs_total "), "{text}");
}

/// An OTLP/HTTP receiver on loopback: answers every POST with 200 and
/// hands over each body it got.
fn otlp_receiver() -> (String, std::sync::mpsc::Receiver<(String, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (bodies, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            std::io::Read::read_exact(&mut reader, &mut body).unwrap();
            let mut stream = stream;
            let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
            std::io::Write::write_all(&mut stream, answer.as_bytes()).unwrap();
            if bodies.send((head, body)).is_err() {
                return;
            }
        }
    });
    (url, received)
}

#[test]
fn spans_reach_an_otlp_collector_and_logs_can_be_json() {
    let (url, received) = otlp_receiver();
    let home = support::home();
    let out = Command::new(BIN)
        .args(["--log-format", "json", "--otlp-endpoint", &url, "run"])
        .arg(support::manifest("counter"))
        .args(["--send", r#"{"add": 2}"#, "--request", "{}", "--home"])
        .arg(home.path())
        .env("RUST_LOG", "info")
        .output()
        .expect("theater runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    // Every log line is a JSON object with its level and fields.
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("actor started")),
        "{stderr}"
    );
    for line in lines {
        let log: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            log["level"].is_string() && log["fields"].is_object(),
            "{line}"
        );
    }

    // The spans were sent, as protobuf, to the traces path, before exit.
    let (head, body) = received
        .recv_timeout(Duration::from_secs(10))
        .expect("an export reached the receiver");
    assert!(head.starts_with("POST /v1/traces "), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("application/x-protobuf"),
        "{head}"
    );
    let has = |text: &str| body.windows(text.len()).any(|w| w == text.as_bytes());
    assert!(has("actor.call") && has("handle-request") && has("handle-send"));
    assert!(has("theater"), "the service name");
}
