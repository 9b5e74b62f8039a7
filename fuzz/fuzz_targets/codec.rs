//! The storage codec: the bytes a durable log keeps for each event and
//! each reference to a kept state.
//!
//! - Whatever `decode` accepts, `encode` writes back byte for byte: the
//!   decoder takes nothing the encoder would not have written.
//! - Any event `encode` writes, `decode` reads back field for field, and its
//!   hash still recomputes.
//! - The same two for state references.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use theater::chain::{ChainEvent, Hash};
use theater::storage::codec;

/// An event as a guest and the runtime could make it.
#[derive(Arbitrary, Debug)]
struct EventParts {
    parent: Option<Hash>,
    event_type: String,
    /// JSON text when it is one JSON value, else stored as a JSON string.
    data: String,
    timestamp: u64,
    description: String,
}

impl EventParts {
    fn build(self) -> ChainEvent {
        let data = match RawValue::from_string(self.data.clone()) {
            Ok(raw) if raw.get() == self.data => raw,
            _ => serde_json::value::to_raw_value(&self.data).expect("strings serialize"),
        };
        ChainEvent::new(
            self.parent,
            &self.event_type,
            data,
            self.timestamp,
            self.description,
        )
    }
}

fn assert_same(a: &ChainEvent, b: &ChainEvent) {
    assert_eq!(a.hash, b.hash);
    assert_eq!(a.parent_hash, b.parent_hash);
    assert_eq!(a.event_type, b.event_type);
    assert_eq!(a.data.get(), b.data.get());
    assert_eq!(a.timestamp, b.timestamp);
    assert_eq!(a.description, b.description);
}

fuzz_target!(|bytes: &[u8]| {
    if let Ok(event) = codec::decode(bytes) {
        assert_eq!(
            codec::encode(&event),
            bytes,
            "decode accepted bytes encode would not write"
        );
    }
    if let Ok(state) = codec::decode_state_ref(bytes) {
        assert_eq!(
            codec::encode_state_ref(&state),
            bytes,
            "decode_state_ref accepted bytes encode_state_ref would not write"
        );
    }

    let mut input = Unstructured::new(bytes);
    if let Ok(parts) = EventParts::arbitrary(&mut input) {
        let event = parts.build();
        let back = codec::decode(&codec::encode(&event)).expect("an encoded event decodes");
        assert_same(&event, &back);
        assert_eq!(back.computed_hash(), event.hash);
    }
    if let Ok((index, hash, sha256)) = <(u64, Hash, Option<Hash>)>::arbitrary(&mut input) {
        let state = codec::StateRef {
            index,
            hash,
            sha256,
        };
        let back = codec::decode_state_ref(&codec::encode_state_ref(&state))
            .expect("an encoded state reference decodes");
        assert_eq!(back, state);
    }
});
