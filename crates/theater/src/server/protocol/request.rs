//! What a client asks: a [`Request`] is an `id` and an [`Op`].

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::error::{DecodeError, ErrorBody, ErrorKind};
use crate::manifest::Manifest;

/// One request: an `id` chosen by the client and an operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub op: Op,
}

/// What a request asks for. Actors are named by full id or by an
/// unambiguous prefix of it (the 8-character short id, say).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Spawns an actor from a manifest file on the server's machine, or
    /// from manifest text whose relative paths resolve against `base_dir`.
    Start {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        manifest_path: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        manifest: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base_dir: Option<String>,
        /// Replaces the manifest's `init_state` (sent as its JSON text).
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        state: Option<Value>,
        /// In a cluster, the node to run it on; without one, the node
        /// running the fewest actors.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
    },
    Stop {
        actor: String,
    },
    /// The running actors; with `all`, the stopped ones the log keeps too.
    List {
        #[serde(default, skip_serializing_if = "is_false")]
        all: bool,
    },
    /// The state of a running actor, or the newest stored state of a
    /// stopped one.
    State {
        actor: String,
    },
    /// The actor's chain; with `limit`, only the last `limit` events.
    Events {
        actor: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    Verify {
        actor: String,
    },
    Inspect {
        actor: String,
    },
    Send {
        actor: String,
        #[serde(flatten)]
        payload: Payload,
    },
    Request {
        actor: String,
        #[serde(flatten)]
        payload: Payload,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    OpenChannel {
        actor: String,
        #[serde(flatten)]
        payload: Payload,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    ChannelSend {
        channel: String,
        #[serde(flatten)]
        payload: Payload,
    },
    CloseChannel {
        channel: String,
    },
    /// Live chain events of one actor, or of every actor without `actor`.
    Subscribe {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        actor: Option<String>,
    },
    Unsubscribe {
        subscription: u64,
    },
    Restart {
        actor: String,
    },
    Tree,
    Ping,
    /// The nodes of the cluster this server belongs to.
    Nodes,
    /// Moves a running actor to node `to` of the cluster: it finishes the
    /// calls it has queued, stops, and `to` starts it from its replicated
    /// chain, under the same id.
    Migrate {
        actor: String,
        to: String,
    },
    /// Between nodes of a cluster only: starts `actor` here from its
    /// record and replicated chain, as the last step of a migration.
    Adopt {
        actor: String,
    },
    /// Between nodes of a cluster only: starts an actor here from the
    /// manifest the node asked to `start` it read, and the component it
    /// put in the cluster's store (`component` is its SHA-256, hex).
    Place {
        manifest: Box<Manifest>,
        component: String,
    },
    /// Replays the actor's chain on its component, checking every state
    /// (`docs/replay.md`). The actor may have stopped.
    Replay {
        actor: String,
    },
    /// Starts a new actor from the state `actor` had at event `at`. The
    /// actor may have stopped.
    Fork {
        actor: String,
        /// An event of the actor's chain: its hash (64 hex digits) or a
        /// unique prefix of at least [`MIN_EVENT_PREFIX`] digits.
        at: String,
        /// Every HTTP server of the fork listens on a free port.
        #[serde(default, skip_serializing_if = "is_false")]
        ephemeral_ports: bool,
    },
    /// Sets a running actor back to the state it had at event `to`,
    /// recorded as a `revert` event.
    Revert {
        actor: String,
        /// Named as `at` of [`Op::Fork`] is.
        to: String,
    },
}

impl Op {
    /// Its `op` as the protocol names it, for metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Start { .. } => "start",
            Op::Stop { .. } => "stop",
            Op::List { .. } => "list",
            Op::State { .. } => "state",
            Op::Events { .. } => "events",
            Op::Verify { .. } => "verify",
            Op::Inspect { .. } => "inspect",
            Op::Send { .. } => "send",
            Op::Request { .. } => "request",
            Op::OpenChannel { .. } => "open_channel",
            Op::ChannelSend { .. } => "channel_send",
            Op::CloseChannel { .. } => "close_channel",
            Op::Subscribe { .. } => "subscribe",
            Op::Unsubscribe { .. } => "unsubscribe",
            Op::Restart { .. } => "restart",
            Op::Tree => "tree",
            Op::Ping => "ping",
            Op::Nodes => "nodes",
            Op::Migrate { .. } => "migrate",
            Op::Adopt { .. } => "adopt",
            Op::Place { .. } => "place",
            Op::Replay { .. } => "replay",
            Op::Fork { .. } => "fork",
            Op::Revert { .. } => "revert",
        }
    }
}

/// Fewest hex digits of an event hash that requests accept: short enough
/// to type, long enough that two events of one chain practically never
/// share them.
pub const MIN_EVENT_PREFIX: usize = 8;

/// The bytes of a message: `message` holds any JSON value, sent as its
/// compact JSON text; `message_hex` holds raw bytes for messages that are
/// not JSON. Exactly one must be given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub message: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_hex: Option<String>,
}

impl Payload {
    pub fn json(value: Value) -> Self {
        Self {
            message: Some(value),
            message_hex: None,
        }
    }

    pub fn raw(bytes: &[u8]) -> Self {
        Self {
            message: None,
            message_hex: Some(hex::encode(bytes)),
        }
    }

    /// The bytes to deliver.
    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        match (&self.message, &self.message_hex) {
            (Some(value), None) => Ok(serde_json::to_vec(value).expect("JSON values serialize")),
            (None, Some(text)) => {
                hex::decode(text).map_err(|e| format!("`message_hex` is not hex: {e}"))
            }
            (None, None) => Err("give the message as `message` (JSON) or `message_hex`".into()),
            (Some(_), Some(_)) => Err("give either `message` or `message_hex`, not both".into()),
        }
    }
}

pub(super) fn is_false(value: &bool) -> bool {
    !value
}

/// Keeps an explicit `null` as `Some(Value::Null)`: only a missing key is `None`.
pub(super) fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Reads one request frame. Never panics, whatever the bytes.
pub fn decode_request(frame: &[u8]) -> Result<Request, DecodeError> {
    let value: Value = serde_json::from_slice(frame).map_err(|e| DecodeError {
        id: None,
        error: ErrorBody::new(ErrorKind::BadFrame, format!("the frame is not JSON: {e}")),
    })?;
    let id = value.get("id").and_then(Value::as_u64);
    if id.is_none() {
        return Err(DecodeError {
            id: None,
            error: ErrorBody::new(
                ErrorKind::BadFrame,
                "a request needs an `id` (an integer from 0 to 2^64-1) that the response will echo",
            ),
        });
    }
    serde_json::from_value(value).map_err(|e| DecodeError {
        id,
        error: ErrorBody::new(ErrorKind::BadRequest, format!("not a valid request: {e}")),
    })
}
