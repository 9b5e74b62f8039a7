//! Tests of kept states: snapshots, each state stored once, the
//! conversion of layout 1, and damage to a stored state.

use redb::{Database, ReadableDatabase, ReadableTable};
use sha2::{Digest, Sha256};

use super::{append_state, temp_db};
use crate::chain::record::StateDigest;
use crate::chain::{Hash, SealedEvent};
use crate::id::ActorId;
use crate::storage::redb::layout::{
    FORMAT, META, SNAPSHOTS, STATE_BLOBS, STATE_REFS, STATES, key_of,
};
use crate::storage::{Damage, EventLog, LogOptions, RedbEventLog, SNAPSHOT_EVERY};

/// A call event recording `state` (by digest), as the executor writes it.
fn transition(parent: Option<Hash>, state: &Option<Vec<u8>>) -> SealedEvent {
    let data = crate::chain::record::encode(&serde_json::json!({
        "function": "f",
        "state": StateDigest::of(state),
    }));
    SealedEvent::new(parent, "call", data, 1_700_000_000_000, "f ok".into())
}

#[tokio::test]
async fn states_are_snapshotted_and_a_changed_snapshot_is_reported() {
    let (_dir, path) = temp_db();
    let actor = ActorId::new();
    let log = RedbEventLog::open(&path).unwrap();
    let mut head = None;
    for n in 0..100u32 {
        let state = Some(n.to_string().into_bytes());
        let event = transition(head, &state);
        head = Some(event.hash);
        append_state(&log, &actor, event, state).await;
    }
    let at = |index| log.stored_snapshot(&actor, index).unwrap().unwrap();
    assert_eq!(at(63).index, 0);
    assert_eq!(at(99).index, SNAPSHOT_EVERY);
    assert_eq!(at(99).state, Some(b"64".to_vec()));
    assert_eq!(log.verify_stored(&actor).unwrap().unwrap().events, 100);
    drop(log);

    // One byte of the state snapshotted at event 64, changed on disk.
    let db = Database::open(&path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut blobs = tx.open_table(STATE_BLOBS).unwrap();
        let key: Hash = Sha256::digest(b"64").into();
        let mut bytes = blobs.get(key).unwrap().unwrap().value().to_vec();
        *bytes.last_mut().unwrap() = b'5';
        blobs.insert(key, bytes.as_slice()).unwrap();
    }
    tx.commit().unwrap();
    drop(db);

    let log = RedbEventLog::open(&path).unwrap();
    let error = log.verify_stored(&actor).unwrap_err();
    let damage = &error.damaged_chains()[0].damage;
    assert!(matches!(damage, Damage::State { index: 64, .. }), "{error}");
    assert!(
        error.to_string().contains("state stored for event 64"),
        "{error}"
    );
    assert_eq!(log.verify_all().unwrap_err().damaged_chains().len(), 1);
    let failure = EventLog::verify(&log, &actor).unwrap_err();
    assert_eq!(failure.first_bad_event, Some(64));
}

#[tokio::test]
async fn each_state_is_stored_once_and_removed_when_nothing_names_it() {
    let (_dir, path) = temp_db();
    let log = RedbEventLog::open(&path).unwrap();
    let state = |text: &str| Some(text.as_bytes().to_vec());
    let (a, b) = (ActorId::new(), ActorId::new());
    let mut head = None;
    for text in ["one", "one", "one", "two", "two", "three"] {
        let event = transition(head, &state(text));
        head = Some(event.hash);
        append_state(&log, &a, event, state(text)).await;
    }
    append_state(&log, &b, transition(None, &state("three")), state("three")).await;
    // "one" (kept by the snapshot of event 0), "two" and "three" were
    // each written once; "two" is gone, named by nothing.
    let stats = log.stats();
    assert_eq!((stats.states_written, stats.state_bytes_written), (3, 11));
    let tx = log.shared.db.begin_read().unwrap();
    let blobs = tx.open_table(STATE_BLOBS).unwrap();
    let stored: Vec<Vec<u8>> = blobs
        .iter()
        .unwrap()
        .map(|row| row.unwrap().1.value().to_vec())
        .collect();
    assert_eq!(stored.len(), 2);
    assert!(stored.contains(&b"one".to_vec()) && stored.contains(&b"three".to_vec()));
    let refs = tx.open_table(STATE_REFS).unwrap();
    let three: Hash = Sha256::digest(b"three").into();
    assert_eq!(refs.get(three).unwrap().unwrap().value(), 3);
    assert_eq!(log.verify_all().unwrap().events, 7);
    assert_eq!(
        log.stored_snapshot(&a, 5).unwrap().unwrap().state,
        state("one")
    );
}

#[tokio::test]
async fn a_database_of_layout_1_is_converted_on_open() {
    let (_dir, path) = temp_db();
    let actor = ActorId::new();
    let state = Some(b"{\"count\":1}".to_vec());
    let event = transition(None, &state);
    {
        let log = RedbEventLog::open(&path).unwrap();
        log.append(&actor, event.clone()).await.unwrap();
    }
    // What layout 1 wrote: the state inline, in both tables.
    let mut inline = 0u64.to_be_bytes().to_vec();
    inline.extend_from_slice(&event.hash);
    inline.push(1);
    inline.extend_from_slice(state.as_deref().unwrap());
    {
        let db = Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(META).unwrap().insert("format", 1).unwrap();
        tx.open_table(STATES)
            .unwrap()
            .insert(key_of(&actor), inline.as_slice())
            .unwrap();
        tx.open_table(SNAPSHOTS)
            .unwrap()
            .insert((key_of(&actor), 0), inline.as_slice())
            .unwrap();
        tx.commit().unwrap();
    }
    let log = RedbEventLog::open(&path).unwrap();
    assert_eq!(log.verify_all().unwrap().events, 1);
    assert_eq!(
        log.stored_snapshot(&actor, 0).unwrap().unwrap().state,
        state
    );
    drop(log);
    let db = Database::open(&path).unwrap();
    let tx = db.begin_read().unwrap();
    let format = tx
        .open_table(META)
        .unwrap()
        .get("format")
        .unwrap()
        .unwrap()
        .value();
    assert_eq!(format, FORMAT);
    assert_eq!(
        tx.open_table(STATE_BLOBS).unwrap().iter().unwrap().count(),
        1
    );
}

#[tokio::test]
async fn the_snapshot_interval_is_an_option() {
    let (_dir, path) = temp_db();
    let options = LogOptions {
        snapshot_every: 10,
        ..LogOptions::default()
    };
    let log = RedbEventLog::open_with(&path, options).unwrap();
    let actor = ActorId::new();
    let mut head = None;
    for n in 0..25u32 {
        let state = Some(n.to_string().into_bytes());
        let event = transition(head, &state);
        head = Some(event.hash);
        append_state(&log, &actor, event, state).await;
    }
    let at = |index| log.stored_snapshot(&actor, index).unwrap().unwrap().index;
    assert_eq!((at(9), at(19), at(24)), (0, 10, 20));
}
