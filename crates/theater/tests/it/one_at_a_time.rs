//! What a call keeps whether its caller runs it (the actor was idle) or it
//! waits in the actor's queue: one call at a time, each caller's order, the
//! queue's bound, and what a trap leads to.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::{
    eventually, json, records, request as command, runtime, spawn, spinning, strict_supervisor,
};
use serde_json::{Value, json};
use theater::chain::{self, record};
use theater::host::{HANDLE_REQUEST, HANDLE_SEND};
use theater::{ActorError, ActorHandle};

/// Callers at once, and calls each makes, in the concurrency tests.
const CALLERS: usize = 8;
const CALLS_EACH: usize = 40;

async fn send(actor: &ActorHandle, message: &str) -> Result<(), ActorError> {
    actor
        .call_function::<(Vec<u8>,), ()>(HANDLE_SEND, (json(message),))
        .await
}

/// The count a `counter` or `trap` actor answers a request with.
async fn count(actor: &ActorHandle) -> Result<i64, ActorError> {
    let (reply,) = actor
        .call_function::<(Vec<u8>,), (Vec<u8>,)>(HANDLE_REQUEST, (json("{}"),))
        .await?;
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    Ok(reply["count"].as_i64().expect("a count"))
}

/// The `kind` of each `call-error` event in the actor's chain.
fn error_kinds(runtime: &theater::TheaterRuntime, actor: &ActorHandle) -> Vec<Value> {
    records(runtime, actor.id(), record::CALL_ERROR)
        .iter()
        .map(|d| d["kind"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_callers_get_one_call_at_a_time() {
    let runtime = runtime();
    let counter = spawn(&runtime, "counter").await;
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let counter = counter.clone();
            tokio::spawn(async move {
                for _ in 0..CALLS_EACH {
                    send(&counter, r#"{"add":1}"#).await.unwrap();
                    // State queries wait in the queue between the calls.
                    counter.state().await.unwrap();
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    // Each call saw the state the one before it committed: none was lost.
    let total = (CALLERS * CALLS_EACH) as i64;
    assert_eq!(count(&counter).await.unwrap(), total);
    assert_eq!(
        counter.counters().calls_ok.load(Ordering::Relaxed),
        total as u64 + 1
    );
    let events = runtime.chain(counter.id()).unwrap();
    // `actor-init`, the calls, and the request above.
    assert_eq!(events.len(), CALLERS * CALLS_EACH + 2);
    chain::verify(&events).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_never_overtakes_what_its_caller_queued_before_it() {
    let runtime = runtime();
    let counter = spawn(&runtime, "counter").await;
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let (runtime, counter) = (runtime.clone(), counter.clone());
            tokio::spawn(async move {
                for sent in 1..=CALLS_EACH as i64 {
                    // Queued without waiting: a message, or a plain cast.
                    if caller % 2 == 0 {
                        runtime
                            .send(None, counter.id(), json(r#"{"add":1}"#))
                            .await
                            .unwrap();
                    } else {
                        counter
                            .cast_function(None, HANDLE_SEND, (json(r#"{"add":1}"#),))
                            .unwrap();
                    }
                    // Had this call run before the message, it would not
                    // count every message this caller sent.
                    let seen = count(&counter).await.unwrap();
                    assert!(seen >= sent, "caller {caller}: {seen} < {sent}");
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    assert_eq!(
        count(&counter).await.unwrap(),
        (CALLERS * CALLS_EACH) as i64
    );
}

#[tokio::test]
async fn calls_from_one_caller_in_flight_together_run_in_the_order_made() {
    let runtime = runtime();
    let counter = spawn(&runtime, "counter").await;
    // Polled in turn: the first runs in this task, the rest queue behind it.
    let calls = [1, 10, 100, 1000].into_iter().flat_map(|add| {
        let (sender, reader) = (counter.clone(), counter.clone());
        [
            futures::future::Either::Left(async move {
                send(&sender, &format!(r#"{{"add":{add}}}"#)).await.unwrap();
                None
            }),
            futures::future::Either::Right(async move { Some(count(&reader).await.unwrap()) }),
        ]
    });
    let seen: Vec<i64> = futures::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(seen, [1, 11, 111, 1111]);
}

// Multi-threaded: a spinning actor yields often, and on a single thread tokio
// would poll its timers only every few dozen yields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_call_run_by_its_caller_the_queue_holds_its_capacity_and_no_more() {
    let runtime = runtime();
    let actor = spinning(&runtime, 400).await;
    // The actor is idle: this call runs in the caller's task, and spins.
    let running = tokio::spawn({
        let actor = actor.clone();
        async move { send(&actor, "{}").await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(actor.queue_depth(), 0);
    let queued = [
        actor
            .cast_function(None, HANDLE_SEND, (json("{}"),))
            .map_err(|e| e.to_string()),
        runtime
            .send(None, actor.id(), json("{}"))
            .await
            .map_err(|e| e.to_string()),
    ];
    assert!(queued.iter().all(Result::is_ok), "{queued:?}");
    assert_eq!(actor.queue_depth(), 2);

    // Full: each way in is refused, and nothing is queued.
    let call = send(&actor, "{}").await.unwrap_err();
    assert!(
        matches!(call, ActorError::QueueFull { capacity: 2, .. }),
        "{call}"
    );
    let cast = actor
        .cast_function(None, HANDLE_SEND, (json("{}"),))
        .unwrap_err();
    assert!(matches!(cast, ActorError::QueueFull { .. }), "{cast}");
    let message = runtime
        .send(None, actor.id(), json("{}"))
        .await
        .unwrap_err();
    assert!(matches!(message, ActorError::QueueFull { .. }), "{message}");
    assert_eq!(actor.counters().queue_full.load(Ordering::Relaxed), 3);
    assert_eq!(actor.queue_depth(), 2);

    let first = running.await.unwrap();
    assert!(
        matches!(first, Err(ActorError::TimeLimit { .. })),
        "{first:?}"
    );
    // The two queued ran (and hit the limit too), in turn.
    eventually("the queued calls ran", async || {
        (error_kinds(&runtime, &actor).len() == 3).then_some(())
    })
    .await;
    assert_eq!(error_kinds(&runtime, &actor), ["time-limit"; 3]);
}

#[tokio::test]
async fn a_caller_that_stops_waiting_does_not_cut_its_call_short() {
    let runtime = runtime();
    let actor = spawn(&runtime, "infinite-loop").await; // call_timeout_ms = 200
    let gave_up = tokio::time::timeout(Duration::from_millis(20), send(&actor, "{}")).await;
    assert!(gave_up.is_err(), "{gave_up:?}");
    // The call goes on without its caller until the time limit ends it,
    // and the chain records that, as for a queued call.
    eventually("the call is recorded", async || {
        (!error_kinds(&runtime, &actor).is_empty()).then_some(())
    })
    .await;
    assert_eq!(error_kinds(&runtime, &actor), ["time-limit"]);
    let (reply,) = actor
        .call_function::<(Vec<u8>,), (Vec<u8>,)>(HANDLE_REQUEST, (json("{}"),))
        .await
        .unwrap();
    assert_eq!(reply, br#""pong""#);
    chain::verify(&runtime.chain(actor.id()).unwrap()).unwrap();
}

#[tokio::test]
async fn a_trap_in_a_call_run_by_its_caller_restarts_the_actor_with_its_state() {
    let runtime = runtime();
    let actor = spawn(&runtime, "trap").await;
    send(&actor, "one").await.unwrap();
    let err = send(&actor, "trap").await.unwrap_err();
    assert!(matches!(err, ActorError::Trapped { .. }), "{err}");
    // Straight after the trap: the next call waits for the fresh instance.
    send(&actor, "two").await.unwrap();
    assert_eq!(count(&actor).await.unwrap(), 2);
    assert_eq!(error_kinds(&runtime, &actor), ["trap"]);
    assert_eq!(actor.counters().calls_failed.load(Ordering::Relaxed), 1);
    chain::verify(&runtime.chain(actor.id()).unwrap()).unwrap();
}

#[tokio::test]
async fn a_trap_in_a_call_run_by_its_caller_goes_to_the_supervisor() {
    let runtime = runtime();
    let parent = strict_supervisor(&runtime).await;
    let reply = command(&parent, json!({ "spawn": "../trap/manifest.toml" }))
        .await
        .unwrap();
    let child = runtime
        .actor(reply.as_str().unwrap().parse().unwrap())
        .unwrap();
    let err = send(&child, "trap").await.unwrap_err();
    assert!(matches!(err, ActorError::Trapped { .. }), "{err}");
    // `restart = "never"`: the child ends, and nothing runs on it again.
    tokio::time::timeout(Duration::from_secs(10), child.stopped())
        .await
        .expect("the child ends");
    let after = send(&child, "one").await.unwrap_err();
    assert!(matches!(after, ActorError::Stopped(_)), "{after}");
    let exits = eventually("the parent hears of it", async || {
        let memory: Value =
            serde_json::from_slice(&parent.state().await.unwrap().unwrap()).unwrap();
        (!memory["exits"].as_array().unwrap().is_empty()).then(|| memory["exits"].clone())
    })
    .await;
    assert_eq!(exits[0][0], child.id().to_string());
    let decisions = records(&runtime, parent.id(), record::SUPERVISION);
    assert!(
        decisions.iter().any(|d| d["decision"] == "stop"),
        "{decisions:?}"
    );
}
