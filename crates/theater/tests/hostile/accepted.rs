//! Accepted messages are not lost to a crash: a send that was acknowledged
//! (to a management client or to the sending actor) runs once, even if
//! the process dies before the receiver gets to it. `theater-cli`'s
//! `crash.rs` kills a real server; here the runtime dies in-process.

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use theater::chain::{ChainEvent, record};
use theater::host::{HANDLE_REQUEST, HANDLE_SEND};
use theater::runtime::CHAINS_FILE;
use theater::storage::RedbEventLog;
use theater::storage::{
    AcceptFuture, Accepted, ActorRecord, Entry, EventLog, LogError, LogFuture, SavedActor,
    Snapshot, VerifyFailure,
};
use theater::{ActorError, ActorId, RuntimeConfig, TheaterRuntime};

use crate::common::manifest_path;

/// Messages the sender sends in one call.
const MESSAGES: u64 = 50;

/// A durable log that never finishes appending the event of a call that
/// delivers an accepted message: the process dies before any of them
/// commits. Everything else goes through.
struct DiesBeforeDelivery(RedbEventLog);

impl EventLog for DiesBeforeDelivery {
    fn append_entry(&self, actor: &ActorId, entry: Entry<'_>) -> LogFuture {
        match entry.delivered {
            Some(_) => Box::pin(pending()),
            None => self.0.append_entry(actor, entry),
        }
    }

    fn accept(&self, actor: &ActorId, message: &Accepted) -> AcceptFuture {
        self.0.accept(actor, message)
    }

    fn import_chain(&self, actor: &ActorId, events: Vec<ChainEvent>) -> LogFuture {
        self.0.import_chain(actor, events)
    }

    fn events(&self, actor: &ActorId) -> Result<Vec<ChainEvent>, LogError> {
        self.0.events(actor)
    }

    fn verify(&self, actor: &ActorId) -> Result<(), VerifyFailure> {
        self.0.verify(actor)
    }

    fn snapshot(&self, actor: &ActorId, index: u64) -> Result<Option<Snapshot>, LogError> {
        self.0.snapshot(actor, index)
    }

    fn save_actor(&self, actor: &ActorId, record: &ActorRecord) -> LogFuture {
        self.0.save_actor(actor, record)
    }

    fn set_running(&self, actor: &ActorId, running: bool) -> LogFuture {
        self.0.set_running(actor, running)
    }

    fn saved_actors(&self) -> Result<Vec<SavedActor>, LogError> {
        self.0.saved_actors()
    }
}

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn call_events(runtime: &TheaterRuntime, actor: ActorId, function: &str) -> Vec<Value> {
    let events = runtime.chain(actor).unwrap();
    theater::chain::verify(&events).unwrap();
    events
        .iter()
        .filter(|event| event.event_type == record::CALL)
        .map(|event| serde_json::from_str::<Value>(event.data.get()).unwrap())
        .filter(|data| data["function"] == function)
        .collect()
}

#[test]
fn messages_an_actor_accepted_run_once_after_the_runtime_dies() {
    let home = tempfile::tempdir().unwrap();
    let log = RedbEventLog::open(home.path().join(CHAINS_FILE)).unwrap();
    let config = RuntimeConfig {
        home: Some(home.path().to_owned()),
        event_log: Arc::new(DiesBeforeDelivery(log)),
        ..RuntimeConfig::ephemeral()
    };
    let rt = tokio();
    let (sender, counter) = rt.block_on(async {
        let runtime = TheaterRuntime::new(config).unwrap();
        let counter = runtime.spawn_file(manifest_path("counter")).await.unwrap();
        let sender = runtime.spawn_file(manifest_path("messenger")).await.unwrap();
        // The messenger's sends are acknowledged to it; the outside's too.
        let send_many = json!({"send_many": {"to": counter.id().to_string(), "msg": {"add": 1}, "count": MESSAGES}});
        sender
            .call_function::<_, (Vec<u8>,)>(HANDLE_REQUEST, (send_many.to_string().into_bytes(),))
            .await
            .unwrap();
        runtime
            .send(None, counter.id(), br#"{"add": 1}"#.to_vec())
            .await
            .unwrap();
        (sender.id(), counter.id())
    });
    // The process dies: every task stops where it waits, nothing more is
    // written.
    rt.shutdown_timeout(Duration::from_secs(10));

    let rt = tokio();
    rt.block_on(async {
        let runtime = TheaterRuntime::new(RuntimeConfig::at(home.path()).unwrap()).unwrap();
        let report = runtime.resume_all().await.unwrap();
        assert_eq!(report.resumed.len(), 2, "{report:?}");
        assert_eq!(report.redelivered as u64, MESSAGES + 1);
        let counter_handle = runtime.actor(counter).unwrap();
        let (reply,) = counter_handle
            .call_function::<_, (Vec<u8>,)>(HANDLE_REQUEST, (b"{}".to_vec(),))
            .await
            .unwrap();
        let reply: Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(reply["count"], MESSAGES + 1);
        let sends = call_events(&runtime, counter, HANDLE_SEND);
        assert_eq!(sends.len() as u64, MESSAGES + 1);
        let from_sender = sends
            .iter()
            .filter(|data| data["from"] == sender.to_string())
            .count();
        assert_eq!(from_sender as u64, MESSAGES);
        runtime.verify(counter).await.unwrap();

        // Nothing is left to run twice after another restart.
        runtime.shutdown().await;
        drop(runtime);
        let runtime = TheaterRuntime::new(RuntimeConfig::at(home.path()).unwrap()).unwrap();
        let report = runtime.resume_all().await.unwrap();
        assert_eq!(report.redelivered, 0);
        assert_eq!(
            call_events(&runtime, counter, HANDLE_SEND).len() as u64,
            MESSAGES + 1
        );
    });
}

#[tokio::test]
async fn a_message_the_actor_cannot_take_is_refused_and_never_kept() {
    let home = tempfile::tempdir().unwrap();
    let runtime = TheaterRuntime::new(RuntimeConfig::at(home.path()).unwrap()).unwrap();
    let minimal = runtime.spawn_file(manifest_path("minimal")).await.unwrap();
    let before = runtime.chain(minimal.id()).unwrap().len();
    let refused = runtime
        .send(None, minimal.id(), b"hello".to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ActorError::UnknownFunction { .. }),
        "{refused}"
    );
    minimal.state().await.unwrap();
    assert_eq!(runtime.chain(minimal.id()).unwrap().len(), before);
    runtime.shutdown().await;
    drop(runtime);
    let runtime = TheaterRuntime::new(RuntimeConfig::at(home.path()).unwrap()).unwrap();
    assert_eq!(runtime.resume_all().await.unwrap().redelivered, 0);
}
