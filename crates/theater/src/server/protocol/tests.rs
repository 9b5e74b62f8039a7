//! The protocol's messages on the wire: each goes out as the server has
//! always written it and reads back as it went out.

use ::bytes::BytesMut;
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio_util::codec::Decoder;

use super::events::{
    ActorStopped, ChainNotice, ChannelEnded, ChannelMessage, ChannelMessageTooLarge, Lagged,
};
use super::*;
use crate::chain::tests::sample_chain;
use crate::id::ActorId;
use crate::manifest::Limits;

const ID: &str = "1a2b3c4d-0000-4000-8000-000000000001";
const OTHER: &str = "5e6f7a8b-0000-4000-8000-000000000002";

fn id() -> ActorId {
    ID.parse().unwrap()
}

/// `answer` goes out as `wire` says and a client reads back the same.
fn answers_as<T: Serialize + DeserializeOwned>(answer: T, wire: Value) {
    let frame = ok_frame(7, &answer);
    let expected = serde_json::to_vec(&json!({ "id": 7, "ok": wire })).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&frame),
        String::from_utf8_lossy(&expected)
    );
    let Incoming::Answer {
        id: Some(7),
        result: Ok(fields),
    } = Incoming::decode(&frame).unwrap()
    else {
        panic!("not an answer: {}", String::from_utf8_lossy(&frame))
    };
    let read: T = serde_json::from_str(fields.get()).unwrap();
    assert_eq!(ok_frame(7, &read), frame);
}

/// `event` goes out as `wire` says and a client reads back the same.
fn sends_as(event: Event, wire: Value) {
    let frame = event_frame(&event);
    assert_eq!(frame, serde_json::to_vec(&wire).unwrap());
    let Incoming::Event(read) = Incoming::decode(&frame).unwrap() else {
        panic!("not an event")
    };
    assert_eq!(event_frame(&read), frame);
}

#[test]
fn lifecycle_answers_round_trip() {
    answers_as(Pong { pong: true }, json!({ "pong": true }));
    answers_as(
        Started {
            actor: id(),
            short: id().short(),
            name: "counter".into(),
            warnings: vec!["line 3: unknown key `x`".into()],
            node: Some("n2".into()),
        },
        json!({ "actor": ID, "short": "1a2b3c4d", "name": "counter", "warnings": ["line 3: unknown key `x`"], "node": "n2" }),
    );
    answers_as(
        Stopped {
            actor: id(),
            stopped: true,
        },
        json!({ "actor": ID, "stopped": true }),
    );
    answers_as(
        Restarted {
            actor: id(),
            restarted: true,
        },
        json!({ "actor": ID, "restarted": true }),
    );
}

#[test]
fn list_answers_round_trip() {
    let running = ListedActor {
        id: id(),
        short: id().short(),
        name: "counter".into(),
        ending: Ending::RUNNING,
        queue_depth: Some(2),
        calls_ok: Some(4),
        calls_failed: Some(1),
        node: Some("n1".into()),
    };
    let quitter = ListedActor {
        id: OTHER.parse().unwrap(),
        short: "5e6f7a8b".into(),
        name: "quitter".into(),
        ending: Ending {
            status: Status::StoppedByItself,
            shutdown_data: Some(Value::Null),
        },
        queue_depth: None,
        calls_ok: None,
        calls_failed: None,
        node: None,
    };
    answers_as(
        ActorList {
            actors: vec![running, quitter],
            unanswered: vec!["n2: no answer within 5000 ms".into()],
        },
        json!({ "actors": [
            { "id": ID, "short": "1a2b3c4d", "name": "counter", "status": "running",
              "queue_depth": 2, "calls_ok": 4, "calls_failed": 1, "node": "n1" },
            { "id": OTHER, "short": "5e6f7a8b", "name": "quitter", "status": "stopped by itself",
              "shutdown_data": null, "queue_depth": null, "calls_ok": null, "calls_failed": null },
        ], "unanswered": ["n2: no answer within 5000 ms"] }),
    );
}

#[test]
fn state_answers_carry_json_hex_or_nothing() {
    let state = |bytes: Option<&[u8]>| ActorState {
        actor: id(),
        state: ActorBytes::new(bytes.map(<[u8]>::to_vec)),
    };
    answers_as(
        state(Some(br#"{"count":1}"#)),
        json!({ "actor": ID, "state": { "count": 1 } }),
    );
    answers_as(
        state(Some(b"\xff\x00")),
        json!({ "actor": ID, "state_hex": "ff00" }),
    );
    answers_as(state(None), json!({ "actor": ID, "state": null }));
    assert_eq!(state(Some(b"\xff")).state.to_string(), "(not JSON) hex ff");
    assert_eq!(state(Some(b"[1, 2]")).state.to_string(), "[1,2]");
    assert_eq!(state(None).state.to_string(), "none");
}

#[test]
fn chain_answers_round_trip() {
    let events = sample_chain(2);
    let wire: Vec<Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    answers_as(
        Events {
            actor: id(),
            total: 5,
            start: 3,
            events,
        },
        json!({ "actor": ID, "total": 5, "start": 3, "events": wire }),
    );
    let head = "ab".repeat(32);
    answers_as(
        Verified {
            actor: id(),
            events: 5,
            head: Some(head.clone()),
            replicated_events: Some(5),
            verified: true,
            first_bad_event: None,
            error: None,
        },
        json!({ "actor": ID, "events": 5, "head": head, "replicated_events": 5, "verified": true }),
    );
    answers_as(
        Verified {
            actor: id(),
            events: 5,
            head: None,
            replicated_events: None,
            verified: false,
            first_bad_event: Some(3),
            error: Some("event 3: bad hash".into()),
        },
        json!({ "actor": ID, "events": 5, "head": null, "verified": false,
                "first_bad_event": 3, "error": "event 3: bad hash" }),
    );
}

#[test]
fn inspect_answers_round_trip() {
    let limits = Limits::default();
    let running = Inspected {
        id: id(),
        short: id().short(),
        name: "counter".into(),
        ending: Ending::RUNNING,
        manifest: None,
        started_ms: Some(1_700_000_000_000),
        limits,
        queue_depth: Some(0),
        counters: Some(Counters {
            calls_ok: 4,
            calls_failed: 1,
            queue_full: 0,
        }),
        chain: ChainHead {
            events: 6,
            head: Some("cd".repeat(32)),
        },
    };
    answers_as(
        running,
        json!({
            "id": ID, "short": "1a2b3c4d", "name": "counter", "status": "running",
            "manifest": null, "started_ms": 1_700_000_000_000_u64,
            "limits": {
                "memory_mb": limits.memory_mb,
                "call_timeout_ms": limits.call_timeout_ms,
                "queue_capacity": limits.queue_capacity,
                "max_message_bytes": limits.max_message_bytes,
                "max_state_bytes": limits.max_state_bytes,
                "max_result_bytes": limits.max_result_bytes,
            },
            "queue_depth": 0,
            "counters": { "calls_ok": 4, "calls_failed": 1, "queue_full": 0 },
            "chain": { "events": 6, "head": "cd".repeat(32) },
        }),
    );
    let stopped = Inspected {
        id: id(),
        short: id().short(),
        name: "quitter".into(),
        ending: Ending {
            status: Status::StoppedByItself,
            shutdown_data: Some(json!("all done")),
        },
        manifest: Some("/a/manifest.toml".into()),
        started_ms: Some(5),
        limits,
        queue_depth: None,
        counters: None,
        chain: ChainHead {
            events: 0,
            head: None,
        },
    };
    let wire = serde_json::to_value(&stopped).unwrap();
    assert_eq!(wire["status"], "stopped by itself");
    assert_eq!(wire["shutdown_data"], "all done");
    assert_eq!(wire["counters"], Value::Null);
    answers_as(stopped, wire);
}

#[test]
fn tree_answers_round_trip() {
    let child = TreeNode {
        id: OTHER.parse().unwrap(),
        short: "5e6f7a8b".into(),
        name: "echo".into(),
        children: vec![],
    };
    let root = TreeNode {
        id: id(),
        short: id().short(),
        name: "supervisor".into(),
        children: vec![child],
    };
    answers_as(
        Tree { roots: vec![root] },
        json!({ "roots": [{ "id": ID, "short": "1a2b3c4d", "name": "supervisor", "children": [
            { "id": OTHER, "short": "5e6f7a8b", "name": "echo", "children": [] }
        ]}]}),
    );
}

#[test]
fn messaging_answers_round_trip() {
    answers_as(
        Queued {
            actor: id(),
            queued: true,
        },
        json!({ "actor": ID, "queued": true }),
    );
    answers_as(
        Reply {
            actor: id(),
            reply: ActorBytes::new(Some(br#"{"count":2}"#.to_vec())),
        },
        json!({ "actor": ID, "reply": { "count": 2 } }),
    );
    answers_as(
        Reply {
            actor: id(),
            reply: ActorBytes::new(Some(b"oops".to_vec())),
        },
        json!({ "actor": ID, "reply_hex": "6f6f7073" }),
    );
    answers_as(
        ChannelOpened {
            channel: "5f0c".into(),
            actor: id(),
            accept_message: ActorBytes::new(None),
        },
        json!({ "channel": "5f0c", "actor": ID, "accept_message": null }),
    );
    answers_as(
        ChannelQueued {
            channel: "5f0c".into(),
            queued: true,
        },
        json!({ "channel": "5f0c", "queued": true }),
    );
    answers_as(
        ChannelClosed {
            channel: "5f0c".into(),
            closed: true,
        },
        json!({ "channel": "5f0c", "closed": true }),
    );
    answers_as(
        Subscribed {
            subscription: 2,
            actor: None,
        },
        json!({ "subscription": 2, "actor": null }),
    );
    answers_as(
        Subscribed {
            subscription: 1,
            actor: Some(id()),
        },
        json!({ "subscription": 1, "actor": ID }),
    );
    answers_as(
        Unsubscribed {
            subscription: 1,
            unsubscribed: true,
        },
        json!({ "subscription": 1, "unsubscribed": true }),
    );
}

#[test]
fn history_answers_round_trip() {
    answers_as(
        Replayed {
            actor: id(),
            events: 1,
            calls: 0,
            matched: false,
            divergence: Some(Diverged {
                index: 1,
                hash: "ab".into(),
                function: "handle-send".into(),
                reason: "state differs".into(),
            }),
            stopped_at: None,
            state_sha256: None,
        },
        json!({ "actor": ID, "events": 1, "calls": 0, "matched": false,
                "divergence": { "index": 1, "hash": "ab", "function": "handle-send", "reason": "state differs" },
                "stopped_at": null, "state_sha256": null }),
    );
    answers_as(
        Replayed {
            actor: id(),
            events: 4,
            calls: 3,
            matched: false,
            divergence: None,
            stopped_at: Some(StoppedAt {
                index: 4,
                hash: "cd".into(),
                reason: "not recorded".into(),
            }),
            state_sha256: Some("ef".into()),
        },
        json!({ "actor": ID, "events": 4, "calls": 3, "matched": false, "divergence": null,
                "stopped_at": { "index": 4, "hash": "cd", "reason": "not recorded" },
                "state_sha256": "ef" }),
    );
    answers_as(
        Forked {
            actor: OTHER.parse().unwrap(),
            short: "5e6f7a8b".into(),
            name: "counter".into(),
            forked_from: ForkedFrom {
                actor: id(),
                event: "ab".into(),
            },
        },
        json!({ "actor": OTHER, "short": "5e6f7a8b", "name": "counter",
                "forked_from": { "actor": ID, "event": "ab" } }),
    );
    answers_as(
        Reverted {
            actor: id(),
            to: "ab".into(),
            event: "cd".into(),
        },
        json!({ "actor": ID, "to": "ab", "event": "cd" }),
    );
}

#[test]
fn events_round_trip() {
    let chain_event = sample_chain(1).remove(0);
    let wire = serde_json::to_value(&chain_event).unwrap();
    sends_as(
        Event::Chain(ChainNotice {
            subscription: 2,
            actor: id(),
            chain_event,
        }),
        json!({ "event": "chain", "subscription": 2, "actor": ID, "chain_event": wire }),
    );
    sends_as(
        Event::Lagged(Lagged {
            subscription: 2,
            missed: 120,
        }),
        json!({ "event": "lagged", "subscription": 2, "missed": 120 }),
    );
    sends_as(
        Event::ActorStopped(ActorStopped {
            subscription: 1,
            actor: id(),
        }),
        json!({ "event": "actor_stopped", "subscription": 1, "actor": ID }),
    );
    sends_as(
        Event::ChannelMessage(ChannelMessage {
            channel: "5f0c".into(),
            message: ActorBytes::new(Some(br#"{"n":1}"#.to_vec())),
        }),
        json!({ "event": "channel_message", "channel": "5f0c", "message": { "n": 1 } }),
    );
    sends_as(
        Event::ChannelMessage(ChannelMessage {
            channel: "5f0c".into(),
            message: ActorBytes::new(Some(vec![0xff])),
        }),
        json!({ "event": "channel_message", "channel": "5f0c", "message_hex": "ff" }),
    );
    sends_as(
        Event::ChannelMessageTooLarge(ChannelMessageTooLarge {
            channel: "5f0c".into(),
            bytes: 20_000_000,
        }),
        json!({ "event": "channel_message_too_large", "channel": "5f0c", "bytes": 20_000_000 }),
    );
    sends_as(
        Event::ChannelClosed(ChannelEnded {
            channel: "5f0c".into(),
        }),
        json!({ "event": "channel_closed", "channel": "5f0c" }),
    );
    let unknown = Incoming::decode(br#"{"event": "fireworks"}"#).unwrap_err();
    assert!(unknown.to_string().contains("fireworks"), "{unknown}");
}

#[test]
fn handshake_and_errors_round_trip() {
    let welcome = WelcomeFrame {
        hello: Welcome::of_this_server(),
    };
    let frame = serde_json::to_vec(&welcome).unwrap();
    assert_eq!(
        serde_json::from_slice::<WelcomeFrame>(&frame).unwrap(),
        welcome
    );
    assert_eq!(welcome.hello.max_frame_bytes, MAX_FRAME_BYTES);
    let hello = HelloFrame::of_this_client(Some("t"));
    let frame = serde_json::to_vec(&hello).unwrap();
    assert_eq!(decode_hello(&frame).unwrap(), hello.hello);

    let error = ErrorBody::new(ErrorKind::UnknownActor, "no actor `x`");
    let frame = error_frame(Some(3), &error);
    assert_eq!(
        frame,
        br#"{"error":{"kind":"unknown_actor","message":"no actor `x`"},"id":3}"#
    );
    let Incoming::Answer {
        id: Some(3),
        result: Err(read),
    } = Incoming::decode(&frame).unwrap()
    else {
        panic!()
    };
    assert_eq!(read, error);
    let frame = error_frame(None, &error);
    assert!(matches!(
        Incoming::decode(&frame).unwrap(),
        Incoming::Answer {
            id: None,
            result: Err(_)
        }
    ));
}

#[test]
fn requests_round_trip() {
    let requests = [
        Request {
            id: 1,
            op: Op::Start {
                manifest_path: Some("/a/manifest.toml".into()),
                manifest: None,
                base_dir: None,
                state: Some(json!({"count": 5})),
                node: Some("n2".into()),
            },
        },
        Request {
            id: 2,
            op: Op::Send {
                actor: "1a2b3c4d".into(),
                payload: Payload::json(json!({"add": 1})),
            },
        },
        Request {
            id: 3,
            op: Op::Request {
                actor: "1a2b3c4d".into(),
                payload: Payload::raw(b"oops"),
                timeout_ms: Some(100),
            },
        },
        Request {
            id: 4,
            op: Op::List { all: true },
        },
        Request {
            id: 5,
            op: Op::Subscribe { actor: None },
        },
        Request {
            id: 6,
            op: Op::Fork {
                actor: "1a2b3c4d".into(),
                at: "65a172ded0b1".into(),
                ephemeral_ports: true,
            },
        },
    ];
    for request in requests {
        let bytes = serde_json::to_vec(&request).unwrap();
        assert_eq!(decode_request(&bytes).unwrap(), request);
    }
}

#[test]
fn the_documented_shapes_decode() {
    let request =
        decode_request(br#"{"id": 7, "op": "send", "actor": "ab", "message": {"add": 2}}"#)
            .unwrap();
    assert_eq!(request.id, 7);
    let Op::Send { payload, .. } = request.op else {
        panic!("{request:?}")
    };
    assert_eq!(payload.bytes().unwrap(), br#"{"add":2}"#);
    let list = decode_request(br#"{"id": 0, "op": "list"}"#).unwrap();
    assert_eq!(list.op, Op::List { all: false });
    let null =
        decode_request(br#"{"id": 1, "op": "send", "actor": "x", "message": null}"#).unwrap();
    let Op::Send { payload, .. } = null.op else {
        panic!()
    };
    assert_eq!(payload.bytes().unwrap(), b"null");
}

#[test]
fn bad_frames_say_why_and_keep_the_id() {
    let err = decode_request(b"{not json").unwrap_err();
    assert_eq!(err.error.kind, ErrorKind::BadFrame);
    assert_eq!(err.id, None);
    let err = decode_request(br#"{"op": "list"}"#).unwrap_err();
    assert!(err.error.message.contains("`id`"), "{err:?}");
    let err = decode_request(br#"{"id": 9, "op": "fly"}"#).unwrap_err();
    assert_eq!(err.id, Some(9));
    assert_eq!(err.error.kind, ErrorKind::BadRequest);
    let err = decode_request(br#"{"id": 9, "op": "stop"}"#).unwrap_err();
    assert!(err.error.message.contains("actor"), "{err:?}");
}

#[test]
fn hello_is_strict() {
    assert_eq!(
        decode_hello(br#"{"hello": {"version": 1, "token": "t"}}"#).unwrap(),
        Hello {
            version: 1,
            token: Some("t".into()),
            client: None
        }
    );
    assert_eq!(
        decode_hello(br#"{"id": 1, "op": "list"}"#)
            .unwrap_err()
            .kind,
        ErrorKind::HandshakeRequired
    );
}

#[test]
fn error_kind_names_match_serde() {
    for kind in [
        ErrorKind::BadFrame,
        ErrorKind::NotSupported,
        ErrorKind::Unauthorized,
        ErrorKind::UnknownEvent,
        ErrorKind::NoState,
    ] {
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
    }
}

#[test]
fn the_codec_refuses_a_4_gib_length_before_reading_it() {
    let mut codec = codec();
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, b'{'][..]);
    assert!(codec.decode(&mut buf).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_request_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_request(&bytes);
        let _ = decode_hello(&bytes);
    }

    #[test]
    fn arbitrary_json_like_text_never_panics(text in r#"\{("(id|op|actor|message|message_hex|limit|state)"|[0-9]+|null|true|"[a-z_]*"|[:,\[\]{}])*\}?"#) {
        let _ = decode_request(text.as_bytes());
    }

    #[test]
    fn arbitrary_ops_with_any_fields_never_panic(op in "[a-z_]{0,14}", field in "[a-z_]{0,12}", value in any::<i64>()) {
        let frame = format!(r#"{{"id": 1, "op": "{op}", "{field}": {value}, "actor": "x"}}"#);
        let _ = decode_request(frame.as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_frame_codec(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let mut codec = codec();
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(frame)) = codec.decode(&mut buf) {
            let _ = decode_request(&frame);
        }
        let _ = codec.decode_eof(&mut buf);
    }
}
