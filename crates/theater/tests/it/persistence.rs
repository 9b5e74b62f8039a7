//! Durable runtimes with real actors: a runtime abandoned without shutting
//! down is resumed by the next one on the same home (same ids, states,
//! chains and tree); snapshots let fork and revert go back to any event.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use theater::chain::{self, ChainEvent, record};
use theater::host::HANDLE_SEND;
use theater::{ActorHandle, ActorId, RuntimeConfig, TheaterRuntime};

use crate::common::{data, manifest_path, request};

/// A home whose compiled-component cache is shared with the other tests.
fn home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("theater-home/cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::os::unix::fs::symlink(cache, home.path().join("cache")).unwrap();
    home
}

/// Runs `work` on a durable runtime at `home` in a tokio runtime of its
/// own, then drops everything without shutting down, as a crash would
/// leave it (the database closes once no task holds it).
fn abandoned<T: Send + 'static>(
    home: &Path,
    work: impl AsyncFnOnce(TheaterRuntime) -> T + Send + 'static,
) -> T {
    let home = home.to_owned();
    std::thread::spawn(move || {
        let tokio = tokio::runtime::Runtime::new().unwrap();
        let result = tokio.block_on(async move {
            let runtime = TheaterRuntime::new(RuntimeConfig::at(home).unwrap()).unwrap();
            work(runtime).await
        });
        drop(tokio);
        result
    })
    .join()
    .unwrap()
}

/// Runs `work` in a tokio runtime that is gone when this returns.
fn block_on<T>(work: impl Future<Output = T>) -> T {
    tokio::runtime::Runtime::new().unwrap().block_on(work)
}

/// A durable runtime at `home`, in the caller's tokio runtime.
fn reopen(home: &Path) -> TheaterRuntime {
    TheaterRuntime::new(RuntimeConfig::at(home).unwrap()).unwrap()
}

async fn add(actor: &ActorHandle, n: u64) {
    let message = json!({ "add": n }).to_string().into_bytes();
    actor
        .call_function::<(Vec<u8>,), ()>(HANDLE_SEND, (message,))
        .await
        .unwrap();
}

async fn count(actor: &ActorHandle) -> u64 {
    request(actor, json!({})).await.unwrap()["count"]
        .as_u64()
        .unwrap()
}

fn hashes(events: &[ChainEvent]) -> Vec<[u8; 32]> {
    events.iter().map(|event| event.hash).collect()
}

#[test]
fn an_abandoned_runtimes_actors_resume_with_their_ids_states_chains_and_tree() {
    let home = home();
    let counter_manifest = manifest_path("counter");
    let (counter, parent, child, stopped, counter_events) =
        abandoned(home.path(), async move |rt| {
            let counter = rt.spawn_file(&counter_manifest).await.unwrap();
            add(&counter, 3).await;
            let parent = rt.spawn_file(manifest_path("supervisor")).await.unwrap();
            let manifest = counter_manifest.to_str().unwrap();
            let child = request(&parent, json!({ "spawn": manifest }))
                .await
                .unwrap();
            let child: ActorId = child.as_str().unwrap().parse().unwrap();
            add(&rt.actor(child).unwrap(), 2).await;
            let stopped = rt.spawn_file(&counter_manifest).await.unwrap();
            rt.stop(stopped.id()).await.unwrap();
            let events = rt.chain(counter.id()).unwrap();
            (counter.id(), parent.id(), child, stopped.id(), events)
        });

    block_on(async {
        let rt = reopen(home.path());
        let report = rt.resume_all().await.unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.resumed.len(), 3, "{:?}", report.resumed);
        assert!(rt.actor(stopped).is_err(), "a stopped actor stays stopped");
        // Parents come back before their children, linked again.
        let at = |id| report.resumed.iter().position(|r| *r == id).unwrap();
        assert!(at(parent) < at(child));
        assert_eq!(rt.children(parent), vec![child]);

        assert_eq!(count(&rt.actor(counter).unwrap()).await, 3);
        assert_eq!(count(&rt.actor(child).unwrap()).await, 2);

        let events = rt.chain(counter).unwrap();
        assert_eq!(chain::verify(&events), Ok(()));
        assert_eq!(
            hashes(&events[..counter_events.len()]),
            hashes(&counter_events)
        );
        let resume = &events[counter_events.len()];
        assert_eq!(resume.event_type, record::ACTOR_RESUME);
        let saved = rt.saved_actors().unwrap();
        let saved = saved.iter().find(|s| s.id == counter).unwrap();
        assert_eq!(
            data(&events[0])["component"],
            saved.record.component.as_str()
        );
        assert_eq!(data(resume)["component"], saved.record.component.as_str());
        assert_eq!(
            resume.parent_hash,
            Some(counter_events.last().unwrap().hash)
        );
        rt.shutdown().await;
    });
}

#[test]
fn an_actor_that_cannot_resume_is_reported_and_the_others_resume() {
    let home = home();
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("counter.wasm");
    std::fs::copy(
        manifest_path("counter").with_file_name("counter.wasm"),
        &wasm,
    )
    .unwrap();
    let manifest = dir.path().join("manifest.toml");
    std::fs::write(
        &manifest,
        "name = \"doomed\"\ncomponent_path = \"counter.wasm\"\n",
    )
    .unwrap();
    let doomed = abandoned(home.path(), async move |rt| {
        rt.spawn_file(manifest_path("counter")).await.unwrap();
        rt.spawn_file(&manifest).await.unwrap().id()
    });
    std::fs::remove_file(&wasm).unwrap();

    block_on(async {
        let rt = reopen(home.path());
        let report = rt.resume_all().await.unwrap();
        assert_eq!(report.resumed.len(), 1);
        assert_eq!(report.failed.len(), 1);
        let (id, reason) = &report.failed[0];
        assert_eq!(*id, doomed);
        assert!(reason.contains("counter.wasm"), "{reason}");
        rt.shutdown().await;
    });
    // Still marked running: a later runtime, with the file back, tries again.
    block_on(async {
        let rt = reopen(home.path());
        let saved = rt.saved_actors().unwrap();
        assert!(saved.iter().any(|s| s.id == doomed && s.record.running));
        rt.shutdown().await;
    });
}

#[tokio::test]
async fn fork_and_revert_go_back_to_any_event_and_replay_still_matches() {
    let home = home();
    let rt = reopen(home.path());
    let counter = rt.spawn_file(manifest_path("counter")).await.unwrap();
    for _ in 0..100 {
        add(&counter, 1).await;
    }
    let events = rt.chain(counter.id()).unwrap();
    // Event n (n ≥ 1) is the n-th add; snapshots sit at events 0 and 64,
    // so event 80 is rebuilt by replaying 16 calls.
    assert_eq!(data(&events[80])["function"], HANDLE_SEND);

    let fork = rt.fork(counter.id(), events[80].hash).await.unwrap();
    assert_eq!(count(&fork).await, 80);
    let genesis = &rt.chain(fork.id()).unwrap()[0];
    assert_eq!(genesis.event_type, record::ACTOR_INIT);
    assert_eq!(
        data(genesis)["forked_from"],
        json!({ "actor": counter.id().to_string(), "event": hex::encode(events[80].hash) })
    );

    let revert = rt.revert(counter.id(), events[10].hash).await.unwrap();
    assert_eq!(count(&counter).await, 10);
    add(&counter, 5).await;
    assert_eq!(count(&counter).await, 15);
    let after = rt.chain(counter.id()).unwrap();
    assert_eq!(chain::verify(&after), Ok(()));
    let reverted = after.iter().find(|e| e.hash == revert).unwrap();
    assert_eq!(reverted.event_type, record::REVERT);
    assert_eq!(data(reverted)["index"], 10);
    // History is kept: the first 101 events are untouched.
    assert_eq!(hashes(&after[..events.len()]), hashes(&events));

    let report = rt.replay(counter.id()).await.unwrap();
    assert_eq!(report.divergence, None);
    assert_eq!(report.stopped_at, None);
    assert_eq!(report.calls, 1 + 100 + 3); // init, the adds, two requests, one more add
    let state: Value = serde_json::from_slice(report.state.as_deref().unwrap()).unwrap();
    assert_eq!(state["count"], 15);
    rt.shutdown().await;
}

#[tokio::test]
async fn fork_and_revert_refuse_unknown_actors_and_events() {
    let home = home();
    let rt = reopen(home.path());
    let counter = rt.spawn_file(manifest_path("counter")).await.unwrap();
    let stranger = ActorId::new();
    let error = rt.fork(stranger, [0; 32]).await.unwrap_err().to_string();
    assert!(error.contains(&stranger.to_string()), "{error}");
    let error = rt
        .revert(counter.id(), [7; 32])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(&hex::encode([7; 32])), "{error}");
    assert_eq!(count(&counter).await, 0, "nothing changed");
    rt.shutdown().await;
}

/// `RuntimeConfig::at` names the home another process holds.
#[test]
fn a_home_in_use_is_refused_with_a_hint() {
    let home = home();
    let _first = reopen(home.path());
    let error = match RuntimeConfig::at(home.path()) {
        Ok(_) => panic!("a second runtime opened the same home"),
        Err(error) => error.to_string(),
    };
    let path: PathBuf = home.path().join("chains.redb");
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert!(error.contains("own home"), "{error}");
}

/// The newest state needs no replay, so even an actor whose calls cannot
/// be replayed forks at its head.
#[tokio::test]
async fn fork_at_the_head_uses_the_stored_state() {
    let home = home();
    let rt = reopen(home.path());
    let echo = rt.spawn_file(manifest_path("echo")).await.unwrap();
    // `get-chain` is not recorded, so replay cannot pass this call.
    request(&echo, json!("chain")).await.unwrap();
    let events = rt.chain(echo.id()).unwrap();
    let head = events.last().unwrap().hash;
    let fork = rt.fork(echo.id(), head).await.unwrap();
    assert_eq!(fork.state().await.unwrap(), echo.state().await.unwrap());
    rt.shutdown().await;
}

/// What another node does when the runtime an actor ran on died: takes
/// its chain, record and newest state and starts it under the same id.
#[tokio::test]
async fn an_actor_adopted_from_its_chain_goes_on_where_it_was() {
    let first = crate::common::runtime();
    let counter = first.spawn_file(manifest_path("counter")).await.unwrap();
    let id = counter.id();
    for _ in 0..2 {
        counter
            .call_function::<(Vec<u8>,), ()>(HANDLE_SEND, (br#"{"add":1}"#.to_vec(),))
            .await
            .unwrap();
    }
    let events = first.chain(id).unwrap();
    let state = counter.state().await.unwrap();
    let saved = first.saved_actors().unwrap();
    let record = saved.into_iter().find(|s| s.id == id).unwrap().record;
    first.shutdown().await;

    let second = crate::common::runtime();
    let refused = second
        .adopt(id, record.clone(), Vec::new(), state.clone())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("has no chain"), "{refused}");
    let mut altered = events.clone();
    altered[1].description.push('!');
    let refused = second
        .adopt(id, record.clone(), altered, state.clone())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("altered"), "{refused}");
    let child = theater::storage::ActorRecord {
        parent: Some(ActorId::new()),
        ..record.clone()
    };
    let refused = second
        .adopt(id, child, events.clone(), state.clone())
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("does not run here"),
        "{refused}"
    );

    let adopted = second
        .adopt(id, record, events.clone(), state)
        .await
        .unwrap();
    assert_eq!(adopted.id(), id);
    let reply = request(&adopted, json!({})).await.unwrap();
    assert_eq!(reply, json!({"count": 2}));
    let chain = second.chain(id).unwrap();
    let hashes = |events: &[ChainEvent]| events.iter().map(|e| e.hash).collect::<Vec<_>>();
    assert_eq!(hashes(&chain[..events.len()]), hashes(&events));
    assert_eq!(chain[events.len()].event_type, record::ACTOR_RESUME);
    chain::verify(&chain).unwrap();
    second.shutdown().await;
}
