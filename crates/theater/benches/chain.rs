//! What checking and recording chains costs. Run with
//! `cargo bench -p theater --bench chain` (or `cargo xtask bench`).
//!
//! 1. Verify: `chain::verify` over a chain of `call` events, against plain
//!    SHA-256 over the same bytes (each event's hashed encoding, built
//!    beforehand), as `ratio chain_verify = <verify rate / sha2 rate>`.
//!    The same chain is also verified as stored (`RedbEventLog::
//!    verify_stored`, reading from disk) and as an export (parsing the JSON
//!    file, then verifying), against the same baseline.
//! 2. Record size: the `call` record of a 1 KiB message with the message
//!    as base64 against the same record with the message as an array of
//!    numbers, the form chains had before.

use std::time::{Duration, Instant};

use serde_json::value::{RawValue, to_raw_value};
use sha2::{Digest, Sha256};
use theater::ActorId;
use theater::chain::record::{self, CallRecord, StateDigest};
use theater::chain::{self, ChainEvent, ChainExport, SealedEvent};
use theater::host::HANDLE_SEND;
use theater::storage::{EventLog, RedbEventLog};
use theater::wasm::Bytes;

/// Events in the chain verified.
const EVENTS: usize = 20_000;
/// Rounds per figure; the median is reported.
const ROUNDS: usize = 7;
/// The message size of the record-size figure.
const MESSAGE_BYTES: usize = 1024;

fn main() {
    println!("chain bench: medians of {ROUNDS} rounds");
    for (name, message) in [("", small_message()), ("_1k", kib_message())] {
        verify(name, &message);
    }
    record_size();
}

/// The counter's message.
fn small_message() -> Vec<u8> {
    br#"{"add":1}"#.to_vec()
}

/// A 1 KiB JSON message.
fn kib_message() -> Vec<u8> {
    let mut text = String::from(r#"{"note":""#);
    while text.len() < MESSAGE_BYTES - 2 {
        text.push_str("lorem ipsum ");
    }
    text.truncate(MESSAGE_BYTES - 2);
    text.push_str(r#""}"#);
    text.into_bytes()
}

/// Part 1 for a chain whose calls carry `message`.
fn verify(name: &str, message: &[u8]) {
    let events = call_chain(message);
    let preimages: Vec<Vec<u8>> = events.iter().map(preimage).collect();
    let bytes: usize = preimages.iter().map(Vec::len).sum();

    let raw = rate(|| {
        for (event, preimage) in events.iter().zip(&preimages) {
            let hash: [u8; 32] = Sha256::digest(preimage).into();
            assert_eq!(hash, event.hash);
        }
    });
    let ours = rate(|| chain::verify(&events).expect("the chain verifies"));

    let export = ChainExport::new(ActorId::new().to_string(), events.clone()).to_json();
    let exported = rate(|| {
        let parsed = ChainExport::from_json(&export).expect("the export parses");
        chain::verify(&parsed.events).expect("the export verifies");
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let log = RedbEventLog::open(dir.path().join("chains.redb")).expect("redb log");
    let actor = ActorId::new();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        for event in &events {
            let sealed = SealedEvent::check(event.clone()).expect("sealed");
            log.append(&actor, sealed).await.expect("append");
        }
    });
    let stored = rate(|| {
        log.verify_stored(&actor)
            .expect("the stored chain verifies");
    });

    let per_second = |r: f64| r * EVENTS as f64;
    println!(
        "chain_verify{name}: {EVENTS} call events of {} bytes hashed on average: \
         verify {:.0} events/s, sha2 over the same bytes {:.0} events/s; \
         as an export (parse + verify) {:.0} events/s, as stored (redb read + verify) {:.0} events/s",
        bytes / EVENTS,
        per_second(ours),
        per_second(raw),
        per_second(exported),
        per_second(stored),
    );
    println!("ratio chain_verify{name} = {:.2}", ours / raw);
    println!("ratio chain_verify_export{name} = {:.2}", exported / raw);
    println!("ratio chain_verify_stored{name} = {:.2}", stored / raw);
}

/// Part 2.
fn record_size() {
    let message = kib_message();
    let size = |params: Box<RawValue>| call_data(&params).get().len();
    let base64 = size(to_raw_value(&(Bytes(message.clone()),)).unwrap());
    let numbers = size(to_raw_value(&(message.clone(),)).unwrap());
    let empty = size(to_raw_value(&(Bytes(Vec::new()),)).unwrap());
    println!(
        "record_size: `call` record of a {MESSAGE_BYTES}-byte message: {base64} bytes with \
         the message as base64, {numbers} bytes as an array of numbers (before); \
         {empty} bytes without the message"
    );
    println!(
        "ratio record_size = {:.2} (message part {:.2}x the message, before {:.2}x)",
        base64 as f64 / numbers as f64,
        (base64 - empty) as f64 / MESSAGE_BYTES as f64,
        (numbers - empty) as f64 / MESSAGE_BYTES as f64,
    );
}

/// `actor-init`, then [`EVENTS`]` - 1` `call` events of `message`.
fn call_chain(message: &[u8]) -> Vec<ChainEvent> {
    let params = to_raw_value(&(Bytes(message.to_vec()),)).unwrap();
    let mut events = vec![ChainEvent::new(
        None,
        record::ACTOR_INIT,
        RawValue::from_string(r#"{"count":0}"#.into()).unwrap(),
        1_700_000_000_000,
        "counter initialized".into(),
    )];
    for i in 1..EVENTS {
        let parent = events.last().map(|e| e.hash);
        let data = call_data(&params);
        let time = 1_700_000_000_000 + i as u64;
        events.push(ChainEvent::new(
            parent,
            record::CALL,
            data,
            time,
            "handle-send ok".into(),
        ));
    }
    events
}

fn call_data(params: &RawValue) -> Box<RawValue> {
    record::encode(&CallRecord {
        function: HANDLE_SEND,
        from: None,
        params,
        result: &RawValue::from_string("null".into()).unwrap(),
        state: StateDigest::of(&Some(br#"{"count":1}"#.to_vec())),
        added: None,
    })
}

/// The bytes `docs/chain.md` says an event's hash covers, in one buffer.
fn preimage(event: &ChainEvent) -> Vec<u8> {
    let data = event.data.get().as_bytes();
    let mut bytes = Vec::with_capacity(128 + data.len());
    bytes.extend_from_slice(b"theater.chain.v1\n");
    match event.parent_hash {
        None => bytes.push(0),
        Some(parent) => {
            bytes.push(1);
            bytes.extend_from_slice(&parent);
        }
    }
    bytes.extend_from_slice(&(event.event_type.len() as u32).to_be_bytes());
    bytes.extend_from_slice(event.event_type.as_bytes());
    bytes.extend_from_slice(&(data.len() as u64).to_be_bytes());
    bytes.extend_from_slice(data);
    bytes.extend_from_slice(&event.timestamp.to_be_bytes());
    bytes.extend_from_slice(&(event.description.len() as u32).to_be_bytes());
    bytes.extend_from_slice(event.description.as_bytes());
    bytes
}

/// Median runs of `run` per second.
fn rate(mut run: impl FnMut()) -> f64 {
    run();
    let mut times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .collect();
    times.sort();
    1.0 / times[ROUNDS / 2].as_secs_f64()
}
