//! Crash test of a real `theater server`: many actors under concurrent
//! load, the server killed with SIGKILL at a random moment, then started
//! again on the same home, several rounds. After every restart, every
//! acknowledged event must be in its chain, every chain must verify, and
//! every actor must be running again under its id with the state its last
//! acknowledged call produced.
//!
//! What "acknowledged" means here:
//!
//! - `ping-pong` actors get `request "ping"`; each ping adds one to their
//!   `pings_served` and the `"pong"` reply comes only after the call's
//!   chain event (with the new state) is durable.
//! - `counter` actors get one to three `send {"add": 1}` (which only
//!   queue) and then a `request {}` whose reply is the count. The actor
//!   runs its calls one at a time and commits each before the next, so
//!   that reply acknowledges every add before it, and the request's own
//!   event.
//!
//! A call sent but not answered when the server died may or may not have
//! committed: the state after the restart must lie between the
//! acknowledged state and that plus the unanswered calls.
//!
//! Run with `cargo test -p theater-cli --test crash -- --nocapture` to see
//! the figures; `THEATER_CRASH_SEED=<n>` repeats a run's kill moments.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use theater::chain::record::StateDigest;
use theater::server::protocol::{Op, Payload};
use theater::server::{Client, ClientError};
use theater::storage::RedbEventLog;
use theater::wasm::Bytes;

const BIN: &str = env!("CARGO_BIN_EXE_theater");
/// Kill-and-restart rounds.
const ROUNDS: usize = 10;
/// Actors of each kind; each has its own connection and load task.
const PING_PONGS: usize = 8;
const COUNTERS: usize = 8;
/// The kill comes this long after the load started, chosen at random.
const KILL_AFTER_MS: std::ops::RangeInclusive<u64> = 100..=800;
/// Longest wait for the server's output or a client command.
const WAIT: Duration = Duration::from_secs(120);
/// A load task gives up after this long even if the server never dies.
const LOAD_LIMIT: Duration = Duration::from_secs(60);
/// Threads running the per-actor checks.
const CHECKERS: usize = 4;

const HANDLE_SEND: &str = "ntwk:theater/message-server-client.handle-send";
const HANDLE_REQUEST: &str = "ntwk:theater/message-server-client.handle-request";

mod support;

fn manifest(actor: &str) -> String {
    support::manifest(actor).display().to_string()
}

/// xorshift64*: the kill moments and the load's batch sizes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn in_range(&mut self, range: std::ops::RangeInclusive<u64>) -> u64 {
        range.start() + self.next() % (range.end() - range.start() + 1)
    }
}

fn seed() -> u64 {
    if let Some(seed) = std::env::var("THEATER_CRASH_SEED")
        .ok()
        .and_then(|text| text.trim().parse().ok())
    {
        return seed;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    (nanos ^ (u64::from(std::process::id()) << 32)) | 1
}

/// A `theater server` child process on a home that outlives it.
struct Server {
    child: support::Killed,
    addr: String,
    lines: mpsc::Receiver<String>,
    home: PathBuf,
}

impl Server {
    /// Starts a server on `home` and waits for `listening on ADDR`.
    fn start(home: &Path) -> Self {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("server.log"))
            .unwrap();
        let mut child = Command::new(BIN)
            .args(["server", "--listen", "127.0.0.1:0", "--home"])
            .arg(home)
            .env_remove("THEATER_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("theater server starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self {
            child: support::Killed(child),
            addr: String::new(),
            lines,
            home: home.to_owned(),
        };
        let line = server.line();
        let Some(addr) = line.strip_prefix("listening on ") else {
            panic!("the server did not start: {line:?}\n{}", server.log());
        };
        server.addr = addr.to_owned();
        server
    }

    /// The next line the server prints.
    fn line(&mut self) -> String {
        match self.lines.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(e) => {
                let _ = self.child.kill();
                panic!("no line from the server ({e}):\n{}", self.log());
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.join("server.log")).unwrap_or_default()
    }

    /// SIGKILL, and waits until the process is gone (its file lock too).
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("the killed server is reaped");
    }

    /// Client commands against this server.
    fn client(&self) -> Cli {
        Cli {
            addr: self.addr.clone(),
            home: self.home.clone(),
        }
    }
}

/// Runs the real `theater` binary against one server.
struct Cli {
    addr: String,
    home: PathBuf,
}

impl Cli {
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("THEATER_SERVER", &self.addr)
            .env("THEATER_HOME", &self.home)
            .env_remove("THEATER_TOKEN")
            .stdin(Stdio::null())
            .output()
            .expect("theater runs")
    }

    /// Runs a client command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        support::succeeded(args, &self.cli(args))
    }

    /// Like [`ok`](Self::ok) with `--json`, parsing stdout.
    fn json(&self, args: &[&str]) -> Value {
        support::answered_json(args, |args| self.ok(args))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    PingPong,
    Counter,
}

impl Kind {
    /// The state field the load increments.
    fn field(self) -> &'static str {
        match self {
            Kind::PingPong => "pings_served",
            Kind::Counter => "count",
        }
    }

    /// The export whose calls increment it.
    fn function(self) -> &'static str {
        match self {
            Kind::PingPong => HANDLE_REQUEST,
            Kind::Counter => HANDLE_SEND,
        }
    }

    /// The digest the chain records for the state with value `n`, exactly
    /// as the actor serializes it.
    fn digest(self, n: u64) -> Value {
        let bytes = match self {
            Kind::PingPong => json!({ "pings_served": n, "pongs_received": 0 }),
            Kind::Counter => json!({ "count": n }),
        };
        let bytes = serde_json::to_vec(&bytes).unwrap();
        serde_json::to_value(StateDigest::of(&Some(bytes))).unwrap()
    }
}

/// What the test knows about one actor.
#[derive(Clone, Debug)]
struct Tracked {
    id: String,
    kind: Kind,
    /// The value of the counted field its last acknowledged call left.
    acked: u64,
    /// Counters only: `handle-request` events acknowledged.
    acked_requests: u64,
    /// Calls sent since the last acknowledgement (each may have committed).
    unanswered: u64,
    unanswered_requests: u64,
}

/// What one load task saw before the server died.
struct Progress {
    acked: u64,
    acked_requests: u64,
    unanswered: u64,
    unanswered_requests: u64,
    /// Events acknowledged during this round.
    events: u64,
}

/// Whether the error means the server is gone (as expected after the kill).
fn server_gone(error: &ClientError) -> bool {
    matches!(error, ClientError::Io(_) | ClientError::Closed)
}

/// Calls `op`; `None` once the server is gone. An error answer fails the test.
async fn call(client: &mut Client, op: Op, actor: &str) -> Option<Value> {
    match client.call(op).await {
        Ok(answer) => Some(answer),
        Err(e) if server_gone(&e) => None,
        Err(e) => panic!("actor {actor}: the server answered with an error: {e}"),
    }
}

/// Drives one actor until the server dies.
async fn load(mut client: Client, actor: Tracked, mut rng: Rng) -> Progress {
    let mut p = Progress {
        acked: actor.acked,
        acked_requests: actor.acked_requests,
        unanswered: 0,
        unanswered_requests: 0,
        events: 0,
    };
    let id = actor.id.clone();
    let request = |message: Value| Op::Request {
        actor: id.clone(),
        payload: Payload::json(message),
        timeout_ms: Some(WAIT.as_millis() as u64),
    };
    let started = Instant::now();
    while started.elapsed() < LOAD_LIMIT {
        match actor.kind {
            Kind::PingPong => {
                p.unanswered = 1;
                let Some(answer) = call(&mut client, request(json!("ping")), &id).await else {
                    break;
                };
                assert_eq!(answer["reply"], "pong", "actor {id}: {answer}");
                p.acked += 1;
                p.unanswered = 0;
                p.events += 1;
            }
            Kind::Counter => {
                let mut gone = false;
                for _ in 0..rng.in_range(1..=3) {
                    p.unanswered += 1;
                    let send = Op::Send {
                        actor: id.clone(),
                        payload: Payload::json(json!({ "add": 1 })),
                    };
                    let Some(answer) = call(&mut client, send, &id).await else {
                        gone = true;
                        break;
                    };
                    assert_eq!(answer["queued"], true, "actor {id}: {answer}");
                }
                if gone {
                    break;
                }
                p.unanswered_requests = 1;
                let Some(answer) = call(&mut client, request(json!({})), &id).await else {
                    break;
                };
                let count = answer["reply"]["count"].as_u64().unwrap_or_else(|| {
                    panic!("actor {id}: a counter's reply without a count: {answer}")
                });
                // One caller, calls run in order: the reply counts every add.
                assert_eq!(
                    count,
                    p.acked + p.unanswered,
                    "actor {id}: the count does not include every add sent before the request"
                );
                p.events += p.unanswered + 1;
                p.acked = count;
                p.acked_requests += 1;
                p.unanswered = 0;
                p.unanswered_requests = 0;
            }
        }
    }
    p
}

/// One actor as found after a restart.
struct Found {
    /// The counted field of its state.
    value: u64,
    events: u64,
    /// `call` events of the export that increments the field, by the state
    /// digest they record.
    increments: Vec<Value>,
    /// Counters: `call` events of `handle-request`.
    requests: u64,
    resumes: u64,
    call_errors: u64,
}

fn inspect(server: &Cli, actor: &Tracked) -> Found {
    let id = actor.id.as_str();
    let state = server.json(&["state", id]);
    assert_eq!(state["actor"], id, "{state}");
    let value = state["state"][actor.kind.field()]
        .as_u64()
        .unwrap_or_else(|| panic!("actor {id}: unexpected state {state}"));

    let verified = server.json(&["verify", id]);
    assert_eq!(verified["verified"], true, "actor {id}: {verified}");
    let text = server.ok(&["verify", id]);
    assert!(text.contains("chain verified"), "{text}");

    let chain = server.json(&["events", id]);
    let events = chain["events"].as_array().expect("events").clone();
    assert_eq!(chain["total"], events.len(), "actor {id}");
    assert_eq!(verified["events"], events.len(), "actor {id}");
    let mut found = Found {
        value,
        events: events.len() as u64,
        increments: Vec::new(),
        requests: 0,
        resumes: 0,
        call_errors: 0,
    };
    for event in &events {
        match event["event_type"].as_str() {
            Some("call") if event["data"]["function"] == actor.kind.function() => {
                found.increments.push(event["data"]["state"].clone());
            }
            Some("call") if event["data"]["function"] == HANDLE_REQUEST => found.requests += 1,
            Some("actor-resume") => found.resumes += 1,
            Some("call-error") => found.call_errors += 1,
            _ => {}
        }
    }
    found
}

/// What a check after a restart found.
#[derive(Default)]
struct Checked {
    lost: u64,
    /// Calls committed although their answer never arrived.
    committed_unanswered: u64,
    events: u64,
    problems: Vec<String>,
}

/// After restart number `restarts`: every actor listed and running with
/// its id, its state the acknowledged one (or later by unanswered calls),
/// every acknowledged event in its verified chain. Moves the tracked
/// state to what was found.
fn check(server: &Server, actors: &mut [Tracked], restarts: u64) -> Checked {
    let cli = server.client();
    let listed = cli.json(&["list"]);
    let listed: HashMap<String, String> = listed["actors"]
        .as_array()
        .expect("actors")
        .iter()
        .map(|a| {
            let id = a["id"].as_str().unwrap().to_owned();
            (id, a["status"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    let mut checked = Checked::default();
    for actor in actors.iter() {
        match listed.get(&actor.id) {
            Some(status) if status == "running" => {}
            other => checked
                .problems
                .push(format!("actor {} not running again: {other:?}", actor.id)),
        }
    }
    if listed.len() != actors.len() {
        checked.problems.push(format!(
            "{} actors listed, {} expected",
            listed.len(),
            actors.len()
        ));
    }
    if !checked.problems.is_empty() {
        return checked;
    }

    let chunk = actors.len().div_ceil(CHECKERS);
    let found: Vec<Found> = std::thread::scope(|scope| {
        let workers: Vec<_> = actors
            .chunks(chunk)
            .map(|part| {
                let cli = &cli;
                scope.spawn(move || part.iter().map(|a| inspect(cli, a)).collect())
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|_| Vec::new()))
            .collect()
    });
    assert_eq!(found.len(), actors.len(), "a check thread failed");

    for (actor, found) in actors.iter_mut().zip(found) {
        let id = &actor.id;
        let kind = actor.kind;
        let present: HashSet<String> = found.increments.iter().map(Value::to_string).collect();
        // Every acknowledged increment, by the state it left.
        let missing: Vec<u64> = (1..=actor.acked)
            .filter(|n| !present.contains(&kind.digest(*n).to_string()))
            .collect();
        checked.lost += missing.len() as u64;
        if !missing.is_empty() {
            checked.problems.push(format!(
                "actor {id}: {} acknowledged {kind:?} events missing, first {}",
                missing.len(),
                missing[0]
            ));
        }
        if kind == Kind::Counter && found.requests < actor.acked_requests {
            checked.lost += actor.acked_requests - found.requests;
            checked.problems.push(format!(
                "actor {id}: {} handle-request events acknowledged, {} in the chain",
                actor.acked_requests, found.requests
            ));
        }
        let value = found.value;
        if value < actor.acked || value > actor.acked + actor.unanswered {
            checked.problems.push(format!(
                "actor {id}: resumed with {} = {value}; acknowledged {}, unanswered {}",
                kind.field(),
                actor.acked,
                actor.unanswered
            ));
        }
        // The resumed state is the one the chain reached, event for event.
        if found.increments.len() as u64 != value
            || found
                .increments
                .last()
                .is_some_and(|d| *d != kind.digest(value))
        {
            checked.problems.push(format!(
                "actor {id}: state {value} but the chain holds {} increments",
                found.increments.len()
            ));
        }
        if kind == Kind::Counter
            && found.requests > actor.acked_requests + actor.unanswered_requests
        {
            checked.problems.push(format!(
                "actor {id}: {} handle-request events, at most {} sent",
                found.requests,
                actor.acked_requests + actor.unanswered_requests
            ));
        }
        if found.resumes != restarts {
            checked.problems.push(format!(
                "actor {id}: {} actor-resume events after {restarts} restarts",
                found.resumes
            ));
        }
        if found.call_errors != 0 {
            checked.problems.push(format!(
                "actor {id}: {} call-error events",
                found.call_errors
            ));
        }
        checked.committed_unanswered += value.saturating_sub(actor.acked);
        if kind == Kind::Counter {
            checked.committed_unanswered += found.requests.saturating_sub(actor.acked_requests);
        }
        checked.events += found.events;
        // What was found is durable now: the next round goes on from it.
        actor.acked = value.max(actor.acked);
        actor.acked_requests = found.requests.max(actor.acked_requests);
        actor.unanswered = 0;
        actor.unanswered_requests = 0;
    }
    checked
}

#[test]
fn acknowledged_calls_survive_sigkill_of_the_server() {
    let seed = seed();
    println!("crash test: seed {seed} (THEATER_CRASH_SEED={seed} repeats the kill moments)");
    let mut rng = Rng(seed);
    let home = support::home();

    let mut server = Server::start(home.path());
    let mut actors = Vec::new();
    for (kind, actor, n) in [
        (Kind::PingPong, "ping-pong", PING_PONGS),
        (Kind::Counter, "counter", COUNTERS),
    ] {
        let n = n.to_string();
        let ids = server
            .client()
            .ok(&["start", &manifest(actor), "--count", &n, "--id-only"]);
        for id in ids.lines() {
            actors.push(Tracked {
                id: id.trim().to_owned(),
                kind,
                acked: 0,
                acked_requests: 0,
                unanswered: 0,
                unanswered_requests: 0,
            });
        }
    }
    assert_eq!(actors.len(), PING_PONGS + COUNTERS);

    let tokio = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let mut acknowledged = 0;
    let mut lost = 0;
    let mut committed_unanswered = 0;
    let mut problems = Vec::new();
    let mut events = 0;
    let mut rounds = 0;
    for round in 1..=ROUNDS {
        rounds = round;
        let kill_after = Duration::from_millis(rng.in_range(KILL_AFTER_MS));
        let progress = tokio.block_on(async {
            // Every connection is up before the load and the clock start.
            let mut clients = Vec::new();
            for _ in &actors {
                let client = Client::connect(&server.addr, None)
                    .await
                    .expect("connect to the server");
                clients.push(client);
            }
            let tasks: Vec<_> = clients
                .into_iter()
                .zip(actors.iter().cloned())
                .map(|(client, actor)| tokio::spawn(load(client, actor, Rng(rng.next() | 1))))
                .collect();
            tokio::time::sleep(kill_after).await;
            let mut progress = Vec::new();
            server.kill();
            for task in tasks {
                progress.push(task.await.expect("a load task failed"));
            }
            progress
        });
        let mut round_events = 0;
        for (actor, p) in actors.iter_mut().zip(progress) {
            actor.acked = p.acked;
            actor.acked_requests = p.acked_requests;
            actor.unanswered = p.unanswered;
            actor.unanswered_requests = p.unanswered_requests;
            round_events += p.events;
        }
        acknowledged += round_events;

        server = Server::start(home.path());
        let resumed = server.line();
        assert_eq!(
            resumed,
            format!("resumed {} actors", actors.len()),
            "{}",
            server.log()
        );
        let checked = check(&server, &mut actors, round as u64);
        println!(
            "round {round}: killed after {} ms, {round_events} events acknowledged, {} committed unanswered, {} lost; {} events in {} chains",
            kill_after.as_millis(),
            checked.committed_unanswered,
            checked.lost,
            checked.events,
            actors.len()
        );
        lost += checked.lost;
        committed_unanswered += checked.committed_unanswered;
        events = checked.events;
        problems.extend(checked.problems);
        if !problems.is_empty() {
            break;
        }
    }

    // The file itself, read by the library with the server gone: every
    // chain and head verifies, every actor is still marked running.
    server.kill();
    let log = RedbEventLog::open(home.path().join("chains.redb")).expect("open the chain database");
    match log.verify_all() {
        Ok(summary) => {
            let expected = (actors.len() as u64, events);
            if problems.is_empty() && (summary.chains, summary.events) != expected {
                problems.push(format!(
                    "the chain database holds {} chains of {} events; the server showed {} of {}",
                    summary.chains, summary.events, expected.0, expected.1
                ));
            }
        }
        Err(e) => problems.push(format!("the chain database does not verify: {e}")),
    }
    let saved = log.stored_actors().expect("stored actors");
    for actor in &actors {
        let record = saved.iter().find(|s| s.id.to_string() == actor.id);
        if !record.is_some_and(|s| s.record.running) {
            problems.push(format!("actor {} is not stored as running", actor.id));
        }
    }

    println!(
        "crash test: {rounds} rounds, {acknowledged} events acknowledged, {lost} lost ({committed_unanswered} committed without an answer; {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(lost, 0);
}

/// Counters the send test loads.
const SEND_TARGETS: usize = 4;
/// Connections sending to each: more than one actor runs, so its queue
/// fills and a kill finds accepted messages waiting in it.
const SENDERS_PER_TARGET: usize = 4;
/// Kill-and-restart rounds of the send test.
const SEND_ROUNDS: usize = 6;

/// What one sender saw before the server died.
struct Sent {
    /// Numbers of the messages the server answered `queued`.
    accepted: Vec<u64>,
    /// The number sent last, if its answer never came: it may or may not
    /// have been accepted.
    in_doubt: Option<u64>,
}

/// Sends `{"add": 1, "n": N}` to `actor`, N counting up from `first`,
/// until the server dies; a full queue is waited out.
async fn send_until_killed(mut client: Client, actor: String, first: u64) -> Sent {
    let mut sent = Sent {
        accepted: Vec::new(),
        in_doubt: None,
    };
    let started = Instant::now();
    let mut n = first;
    while started.elapsed() < LOAD_LIMIT {
        let send = Op::Send {
            actor: actor.clone(),
            payload: Payload::json(json!({ "add": 1, "n": n })),
        };
        match client.call(send).await {
            Ok(answer) => {
                assert_eq!(answer["queued"], true, "actor {actor}: {answer}");
                sent.accepted.push(n);
                n += 1;
            }
            Err(ClientError::Server(e)) if e.message.contains("queue") => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) if server_gone(&e) => {
                sent.in_doubt = Some(n);
                break;
            }
            Err(e) => panic!("actor {actor}: the server answered with an error: {e}"),
        }
    }
    sent
}

/// The `n` of every `handle-send` call event in `actor`'s chain, in chain
/// order, once its queue has run dry; and its count.
async fn delivered(client: &mut Client, actor: &str) -> (Vec<u64>, u64) {
    // A request runs after everything queued before it, redeliveries too.
    let request = Op::Request {
        actor: actor.to_owned(),
        payload: Payload::json(json!({})),
        timeout_ms: Some(WAIT.as_millis() as u64),
    };
    let answer = client.call(request).await.expect("the counter answers");
    let count = answer["reply"]["count"].as_u64().expect("a count");
    let events = Op::Events {
        actor: actor.to_owned(),
        limit: None,
    };
    let chain = client.call(events).await.expect("the chain is read");
    let mut numbers = Vec::new();
    for event in chain["events"].as_array().expect("events") {
        let data = &event["data"];
        if event["event_type"] == "call-error" {
            panic!("actor {actor}: a call failed: {data}");
        }
        if event["event_type"] != "call" || data["function"] != HANDLE_SEND {
            continue;
        }
        let bytes: Bytes = serde_json::from_value(data["params"][0].clone()).expect("bytes");
        let message: Value = serde_json::from_slice(&bytes).expect("a JSON message");
        numbers.push(message["n"].as_u64().expect("n"));
    }
    (numbers, count)
}

#[test]
fn accepted_sends_run_once_after_sigkill_of_the_server() {
    let seed = seed();
    println!("send crash test: seed {seed} (THEATER_CRASH_SEED={seed} repeats the kill moments)");
    let mut rng = Rng(seed);
    let home = support::home();
    let mut server = Server::start(home.path());
    let n = SEND_TARGETS.to_string();
    let ids: Vec<String> = server
        .client()
        .ok(&["start", &manifest("counter"), "--count", &n, "--id-only"])
        .lines()
        .map(|id| id.trim().to_owned())
        .collect();
    assert_eq!(ids.len(), SEND_TARGETS);

    let tokio = tokio::runtime::Runtime::new().unwrap();
    // Per actor: every number accepted so far, and those in doubt.
    let mut accepted: Vec<HashSet<u64>> = vec![HashSet::new(); ids.len()];
    let mut in_doubt: Vec<HashSet<u64>> = vec![HashSet::new(); ids.len()];
    let mut next = 0;
    let (mut lost, mut duplicated, mut redelivered, mut problems) = (0, 0, 0, Vec::new());
    for round in 1..=SEND_ROUNDS {
        let kill_after = Duration::from_millis(rng.in_range(KILL_AFTER_MS));
        let sent: Vec<(usize, Sent)> = tokio.block_on(async {
            let mut tasks = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                for _ in 0..SENDERS_PER_TARGET {
                    let client = Client::connect(&server.addr, None).await.expect("connect");
                    // Numbers never repeat across senders or rounds.
                    let sender = send_until_killed(client, id.clone(), next);
                    tasks.push((i, tokio::spawn(sender)));
                    next += 1_000_000;
                }
            }
            tokio::time::sleep(kill_after).await;
            server.kill();
            let mut sent = Vec::new();
            for (i, task) in tasks {
                sent.push((i, task.await.expect("a sender failed")));
            }
            sent
        });
        let round_accepted: usize = sent.iter().map(|(_, s)| s.accepted.len()).sum();
        for (i, s) in sent {
            accepted[i].extend(s.accepted);
            in_doubt[i].extend(s.in_doubt);
        }

        server = Server::start(home.path());
        let resumed = server.line();
        assert_eq!(
            resumed,
            format!("resumed {} actors", ids.len()),
            "{}",
            server.log()
        );
        let (round_lost, round_duplicated) = tokio.block_on(async {
            let mut client = Client::connect(&server.addr, None).await.expect("connect");
            let (mut lost, mut duplicated) = (0, 0);
            for (i, id) in ids.iter().enumerate() {
                let (numbers, count) = delivered(&mut client, id).await;
                let mut seen = HashSet::new();
                for n in &numbers {
                    if !seen.insert(*n) {
                        duplicated += 1;
                        problems.push(format!("actor {id}: message {n} ran twice"));
                    }
                    if !accepted[i].contains(n) && !in_doubt[i].contains(n) {
                        problems.push(format!("actor {id}: message {n} was never sent"));
                    }
                }
                let missing = accepted[i].iter().filter(|n| !seen.contains(n)).count();
                if missing > 0 {
                    lost += missing as u64;
                    problems.push(format!("actor {id}: {missing} accepted messages missing"));
                }
                if count != numbers.len() as u64 {
                    problems.push(format!(
                        "actor {id}: count {count}, but {} adds in the chain",
                        numbers.len()
                    ));
                }
            }
            (lost, duplicated)
        });
        // Printed with the resume, if the kill left any in the inboxes.
        let queued_again = server
            .lines
            .try_recv()
            .ok()
            .and_then(|line| line.split_whitespace().nth(2)?.parse().ok())
            .unwrap_or(0);
        redelivered += queued_again;
        println!(
            "round {round}: killed after {} ms, {round_accepted} sends accepted ({queued_again} run after the restart), {round_lost} lost, {round_duplicated} duplicated",
            kill_after.as_millis()
        );
        lost += round_lost;
        duplicated += round_duplicated;
        if !problems.is_empty() {
            break;
        }
    }
    let total: usize = accepted.iter().map(HashSet::len).sum();
    println!(
        "send crash test: {total} sends accepted ({redelivered} run after a restart), lost = {lost}, duplicated = {duplicated}"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!((lost, duplicated), (0, 0));
}
