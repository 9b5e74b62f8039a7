//! Calls into real actors: state commits, the chain, failures and limits.

use std::time::{Duration, Instant};

use crate::common::{data, json, records, runtime, spawn, spinning};
use serde_json::Value;
use theater::chain::{self, ChainExport, record};
use theater::host::{HANDLE_REQUEST, HANDLE_SEND};
use theater::{ActorError, ActorHandle};

async fn send(actor: &ActorHandle, message: &str) -> Result<(), ActorError> {
    actor
        .call_function::<(Vec<u8>,), ()>(HANDLE_SEND, (json(message),))
        .await
}

async fn request(actor: &ActorHandle, message: &str) -> Result<String, ActorError> {
    let (reply,) = actor
        .call_function::<(Vec<u8>,), (Vec<u8>,)>(HANDLE_REQUEST, (json(message),))
        .await?;
    Ok(String::from_utf8(reply).unwrap())
}

async fn state(actor: &ActorHandle) -> String {
    String::from_utf8(actor.state().await.unwrap().expect("has state")).unwrap()
}

async fn count(actor: &ActorHandle) -> i64 {
    let state: Value = serde_json::from_str(&state(actor).await).unwrap();
    state["count"].as_i64().expect("a count")
}

#[tokio::test]
async fn counter_counts_and_every_transition_is_chained() {
    let runtime = runtime();
    let counter = spawn(&runtime, "counter").await;
    const N: usize = 25;
    for _ in 0..N {
        send(&counter, r#"{"add":1}"#).await.unwrap();
    }
    assert_eq!(request(&counter, "{}").await.unwrap(), r#"{"count":25}"#);

    let events = runtime.chain(counter.id()).unwrap();
    // init + N sends + 1 request
    assert_eq!(events.len(), N + 2);
    assert_eq!(events[0].event_type, record::ACTOR_INIT);
    assert_eq!(data(&events[0])["name"], "counter");
    assert!(events[1..].iter().all(|e| e.event_type == record::CALL));
    assert_eq!(data(&events[1])["function"], HANDLE_SEND);
    chain::verify(&events).unwrap();
    assert_eq!(
        counter
            .counters()
            .calls_ok
            .load(std::sync::atomic::Ordering::Relaxed),
        N as u64 + 1
    );
}

#[tokio::test]
async fn counter_chain_has_n_plus_one_events_after_n_sends() {
    let runtime = runtime();
    let counter = spawn(&runtime, "counter").await;
    for i in 1..=10 {
        send(&counter, r#"{"add":1}"#).await.unwrap();
        assert_eq!(state(&counter).await, format!(r#"{{"count":{i}}}"#));
    }
    let events = runtime.chain(counter.id()).unwrap();
    assert_eq!(events.len(), 11);
    chain::verify(&events).unwrap();
}

#[tokio::test]
async fn a_tampered_export_fails_at_the_altered_event() {
    let runtime = runtime();
    let counter = spawn(&runtime, "counter").await;
    for _ in 0..5 {
        send(&counter, r#"{"add":2}"#).await.unwrap();
    }
    let exported = ChainExport::new(
        counter.id().to_string(),
        runtime.chain(counter.id()).unwrap(),
    )
    .to_json();
    // Change one digit of the fourth event's timestamp.
    let mut imported = ChainExport::from_json(&exported).unwrap();
    imported.events[3].timestamp += 1;
    let err = chain::verify(&imported.events).unwrap_err();
    assert_eq!(err.index(), 3, "{err}");
    // Dropping an event breaks the next link.
    let mut imported = ChainExport::from_json(&exported).unwrap();
    imported.events.remove(1);
    assert_eq!(chain::verify(&imported.events).unwrap_err().index(), 1);
}

#[tokio::test]
async fn an_err_result_keeps_the_state_and_is_recorded() {
    let runtime = runtime();
    let counter = spawn(&runtime, "counter").await;
    send(&counter, r#"{"add":5}"#).await.unwrap();
    let err = send(&counter, "not json").await.unwrap_err();
    assert!(matches!(err, ActorError::Failed { .. }), "{err}");
    assert!(err.to_string().contains("handle-send"), "{err}");
    assert_eq!(state(&counter).await, r#"{"count":5}"#);

    let events = runtime.chain(counter.id()).unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.event_type, record::CALL_ERROR);
    assert_eq!(data(last)["kind"], "actor-error");
    chain::verify(&events).unwrap();
    // Still serving.
    send(&counter, r#"{"add":1}"#).await.unwrap();
    assert_eq!(state(&counter).await, r#"{"count":6}"#);
}

#[tokio::test]
async fn a_trap_keeps_the_state_and_the_actor_keeps_serving() {
    let runtime = runtime();
    let actor = spawn(&runtime, "trap").await;
    send(&actor, r#""one""#).await.unwrap();
    let before = actor.state().await.unwrap();

    let err = send(&actor, r#""trap""#).await.unwrap_err();
    assert!(matches!(err, ActorError::Trapped { .. }), "{err}");
    assert_eq!(actor.state().await.unwrap(), before);
    let err = send(&actor, r#""err""#).await.unwrap_err();
    assert!(
        matches!(err, ActorError::Failed { ref message, .. } if message == "asked to fail"),
        "{err}"
    );

    // A fresh instance answers, with the state the host kept.
    send(&actor, r#""two""#).await.unwrap();
    assert_eq!(request(&actor, "{}").await.unwrap(), r#"{"count":2}"#);
    let kinds: Vec<Value> = records(&runtime, actor.id(), record::CALL_ERROR)
        .iter()
        .map(|d| d["kind"].clone())
        .collect();
    assert_eq!(kinds, ["trap", "actor-error"]);
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_the_time_limit() {
    let runtime = runtime();
    let actor = spawn(&runtime, "infinite-loop").await; // call_timeout_ms = 200
    let started = Instant::now();
    let err = send(&actor, "{}").await.unwrap_err();
    assert!(
        matches!(err, ActorError::TimeLimit { limit_ms: 200, .. }),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(request(&actor, "{}").await.unwrap(), r#""pong""#);
    let events = runtime.chain(actor.id()).unwrap();
    assert_eq!(data(&events[1])["kind"], "time-limit");
}

#[tokio::test]
async fn a_spinning_actor_does_not_stall_others() {
    let runtime = runtime();
    let spinner = spawn(&runtime, "infinite-loop").await;
    let counter = spawn(&runtime, "counter").await;
    let spinning = tokio::spawn(async move { send(&spinner, "{}").await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = Instant::now();
    send(&counter, r#"{"add":1}"#).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "counter waited {:?}",
        started.elapsed()
    );
    assert!(spinning.await.unwrap().is_err());
}

#[tokio::test]
async fn a_memory_hog_is_stopped_by_the_memory_limit() {
    let runtime = runtime();
    let actor = spawn(&runtime, "memory-hog").await; // memory_mb = 32
    let err = send(&actor, "{}").await.unwrap_err();
    assert!(
        matches!(err, ActorError::MemoryLimit { limit_mb: 32, .. }),
        "{err}"
    );
    assert_eq!(request(&actor, "{}").await.unwrap(), r#""pong""#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_actors_keep_independent_state() {
    let runtime = runtime();
    let mut actors = Vec::new();
    for _ in 0..200 {
        actors.push(spawn(&runtime, "counter").await);
    }
    let tasks: Vec<_> = actors
        .iter()
        .enumerate()
        .map(|(i, actor)| {
            let actor = actor.clone();
            tokio::spawn(async move {
                for _ in 0..i % 7 + 1 {
                    send(&actor, &format!(r#"{{"add":{i}}}"#)).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    for (i, actor) in actors.iter().enumerate() {
        let expected = i * (i % 7 + 1);
        assert_eq!(state(actor).await, format!(r#"{{"count":{expected}}}"#));
        chain::verify(&runtime.chain(actor.id()).unwrap()).unwrap();
    }
    assert_eq!(runtime.actor_ids().len(), 200);
}

#[tokio::test]
async fn params_that_do_not_fit_the_export_are_refused() {
    let runtime = runtime();
    let counter = spawn(&runtime, "counter").await;
    let err = counter
        .call_function::<(String, u32), ()>(HANDLE_SEND, ("x".into(), 1))
        .await
        .unwrap_err();
    assert!(matches!(err, ActorError::BadParams { .. }), "{err}");
    assert_eq!(count(&counter).await, 0);
    // Recorded, and the actor still serves.
    let events = runtime.chain(counter.id()).unwrap();
    assert_eq!(data(events.last().unwrap())["kind"], "bad-params");
    send(&counter, r#"{"add":1}"#).await.unwrap();
}

#[tokio::test]
async fn a_result_of_the_wrong_type_is_a_clear_error() {
    let runtime = runtime();
    let counter = spawn(&runtime, "counter").await;
    let err = counter
        .call_function::<(Vec<u8>,), (u32, u32)>(HANDLE_REQUEST, (json("{}"),))
        .await
        .unwrap_err();
    assert!(matches!(err, ActorError::BadResult { .. }), "{err}");
}

#[tokio::test]
async fn an_unknown_function_names_what_the_actor_exports() {
    let runtime = runtime();
    let counter = spawn(&runtime, "counter").await;
    let err = counter
        .call_function::<(Vec<u8>,), ()>(
            "ntwk:theater/message-server-client.handle-shout",
            (json("{}"),),
        )
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, ActorError::UnknownFunction { .. }));
    assert!(
        message.contains("handle-shout") && message.contains(HANDLE_SEND),
        "{message}"
    );
}

// Multi-threaded: a spinning actor yields often, and on a single thread tokio
// would poll its timers only every few dozen yields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_queue_full_and_loses_nothing_queued() {
    let runtime = runtime();
    let actor = spinning(&runtime, 300).await;
    // One call runs (and spins), two wait in the queue, the next is refused.
    let running = {
        let actor = actor.clone();
        tokio::spawn(async move { send(&actor, "{}").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let queued: Vec<_> = (0..2)
        .map(|_| {
            let actor = actor.clone();
            tokio::spawn(async move { request(&actor, "{}").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let err = send(&actor, "{}").await.unwrap_err();
    assert!(
        matches!(err, ActorError::QueueFull { capacity: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("queue_capacity"), "{err}");
    assert_eq!(
        actor
            .counters()
            .queue_full
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    let first = running.await.unwrap();
    assert!(
        matches!(first, Err(ActorError::TimeLimit { .. })),
        "{first:?}"
    );
    for reply in queued {
        assert_eq!(reply.await.unwrap().unwrap(), r#""pong""#);
    }
}

#[tokio::test]
async fn log_and_get_chain_reach_the_actor_chain() {
    let runtime = runtime();
    let echo = spawn(&runtime, "echo").await;
    assert_eq!(request(&echo, r#"{"hi":1}"#).await.unwrap(), r#"{"hi":1}"#);
    let events = runtime.chain(echo.id()).unwrap();
    // init, log, request
    assert_eq!(events.len(), 3);
    assert_eq!(events[1].event_type, record::LOG);
    assert_eq!(data(&events[1])["message"], "echo: 8 bytes");
    // The actor sees its chain as it is before the running call commits.
    assert_eq!(request(&echo, r#""chain""#).await.unwrap(), "4");
    chain::verify(&runtime.chain(echo.id()).unwrap()).unwrap();
}

#[tokio::test]
async fn a_stopped_actor_is_gone_and_says_so() {
    let runtime = runtime();
    let counter = spawn(&runtime, "counter").await;
    let id = counter.id();
    runtime.stop(id).await.unwrap();
    assert!(matches!(
        send(&counter, r#"{"add":1}"#).await,
        Err(ActorError::Stopped(_))
    ));
    assert!(matches!(
        runtime.actor(id),
        Err(ActorError::UnknownActor(_))
    ));
    assert!(matches!(
        runtime.stop(id).await,
        Err(ActorError::UnknownActor(_))
    ));
    // Its chain stays readable.
    chain::verify(&runtime.chain(id).unwrap()).unwrap();
}

#[tokio::test]
async fn subscribers_see_each_event_as_it_is_recorded() {
    let runtime = runtime();
    let mut events = runtime.subscribe();
    let counter = spawn(&runtime, "counter").await;
    send(&counter, r#"{"add":3}"#).await.unwrap();
    let init = events.recv().await.unwrap();
    let call = events.recv().await.unwrap();
    assert_eq!(
        (init.actor, init.event.event_type.as_str()),
        (counter.id(), record::ACTOR_INIT)
    );
    assert_eq!(call.event.parent_hash, Some(init.event.hash));
    assert_eq!(
        runtime.chain(counter.id()).unwrap().last().unwrap().hash,
        call.event.hash
    );
}
