//! Components of the March 2025 interface era: no WASI imports, subsets of
//! the runtime interface, no channel exports, the older channel-open shape.
//! One test per compatibility rule.

use crate::common::{actors_dir, json, runtime, spawn, spawn_with};
use serde_json::Value;
use theater::chain::{self, record};
use theater::host::{CHANNEL_OPEN, ChannelAccept, HANDLE_REQUEST, HANDLE_SEND};
use theater::{ActorError, ActorHandle};

fn imports_wasi(name: &str) -> bool {
    let bytes = std::fs::read(actors_dir().join(format!("{name}/{name}.wasm"))).unwrap();
    bytes.windows(5).any(|w| w == b"wasi:")
}

async fn open_channel(actor: &ActorHandle, message: &str) -> Result<ChannelAccept, ActorError> {
    actor
        .call_function::<(Vec<u8>,), ChannelAccept>(CHANNEL_OPEN, (json(message),))
        .await
}

#[tokio::test]
async fn a_component_without_wasi_runs_and_answers() {
    assert!(
        !imports_wasi("compat-basic"),
        "compat-basic should have no WASI imports"
    );
    let runtime = runtime();
    let actor = spawn(&runtime, "compat-basic").await;
    actor
        .call_function::<(Vec<u8>,), ()>(HANDLE_SEND, (json("{}"),))
        .await
        .unwrap();
    actor
        .call_function::<(Vec<u8>,), ()>(HANDLE_SEND, (json("{}"),))
        .await
        .unwrap();
    let (reply,) = actor
        .call_function::<(Vec<u8>,), (Vec<u8>,)>(HANDLE_REQUEST, (json("{}"),))
        .await
        .unwrap();
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply["messages"], 2);
    chain::verify(&runtime.chain(actor.id()).unwrap()).unwrap();
}

/// Rule 1: channel exports may be missing; an open is a clear error.
#[tokio::test]
async fn an_actor_without_channel_exports_refuses_channels_clearly() {
    let runtime = runtime();
    let actor = spawn(&runtime, "compat-basic").await;
    let err = open_channel(&actor, r#""yes""#).await.unwrap_err();
    assert!(matches!(err, ActorError::UnknownFunction { .. }), "{err}");
    assert!(err.to_string().contains("handle-channel-open"), "{err}");
    // Nothing happened to it.
    actor
        .call_function::<(Vec<u8>,), ()>(HANDLE_SEND, (json("{}"),))
        .await
        .unwrap();
}

/// Rule 2: both result shapes of `handle-channel-open` reach the host as
/// the same `ChannelAccept`.
#[tokio::test]
async fn both_channel_open_shapes_are_understood() {
    let runtime = runtime();
    // `tuple<channel-accept>`, the older shape.
    let tuple_shape = spawn(&runtime, "compat-channel-tuple").await;
    assert!(!imports_wasi("compat-channel-tuple"));
    assert_eq!(
        open_channel(&tuple_shape, r#""yes""#).await.unwrap(),
        ChannelAccept {
            accepted: true,
            message: None
        }
    );
    let refused = open_channel(&tuple_shape, r#""no""#).await.unwrap();
    assert!(!refused.accepted);
    assert_eq!(
        refused.message.as_deref(),
        Some(br#""no thanks""#.as_slice())
    );
    // The record itself, the current shape.
    let record_shape = spawn(&runtime, "echo").await;
    assert!(open_channel(&record_shape, "{}").await.unwrap().accepted);
}

/// Rule 3: a component importing only `runtime.log` links; listing the
/// always-granted `message-server` is accepted.
#[tokio::test]
async fn a_subset_of_runtime_imports_links_and_message_server_may_be_listed() {
    let text = r#"
name = "compat"
component_path = "compat-basic.wasm"
[[handlers]]
type = "runtime"
config = {}
[[handlers]]
type = "message-server"
config = {}
"#;
    let runtime = runtime();
    let actor = spawn_with(&runtime, "compat-basic", text).await.unwrap();
    let events = runtime.chain(actor.id()).unwrap();
    let log = events
        .iter()
        .find(|e| e.event_type == record::LOG)
        .expect("init logged");
    let data: Value = serde_json::from_str(log.data.get()).unwrap();
    // Rule 4: init got the actor's own id.
    assert_eq!(
        data["message"],
        format!("compat-basic {} ready", actor.id())
    );
}

/// Rule 4: init runs exactly once, with `init_state` as its state.
#[tokio::test]
async fn init_runs_once_with_the_init_state() {
    let text = "name = \"c\"\ncomponent_path = \"counter.wasm\"\ninit_state = '{\"count\": 41}'\n";
    let runtime = runtime();
    let actor = spawn_with(&runtime, "counter", text).await.unwrap();
    actor
        .call_function::<(Vec<u8>,), ()>(HANDLE_SEND, (json(r#"{"add":1}"#),))
        .await
        .unwrap();
    let state: Value = serde_json::from_slice(&actor.state().await.unwrap().unwrap()).unwrap();
    assert_eq!(state["count"], 42);
    let inits = runtime
        .chain(actor.id())
        .unwrap()
        .iter()
        .filter(|e| e.event_type == record::ACTOR_INIT)
        .count();
    assert_eq!(inits, 1);
}
