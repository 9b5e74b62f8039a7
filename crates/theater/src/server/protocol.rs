//! The management protocol's messages and framing. `docs/protocol.md` is
//! the reference for people writing clients.
//!
//! Every frame is a 4-byte big-endian length followed by that many bytes
//! of UTF-8 JSON. The client speaks first with a `hello`, then sends
//! requests carrying an `id` that the response echoes; the server may also
//! send events (subscriptions, channel messages) at any time.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};
use tokio_util::codec::LengthDelimitedCodec;

/// The protocol version this server and client speak.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame either side accepts, in bytes (the length prefix not
/// counted). Guards the server against a client that announces or sends
/// an unbounded frame; a client asking for more is closed, since the
/// stream cannot be resynchronized.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// The codec both sides frame with: 4-byte big-endian length prefix,
/// frames up to [`MAX_FRAME_BYTES`].
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// The first frame a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Free text naming the client, for the server's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelloFrame {
    pub hello: Hello,
}

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

fn is_false(value: &bool) -> bool {
    !value
}

/// Keeps an explicit `null` as `Some(Value::Null)`: only a missing key is `None`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// What went wrong, as the `kind` of an error frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The frame is not JSON, or not a request.
    BadFrame,
    /// The frame is larger than [`MAX_FRAME_BYTES`]; the connection closes.
    FrameTooLarge,
    /// The request is well formed but its fields are not usable.
    BadRequest,
    /// The first frame was not a `hello`.
    HandshakeRequired,
    UnsupportedVersion,
    /// Wrong or missing token; the connection closes.
    Unauthorized,
    TooManyConnections,
    UnknownActor,
    AmbiguousActor,
    UnknownChannel,
    UnknownSubscription,
    /// The event hash names no event of the actor's chain.
    UnknownEvent,
    /// The state at that event cannot be rebuilt from the log; the message
    /// says why.
    NoState,
    /// The manifest or component could not be used.
    SpawnFailed,
    /// The actor refused or failed the call; the message says why.
    ActorError,
    Timeout,
    NotSupported,
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadFrame => "bad_frame",
            Self::FrameTooLarge => "frame_too_large",
            Self::BadRequest => "bad_request",
            Self::HandshakeRequired => "handshake_required",
            Self::UnsupportedVersion => "unsupported_version",
            Self::Unauthorized => "unauthorized",
            Self::TooManyConnections => "too_many_connections",
            Self::UnknownActor => "unknown_actor",
            Self::AmbiguousActor => "ambiguous_actor",
            Self::UnknownChannel => "unknown_channel",
            Self::UnknownSubscription => "unknown_subscription",
            Self::UnknownEvent => "unknown_event",
            Self::NoState => "no_state",
            Self::SpawnFailed => "spawn_failed",
            Self::ActorError => "actor_error",
            Self::Timeout => "timeout",
            Self::NotSupported => "not_supported",
            Self::Internal => "internal",
        }
    }
}

/// An error as the protocol carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub kind: ErrorKind,
    pub message: String,
}

impl ErrorBody {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A frame that could not be read as a request; `id` is set when the frame
/// had one, so the error answers that request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub id: Option<u64>,
    pub error: ErrorBody,
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

/// Reads the `hello` frame.
pub fn decode_hello(frame: &[u8]) -> Result<Hello, ErrorBody> {
    serde_json::from_slice::<HelloFrame>(frame)
        .map(|frame| frame.hello)
        .map_err(|e| {
            ErrorBody::new(
                ErrorKind::HandshakeRequired,
                format!(
                    "the first frame must be {{\"hello\": {{\"version\": {PROTOCOL_VERSION}, \"token\": ...}}}}: {e}"
                ),
            )
        })
}

/// `body` with its length prefix, ready for the wire.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// `{"id": id, "ok": result}`.
pub fn ok_frame(id: u64, result: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "id": id, "ok": result })).expect("JSON values serialize")
}

/// `{"id": id, "error": {...}}`, or `{"error": {...}}` for the connection.
pub fn error_frame(id: Option<u64>, error: &ErrorBody) -> Vec<u8> {
    let mut frame = Map::new();
    if let Some(id) = id {
        frame.insert("id".into(), id.into());
    }
    frame.insert(
        "error".into(),
        serde_json::to_value(error).expect("errors serialize"),
    );
    serde_json::to_vec(&frame).expect("JSON values serialize")
}

/// `{"event": kind, ...fields}`.
pub fn event_frame(kind: &str, fields: Value) -> Vec<u8> {
    let mut frame = Map::new();
    frame.insert("event".into(), kind.into());
    if let Value::Object(fields) = fields {
        frame.extend(fields);
    }
    serde_json::to_vec(&frame).expect("JSON values serialize")
}

/// Puts actor bytes into `object`: under `key` as JSON when they are JSON
/// text, else under `<key>_hex`.
pub fn put_bytes(object: &mut Map<String, Value>, key: &str, bytes: Option<&[u8]>) {
    match bytes {
        None => {
            object.insert(key.into(), Value::Null);
        }
        Some(bytes) => match serde_json::from_slice::<Value>(bytes) {
            Ok(value) => {
                object.insert(key.into(), value);
            }
            Err(_) => {
                object.insert(format!("{key}_hex"), hex::encode(bytes).into());
            }
        },
    }
}

/// The bytes [`put_bytes`] stored under `key`, `None` when they were `null`.
pub fn take_bytes(object: &Value, key: &str) -> Option<Vec<u8>> {
    if let Some(text) = object.get(format!("{key}_hex")).and_then(Value::as_str) {
        return hex::decode(text).ok();
    }
    match object.get(key) {
        None | Some(Value::Null) => None,
        Some(value) => Some(serde_json::to_vec(value).expect("JSON values serialize")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use proptest::prelude::*;
    use tokio_util::codec::Decoder;

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
    fn bytes_travel_as_json_or_hex() {
        let mut object = Map::new();
        put_bytes(&mut object, "state", Some(br#"{"count":1}"#));
        put_bytes(&mut object, "reply", Some(b"\xff\x00"));
        let value = Value::Object(object);
        assert_eq!(value["state"]["count"], 1);
        assert_eq!(value["reply_hex"], "ff00");
        assert_eq!(take_bytes(&value, "reply").unwrap(), b"\xff\x00");
        assert_eq!(take_bytes(&value, "state").unwrap(), br#"{"count":1}"#);
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
}
