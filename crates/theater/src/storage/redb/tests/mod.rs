//! Tests of the redb log against real database files in temp dirs,
//! damaging them with a raw redb handle where a test needs it.

mod states;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableTable};
use serde_json::value::RawValue;

use super::layout::{EVENTS, META, key_of};
use super::*;
use crate::chain::{self, ChainEvent, ChainExport, Hash, SealedEvent, VerifyError};
use crate::id::ActorId;
use crate::storage::{Accepted, Entry, EventLog, KeptState};

fn event(parent: Option<Hash>, n: u64) -> SealedEvent {
    SealedEvent::new(
        parent,
        "call",
        RawValue::from_string(format!(r#"{{"n":{n},"pad":"marker-{n:06}"}}"#)).unwrap(),
        1_700_000_000_000 + n,
        format!("call {n}"),
    )
}

/// Appends `n` linked events to `actor`'s chain, after `head`.
async fn append_chain(
    log: &RedbEventLog,
    actor: &ActorId,
    mut head: Option<Hash>,
    n: u64,
) -> Option<Hash> {
    for i in 0..n {
        let next = event(head, i);
        head = Some(next.hash);
        log.append(actor, next).await.unwrap();
    }
    head
}

/// Appends a state transition, as the executor does.
pub(super) async fn append_state(
    log: &RedbEventLog,
    actor: &ActorId,
    event: SealedEvent,
    state: Option<Vec<u8>>,
) {
    let state = KeptState::new(state);
    let entry = Entry {
        event,
        state: Some(&state),
        delivered: None,
    };
    log.append_entry(actor, entry).await.unwrap();
}

pub(super) fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("chains.redb");
    (dir, path)
}

/// Rewrites the stored bytes of `actor`'s event `seq` with a raw redb
/// handle (the log must be closed).
fn tamper(path: &Path, actor: &ActorId, seq: u64, change: impl FnOnce(&mut Vec<u8>)) {
    let db = Database::open(path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut events = tx.open_table(EVENTS).unwrap();
        let mut bytes = events
            .get((key_of(actor), seq))
            .unwrap()
            .unwrap()
            .value()
            .to_vec();
        change(&mut bytes);
        events
            .insert((key_of(actor), seq), bytes.as_slice())
            .unwrap();
    }
    tx.commit().unwrap();
}

fn remove(path: &Path, actor: &ActorId, seq: u64) {
    let db = Database::open(path).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(EVENTS)
        .unwrap()
        .remove((key_of(actor), seq))
        .unwrap();
    tx.commit().unwrap();
}

#[tokio::test]
async fn events_survive_reopening_byte_for_byte() {
    let (_dir, path) = temp_db();
    let actor = ActorId::new();
    let written: Vec<ChainEvent> = {
        let log = RedbEventLog::open(&path).unwrap();
        let head = append_chain(&log, &actor, None, 5).await;
        assert_eq!(log.head(&actor).unwrap().unwrap().hash, head.unwrap());
        assert_eq!(log.stats().syncs, log.stats().commits);
        log.events(&actor).unwrap()
    };
    let log = RedbEventLog::open(&path).unwrap();
    let read = log.events(&actor).unwrap();
    assert_eq!(read.len(), 5);
    for (a, b) in written.iter().zip(&read) {
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.data.get(), b.data.get());
    }
    assert_eq!(chain::verify(&read), Ok(()));
    let head = log.verify_stored(&actor).unwrap().unwrap();
    assert_eq!((head.events, head.hash), (5, read[4].hash));
    assert_eq!(log.actors().unwrap(), vec![actor]);
    assert!(log.events(&ActorId::new()).unwrap().is_empty());
    assert_eq!(log.verify_stored(&ActorId::new()).unwrap(), None);
    // The chain goes on from the stored head after reopening.
    log.append(&actor, event(Some(head.hash), 99))
        .await
        .unwrap();
    assert_eq!(
        log.verify_all().unwrap(),
        VerifySummary {
            chains: 1,
            events: 6
        }
    );
}

#[tokio::test]
async fn an_event_that_does_not_link_to_the_head_is_refused() {
    let (_dir, path) = temp_db();
    let log = RedbEventLog::open(&path).unwrap();
    let actor = ActorId::new();
    let first = event(None, 0);
    log.append(&actor, first.clone()).await.unwrap();
    log.append(&actor, event(Some(first.hash), 1))
        .await
        .unwrap();
    let error = log.append(&actor, event(None, 7)).await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("links to nothing"), "{text}");
    assert!(text.contains(&actor.to_string()), "{text}");
    // A link to an event that is no longer the head.
    let error = log
        .append(&actor, event(Some(first.hash), 8))
        .await
        .unwrap_err();
    let refused = error.cause().downcast_ref::<WriteError>();
    assert!(
        matches!(refused, Some(WriteError::Unlinked { .. })),
        "{error}"
    );
    assert_eq!(log.events(&actor).unwrap().len(), 2);
    log.verify_all().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_are_group_committed_in_order() {
    let (_dir, path) = temp_db();
    let log = Arc::new(RedbEventLog::open(&path).unwrap());
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let log = log.clone();
            tokio::spawn(async move {
                let actor = ActorId::new();
                append_chain(&log, &actor, None, 20).await;
                actor
            })
        })
        .collect();
    let mut actors = Vec::new();
    for task in tasks {
        actors.push(task.await.unwrap());
    }
    let stats = log.stats();
    assert_eq!(stats.events, 32 * 20);
    assert!(
        stats.events_per_commit() > 1.0,
        "no batching: {stats:?} (events per commit {})",
        stats.events_per_commit()
    );
    for actor in &actors {
        let events = log.events(actor).unwrap();
        let numbers: Vec<u64> = events.iter().map(|e| e.timestamp % 1000).collect();
        assert_eq!(numbers, (0..20).collect::<Vec<_>>());
    }
    assert_eq!(log.verify_all().unwrap().events, 32 * 20);
}

#[tokio::test]
async fn altered_data_is_reported_at_the_first_bad_event() {
    let (_dir, path) = temp_db();
    let (a, b) = (ActorId::new(), ActorId::new());
    {
        let log = RedbEventLog::open(&path).unwrap();
        append_chain(&log, &a, None, 6).await;
        append_chain(&log, &b, None, 3).await;
    }
    // `"n":3` becomes `"n":4`: still JSON, but not what was hashed.
    tamper(&path, &a, 3, |bytes| {
        let at = bytes.windows(4).position(|w| w == br#""n":"#).unwrap() + 4;
        bytes[at] += 1;
    });
    let log = RedbEventLog::open(&path).unwrap();
    let error = log.verify_stored(&a).unwrap_err();
    let damaged = error.damaged_chains();
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0].actor, a);
    assert!(matches!(
        damaged[0].damage,
        Damage::Chain(VerifyError::HashMismatch { index: 3, .. })
    ));
    assert_eq!(damaged[0].damage.first_bad_event(), 3);
    let text = error.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("event 3"), "{text}");
    log.verify_stored(&b).unwrap();
    let all = log.verify_all().unwrap_err();
    assert_eq!(all.damaged_chains().len(), 1);
    assert_eq!(all.damaged_chains()[0].actor, a);
}

#[tokio::test]
async fn unreadable_missing_and_cut_events_are_reported() {
    let (_dir, path) = temp_db();
    let (a, b, c) = (ActorId::new(), ActorId::new(), ActorId::new());
    {
        let log = RedbEventLog::open(&path).unwrap();
        append_chain(&log, &a, None, 4).await;
        append_chain(&log, &b, None, 4).await;
        append_chain(&log, &c, None, 4).await;
    }
    tamper(&path, &a, 2, |bytes| {
        let at = bytes.iter().position(|b| *b == b'{').unwrap();
        bytes[at] = 0xff;
    });
    remove(&path, &b, 1);
    remove(&path, &c, 3);
    let log = RedbEventLog::open(&path).unwrap();
    let damage = |actor: &ActorId| {
        let error = log.verify_stored(actor).unwrap_err();
        let chains = error.damaged_chains();
        assert_eq!(chains.len(), 1, "{error}");
        (chains[0].damage.first_bad_event(), error.to_string())
    };
    let (index, text) = damage(&a);
    assert_eq!(index, 2, "{text}");
    assert!(text.contains("cannot be read"), "{text}");
    let (index, text) = damage(&b);
    assert_eq!(index, 1, "{text}");
    assert!(text.contains("missing"), "{text}");
    let (index, text) = damage(&c);
    assert_eq!(index, 3, "{text}");
    assert!(text.contains("head table records 4 events"), "{text}");
    assert!(log.events(&a).unwrap_err().to_string().contains("event 2"));
    assert_eq!(log.verify_all().unwrap_err().damaged_chains().len(), 3);
}

#[tokio::test]
async fn export_and_import_round_trip_under_a_new_id() {
    let (_dir, path) = temp_db();
    let log = RedbEventLog::open(&path).unwrap();
    let actor = ActorId::new();
    append_chain(&log, &actor, None, 4).await;
    let json = log.export(&actor).unwrap().to_json();
    let copy = log.import_json(&json).await.unwrap();
    assert_ne!(copy, actor);
    let original = log.events(&actor).unwrap();
    let imported = log.events(&copy).unwrap();
    assert_eq!(
        original.iter().map(|e| e.hash).collect::<Vec<_>>(),
        imported.iter().map(|e| e.hash).collect::<Vec<_>>()
    );
    // The copy's chain goes on from the imported head.
    let head = log.head(&copy).unwrap().unwrap();
    assert_eq!(head.events, 4);
    log.append(&copy, event(Some(head.hash), 4)).await.unwrap();
    log.verify_all().unwrap();

    let error = log
        .import_as(actor, &ChainExport::from_json(&json).unwrap())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("already has a chain"), "{error}");
    // A chain that goes on from this one's head gives it the rest: an
    // actor back on a node it ran on.
    let mut longer = ChainExport::from_json(&json).unwrap();
    let head = longer.events.last().unwrap().hash;
    longer.events.push(event(Some(head), 4).into_event());
    log.import_as(actor, &longer).await.unwrap();
    assert_eq!(log.head(&actor).unwrap().unwrap().events, 5);
    log.verify_all().unwrap();
    // One that parts from it is refused.
    let mut parted = ChainExport::from_json(&json).unwrap();
    parted.events.truncate(2);
    for n in 2..7 {
        let next = event(Some(parted.events.last().unwrap().hash), 100 + n);
        parted.events.push(next.into_event());
    }
    let error = log.import_as(actor, &parted).await.unwrap_err();
    assert!(error.to_string().contains("does not continue"), "{error}");
    let mut altered = ChainExport::from_json(&json).unwrap();
    altered.events[2].timestamp += 1;
    let error = log.import(&altered).await.unwrap_err();
    assert!(error.to_string().contains("event 2"), "{error}");
    let error = log.import_json("{}").await.unwrap_err();
    assert!(error.to_string().contains("not a chain export"), "{error}");
    assert_eq!(log.actors().unwrap().len(), 2);
}

#[tokio::test]
async fn buffered_appends_are_visible_at_once_and_durable_after_drop() {
    let (_dir, path) = temp_db();
    let actor = ActorId::new();
    let options = LogOptions {
        durability: Durability::Buffered {
            max_unsynced: Duration::from_secs(60),
        },
        ..LogOptions::default()
    };
    {
        let log = RedbEventLog::open_with(&path, options.clone()).unwrap();
        append_chain(&log, &actor, None, 10).await;
        assert_eq!(log.events(&actor).unwrap().len(), 10);
        assert_eq!(log.stats().syncs, 0);
        log.sync().await.unwrap();
        assert_eq!(log.stats().syncs, 1);
        append_chain(&log, &actor, log.head(&actor).unwrap().map(|h| h.hash), 3).await;
    }
    let log = RedbEventLog::open(&path).unwrap();
    assert_eq!(log.verify_stored(&actor).unwrap().unwrap().events, 13);
}

#[tokio::test]
async fn buffered_commits_are_synced_within_the_bound() {
    let (_dir, path) = temp_db();
    let options = LogOptions {
        durability: Durability::Buffered {
            max_unsynced: Duration::from_millis(20),
        },
        ..LogOptions::default()
    };
    let log = RedbEventLog::open_with(&path, options).unwrap();
    append_chain(&log, &ActorId::new(), None, 3).await;
    // Not a timing assertion: the idle writer syncs on its own, however
    // long that takes.
    while log.stats().syncs == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(log.stats().events, 3);
}

#[test]
fn a_file_that_is_not_a_database_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chains.redb");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let error = RedbEventLog::open(&path).unwrap_err();
    let text = error.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.starts_with("cannot open the chain database"), "{text}");
}

#[test]
fn another_layout_is_refused() {
    let (_dir, path) = temp_db();
    drop(RedbEventLog::open(&path).unwrap());
    {
        let db = Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(META).unwrap().insert("format", 7).unwrap();
        tx.commit().unwrap();
    }
    let error = RedbEventLog::open(&path).unwrap_err();
    assert!(
        matches!(error, StorageError::Format { found: 7, .. }),
        "{error}"
    );
}

#[test]
fn a_second_open_of_the_same_file_is_refused_with_a_hint() {
    let (_dir, path) = temp_db();
    let _log = RedbEventLog::open(&path).unwrap();
    let error = RedbEventLog::open(&path).unwrap_err();
    assert!(error.to_string().contains("another process"), "{error}");
}
#[tokio::test]
async fn an_accepted_message_leaves_the_inbox_with_its_calls_event() {
    let (_dir, path) = temp_db();
    let actor = ActorId::new();
    let message = |n: u32| Accepted {
        function: "f".into(),
        params: RawValue::from_string(format!("[{n}]")).unwrap(),
        origin: None,
    };
    let numbers = {
        let log = RedbEventLog::open(&path).unwrap();
        let mut numbers = Vec::new();
        for n in 0..3 {
            numbers.push(log.accept(&actor, &message(n)).await.unwrap().unwrap());
        }
        // The first one runs: its event takes it out of the inbox.
        let entry = Entry {
            event: event(None, 0),
            state: None,
            delivered: Some(numbers[0]),
        };
        log.append_entry(&actor, entry).await.unwrap();
        numbers
    };
    // The others are still there after a restart, in order, and new
    // numbers do not reuse theirs.
    let log = RedbEventLog::open(&path).unwrap();
    let inbox = log.inbox(&actor).unwrap();
    let kept: Vec<(u64, &str)> = inbox.iter().map(|(n, m)| (*n, m.params.get())).collect();
    assert_eq!(kept, [(numbers[1], "[1]"), (numbers[2], "[2]")]);
    let next = log.accept(&actor, &message(3)).await.unwrap().unwrap();
    assert!(next > numbers[2]);
    // An actor stopped for good drops its inbox.
    log.set_running(&actor, false).await.unwrap();
    assert!(log.inbox(&actor).unwrap().is_empty());
}

/// The file as a crash leaves it when only some pages of the last
/// commit reached the disk: each page that commit changed is either
/// old or new. Opening it recovers the last complete commit.
#[tokio::test]
async fn a_torn_last_commit_is_recovered_to_the_commit_before() {
    const PAGE: usize = 4096;
    let (dir, path) = temp_db();
    let actor = ActorId::new();
    let log = RedbEventLog::open(&path).unwrap();
    let head = append_chain(&log, &actor, None, 20).await;
    let before = std::fs::read(&path).unwrap(); // taken while open, as a crash leaves it
    // One commit of one event several pages long.
    let pad = "x".repeat(5 * PAGE);
    let data = RawValue::from_string(format!(r#"{{"pad":"{pad}"}}"#)).unwrap();
    let last = SealedEvent::new(head, "call", data, 1_700_000_001_000, "big".into());
    log.append(&actor, last).await.unwrap();
    let after = std::fs::read(&path).unwrap();
    drop(log);

    // Every changed page new (the commit whole), or every other one
    // new (the commit torn, either way round).
    for (keep_new, expected) in [(None, 21), (Some(0), 20), (Some(1), 20)] {
        let mut torn = after.clone();
        let changed = (0..after.len().div_ceil(PAGE)).filter(|page| {
            let range = page * PAGE..((page + 1) * PAGE).min(after.len());
            before.get(range.clone()) != Some(&after[range])
        });
        for (n, page) in changed.enumerate() {
            let (start, end) = (page * PAGE, ((page + 1) * PAGE).min(before.len()));
            if keep_new.is_some_and(|keep| n % 2 != keep) && start < end {
                torn[start..end].copy_from_slice(&before[start..end]);
            }
        }
        let copy = dir.path().join(format!("torn-{keep_new:?}.redb"));
        std::fs::write(&copy, &torn).unwrap();
        let log = RedbEventLog::open(&copy).unwrap();
        assert_eq!(log.verify_all().unwrap().events, expected, "{keep_new:?}");
        assert_eq!(log.head(&actor).unwrap().unwrap().events, expected);
    }
}

#[tokio::test]
async fn a_truncated_file_is_refused_by_name() {
    let (_dir, path) = temp_db();
    let log = RedbEventLog::open(&path).unwrap();
    append_chain(&log, &ActorId::new(), None, 200).await;
    drop(log);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len / 2).unwrap();
    drop(file);
    let error = RedbEventLog::open(&path).unwrap_err().to_string();
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert!(
        error.contains("the file is damaged (File truncated"),
        "{error}"
    );
}
