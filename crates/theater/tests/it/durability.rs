//! Durable chains: the redb event log under real runtimes, many appenders,
//! a damaged file, and processes killed with SIGKILL in the middle of
//! appending.

use crate::common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use theater::chain::{self, ChainExport, Hash, SealedEvent, VerifyError};
use theater::host::HANDLE_SEND;
use theater::storage::EventLog;
use theater::storage::{Damage, LogOptions, RedbEventLog, StorageError};
use theater::{ActorId, RuntimeConfig, TheaterRuntime};

/// Set (to a database path) in the child process of the crash test.
const CHILD_ENV: &str = "THEATER_DURABILITY_CRASH_CHILD";
/// Actors the child appends for, all at once.
const CHILD_ACTORS: usize = 24;
/// Times the child is started and killed.
const CRASH_ROUNDS: usize = 10;

fn event(parent: Option<Hash>, n: u64, text: &str) -> SealedEvent {
    let data = format!(r#"{{"n":{n},"text":"{text}"}}"#);
    SealedEvent::new(
        parent,
        "call",
        RawValue::from_string(data).unwrap(),
        1_700_000_000_000 + n,
        format!("call {n}"),
    )
}

async fn append_chain(log: &RedbEventLog, actor: &ActorId, n: u64) -> Hash {
    let mut head = None;
    for i in 0..n {
        let next = event(head, i, "x");
        head = Some(next.hash);
        log.append(actor, next).await.unwrap();
    }
    head.unwrap()
}

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("chains.redb")
}

/// Waits until `log` is held by nobody else (actor tasks hold it until
/// they have wound down), then closes it.
async fn close(mut log: Arc<RedbEventLog>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Arc::try_unwrap(log) {
            Ok(log) => return drop(log),
            Err(shared) => {
                assert!(Instant::now() < deadline, "the log is still in use");
                log = shared;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtimes_chains_are_back_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let log = Arc::new(RedbEventLog::open(&path).unwrap());
    let mut config = RuntimeConfig::ephemeral();
    config.home = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("theater-home"));
    config.event_log = log.clone();
    let runtime = TheaterRuntime::new(config).unwrap();
    let counter = common::spawn(&runtime, "counter").await;
    let id = counter.id();
    for n in 1..=3 {
        counter
            .call_function::<(Vec<u8>,), ()>(HANDLE_SEND, (format!(r#"{{"add":{n}}}"#).into(),))
            .await
            .unwrap();
    }
    let seen = runtime.chain(id).unwrap();
    assert!(seen.len() >= 4, "init and three calls: {}", seen.len());
    runtime.stop(id).await.unwrap();
    drop(counter);
    drop(runtime);
    close(log).await;

    let log = RedbEventLog::open(&path).unwrap();
    let stored = log.events(&id).unwrap();
    assert_eq!(
        stored.iter().map(|e| e.hash).collect::<Vec<_>>(),
        seen.iter().map(|e| e.hash).collect::<Vec<_>>()
    );
    assert_eq!(
        log.verify_stored(&id).unwrap().unwrap().events,
        seen.len() as u64
    );
    let export = log.export(&id).unwrap();
    assert_eq!(chain::verify(&export.events), Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_appenders_keep_every_chain_ordered_and_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(RedbEventLog::open(db_path(&dir)).unwrap());
    let actors: Vec<ActorId> = (0..64).map(|_| ActorId::new()).collect();
    let tasks: Vec<_> = actors
        .iter()
        .map(|actor| {
            let (log, actor) = (log.clone(), *actor);
            tokio::spawn(async move { append_chain(&log, &actor, 25).await })
        })
        .collect();
    let mut heads = Vec::new();
    for task in tasks {
        heads.push(task.await.unwrap());
    }
    for (actor, head) in actors.iter().zip(heads) {
        let events = log.events(actor).unwrap();
        assert_eq!(events.len(), 25);
        assert!(
            events
                .iter()
                .enumerate()
                .all(|(i, e)| e.timestamp % 1000 == i as u64)
        );
        assert_eq!(events.last().unwrap().hash, head);
        assert_eq!(chain::verify(&events), Ok(()));
    }
    let summary = log.verify_all().unwrap();
    assert_eq!((summary.chains, summary.events), (64, 64 * 25));
    let stats = log.stats();
    println!(
        "64 appenders: {} events in {} commits ({} fsyncs), {:.1} events per fsync, largest batch {}",
        stats.events,
        stats.commits,
        stats.syncs,
        stats.events_per_sync(),
        stats.largest_batch
    );
    assert_eq!(stats.syncs, stats.commits);
    assert!(stats.events_per_sync() > 1.0, "no group commit: {stats:?}");
}

/// Flips one letter of every copy of `marker` in the file.
fn flip_in_file(path: &Path, marker: &[u8]) -> usize {
    let mut bytes = std::fs::read(path).unwrap();
    let mut flipped = 0;
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(marker.len()).position(|w| w == marker) {
        let index = at + found + marker.len() - 1;
        bytes[index] = if bytes[index] == b'q' { b'r' } else { b'q' };
        flipped += 1;
        at = index + 1;
    }
    std::fs::write(path, bytes).unwrap();
    flipped
}

#[tokio::test]
async fn a_byte_flipped_in_the_file_is_never_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let (actor, other) = (ActorId::new(), ActorId::new());
    {
        let log = RedbEventLog::open(&path).unwrap();
        let mut head = None;
        for i in 0..8 {
            let text = if i == 5 {
                "tamper-target-abcdefghijklmnop"
            } else {
                "x"
            };
            let next = event(head, i, text);
            head = Some(next.hash);
            log.append(&actor, next).await.unwrap();
        }
        append_chain(&log, &other, 3).await;
    }
    assert!(flip_in_file(&path, b"tamper-target-abcdefghijklmnop") >= 1);

    // Checked on open (the default): redb's page checksums catch it.
    let error = RedbEventLog::open(&path).unwrap_err();
    let text = error.to_string();
    println!("checked open: {text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(
        matches!(
            error,
            StorageError::Unreadable { .. } | StorageError::Open { .. }
        ),
        "{text}"
    );

    // Not checked on open: the chain's own hashes catch it.
    let options = LogOptions {
        check_integrity_on_open: false,
        ..LogOptions::default()
    };
    let log = RedbEventLog::open_with(&path, options).unwrap();
    let error = log.verify_all().unwrap_err();
    println!("unchecked open, verify_all: {error}");
    let damaged = error.damaged_chains();
    assert_eq!(damaged.len(), 1, "{error}");
    assert_eq!(damaged[0].actor, actor);
    assert!(matches!(
        damaged[0].damage,
        Damage::Chain(VerifyError::HashMismatch { index: 5, .. })
    ));
    assert_eq!(damaged[0].damage.first_bad_event(), 5);
    assert!(log.verify_stored(&other).is_ok());
}

#[tokio::test]
async fn an_export_is_verified_then_imported_under_a_new_id() {
    let dir = tempfile::tempdir().unwrap();
    let log = RedbEventLog::open(db_path(&dir)).unwrap();
    let original = ActorId::new();
    append_chain(&log, &original, 5).await;
    let json = log.export(&original).unwrap().to_json();

    let copy = log.import_json(&json).await.unwrap();
    assert_ne!(copy, original);
    let back = ChainExport::from_json(&log.export(&copy).unwrap().to_json()).unwrap();
    assert_eq!(back.actor_id, copy.to_string());
    assert_eq!(chain::verify(&back.events), Ok(()));
    assert_eq!(back.events.len(), 5);

    // An export edited by hand is refused, naming the first bad event.
    let edited = json.replacen(r#""n":3"#, r#""n":4"#, 1);
    let error = log.import_json(&edited).await.unwrap_err();
    assert!(error.to_string().contains("event 3"), "{error}");
    assert_eq!(log.actors().unwrap().len(), 2);
}

/// The child process of [`acknowledged_events_survive_sigkill`]: appends
/// for many actors, forever, and prints each acknowledged event.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let log = Arc::new(RedbEventLog::open(PathBuf::from(path)).unwrap());
        // Chains of earlier rounds go on from their stored heads.
        let mut starts = Vec::new();
        for actor in log.actors().unwrap() {
            let head = log.head(&actor).unwrap().unwrap();
            starts.push((actor, head.events, Some(head.hash)));
        }
        while starts.len() < CHILD_ACTORS {
            starts.push((ActorId::new(), 0, None));
        }
        println!("READY");
        std::io::stdout().flush().unwrap();
        for (actor, mut seq, mut head) in starts {
            let log = log.clone();
            tokio::spawn(async move {
                loop {
                    // Sizes from a few bytes to several pages.
                    let text = "z".repeat(((seq * 7919) % 9000) as usize);
                    let next = event(head, seq, &text);
                    let hash = next.hash;
                    log.append(&actor, next).await.unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {actor} {seq} {}", hex::encode(hash)).unwrap();
                    out.flush().unwrap();
                    drop(out);
                    head = Some(hash);
                    seq += 1;
                }
            });
        }
        std::future::pending::<()>().await;
    });
}

#[test]
fn acknowledged_events_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let exe = std::env::current_exe().unwrap();
    // Everything ever acknowledged: actor → seq → hash.
    let mut acked: BTreeMap<ActorId, BTreeMap<u64, String>> = BTreeMap::new();
    let mut lost = 0;
    let mut unacked_present = 0;
    for round in 0..CRASH_ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "durability::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines, received) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut round_lines = Vec::new();
        loop {
            let line = received
                .recv_timeout(Duration::from_secs(120))
                .expect("the child starts");
            // libtest may print the test's name on the same line.
            if line.ends_with("READY") {
                break;
            }
            round_lines.push(line);
        }
        std::thread::sleep(Duration::from_millis(rand::random_range(40..400)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        round_lines.extend(received.try_iter());

        let mut round_acks = 0;
        for line in round_lines {
            let Some(rest) = line.strip_prefix("ACK ") else {
                continue;
            };
            let fields: Vec<&str> = rest.split(' ').collect();
            let [actor, seq, hash] = fields[..] else {
                panic!("bad line from the child: {line}");
            };
            acked
                .entry(actor.parse().unwrap())
                .or_default()
                .insert(seq.parse().unwrap(), hash.to_owned());
            round_acks += 1;
        }

        let log = RedbEventLog::open(&path).unwrap_or_else(|e| panic!("round {round}: {e}"));
        log.verify_all()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        lost = 0;
        unacked_present = 0;
        for (actor, events) in &acked {
            let stored = log.events(actor).unwrap();
            for (seq, hash) in events {
                match stored.get(*seq as usize) {
                    Some(event) if hex::encode(event.hash) == *hash => {}
                    _ => lost += 1,
                }
            }
            unacked_present += stored.len().saturating_sub(events.len());
        }
        println!(
            "round {round}: {round_acks} events acknowledged before SIGKILL, {lost} acknowledged events lost so far"
        );
        assert_eq!(lost, 0, "round {round}: acknowledged events are missing");
    }
    let total: usize = acked.values().map(BTreeMap::len).sum();
    println!(
        "crash test: rounds = {CRASH_ROUNDS}, acknowledged = {total}, lost = {lost}, stored but unacknowledged = {unacked_present}"
    );
    assert!(total > 0, "the child acknowledged nothing");
}
