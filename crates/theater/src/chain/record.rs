//! The event types an actor's chain holds and the JSON each one carries.
//! `docs/chain.md` lists them for people who audit chains.

use base64::Engine;
use base64::display::Base64Display;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeStruct, Serializer};
use serde_json::Value;
use serde_json::value::{RawValue, to_raw_value};
use sha2::{Digest, Sha256};

/// The actor was spawned and `actor.init` returned its first state.
pub const ACTOR_INIT: &str = "actor-init";
/// A runtime started the actor again (after a restart of the process),
/// with the same id, from the state its chain had reached; `actor.init`
/// ran on that state.
pub const ACTOR_RESUME: &str = "actor-resume";
/// The actor's state was set back to the state an earlier event of its
/// chain left; the chain itself is never rewritten.
pub const REVERT: &str = "revert";
/// An export returned `Ok`: the new state was committed.
pub const CALL: &str = "call";
/// An export returned `Err`, trapped or hit a limit: the state did not change.
pub const CALL_ERROR: &str = "call-error";
/// The actor wrote a line with `runtime.log`.
pub const LOG: &str = "log";
/// A supervisor decided what happens to a child (restart, stop, escalate)
/// or heard that it exited.
pub const SUPERVISION: &str = "supervision";
/// The actor asked to stop itself (`shutdown`) and ended: the last event
/// of its chain, with the data its supervisor was given.
pub const SHUTDOWN: &str = "shutdown";
/// A host function did something on the actor's behalf or gave it a value
/// its behaviour may depend on (a message sent, a reply, the time, random
/// bytes); a replay feeds the recorded result back.
pub const HOST_CALL: &str = "host-call";

/// The state an event leaves behind, by digest: states can be large and
/// the digest is what replay and audits compare.
pub struct StateDigest {
    /// The SHA-256 in lowercase hex, kept inline: every call writes one.
    sha256: [u8; 64],
    size: usize,
}

impl Serialize for StateDigest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut digest = s.serialize_struct("StateDigest", 2)?;
        let hex = std::str::from_utf8(&self.sha256).expect("hex is ASCII");
        digest.serialize_field("sha256", hex)?;
        digest.serialize_field("size", &self.size)?;
        digest.end()
    }
}

impl StateDigest {
    pub fn of(state: &Option<Vec<u8>>) -> Option<Self> {
        state
            .as_ref()
            .map(|bytes| Self::new(&Sha256::digest(bytes).into(), bytes.len()))
    }

    /// The digest of a state whose SHA-256 is already known.
    pub fn new(sha256: &[u8; 32], size: usize) -> Self {
        // `encode_to_slice` skips `hex::encode`'s per-byte iterator and
        // allocates nothing: this runs on every call.
        let mut hex = [0u8; 64];
        hex::encode_to_slice(sha256, &mut hex).expect("32 bytes make 64 hex digits");
        Self { sha256: hex, size }
    }
}

#[derive(Serialize)]
pub struct InitRecord<'a> {
    pub actor_id: &'a str,
    pub name: &'a str,
    /// SHA-256 of the component's bytes.
    pub component: &'a str,
    pub state: Option<StateDigest>,
    /// The actor and event whose state a fork started from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forked_from: Option<Origin>,
}

/// An event of another (or the same) actor's chain.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub actor: String,
    /// Hex SHA-256 of the event.
    pub event: String,
}

#[derive(Serialize)]
pub struct ResumeRecord<'a> {
    /// SHA-256 of the component's bytes, which may differ from the one the
    /// chain began with.
    pub component: &'a str,
    pub state: Option<StateDigest>,
}

#[derive(Serialize)]
pub struct RevertRecord<'a> {
    /// The event whose state the actor went back to.
    pub to: &'a str,
    /// Its index in the chain.
    pub index: u64,
    pub state: Option<StateDigest>,
}

#[derive(Serialize)]
pub struct CallRecord<'a> {
    pub function: &'a str,
    /// The actor that sent the message, if it came from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub params: &'a RawValue,
    pub result: &'a RawValue,
    pub state: Option<StateDigest>,
    /// What the caller added (e.g. `http`, the exchange a request was).
    #[serde(flatten)]
    pub added: Option<Added<'a>>,
}

#[derive(Serialize)]
pub struct CallErrorRecord<'a> {
    pub function: &'a str,
    pub params: &'a RawValue,
    /// `actor-error`, `trap`, `time-limit`, `memory-limit` or `bad-params`.
    pub kind: &'a str,
    pub message: &'a str,
    #[serde(flatten)]
    pub added: Option<Added<'a>>,
}

/// One field a caller adds to the record of its call, after the others.
pub struct Added<'a> {
    pub key: &'a str,
    pub value: &'a RawValue,
}

impl Serialize for Added<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.key, self.value)?;
        map.end()
    }
}

#[derive(Serialize)]
pub struct HostCallRecord<'a, P: Serialize, R: Serialize> {
    /// `interface.function`, e.g. `ntwk:theater/timing.now`.
    pub function: &'a str,
    pub params: P,
    /// `{"ok": value}` or `{"err": message}`.
    pub result: R,
}

#[derive(Serialize)]
pub struct ShutdownRecord {
    /// The data passed to `shutdown`, as [`readable`] shows it.
    pub data: Option<Value>,
}

#[derive(Serialize)]
pub struct LogRecord<'a> {
    pub message: &'a str,
}

/// `text` cut to at most `limit` bytes (on a character boundary), saying
/// how much was cut: for text an actor chooses that the chain records.
pub fn cut(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let keep = text.floor_char_boundary(limit);
        let cut = text.len() - keep;
        text.truncate(keep);
        text.push_str(&format!("… ({cut} more bytes cut)"));
    }
    text
}

/// Bytes as people read them in a chain: the text if UTF-8, else
/// [`Base64`].
pub fn readable(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => serde_json::json!({ BASE64_KEY: STANDARD.encode(bytes) }),
    }
}

/// The one key of the object that holds bytes in event data.
pub const BASE64_KEY: &str = "base64";

/// Bytes as event data holds them: `{"base64": "..."}`, standard alphabet
/// with padding, 4 characters for every 3 bytes. Chains recorded before
/// this form hold bytes as arrays of numbers.
pub struct Base64<'a>(pub &'a [u8]);

impl Serialize for Base64<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(BASE64_KEY, &Base64Text(self.0))?;
        map.end()
    }
}

/// The base64 text alone, written straight into the serializer.
struct Base64Text<'a>(&'a [u8]);

impl Serialize for Base64Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&Base64Display::new(self.0, &STANDARD))
    }
}

/// The bytes [`Base64`] wrote as `text`.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD.decode(text)
}

/// Encodes a record as event data.
pub fn encode(record: &impl Serialize) -> Box<RawValue> {
    to_raw_value(record).expect("event records always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        assert_eq!(cut("short".into(), 10), "short");
        assert_eq!(cut("aé".repeat(3), 4), "aéa… (5 more bytes cut)");
    }

    #[test]
    fn an_added_field_comes_last_and_none_adds_nothing() {
        let params = to_raw_value(&[1]).unwrap();
        let http = to_raw_value(&serde_json::json!({"status": 200})).unwrap();
        let record = |added| {
            encode(&CallErrorRecord {
                function: "f",
                params: &params,
                kind: "trap",
                message: "m",
                added,
            })
            .get()
            .to_owned()
        };
        assert_eq!(
            record(None),
            r#"{"function":"f","params":[1],"kind":"trap","message":"m"}"#
        );
        let added = Added {
            key: "http",
            value: &http,
        };
        assert_eq!(
            record(Some(added)),
            r#"{"function":"f","params":[1],"kind":"trap","message":"m","http":{"status":200}}"#
        );
    }

    #[test]
    fn bytes_that_are_not_text_are_base64() {
        assert_eq!(readable(b"hi"), Value::from("hi"));
        let binary = [0xff, 0, 1];
        assert_eq!(readable(&binary).to_string(), r#"{"base64":"/wAB"}"#);
        assert_eq!(
            serde_json::to_string(&Base64(&binary)).unwrap(),
            r#"{"base64":"/wAB"}"#
        );
        assert_eq!(decode_base64("/wAB").unwrap(), binary);
    }
}
