//! The bytes one stored event is kept as.
//!
//! Version 1, integers big endian, strings UTF-8:
//!
//! ```text
//! 0x01                          format version
//! hash                          32 bytes
//! 0x00 | 0x01 ‖ parent          no parent, or the parent's 32 bytes
//! u32 len ‖ event_type
//! u64 len ‖ data                the JSON text exactly as it was hashed
//! u64 timestamp
//! u32 len ‖ description
//! ```
//!
//! Nothing may follow the description. Every field the hash covers is kept
//! byte for byte, so a chain read back recomputes to the same hashes.
//!
//! Public so tools (and the `codec` fuzz target) can read a log's stored
//! bytes without the log; [`decode`] refuses anything [`encode`] would not
//! have written.

use serde_json::value::RawValue;

use super::Snapshot;
use crate::chain::{ChainEvent, Hash};

/// The first byte of every event this version writes.
const VERSION: u8 = 1;

/// What is wrong with bytes that [`decode`] or [`decode_state_ref`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("cut short: {what} needs {needs} bytes at byte {at}, {remain} remain")]
    CutShort {
        what: &'static str,
        needs: usize,
        at: usize,
        remain: usize,
    },
    #[error("unknown event format {found} (this version reads {VERSION})")]
    Version { found: u8 },
    #[error("bad {what} {found} at byte {at}")]
    Marker {
        what: &'static str,
        found: u8,
        at: usize,
    },
    #[error("{count} unexpected bytes after the {after}")]
    Trailing { count: usize, after: &'static str },
    #[error("data length {len} exceeds the {remain} bytes that follow")]
    TooLong { len: u64, remain: usize },
    #[error("{what} at byte {at} is not UTF-8")]
    NotUtf8 { what: &'static str, at: usize },
    /// The data field, with serde_json's reason.
    #[error("data is not JSON: {0}")]
    NotJson(String),
    #[error("data is not exactly one JSON value")]
    NotOneValue,
}

/// Encodes `event` as described in the module documentation.
pub fn encode(event: &ChainEvent) -> Vec<u8> {
    let data = event.data.get().as_bytes();
    let mut out = Vec::with_capacity(
        1 + 32 + 33 + 4 + event.event_type.len() + 8 + data.len() + 8 + 4 + event.description.len(),
    );
    out.push(VERSION);
    out.extend_from_slice(&event.hash);
    match &event.parent_hash {
        None => out.push(0),
        Some(parent) => {
            out.push(1);
            out.extend_from_slice(parent);
        }
    }
    out.extend_from_slice(&(event.event_type.len() as u32).to_be_bytes());
    out.extend_from_slice(event.event_type.as_bytes());
    out.extend_from_slice(&(data.len() as u64).to_be_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&event.timestamp.to_be_bytes());
    out.extend_from_slice(&(event.description.len() as u32).to_be_bytes());
    out.extend_from_slice(event.description.as_bytes());
    out
}

/// Decodes bytes written by [`encode`]; says what is wrong with anything else.
pub fn decode(bytes: &[u8]) -> Result<ChainEvent, CodecError> {
    let mut reader = Reader { bytes, at: 0 };
    let version = reader.byte("format version")?;
    if version != VERSION {
        return Err(CodecError::Version { found: version });
    }
    let hash = reader.hash("hash")?;
    let parent_hash = match reader.byte("parent marker")? {
        0 => None,
        1 => Some(reader.hash("parent hash")?),
        found => {
            return Err(CodecError::Marker {
                what: "parent marker",
                found,
                at: 33,
            });
        }
    };
    let len = reader.u32("event type length")? as usize;
    let event_type = reader.text(len, "event type")?;
    let len = reader.u64("data length")?;
    let data = reader.text(to_len(len, reader.remaining())?, "data")?;
    let timestamp = reader.u64("timestamp")?;
    let len = reader.u32("description length")? as usize;
    let description = reader.text(len, "description")?;
    reader.end("description")?;
    let data_len = data.len();
    let data = RawValue::from_string(data).map_err(|e| CodecError::NotJson(e.to_string()))?;
    if data.get().len() != data_len {
        return Err(CodecError::NotOneValue);
    }
    Ok(ChainEvent {
        hash,
        parent_hash,
        event_type,
        data,
        timestamp,
        description,
    })
}

/// Where a kept state is: the event that left it and the SHA-256 of its
/// bytes, under which the bytes are stored once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateRef {
    /// Index of the event in its chain.
    pub index: u64,
    pub hash: Hash,
    /// `None` for no state.
    pub sha256: Option<Hash>,
}

/// Encodes a state reference: `u64 index ‖ event hash ‖ 0x00` for no
/// state, or `… ‖ 0x01 ‖ SHA-256 of the state`.
pub fn encode_state_ref(state: &StateRef) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 32 + 1 + 32);
    out.extend_from_slice(&state.index.to_be_bytes());
    out.extend_from_slice(&state.hash);
    match &state.sha256 {
        None => out.push(0),
        Some(sha256) => {
            out.push(1);
            out.extend_from_slice(sha256);
        }
    }
    out
}

/// Decodes bytes written by [`encode_state_ref`].
pub fn decode_state_ref(bytes: &[u8]) -> Result<StateRef, CodecError> {
    let mut reader = Reader { bytes, at: 0 };
    let index = reader.u64("state index")?;
    let hash = reader.hash("event hash")?;
    let sha256 = match reader.byte("state marker")? {
        0 => None,
        1 => Some(reader.hash("state digest")?),
        found => return Err(state_marker(found)),
    };
    reader.end("state reference")?;
    Ok(StateRef {
        index,
        hash,
        sha256,
    })
}

/// Decodes a snapshot as layout 1 of the database kept it, state inline:
/// `u64 index ‖ hash ‖ 0x00` for no state, or `… ‖ 0x01 ‖ state bytes`.
pub(crate) fn decode_v1_snapshot(bytes: &[u8]) -> Result<Snapshot, CodecError> {
    let mut reader = Reader { bytes, at: 0 };
    let index = reader.u64("snapshot index")?;
    let hash = reader.hash("snapshot hash")?;
    let state = match reader.byte("state marker")? {
        0 if reader.remaining() == 0 => None,
        1 => Some(reader.take(reader.remaining(), "state")?.to_vec()),
        found => return Err(state_marker(found)),
    };
    Ok(Snapshot { index, hash, state })
}

/// The marker after a state reference's event hash, at byte 40, was `found`.
fn state_marker(found: u8) -> CodecError {
    CodecError::Marker {
        what: "state marker",
        found,
        at: 40,
    }
}

fn to_len(len: u64, remain: usize) -> Result<usize, CodecError> {
    usize::try_from(len)
        .ok()
        .filter(|len| *len <= remain)
        .ok_or(CodecError::TooLong { len, remain })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], CodecError> {
        if n > self.remaining() {
            return Err(CodecError::CutShort {
                what,
                needs: n,
                at: self.at,
                remain: self.remaining(),
            });
        }
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(slice)
    }

    /// Nothing may follow the field `after`.
    fn end(&self, after: &'static str) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(CodecError::Trailing { count, after }),
        }
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }

    fn hash(&mut self, what: &'static str) -> Result<Hash, CodecError> {
        Ok(self.take(32, what)?.try_into().expect("32 bytes"))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }

    fn text(&mut self, n: usize, what: &'static str) -> Result<String, CodecError> {
        let at = self.at;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::NotUtf8 { what, at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(parent: Option<Hash>, data: &str) -> ChainEvent {
        ChainEvent::new(
            parent,
            "call",
            RawValue::from_string(data.to_owned()).unwrap(),
            1_700_000_000_000,
            "handle-send ok".to_owned(),
        )
    }

    #[test]
    fn round_trips_every_hashed_byte() {
        let first = event(None, r#"{"a": 1,  "b":[1, 2]}"#);
        let second = event(Some(first.hash), r#""ü \u00fc""#);
        for original in [first, second] {
            let back = decode(&encode(&original)).unwrap();
            assert_eq!(back.data.get(), original.data.get());
            assert_eq!(back.parent_hash, original.parent_hash);
            assert_eq!(back.computed_hash(), original.hash);
            assert_eq!(back.hash, original.hash);
        }
    }

    #[test]
    fn state_refs_round_trip() {
        for sha256 in [None, Some([7; 32])] {
            let state = StateRef {
                index: 7,
                hash: [9; 32],
                sha256,
            };
            assert_eq!(decode_state_ref(&encode_state_ref(&state)).unwrap(), state);
        }
        assert!(decode_state_ref(&[0; 12]).is_err());
        assert!(decode_state_ref(&[0; 42]).is_err());
    }

    #[test]
    fn layout_1_snapshots_decode() {
        let mut bytes = 7u64.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[9; 32]);
        bytes.push(1);
        bytes.extend_from_slice(b"{}");
        let back = decode_v1_snapshot(&bytes).unwrap();
        assert_eq!(
            (back.index, back.hash, back.state),
            (7, [9; 32], Some(b"{}".to_vec()))
        );
    }

    #[test]
    fn damaged_bytes_are_refused_with_a_reason() {
        let bytes = encode(&event(None, r#"{"n":1}"#));
        let cut = decode(&bytes[..bytes.len() - 1]).unwrap_err().to_string();
        assert!(cut.contains("cut short"), "{cut}");
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode(&longer).unwrap_err(),
            CodecError::Trailing {
                count: 1,
                after: "description"
            }
        );
        let mut version = bytes.clone();
        version[0] = 9;
        assert_eq!(
            decode(&version).unwrap_err().to_string(),
            "unknown event format 9 (this version reads 1)"
        );
        let mut huge = bytes.clone();
        // The data length field follows version, hash, marker and the type.
        let at = 1 + 32 + 1 + 4 + "call".len();
        huge[at..at + 8].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            decode(&huge).unwrap_err(),
            CodecError::TooLong { len: u64::MAX, .. }
        ));
        let mut not_json = bytes;
        let data_at = at + 8;
        not_json[data_at] = b'x';
        assert!(matches!(
            decode(&not_json).unwrap_err(),
            CodecError::NotJson(_)
        ));
    }
}
