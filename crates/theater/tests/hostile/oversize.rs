//! Oversized replies and states: an actor that answers or keeps as much as
//! it likes must get a clear error, leave its state and the chain database
//! as they were, and never make its neighbours wait while its history is
//! read.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use theater::actor::MAX_ERROR_BYTES;
use theater::chain::{ChainEvent, Hash, record};
use theater::host::HANDLE_REQUEST;
use theater::manifest::{DEFAULT_MAX_RESULT_BYTES, DEFAULT_MAX_STATE_BYTES};
use theater::runtime::CHAINS_FILE;
use theater::server::protocol::{Op, Payload};
use theater::server::{Client, ServerConfig};
use theater::storage::RedbEventLog;
use theater::storage::{
    ActorRecord, Entry, EventLog, LogError, LogFuture, SavedActor, Snapshot, VerifyFailure,
};
use theater::{ActorError, ActorHandle, ActorId, RuntimeConfig, TheaterRuntime};

use crate::common;
use crate::common::manifest_path;

/// What the attacks ask for: far past every default cap.
const HUGE: usize = 100_000_000;

/// A state under the default cap, large enough that each copy of it
/// written to the database shows in the file's size.
const LARGE_STATE: usize = 2 * 1024 * 1024;

/// Sends `command` to the `oversize` actor; its reply is raw bytes.
async fn command(actor: &ActorHandle, command: Value) -> Result<Vec<u8>, ActorError> {
    let message = command.to_string().into_bytes();
    let (reply,) = actor
        .call_function::<(Vec<u8>,), (Vec<u8>,)>(HANDLE_REQUEST, (message,))
        .await?;
    Ok(reply)
}

/// The size of the actor's state, as it answers it.
async fn state_size(actor: &ActorHandle) -> usize {
    let reply = command(actor, json!("size")).await.unwrap();
    String::from_utf8(reply).unwrap().parse().unwrap()
}

fn durable_runtime(home: &Path) -> TheaterRuntime {
    TheaterRuntime::new(RuntimeConfig::at(home).unwrap()).unwrap()
}

fn database_bytes(home: &Path) -> u64 {
    std::fs::metadata(home.join(CHAINS_FILE)).unwrap().len()
}

fn last_event(runtime: &TheaterRuntime, actor: &ActorHandle) -> ChainEvent {
    let events = runtime.chain(actor.id()).unwrap();
    theater::chain::verify(&events).unwrap();
    events.last().unwrap().clone()
}

#[tokio::test]
async fn a_huge_reply_is_a_call_error_and_never_reaches_the_chain() {
    let home = tempfile::tempdir().unwrap();
    let runtime = durable_runtime(home.path());
    let actor = runtime.spawn_file(manifest_path("oversize")).await.unwrap();
    command(&actor, json!({"state": 1000})).await.unwrap();

    let error = command(&actor, json!({"reply": HUGE})).await.unwrap_err();
    assert!(
        matches!(error, ActorError::ResultTooLarge { limit, .. } if limit == DEFAULT_MAX_RESULT_BYTES),
        "{error}"
    );
    assert!(error.to_string().contains("max_result_bytes"), "{error}");
    let event = last_event(&runtime, &actor);
    assert_eq!(event.event_type, record::CALL_ERROR);
    assert!(
        event.data.get().contains("result-too-large"),
        "{}",
        event.data
    );
    assert!(
        event.data.get().len() < 4096,
        "{} bytes",
        event.data.get().len()
    );
    // The actor keeps its state and keeps serving.
    assert_eq!(state_size(&actor).await, 1000);
    assert!(database_bytes(home.path()) < 16 << 20);
    runtime.verify(actor.id()).await.unwrap();
}

#[tokio::test]
async fn a_huge_state_or_error_is_refused_and_the_old_state_kept() {
    let home = tempfile::tempdir().unwrap();
    let runtime = durable_runtime(home.path());
    let actor = runtime.spawn_file(manifest_path("oversize")).await.unwrap();
    command(&actor, json!({"state": 1000})).await.unwrap();

    for grow in [json!({"state": HUGE}), json!({"bump": HUGE})] {
        let error = command(&actor, grow).await.unwrap_err();
        assert!(
            matches!(error, ActorError::StateTooLarge { size: HUGE, limit, .. } if limit == DEFAULT_MAX_STATE_BYTES),
            "{error}"
        );
        assert!(error.to_string().contains("max_state_bytes"), "{error}");
        let event = last_event(&runtime, &actor);
        assert_eq!(event.event_type, record::CALL_ERROR);
        assert!(
            event.data.get().contains("state-too-large"),
            "{}",
            event.data
        );
    }
    let error = command(&actor, json!({"fail": HUGE})).await.unwrap_err();
    let ActorError::Failed { message, .. } = &error else {
        panic!("expected the actor's error, got {error}");
    };
    assert!(
        message.len() < MAX_ERROR_BYTES + 100,
        "{} bytes",
        message.len()
    );
    assert!(
        message.ends_with("more bytes cut)"),
        "{}",
        &message[MAX_ERROR_BYTES..]
    );

    assert_eq!(state_size(&actor).await, 1000);
    assert_eq!(actor.state().await.unwrap(), Some(vec![b's'; 1000]));
    let size = database_bytes(home.path());
    assert!(
        size < 16 << 20,
        "the refused calls grew the database to {size} bytes"
    );
    runtime.verify(actor.id()).await.unwrap();
}

#[tokio::test]
async fn a_large_state_is_written_once_however_often_it_is_kept() {
    let home = tempfile::tempdir().unwrap();
    let log = Arc::new(RedbEventLog::open(home.path().join(CHAINS_FILE)).unwrap());
    let config = RuntimeConfig {
        home: Some(home.path().to_owned()),
        event_log: log.clone(),
        ..RuntimeConfig::ephemeral()
    };
    let runtime = TheaterRuntime::new(config).unwrap();
    let actor = runtime.spawn_file(manifest_path("oversize")).await.unwrap();
    command(&actor, json!({"state": LARGE_STATE}))
        .await
        .unwrap();
    // Calls that leave the state as it was, and calls that set it to the
    // same bytes again.
    for _ in 0..10 {
        assert_eq!(state_size(&actor).await, LARGE_STATE);
        command(&actor, json!({"state": LARGE_STATE}))
            .await
            .unwrap();
    }
    assert_eq!(log.stats().state_bytes_written, LARGE_STATE as u64);
    let size = database_bytes(home.path());
    assert!(
        size < 6 * LARGE_STATE as u64,
        "21 calls that kept one {LARGE_STATE}-byte state grew the database to {size} bytes"
    );

    // A state that changes on every call replaces the one before.
    for _ in 0..10 {
        command(&actor, json!({"bump": LARGE_STATE})).await.unwrap();
    }
    assert_eq!(log.stats().state_bytes_written, 11 * LARGE_STATE as u64);
    let size = database_bytes(home.path());
    assert!(
        size < 12 * LARGE_STATE as u64,
        "10 changes of a {LARGE_STATE}-byte state grew the database to {size} bytes"
    );
    runtime.verify(actor.id()).await.unwrap();

    // And the newest one is what the actor resumes with.
    let expected = actor.state().await.unwrap();
    runtime.shutdown().await;
    drop(runtime);
    drop(log);
    let runtime = durable_runtime(home.path());
    let report = runtime.resume_all().await.unwrap();
    assert_eq!(report.resumed, vec![actor.id()]);
    let resumed = runtime.actor(actor.id()).unwrap();
    assert_eq!(resumed.state().await.unwrap(), expected);
}

/// A log whose history reads (not its writes) wait at a gate until the
/// test opens it, as a read of a very long chain would.
struct GatedLog {
    log: RedbEventLog,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    /// Reads that reached the gate.
    arrived: AtomicUsize,
    /// Reads that stopped waiting before the gate opened.
    gave_up: AtomicUsize,
}

impl Gate {
    /// Longest a read waits, so that a runtime that blocks on it still ends.
    const MOST: Duration = Duration::from_secs(10);

    fn pass(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        let open = self.open.lock().unwrap();
        let (_open, waited) = self
            .opened
            .wait_timeout_while(open, Self::MOST, |open| !*open)
            .unwrap();
        if waited.timed_out() {
            self.gave_up.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl EventLog for GatedLog {
    fn append_entry(&self, actor: &ActorId, entry: Entry<'_>) -> LogFuture {
        self.log.append_entry(actor, entry)
    }

    fn import_chain(&self, actor: &ActorId, events: Vec<ChainEvent>) -> LogFuture {
        self.log.import_chain(actor, events)
    }

    fn events(&self, actor: &ActorId) -> Result<Vec<ChainEvent>, LogError> {
        self.gate.pass();
        self.log.events(actor)
    }

    fn events_from(&self, actor: &ActorId, start: u64) -> Result<Vec<ChainEvent>, LogError> {
        self.gate.pass();
        self.log.events_from(actor, start)
    }

    fn chain_head(&self, actor: &ActorId) -> Result<Option<(u64, Hash)>, LogError> {
        self.gate.pass();
        self.log.chain_head(actor)
    }

    fn verify(&self, actor: &ActorId) -> Result<(), VerifyFailure> {
        self.gate.pass();
        self.log.verify(actor)
    }

    fn snapshot(&self, actor: &ActorId, index: u64) -> Result<Option<Snapshot>, LogError> {
        self.gate.pass();
        self.log.snapshot(actor, index)
    }

    fn save_actor(&self, actor: &ActorId, record: &ActorRecord) -> LogFuture {
        self.log.save_actor(actor, record)
    }

    fn set_running(&self, actor: &ActorId, running: bool) -> LogFuture {
        self.log.set_running(actor, running)
    }

    fn saved_actors(&self) -> Result<Vec<SavedActor>, LogError> {
        self.log.saved_actors()
    }

    fn saved_actor(&self, actor: &ActorId) -> Result<Option<SavedActor>, LogError> {
        self.gate.pass();
        self.log.saved_actor(actor)
    }
}

/// Runs `op` against the server from a client on its own thread, as a real
/// client would; returns its answer and when it came.
fn from_client(addr: &str, op: Op) -> std::thread::JoinHandle<(Value, Instant)> {
    let addr = addr.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut client = Client::connect(&addr, None).await.unwrap();
            let answer = client.call(op).await.unwrap();
            (answer, Instant::now())
        })
    })
}

/// With one runtime thread, a history read that held it would hold every
/// actor: the neighbour must answer while `events`, `verify` and `replay`
/// of another actor are still reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn neighbours_are_served_while_a_history_is_read_and_verified() {
    let home = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate::default());
    let log = GatedLog {
        log: RedbEventLog::open(home.path().join(CHAINS_FILE)).unwrap(),
        gate: gate.clone(),
    };
    let config = RuntimeConfig {
        home: Some(home.path().to_owned()),
        event_log: Arc::new(log),
        ..RuntimeConfig::ephemeral()
    };
    let runtime = TheaterRuntime::new(config).unwrap();
    let hog = runtime.spawn_file(manifest_path("oversize")).await.unwrap();
    for n in 0..10 {
        command(&hog, json!({"bump": 1000 + n})).await.unwrap();
    }
    let neighbour = runtime
        .spawn_file(manifest_path("ping-pong"))
        .await
        .unwrap();
    let addr = common::serve(runtime.clone(), ServerConfig::default())
        .await
        .to_string();

    let hog_id = hog.id().to_string();
    let reads = [
        Op::Events {
            actor: hog_id.clone(),
            limit: Some(1),
        },
        Op::Verify {
            actor: hog_id.clone(),
        },
        Op::Replay { actor: hog_id },
    ]
    .map(|op| from_client(&addr, op));
    let waiting = Instant::now();
    while gate.arrived.load(Ordering::SeqCst) < 3 && waiting.elapsed() < Gate::MOST {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let ping = Op::Request {
        actor: neighbour.id().to_string(),
        payload: Payload::json("ping".into()),
        timeout_ms: None,
    };
    let (answer, _) = tokio::task::spawn_blocking(move || from_client(&addr, ping).join().unwrap())
        .await
        .unwrap();
    assert_eq!(answer["reply"], "pong", "{answer}");
    assert_eq!(
        gate.gave_up.load(Ordering::SeqCst),
        0,
        "the neighbour was answered only after the history reads gave up waiting"
    );
    gate.open();

    let answers: Vec<Value> =
        tokio::task::spawn_blocking(move || reads.map(|read| read.join().unwrap().0).to_vec())
            .await
            .unwrap();
    assert_eq!(
        answers[0]["events"].as_array().unwrap().len(),
        1,
        "{}",
        answers[0]
    );
    assert_eq!(answers[1]["verified"], true, "{}", answers[1]);
    assert_eq!(answers[2]["matched"], true, "{}", answers[2]);
}
