//! The management protocol as the server reads it: frames from a byte
//! stream, the `hello`, then requests.
//!
//! - The server's frame reader splits any stream exactly as the protocol
//!   says (4-byte big-endian length, then the body), refuses a length over
//!   its limit before reading the body, and says why a stream ended.
//! - A request that decodes re-encodes to one that decodes equal.
//! - A frame refused keeps its `id` only when it had a numeric one, and
//!   the error kind tells a bad frame from a bad request.

#![no_main]

use std::io::ErrorKind as IoErrorKind;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use theater::server::frames::{FrameReader, ReadError};
use theater::server::protocol::{self, HelloFrame, Op};
use theater::server::{Budget, ErrorKind, MAX_FRAME_BYTES};

/// What the stream holds next, by the protocol's definition.
#[derive(Debug)]
enum Expected<'a> {
    Frame(&'a [u8]),
    Closed,
    TooLarge(usize),
    CutShort,
}

fn expected(stream: &[u8], limit: usize) -> (Expected<'_>, &[u8]) {
    if stream.is_empty() {
        return (Expected::Closed, stream);
    }
    let Some((prefix, rest)) = stream.split_first_chunk::<4>() else {
        return (Expected::CutShort, &[]);
    };
    let announced = u32::from_be_bytes(*prefix) as usize;
    if announced > limit {
        return (Expected::TooLarge(announced), rest);
    }
    match rest.split_at_checked(announced) {
        Some((body, rest)) => (Expected::Frame(body), rest),
        None => (Expected::CutShort, &[]),
    }
}

fn check_hello(frame: &[u8]) {
    if let Ok(hello) = protocol::decode_hello(frame) {
        let again = serde_json::to_vec(&HelloFrame {
            hello: hello.clone(),
        })
        .expect("serializes");
        assert_eq!(protocol::decode_hello(&again), Ok(hello));
    }
}

fn check_request(frame: &[u8]) {
    match protocol::decode_request(frame) {
        Ok(request) => {
            let again = serde_json::to_vec(&request).expect("requests serialize");
            let back = protocol::decode_request(&again)
                .unwrap_or_else(|e| panic!("{request:?} re-encoded does not decode: {e:?}"));
            assert_eq!(back, request, "a request changed on re-encoding");
            if let Op::Send { payload, .. }
            | Op::Request { payload, .. }
            | Op::OpenChannel { payload, .. }
            | Op::ChannelSend { payload, .. } = &request.op
            {
                let _ = payload.bytes();
            }
        }
        Err(refused) => {
            let id = serde_json::from_slice::<Value>(frame)
                .ok()
                .and_then(|value| value.get("id").and_then(Value::as_u64));
            assert_eq!(refused.id, id, "the error's id is not the frame's");
            let kind = if id.is_some() {
                ErrorKind::BadRequest
            } else {
                ErrorKind::BadFrame
            };
            assert_eq!(refused.error.kind, kind, "{refused:?}");
        }
    }
}

thread_local! {
    /// One for every input: starting a runtime costs more than most inputs.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime starts");
}

fuzz_target!(|bytes: &[u8]| {
    // The first two bytes set the frame limit, so refusals are reached.
    let Some((limit, mut stream)) = bytes.split_first_chunk::<2>() else {
        return;
    };
    let limit = usize::from(u16::from_be_bytes(*limit)).min(MAX_FRAME_BYTES);
    let budget = Budget::new(MAX_FRAME_BYTES).connection();
    let mut reader = FrameReader::new(stream, budget, Duration::from_secs(60));
    let mut first = true;
    RUNTIME.with(|runtime| {
        runtime.block_on(async {
            loop {
                let (next, rest) = expected(stream, limit);
                stream = rest;
                match (next, reader.next(limit).await) {
                    (Expected::Frame(body), Ok(frame)) => {
                        assert_eq!(frame.bytes, body);
                        if first {
                            check_hello(&frame.bytes);
                        } else {
                            check_request(&frame.bytes);
                        }
                        first = false;
                    }
                    (Expected::Closed, Err(ReadError::Closed)) => break,
                    (
                        Expected::TooLarge(want),
                        Err(ReadError::TooLarge {
                            announced,
                            limit: got,
                        }),
                    ) => {
                        assert_eq!((announced, got), (want, limit));
                        break;
                    }
                    (Expected::CutShort, Err(ReadError::Io(e)))
                        if e.kind() == IoErrorKind::UnexpectedEof =>
                    {
                        break;
                    }
                    (want, got) => panic!(
                        "expected {want:?}, the reader gave {:?}",
                        got.map(|f| f.bytes)
                    ),
                }
            }
        })
    });
});
