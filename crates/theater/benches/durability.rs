//! What durable chains cost. Run with
//! `cargo bench -p theater --bench durability`.
//!
//! Appenders are tokio tasks, one actor each, that build the next event of
//! their chain and await `append` in a loop. The same loop runs against the
//! in-memory log and against the redb log (durable, then buffered), and each
//! figure is printed absolute and as `ratio <name> = <redb / memory>`.
//! `docs/durability.md` explains the figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use theater::ActorId;
use theater::chain::{ChainEvent, EventLog, MemoryEventLog};
use theater::storage::{Durability, LogOptions, LogStats, RedbEventLog};
use tokio::runtime::Runtime;

/// Rounds per figure; the median is reported.
const ROUNDS: usize = 3;
/// How long appenders run in one round.
const ROUND_TIME: Duration = Duration::from_millis(1200);
/// The concurrent case: appenders at once.
const MANY: usize = 64;
/// The bound of the buffered mode measured.
const MAX_UNSYNCED: Duration = Duration::from_millis(100);

/// Event data the size of a typical `call` record.
const DATA: &str = r#"{"function":"ntwk:theater/message-server-client.handle-send","params":[[123,34,97,100,100,34,58,49,125]],"result":null,"state":{"sha256":"6aea6dfe6561984cdc5c54ead84d47d2cf29e48253ae282aef237404adad4661","size":11}}"#;

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
    let rt = Runtime::new().expect("tokio runtime");
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
            let (rate, stats) = figure(&rt, kind, appenders);
            let mut line = format!(
                "{name:>8} {appenders:>2} appender{}: {rate:>10.0} events/s",
                if appenders == 1 { " " } else { "s" }
            );
            if appenders == 1 {
                line += &format!(", {:.1} µs per append", 1e6 / rate);
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
            println!("{line}");
            rates.push((name, appenders, rate));
        }
    }
    let rate = |name: &str, n: usize| {
        rates
            .iter()
            .find(|(k, a, _)| *k == name && *a == n)
            .map(|(_, _, r)| *r)
            .expect("measured")
    };
    for name in ["durable", "buffered"] {
        for n in [1, MANY] {
            println!(
                "ratio {name}_vs_memory_{n} = {:.4}",
                rate(name, n) / rate("memory", n)
            );
        }
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
        let event = ChainEvent::new(
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
