//! Chain export, import and verification, as `theater run --chain-out` and
//! `theater verify --file` use them.
//!
//! - A chain that verifies still verifies after export and import, with
//!   every event unchanged.
//! - Any one byte changed in a verified export is refused (not UTF-8, not
//!   an export) or caught by `verify`, unless the export still says exactly
//!   the same thing (the hex of a hash in capitals, say).
//! - Any text at all: parsing and verifying never panic, and an export
//!   that verifies re-exports to an equal one.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use theater::chain::{ChainEvent, ChainExport, record};

/// One event of a chain built from fuzz input.
#[derive(Arbitrary, Debug)]
struct Link {
    /// `actor-init`, which names the actor, or another type.
    init: bool,
    event_type: String,
    data: String,
    timestamp: u64,
    description: String,
}

#[derive(Arbitrary, Debug)]
struct Case {
    actor_id: String,
    links: Vec<Link>,
    /// Where the byte to change is, and what to add to it.
    at: usize,
    delta: u8,
}

/// `text` as the runtime writes event data: compact JSON, or a JSON string
/// when it is not JSON.
fn json_of(text: &str) -> Box<RawValue> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => record::encode(&value),
        Err(_) => record::encode(&text),
    }
}

fn build(actor_id: &str, links: Vec<Link>) -> Vec<ChainEvent> {
    let mut events: Vec<ChainEvent> = Vec::new();
    for link in links {
        let (event_type, data) = if link.init {
            let data = serde_json::json!({ "actor_id": actor_id, "note": link.data });
            (record::ACTOR_INIT.to_owned(), record::encode(&data))
        } else if link.event_type == record::ACTOR_INIT {
            // Only the runtime writes `actor-init`, naming the actor.
            (record::CALL.to_owned(), json_of(&link.data))
        } else {
            (link.event_type, json_of(&link.data))
        };
        let parent = events.last().map(|e| e.hash);
        events.push(ChainEvent::new(
            parent,
            &event_type,
            data,
            link.timestamp,
            link.description,
        ));
    }
    events
}

fn same_events(a: &[ChainEvent], b: &[ChainEvent]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| {
            a.hash == b.hash
                && a.parent_hash == b.parent_hash
                && a.event_type == b.event_type
                && a.data.get() == b.data.get()
                && a.timestamp == b.timestamp
                && a.description == b.description
        })
}

/// Whether the chain itself names its actor, so the export's `actor_id`
/// is checked.
fn vouches_for_actor(events: &[ChainEvent]) -> bool {
    events.iter().any(|e| e.event_type == record::ACTOR_INIT)
}

/// Export and import keep a verified chain whole and verified.
fn round_trip(export: &ChainExport) -> String {
    let text = export.to_json();
    let back = ChainExport::from_json(&text).expect("an export reads back");
    assert_eq!(
        back.verify(),
        Ok(()),
        "a verified chain failed after export and import"
    );
    assert!(
        same_events(&export.events, &back.events),
        "import changed an event"
    );
    assert_eq!(back.actor_id, export.actor_id);
    text
}

/// One byte of a verified export changed is refused, detected, or harmless.
fn tamper(export: &ChainExport, text: &str, at: usize, delta: u8) {
    if delta == 0 || text.is_empty() {
        return;
    }
    let mut bytes = text.as_bytes().to_vec();
    let at = at % bytes.len();
    bytes[at] = bytes[at].wrapping_add(delta);
    let Ok(changed) = std::str::from_utf8(&bytes) else {
        return; // `theater verify --file` reads text: refused
    };
    let Ok(altered) = ChainExport::from_json(changed) else {
        return; // not an export: refused
    };
    if altered.verify().is_err() {
        return; // detected
    }
    assert!(
        same_events(&export.events, &altered.events),
        "byte {at} changed by {delta} altered an event undetected:\n{changed}"
    );
    if vouches_for_actor(&export.events) {
        assert_eq!(
            altered.actor_id, export.actor_id,
            "byte {at} changed the actor undetected"
        );
    }
}

fuzz_target!(|bytes: &[u8]| {
    // Any text, as a file handed to `theater verify --file`.
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Ok(export) = ChainExport::from_json(text)
    {
        let _ = export.first_reformatted_event();
        if export.verify().is_ok() {
            round_trip(&export);
        }
    }

    // A chain as the runtime writes it.
    let Ok(case) = Case::arbitrary(&mut Unstructured::new(bytes)) else {
        return;
    };
    let events = build(&case.actor_id, case.links);
    let export = ChainExport::new(case.actor_id, events);
    assert_eq!(
        export.verify(),
        Ok(()),
        "a freshly built chain does not verify"
    );
    let text = round_trip(&export);
    assert_eq!(
        export.first_reformatted_event(),
        None,
        "runtime data counted as reformatted"
    );
    tamper(&export, &text, case.at, case.delta);
});
