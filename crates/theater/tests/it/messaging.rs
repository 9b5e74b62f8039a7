//! Actors talking to each other and to clients: send, request, channels.

use std::time::{Duration, Instant};

use crate::common::{json, request as command, runtime, spawn, spawn_with};
use serde_json::{Value, json};
use theater::chain::{self, record};
use theater::runtime::ChannelEvent;
use theater::{ActorError, ActorHandle, ActorId, TheaterRuntime};

const TIMEOUT: Duration = Duration::from_secs(5);

async fn memory(actor: &ActorHandle) -> Value {
    serde_json::from_slice(&actor.state().await.unwrap().unwrap()).unwrap()
}

/// Waits until `actor`'s memory satisfies `ready` (messages are queued, not awaited).
async fn eventually(actor: &ActorHandle, ready: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let memory = memory(actor).await;
        if ready(&memory) {
            return memory;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "never happened; memory: {memory}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn pair(runtime: &TheaterRuntime) -> (ActorHandle, ActorHandle) {
    (
        spawn(runtime, "messenger").await,
        spawn(runtime, "messenger").await,
    )
}

fn id(actor: &ActorHandle) -> String {
    actor.id().to_string()
}

#[tokio::test]
async fn send_reaches_the_other_actor_and_both_chains_record_it() {
    let runtime = runtime();
    let (a, b) = pair(&runtime).await;
    command(&a, json!({"send": {"to": id(&b), "msg": {"hello": 1}}}))
        .await
        .unwrap();
    let memory = eventually(&b, |m| m["received"].as_array().unwrap().len() == 1).await;
    assert_eq!(
        memory["received"][0],
        json!({"via": "send", "msg": {"hello": 1}})
    );

    let sent = runtime.chain(a.id()).unwrap();
    let host_call = sent
        .iter()
        .find(|e| e.event_type == record::HOST_CALL)
        .expect("outgoing recorded");
    let data: Value = serde_json::from_str(host_call.data.get()).unwrap();
    assert_eq!(data["function"], "ntwk:theater/message-server-host.send");
    assert_eq!(data["params"]["to"], id(&b));
    let received = runtime.chain(b.id()).unwrap();
    let call: Value = serde_json::from_str(received.last().unwrap().data.get()).unwrap();
    assert_eq!(call["from"], id(&a));
    chain::verify(&sent).unwrap();
    chain::verify(&received).unwrap();
}

#[tokio::test]
async fn request_waits_for_the_reply() {
    let runtime = runtime();
    let (a, b) = pair(&runtime).await;
    let reply = command(&a, json!({"request": {"to": id(&b), "msg": "ping"}}))
        .await
        .unwrap();
    assert_eq!(reply, "pong");
}

#[tokio::test]
async fn a_request_to_oneself_is_a_deadlock_error_not_a_hang() {
    let runtime = runtime();
    let a = spawn(&runtime, "messenger").await;
    let err = command(&a, json!({"request": {"to": id(&a), "msg": "ping"}}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("deadlock"), "{err}");
    // Still serving.
    let b = spawn(&runtime, "messenger").await;
    assert_eq!(
        command(&a, json!({"request": {"to": id(&b), "msg": "ping"}}))
            .await
            .unwrap(),
        "pong"
    );
}

#[tokio::test]
async fn mutual_requests_are_a_deadlock_error_not_a_hang() {
    let runtime = runtime();
    let (a, b) = pair(&runtime).await;
    let started = Instant::now();
    // a asks b, which asks a back while a waits.
    let inner = json!({"request": {"to": id(&a), "msg": "ping"}});
    let err = command(&a, json!({"request": {"to": id(&b), "msg": inner}}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("deadlock"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    // Three actors in a ring too.
    let c = spawn(&runtime, "messenger").await;
    let to_a = json!({"request": {"to": id(&a), "msg": "ping"}});
    let to_c = json!({"request": {"to": id(&c), "msg": to_a}});
    let err = command(&a, json!({"request": {"to": id(&b), "msg": to_c}}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("deadlock"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_times_out_with_a_clear_error() {
    let runtime = runtime();
    let text = "name = \"impatient\"\ncomponent_path = \"messenger.wasm\"\n[[handlers]]\ntype = \"message-server\"\nconfig = { request_timeout_ms = 100 }\n";
    let a = spawn_with(&runtime, "messenger", text).await.unwrap();
    let busy = spawn_with(
        &runtime,
        "infinite-loop",
        "name = \"busy\"\ncomponent_path = \"infinite-loop.wasm\"\n[limits]\ncall_timeout_ms = 1000\n",
    )
    .await
    .unwrap();
    runtime.send(None, busy.id(), json("{}")).await.unwrap();
    let err = command(&a, json!({"request": {"to": id(&busy), "msg": "ping"}}))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no answer") && err.to_string().contains("100 ms"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_targets_get_clear_errors_and_the_sender_keeps_serving() {
    let runtime = runtime();
    let (a, b) = pair(&runtime).await;
    let unknown = ActorId::new().to_string();
    let err = command(&a, json!({"send": {"to": unknown, "msg": 1}}))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("no actor with id {unknown}")),
        "{err}"
    );
    let err = command(&a, json!({"request": {"to": "not-an-id", "msg": 1}}))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("`not-an-id` is not an actor id"),
        "{err}"
    );

    runtime.stop(b.id()).await.unwrap();
    let err = command(&a, json!({"send": {"to": id(&b), "msg": 1}}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no actor with id"), "{err}");
    assert_eq!(memory(&a).await["received"], json!([]));
}

#[tokio::test]
async fn an_oversized_message_is_refused_by_the_receivers_limit() {
    let runtime = runtime();
    let a = spawn(&runtime, "messenger").await;
    let small = spawn_with(
        &runtime,
        "messenger",
        "name = \"small\"\ncomponent_path = \"messenger.wasm\"\n[limits]\nmax_message_bytes = 64\n",
    )
    .await
    .unwrap();
    let big = "x".repeat(100);
    let err = command(&a, json!({"send": {"to": id(&small), "msg": big}}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max_message_bytes"), "{err}");
    // From outside too, and nothing reached it.
    let err = runtime
        .send(None, small.id(), vec![b'x'; 65])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ActorError::MessageTooLarge {
                size: 65,
                limit: 64,
                ..
            }
        ),
        "{err}"
    );
    command(&a, json!({"send": {"to": id(&small), "msg": "ok"}}))
        .await
        .unwrap();
    let memory = eventually(&small, |m| !m["received"].as_array().unwrap().is_empty()).await;
    assert_eq!(memory["received"], json!([{"via": "send", "msg": "ok"}]));
}

#[tokio::test]
async fn channels_carry_messages_both_ways_in_order() {
    let runtime = runtime();
    let (a, b) = pair(&runtime).await;
    let channel = command(&a, json!({"open": {"to": id(&b), "msg": "hi"}}))
        .await
        .unwrap();
    let channel = channel.as_str().unwrap().to_owned();
    for i in 0..20 {
        command(&a, json!({"channel_send": {"channel": channel, "msg": i}}))
            .await
            .unwrap();
    }
    let memory = eventually(&b, |m| m["received"].as_array().unwrap().len() == 20).await;
    let order: Vec<i64> = memory["received"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msg"].as_i64().unwrap())
        .collect();
    assert_eq!(order, (0..20).collect::<Vec<_>>());
    assert_eq!(memory["received"][0]["via"], channel);

    command(
        &b,
        json!({"channel_send": {"channel": channel, "msg": "back"}}),
    )
    .await
    .unwrap();
    eventually(&a, |m| {
        m["received"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["msg"] == "back")
    })
    .await;
}

#[tokio::test]
async fn closing_from_either_side_tells_the_other() {
    let runtime = runtime();
    let (a, b) = pair(&runtime).await;
    let first = command(&a, json!({"open": {"to": id(&b), "msg": "1"}}))
        .await
        .unwrap();
    let second = command(&a, json!({"open": {"to": id(&b), "msg": "2"}}))
        .await
        .unwrap();
    command(&a, json!({"close": first})).await.unwrap();
    eventually(&b, |m| m["closed"].as_array().unwrap().contains(&first)).await;
    command(&b, json!({"close": second})).await.unwrap();
    eventually(&a, |m| m["closed"].as_array().unwrap().contains(&second)).await;
    // A closed channel is gone for both.
    let err = command(&a, json!({"channel_send": {"channel": first, "msg": 1}}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no open channel"), "{err}");
}

#[tokio::test]
async fn a_stopping_actor_closes_its_channels() {
    let runtime = runtime();
    let (a, b) = pair(&runtime).await;
    let channel = command(&a, json!({"open": {"to": id(&b), "msg": "1"}}))
        .await
        .unwrap();
    runtime.stop(b.id()).await.unwrap();
    eventually(&a, |m| m["closed"].as_array().unwrap().contains(&channel)).await;
}

#[tokio::test]
async fn a_channel_can_be_refused_or_greeted() {
    let runtime = runtime();
    let (a, b) = pair(&runtime).await;
    let err = command(&a, json!({"open": {"to": id(&b), "msg": "reject"}}))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("refused the channel: not today"),
        "{err}"
    );
    let channel = command(&a, json!({"open": {"to": id(&b), "msg": "greet"}}))
        .await
        .unwrap();
    let memory = eventually(&a, |m| !m["received"].as_array().unwrap().is_empty()).await;
    assert_eq!(
        memory["received"][0],
        json!({"via": channel, "msg": "hello"})
    );
}

#[tokio::test]
async fn channels_to_actors_of_both_eras() {
    let runtime = runtime();
    let a = spawn(&runtime, "messenger").await;
    let old = spawn(&runtime, "compat-basic").await;
    let err = command(&a, json!({"open": {"to": id(&old), "msg": "yes"}}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not take channels"), "{err}");
    let tuple_shape = spawn(&runtime, "compat-channel-tuple").await;
    command(&a, json!({"open": {"to": id(&tuple_shape), "msg": "yes"}}))
        .await
        .unwrap();
    let err = command(&a, json!({"open": {"to": id(&tuple_shape), "msg": "no"}}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no thanks"), "{err}");
}

#[tokio::test]
async fn a_client_outside_the_runtime_can_send_request_and_use_channels() {
    let runtime = runtime();
    let b = spawn(&runtime, "messenger").await;
    runtime
        .send(None, b.id(), json(r#""from outside""#))
        .await
        .unwrap();
    let reply = runtime
        .request(None, b.id(), json(r#""ping""#), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(reply, json(r#""pong""#));

    let mut channel = runtime
        .open_client_channel(b.id(), json(r#""greet""#), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        channel.accept_message.as_deref(),
        Some(br#""hello""#.as_slice())
    );
    runtime
        .send_on_channel(None, &channel.id, json("7"))
        .await
        .unwrap();
    eventually(&b, |m| {
        m["received"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["msg"] == 7)
    })
    .await;
    command(
        &b,
        json!({"channel_send": {"channel": channel.id, "msg": "to client"}}),
    )
    .await
    .unwrap();
    assert_eq!(
        channel.events.recv().await,
        Some(ChannelEvent::Message(json(r#""to client""#)))
    );
    command(&b, json!({"close": channel.id})).await.unwrap();
    assert_eq!(channel.events.recv().await, Some(ChannelEvent::Closed));
}

#[tokio::test]
async fn the_ping_pong_pair_plays() {
    let runtime = runtime();
    let (ping, pong) = (
        spawn(&runtime, "ping-pong").await,
        spawn(&runtime, "ping-pong").await,
    );
    let score = command(&ping, json!({"play": {"with": id(&pong), "rounds": 10}}))
        .await
        .unwrap();
    assert_eq!(score["pongs_received"], 10);
    assert_eq!(memory(&pong).await["pings_served"], 10);
}

#[tokio::test]
async fn the_streamer_delivers_a_stream_in_order_then_closes_it() {
    let runtime = runtime();
    let (producer, consumer) = (
        spawn(&runtime, "streamer").await,
        spawn(&runtime, "streamer").await,
    );
    let sent = command(&producer, json!({"stream_to": id(&consumer), "count": 50}))
        .await
        .unwrap();
    let channel = sent["channel"].as_str().unwrap().to_owned();
    let memory = eventually(&consumer, |m| m["complete"].as_array().unwrap().len() == 1).await;
    assert_eq!(memory["complete"][0], channel);
    let items: Vec<u64> = memory["received"][&channel]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap())
        .collect();
    assert_eq!(items, (0..50).collect::<Vec<_>>());
}

/// A message for an actor that exports no `handle-send` is refused when it
/// is sent, from outside or from another actor: queued, it would vanish.
#[tokio::test]
async fn a_send_to_an_actor_without_handle_send_is_refused() {
    let runtime = runtime();
    let minimal = spawn(&runtime, "minimal").await;
    let error = runtime
        .send(None, minimal.id(), json("{}"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ActorError::UnknownFunction { function, .. } if function.ends_with("handle-send")),
        "{error}"
    );
    assert!(
        error.to_string().contains("ntwk:theater/actor.init"),
        "{error}"
    );

    let messenger = spawn(&runtime, "messenger").await;
    let refused = command(&messenger, json!({"send": {"to": id(&minimal), "msg": 1}})).await;
    assert!(
        format!("{refused:?}").contains("handle-send"),
        "the sender hears why: {refused:?}"
    );
    let events = runtime.chain(minimal.id()).unwrap();
    assert_eq!(events.len(), 1, "nothing reached the actor: {events:?}");
}
