//! The hash chain: every state transition of an actor, linked by SHA-256.
//!
//! This module is pure data: building, hashing, verifying and (de)serializing
//! events, the JSON each event type carries ([`record`]) and the portable
//! export form. It does no I/O and imports nothing of the runtime: where
//! events are kept is the business of the layer above, `storage`.
//! The exact byte encoding is specified in `docs/chain.md`.

mod export;
pub mod record;

pub use export::{ChainExport, EXPORT_FORMAT, ExportError};

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

/// An event hashed from its fields when it was built and not changeable
/// since, so a log can store it as it is, without hashing it again.
#[derive(Clone, Debug)]
pub struct SealedEvent(ChainEvent);

impl SealedEvent {
    /// Builds the event that follows `parent` (see [`ChainEvent::new`]).
    pub fn new(
        parent_hash: Option<Hash>,
        event_type: &str,
        data: Box<RawValue>,
        timestamp: u64,
        description: String,
    ) -> Self {
        Self(ChainEvent::new(
            parent_hash,
            event_type,
            data,
            timestamp,
            description,
        ))
    }

    /// Seals an event built elsewhere once its hash recomputes.
    pub fn check(event: ChainEvent) -> Result<Self, WrongHash> {
        match event.computed_hash() == event.hash {
            true => Ok(Self(event)),
            false => Err(WrongHash {
                hash: hex::encode(event.hash),
            }),
        }
    }

    pub fn into_event(self) -> ChainEvent {
        self.0
    }
}

impl std::ops::Deref for SealedEvent {
    type Target = ChainEvent;

    fn deref(&self) -> &ChainEvent {
        &self.0
    }
}

/// An event's hash does not match its contents.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("event {hash}: its hash does not match its contents — the event was altered")]
pub struct WrongHash {
    pub hash: String,
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::value::to_raw_value;

    pub(crate) fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    pub(crate) fn sample_chain(n: usize) -> Vec<ChainEvent> {
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
        let params = to_raw_value(&[record::Base64(br#"{"add":1}"#)]).unwrap();
        let data = record::encode(&record::CallRecord {
            function: "ntwk:theater/message-server-client.handle-send",
            from: None,
            params: &params,
            result: &raw("null"),
            state: record::StateDigest::of(&Some(br#"{"count":1}"#.to_vec())),
            added: None,
        });
        assert_eq!(
            data.get(),
            r#"{"function":"ntwk:theater/message-server-client.handle-send","params":[{"base64":"eyJhZGQiOjF9"}],"result":null,"state":{"sha256":"6aea6dfe6561984cdc5c54ead84d47d2cf29e48253ae282aef237404adad4661","size":11}}"#
        );
        let call = ChainEvent::new(
            Some(next.hash),
            "call",
            data,
            1_700_000_000_002,
            "handle-send ok".to_owned(),
        );
        assert_eq!(
            hex::encode(call.hash),
            "c76415b9b84dd8a016015119ffa9c44045370d489f689cfae6d40ab38b0688b2"
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
    fn only_an_event_whose_hash_recomputes_is_sealed() {
        let event = sample_chain(1).remove(0);
        let sealed = SealedEvent::check(event.clone()).unwrap();
        assert_eq!(sealed.hash, event.hash);
        let mut forged = event;
        forged.description.push('!');
        let err = SealedEvent::check(forged).unwrap_err();
        assert!(
            err.to_string().contains("does not match its contents"),
            "{err}"
        );
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
}
