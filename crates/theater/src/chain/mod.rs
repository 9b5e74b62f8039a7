//! The hash chain: every state transition of an actor, linked by SHA-256.
//!
//! This module is pure data: building, hashing, verifying and (de)serializing
//! events. Where events are kept is the business of an [`EventLog`].
//! The exact byte encoding is specified in `docs/chain.md`.

mod log;
pub mod record;

pub use log::{
    AcceptFuture, Accepted, ActorRecord, Entry, EventLog, KeptState, LogError, LogFuture,
    MemoryEventLog, SNAPSHOT_EVERY, SavedActor, Snapshot, VerifyFailure, always_snapshot,
    snapshot_due,
};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// Prefix of every hashed event, so the encoding can evolve without ambiguity.
const DOMAIN: &[u8] = b"theater.chain.v1\n";

/// One link of an actor's chain.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChainEvent {
    #[serde(with = "hex_hash")]
    pub hash: Hash,
    #[serde(with = "hex_hash_opt")]
    pub parent_hash: Option<Hash>,
    pub event_type: String,
    /// What happened, as JSON (see [`record`]); hashed byte for byte.
    pub data: Box<RawValue>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// A one-line summary for people; hashed too, so it cannot be edited.
    pub description: String,
}

impl ChainEvent {
    /// Builds the event that follows `parent` and computes its hash.
    pub fn new(
        parent_hash: Option<Hash>,
        event_type: &str,
        data: Box<RawValue>,
        timestamp: u64,
        description: String,
    ) -> Self {
        let hash = event_hash(
            parent_hash.as_ref(),
            event_type,
            data.get().as_bytes(),
            timestamp,
            &description,
        );
        Self {
            hash,
            parent_hash,
            event_type: event_type.to_owned(),
            data,
            timestamp,
            description,
        }
    }

    /// The hash this event should have, recomputed from its fields.
    pub fn computed_hash(&self) -> Hash {
        event_hash(
            self.parent_hash.as_ref(),
            &self.event_type,
            self.data.get().as_bytes(),
            self.timestamp,
            &self.description,
        )
    }

    /// The 64-bit form of a hash used by the WIT `runtime.get-chain` records:
    /// its first eight bytes, big endian.
    pub fn short_hash(hash: &Hash) -> u64 {
        u64::from_be_bytes(hash[..8].try_into().expect("a hash has 32 bytes"))
    }
}

/// SHA-256 over the encoding of `docs/chain.md`:
/// `DOMAIN ‖ parent ‖ len32(type) ‖ type ‖ len64(data) ‖ data ‖ u64(timestamp) ‖ len32(description) ‖ description`,
/// integers big endian, `parent` = `0x00` for the first event or `0x01 ‖ 32 bytes`.
pub fn event_hash(
    parent: Option<&Hash>,
    event_type: &str,
    data: &[u8],
    timestamp: u64,
    description: &str,
) -> Hash {
    let mut sha = Sha256::new();
    sha.update(DOMAIN);
    match parent {
        None => sha.update([0u8]),
        Some(parent) => {
            sha.update([1u8]);
            sha.update(parent);
        }
    }
    sha.update((event_type.len() as u32).to_be_bytes());
    sha.update(event_type.as_bytes());
    sha.update((data.len() as u64).to_be_bytes());
    sha.update(data);
    sha.update(timestamp.to_be_bytes());
    sha.update((description.len() as u32).to_be_bytes());
    sha.update(description.as_bytes());
    sha.finalize().into()
}

/// Why a chain did not verify, naming the first bad event.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error(
        "event {index} ({hash}): stored hash does not match its contents — the event was altered"
    )]
    HashMismatch { index: usize, hash: String },
    #[error(
        "event {index} ({hash}): parent is {found} but the previous event is {expected} — the chain is broken here"
    )]
    BrokenLink {
        index: usize,
        hash: String,
        expected: String,
        found: String,
    },
    #[error("event 0: the chain is actor {found}'s but the export says it is actor {expected}'s")]
    WrongActor { expected: String, found: String },
}

impl VerifyError {
    /// Index of the first bad event.
    pub fn index(&self) -> usize {
        match self {
            Self::HashMismatch { index, .. } | Self::BrokenLink { index, .. } => *index,
            Self::WrongActor { .. } => 0,
        }
    }
}

/// Recomputes every hash and every link, oldest first. A chain must start
/// at a genesis event (no parent).
pub fn verify(events: &[ChainEvent]) -> Result<(), VerifyError> {
    let mut expected_parent: Option<Hash> = None;
    for (index, event) in events.iter().enumerate() {
        if event.parent_hash != expected_parent {
            return Err(VerifyError::BrokenLink {
                index,
                hash: hex::encode(event.hash),
                expected: describe_parent(expected_parent),
                found: describe_parent(event.parent_hash),
            });
        }
        if event.computed_hash() != event.hash {
            return Err(VerifyError::HashMismatch {
                index,
                hash: hex::encode(event.hash),
            });
        }
        expected_parent = Some(event.hash);
    }
    Ok(())
}

fn describe_parent(parent: Option<Hash>) -> String {
    parent.map_or_else(|| "none".to_owned(), hex::encode)
}

/// The portable form of a chain, as `theater run --chain-out` writes it and
/// `theater verify --file` reads it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChainExport {
    pub format: String,
    pub actor_id: String,
    pub events: Vec<ChainEvent>,
}

/// The `format` value of exports written by this version.
pub const EXPORT_FORMAT: &str = "theater-chain/1";

impl ChainExport {
    pub fn new(actor_id: String, events: Vec<ChainEvent>) -> Self {
        Self {
            format: EXPORT_FORMAT.to_owned(),
            actor_id,
            events,
        }
    }

    /// Verifies every event and that the chain belongs to the actor the
    /// export names (the `actor_id` field itself is not hashed; the genesis
    /// event's is).
    pub fn verify(&self) -> Result<(), VerifyError> {
        verify(&self.events)?;
        // The host calls and logs of `init` come before its `actor-init`.
        let genesis_actor = self
            .events
            .iter()
            .find(|e| e.event_type == record::ACTOR_INIT)
            .and_then(|e| serde_json::from_str::<serde_json::Value>(e.data.get()).ok())
            .and_then(|data| data["actor_id"].as_str().map(str::to_owned));
        match genesis_actor {
            Some(found) if found != self.actor_id => Err(VerifyError::WrongActor {
                expected: self.actor_id.clone(),
                found,
            }),
            _ => Ok(()),
        }
    }

    /// The index of the first event whose data is not compact JSON, as
    /// the runtime writes (and hashes) it: the export was re-formatted.
    pub fn first_reformatted_event(&self) -> Option<usize> {
        self.events
            .iter()
            .position(|event| !is_compact_json(event.data.get()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("chain events always serialize")
    }

    /// Parses an export; a file of another format is refused by name.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let export: Self =
            serde_json::from_str(text).map_err(|e| format!("not a chain export: {e}"))?;
        if export.format != EXPORT_FORMAT {
            return Err(format!(
                "unsupported chain format `{}` (this version reads `{EXPORT_FORMAT}`)",
                export.format
            ));
        }
        Ok(export)
    }
}

mod hex_hash {
    use super::Hash;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(hash: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let text = <&str>::deserialize(d)?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(text, &mut hash)
            .map_err(|e| D::Error::custom(format!("bad hash `{text}`: {e}")))?;
        Ok(hash)
    }
}

mod hex_hash_opt {
    use super::Hash;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &Option<Hash>, s: S) -> Result<S::Ok, S::Error> {
        match hash {
            Some(hash) => super::hex_hash::serialize(hash, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Hash>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::hex_hash")] Hash);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(hash)| hash))
    }
}

/// Whether `text` (valid JSON) has no whitespace outside its strings.
fn is_compact_json(text: &str) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        match (in_string, c) {
            (true, _) if escaped => escaped = false,
            (true, '\\') => escaped = true,
            (_, '"') => in_string = !in_string,
            (false, c) if c.is_whitespace() => return false,
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    fn sample_chain(n: usize) -> Vec<ChainEvent> {
        let mut events: Vec<ChainEvent> = Vec::new();
        for i in 0..n {
            let parent = events.last().map(|e| e.hash);
            events.push(ChainEvent::new(
                parent,
                "call",
                raw(&format!("{{\"n\":{i}}}")),
                1_700_000_000_000 + i as u64,
                format!("call {i}"),
            ));
        }
        events
    }

    /// The test vector of `docs/chain.md`.
    #[test]
    fn matches_documented_test_vector() {
        let genesis = ChainEvent::new(
            None,
            "actor-init",
            raw(r#"{"count":0}"#),
            1_700_000_000_000,
            "init".to_owned(),
        );
        assert_eq!(
            hex::encode(genesis.hash),
            "6df7bb44c400e91dc46b533cf51d13e7e01b38134d35312db40ebaa3f3090797"
        );
        let next = ChainEvent::new(
            Some(genesis.hash),
            "call",
            raw(r#"{"add":1}"#),
            1_700_000_000_001,
            "handle-send ok".to_owned(),
        );
        assert_eq!(
            hex::encode(next.hash),
            "c0327ca25c08840727d4b3fe22e311483c003bf75128000b6d46073403e51268"
        );
    }

    #[test]
    fn a_fresh_chain_verifies() {
        assert_eq!(verify(&sample_chain(5)), Ok(()));
        assert_eq!(verify(&[]), Ok(()));
    }

    #[test]
    fn altered_data_is_caught_at_that_event() {
        let mut events = sample_chain(5);
        events[3].data = raw(r#"{"n":42}"#);
        assert_eq!(verify(&events).unwrap_err().index(), 3);
    }

    #[test]
    fn altered_description_is_caught() {
        let mut events = sample_chain(3);
        events[1].description.push('!');
        assert!(matches!(
            verify(&events),
            Err(VerifyError::HashMismatch { index: 1, .. })
        ));
    }

    #[test]
    fn removed_event_breaks_the_link() {
        let mut events = sample_chain(4);
        events.remove(2);
        assert!(matches!(
            verify(&events),
            Err(VerifyError::BrokenLink { index: 2, .. })
        ));
    }

    #[test]
    fn export_round_trips_byte_for_byte() {
        let events = sample_chain(3);
        let json = ChainExport::new("a".into(), events.clone()).to_json();
        let back = ChainExport::from_json(&json).unwrap();
        assert_eq!(verify(&back.events), Ok(()));
        assert_eq!(
            back.events.last().unwrap().hash,
            events.last().unwrap().hash
        );
    }

    #[test]
    fn an_export_must_name_the_actor_of_its_genesis_event() {
        let init = ChainEvent::new(
            None,
            record::ACTOR_INIT,
            raw(r#"{"actor_id":"a"}"#),
            1,
            "init".into(),
        );
        assert_eq!(
            ChainExport::new("a".into(), vec![init.clone()]).verify(),
            Ok(())
        );
        let err = ChainExport::new("b".into(), vec![init])
            .verify()
            .unwrap_err();
        assert!(matches!(err, VerifyError::WrongActor { .. }), "{err}");
        assert!(err.to_string().contains("actor a's"), "{err}");
    }

    #[test]
    fn compact_json_is_told_from_reformatted_json() {
        assert!(is_compact_json(r#"{"a":[1,"x y",{"b":"\" c"}]}"#));
        assert!(!is_compact_json("{\"a\": 1}"));
        assert!(!is_compact_json("{\n  \"a\":1\n}"));
    }

    #[test]
    fn export_of_another_format_is_refused() {
        let err =
            ChainExport::from_json(r#"{"format":"x/9","actor_id":"a","events":[]}"#).unwrap_err();
        assert!(err.contains("unsupported chain format `x/9`"), "{err}");
    }
}
