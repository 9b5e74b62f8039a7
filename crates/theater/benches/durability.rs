//! What durable chains cost. Run with
//! `cargo bench -p theater --bench durability` (or `cargo xtask bench`).
//!
//! 1. The log alone: appenders are tokio tasks, one actor each, that build
//!    the next event of their chain and await `append` in a loop. The same
//!    loop runs against the in-memory log and against the redb log
//!    (durable, then buffered).
//! 2. Recorded calls: real `counter` actors in a `TheaterRuntime`, each
//!    called (`handle-send`) in a loop by its own task, with the in-memory
//!    log and with a durable redb log.
//! 3. Resume: 1,000 counter actors persisted by one runtime, started again
//!    by a new runtime on the same home (`RuntimeConfig::at` +
//!    `resume_all`).
//!
//! Figures are printed absolute and as `ratio <name> = <redb / memory>`;
//! `ratio durable_call` sets a durable call of one actor against its floor,
//! appending the bytes of one event to a file on the same disk and syncing
//! them.
//! `docs/durability.md` explains them.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::counter_manifest;

use serde_json::value::RawValue;
use theater::chain::SealedEvent;
use theater::host::HandlerSet;
use theater::storage::{Durability, LogOptions, LogStats, RedbEventLog};
use theater::storage::{EventLog, MemoryEventLog};
use theater::{ActorId, Manifest, RuntimeConfig, TheaterRuntime};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

/// Rounds per figure; the median is reported.
const ROUNDS: usize = 3;
/// How long appenders run in one round.
const ROUND_TIME: Duration = Duration::from_millis(1200);
/// The concurrent case: appenders at once.
const MANY: usize = 64;
/// The bound of the buffered mode measured.
const MAX_UNSYNCED: Duration = Duration::from_millis(100);
/// Actors persisted and then resumed.
const RESUMED_ACTORS: usize = 1000;
/// Resumes timed; the median is reported.
const RESUME_ROUNDS: usize = 3;

/// Event data the size of a typical `call` record.
const DATA: &str = r#"{"function":"ntwk:theater/message-server-client.handle-send","params":[{"base64":"eyJhZGQiOjF9"}],"result":null,"state":{"sha256":"6aea6dfe6561984cdc5c54ead84d47d2cf29e48253ae282aef237404adad4661","size":11}}"#;

#[derive(Clone, Copy)]
enum Kind {
    Memory,
    Redb(Durability),
}

/// One round: events per second, and the redb log's counters.
struct Round {
    rate: f64,
    stats: Option<LogStats>,
}

fn main() {
    let manifest = counter_manifest();
    let rt = Runtime::new().expect("tokio runtime");
    log_appends(&rt);
    recorded_calls(&rt, &manifest);
    drop(rt);
    resume(&manifest);
}

/// Part 1, the log alone.
fn log_appends(rt: &Runtime) {
    println!(
        "durable chains: {ROUNDS} rounds of {} ms per figure, median shown; event data {} bytes",
        ROUND_TIME.as_millis(),
        DATA.len()
    );
    let buffered = Durability::Buffered {
        max_unsynced: MAX_UNSYNCED,
    };
    let mut rates = Vec::new();
    for (name, kind) in [
        ("memory", Kind::Memory),
        ("durable", Kind::Redb(Durability::Durable)),
        ("buffered", Kind::Redb(buffered)),
    ] {
        for appenders in [1, MANY] {
            let (rate, stats) = figure(rt, kind, appenders);
            let what = ["appender", "events", "append"];
            println!("{}", figure_line(name, appenders, what, rate, stats));
            rates.push((name, appenders, rate));
        }
    }
    for name in ["durable", "buffered"] {
        print_ratios(&rates, name, "");
    }
}

/// One figure: `appenders`/`actors` at `rate` per second, with the durable
/// log's counters. `what` names the unit: (one of n, rate of, µs per).
fn figure_line(
    name: &str,
    n: usize,
    [one, of, per]: [&str; 3],
    rate: f64,
    stats: Option<LogStats>,
) -> String {
    let plural = if n == 1 { " " } else { "s" };
    let mut line = format!("{name:>8} {n:>2} {one}{plural}: {rate:>10.0} {of}/s");
    if n == 1 {
        line += &format!(", {:.1} µs per {per}", 1e6 / rate);
    }
    if let Some(stats) = stats {
        line += &format!(
            ", {:.1} events per commit, {:.1} events per fsync ({} commits, {} fsyncs, largest batch {})",
            stats.events_per_commit(),
            stats.events_per_sync(),
            stats.commits,
            stats.syncs,
            stats.largest_batch,
        );
    }
    line
}

/// `ratio <name><infix>_vs_memory_<n>` for 1 and [`MANY`].
fn print_ratios(rates: &[(&str, usize, f64)], name: &str, infix: &str) {
    let rate = |name: &str, n: usize| {
        rates
            .iter()
            .find(|(k, a, _)| *k == name && *a == n)
            .map(|(_, _, r)| *r)
            .expect("measured")
    };
    for n in [1, MANY] {
        println!(
            "ratio {name}{infix}_vs_memory_{n} = {:.4}",
            rate(name, n) / rate("memory", n)
        );
    }
}

/// The median round of `appenders` against a fresh log of `kind`.
fn figure(rt: &Runtime, kind: Kind, appenders: usize) -> (f64, Option<LogStats>) {
    let mut rounds: Vec<Round> = (0..ROUNDS).map(|_| round(rt, kind, appenders)).collect();
    rounds.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let median = rounds.swap_remove(ROUNDS / 2);
    (median.rate, median.stats)
}

fn round(rt: &Runtime, kind: Kind, appenders: usize) -> Round {
    let dir = tempfile::tempdir().expect("temp dir");
    let (log, redb): (Arc<dyn EventLog>, Option<Arc<RedbEventLog>>) = match kind {
        Kind::Memory => (Arc::new(MemoryEventLog::default()), None),
        Kind::Redb(durability) => {
            let options = LogOptions {
                durability,
                ..LogOptions::default()
            };
            let log = Arc::new(
                RedbEventLog::open_with(dir.path().join("chains.redb"), options)
                    .expect("open the chain database"),
            );
            (log.clone(), Some(log))
        }
    };
    let rate = rt.block_on(async {
        let start = Instant::now();
        let deadline = start + ROUND_TIME;
        let tasks: Vec<_> = (0..appenders)
            .map(|_| {
                let log = log.clone();
                tokio::spawn(async move { append_until(&*log, deadline).await })
            })
            .collect();
        let mut events = 0;
        for task in tasks {
            events += task.await.expect("appender");
        }
        events as f64 / start.elapsed().as_secs_f64()
    });
    let stats = redb.as_ref().map(|log| log.stats());
    drop(log);
    drop(redb);
    Round { rate, stats }
}

/// Appends to one new actor's chain until `deadline`; returns how many.
async fn append_until(log: &dyn EventLog, deadline: Instant) -> u64 {
    let actor = ActorId::new();
    let mut head = None;
    let mut n = 0;
    while Instant::now() < deadline {
        let data = RawValue::from_string(DATA.to_owned()).expect("JSON");
        let event = SealedEvent::new(
            head,
            "call",
            data,
            1_700_000_000_000 + n,
            "handle-send ok".into(),
        );
        head = Some(event.hash);
        log.append(&actor, event).await.expect("append");
        n += 1;
    }
    n
}

/// Part 2, calls recorded through a runtime: `handle-send` on counter
/// actors, each actor called by its own task, one call at a time.
fn recorded_calls(rt: &Runtime, manifest: &Manifest) {
    println!(
        "recorded calls: counter actors, `handle-send` in a loop per actor, {ROUNDS} rounds of {} ms per figure, median shown",
        ROUND_TIME.as_millis()
    );
    // Compiled components, shared by every runtime below.
    let cache = tempfile::tempdir().expect("temp dir");
    let mut rates = Vec::new();
    for (name, durable) in [("memory", false), ("durable", true)] {
        for actors in [1, MANY] {
            let (rate, stats) = call_figure(rt, manifest, cache.path(), durable, actors);
            let what = ["actor", "calls", "call"];
            println!("{}", figure_line(name, actors, what, rate, stats));
            rates.push((name, actors, rate));
        }
    }
    print_ratios(&rates, "durable", "_calls");
    durable_call_vs_fsync(&rates);
}

/// A durable call of one actor against its floor: writing the bytes of one
/// call event to a file on the same disk and syncing it.
fn durable_call_vs_fsync(rates: &[(&str, usize, f64)]) {
    let (_, _, rate) = rates
        .iter()
        .find(|(name, actors, _)| *name == "durable" && *actors == 1)
        .expect("measured");
    let per_call = Duration::from_secs_f64(1.0 / rate);
    let event = SealedEvent::new(
        None,
        "call",
        RawValue::from_string(DATA.to_owned()).expect("JSON"),
        1_700_000_000_000,
        "handle-send ok".into(),
    );
    let size = theater::storage::codec::encode(&event).len();
    let dir = tempfile::tempdir().expect("temp dir");
    let floor = write_and_sync(&dir.path().join("floor"), size);
    println!(
        "durable_call: {:.1} µs per call of 1 actor; writing {size} bytes and syncing them          (fdatasync, as redb does) {:.1} µs",
        per_call.as_secs_f64() * 1e6,
        floor.as_secs_f64() * 1e6
    );
    println!(
        "ratio durable_call = {:.2}",
        per_call.as_secs_f64() / floor.as_secs_f64()
    );
}

/// Median time to append `size` bytes to `path` and sync them to disk.
fn write_and_sync(path: &Path, size: usize) -> Duration {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("create the floor file");
    let bytes = vec![b'x'; size];
    let mut rounds: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            let mut writes = 0u32;
            while start.elapsed() < ROUND_TIME {
                file.write_all(&bytes).expect("write");
                file.sync_data().expect("sync");
                writes += 1;
            }
            start.elapsed() / writes
        })
        .collect();
    rounds.sort();
    rounds[ROUNDS / 2]
}

/// The median round of `actors` counters called in a loop, on one runtime
/// whose log is in memory or durable; with the durable log's counters for
/// that round.
fn call_figure(
    rt: &Runtime,
    manifest: &Manifest,
    cache: &Path,
    durable: bool,
    actors: usize,
) -> (f64, Option<LogStats>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let redb = durable.then(|| {
        Arc::new(
            RedbEventLog::open(dir.path().join("chains.redb")).expect("open the chain database"),
        )
    });
    let event_log: Arc<dyn EventLog> = match &redb {
        Some(log) => log.clone(),
        None => Arc::new(MemoryEventLog::default()),
    };
    let config = RuntimeConfig {
        home: Some(cache.to_owned()),
        event_log,
        handlers: HandlerSet::builtin(),
        ..RuntimeConfig::ephemeral()
    };
    rt.block_on(async {
        let runtime = TheaterRuntime::new(config).expect("theater runtime");
        let mut handles = Vec::with_capacity(actors);
        for _ in 0..actors {
            let actor = runtime.spawn(manifest).await.expect("spawn");
            support::add_one(&actor).await;
            handles.push(actor);
        }
        let mut rounds = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let before = redb.as_ref().map(|log| log.stats());
            let start = Instant::now();
            let calls = support::add_until(&handles, start + ROUND_TIME).await;
            let rate = calls as f64 / start.elapsed().as_secs_f64();
            let stats = redb
                .as_ref()
                .zip(before)
                .map(|(log, before)| since(log.stats(), before));
            rounds.push(Round { rate, stats });
        }
        runtime.shutdown().await;
        rounds.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let median = rounds.swap_remove(ROUNDS / 2);
        (median.rate, median.stats)
    })
}

/// What the writer did between two readings of its counters.
fn since(after: LogStats, before: LogStats) -> LogStats {
    LogStats {
        events: after.events - before.events,
        commits: after.commits - before.commits,
        syncs: after.syncs - before.syncs,
        largest_batch: after.largest_batch,
        states_written: after.states_written - before.states_written,
        state_bytes_written: after.state_bytes_written - before.state_bytes_written,
    }
}

/// Part 3, resume: [`RESUMED_ACTORS`] counters spawned on a durable
/// runtime and called once each, the runtime shut down and its database
/// closed, then a new runtime on the same home opened and `resume_all`
/// timed.
fn resume(manifest: &Manifest) {
    let home = tempfile::tempdir().expect("temp dir");
    let home = home.path();
    // The first runtime has its own tokio runtime: dropping it ends every
    // task that could still hold the database.
    {
        let rt = Runtime::new().expect("tokio runtime");
        let took = rt.block_on(async {
            let runtime = TheaterRuntime::new(RuntimeConfig::at(home).expect("durable config"))
                .expect("theater runtime");
            // The first spawn compiles the component into the home's cache.
            let first = runtime.spawn(manifest).await.expect("spawn");
            support::add_one(&first).await;
            let start = Instant::now();
            let mut spawned = 1;
            while spawned < RESUMED_ACTORS {
                let batch = MANY.min(RESUMED_ACTORS - spawned);
                let mut tasks = JoinSet::new();
                for _ in 0..batch {
                    let (runtime, manifest) = (runtime.clone(), manifest.clone());
                    tasks.spawn(async move {
                        let actor = runtime.spawn(&manifest).await.expect("spawn");
                        support::add_one(&actor).await;
                    });
                }
                tasks.join_all().await;
                spawned += batch;
            }
            let took = start.elapsed();
            runtime.shutdown().await;
            took
        });
        drop(rt);
        println!(
            "resume: {RESUMED_ACTORS} counter actors spawned durably and called once each in {:.0} ms ({} at a time); chain database {:.1} MB",
            took.as_secs_f64() * 1e3,
            MANY,
            file_mb(&home.join(theater::runtime::CHAINS_FILE)),
        );
    }
    let mut rounds: Vec<(Duration, Duration)> = (0..RESUME_ROUNDS)
        .map(|round| resume_round(home, round == 0))
        .collect();
    rounds.sort_by_key(|(_, total)| *total);
    let (open, total) = rounds[RESUME_ROUNDS / 2];
    let resume = total - open;
    println!(
        "resume: {RESUMED_ACTORS} actors in {:.1} ms ({:.0} µs per actor): opening the runtime and database {:.1} ms, resume_all {:.1} ms ({:.0} µs per actor); median of {RESUME_ROUNDS}",
        total.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e6 / RESUMED_ACTORS as f64,
        open.as_secs_f64() * 1e3,
        resume.as_secs_f64() * 1e3,
        resume.as_secs_f64() * 1e6 / RESUMED_ACTORS as f64,
    );
}

/// One timed resume on `home`: (opening the runtime, opening + resume_all).
/// `check` also reads every resumed actor's state.
fn resume_round(home: &Path, check: bool) -> (Duration, Duration) {
    let rt = Runtime::new().expect("tokio runtime");
    let times = rt.block_on(async {
        let start = Instant::now();
        let runtime = TheaterRuntime::new(RuntimeConfig::at(home).expect("reopen the home"))
            .expect("theater runtime");
        let open = start.elapsed();
        let report = runtime.resume_all().await.expect("resume");
        let total = start.elapsed();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.resumed.len(), RESUMED_ACTORS);
        if check {
            for id in &report.resumed {
                let state = runtime.actor(*id).expect("resumed").state().await;
                assert_eq!(
                    state.expect("state").as_deref(),
                    Some(&br#"{"count":1}"#[..]),
                    "actor {id} resumed with another state"
                );
            }
        }
        runtime.shutdown().await;
        (open, total)
    });
    drop(rt);
    times
}

fn file_mb(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1e6)
}
