//! The frames around answers and events: `{"id", "ok"}`, `{"id", "error"}`
//! and `{"event", ...}`, written by the server and read by a client.
//!
//! The server writes every frame through a [`serde_json::Value`], whose
//! keys are sorted: the bytes on the wire do not depend on the order in
//! which a message's fields are declared.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::ErrorBody;
use super::events::Event;

/// `{"id": id, "ok": answer}`.
pub fn ok_frame(id: u64, answer: &impl Serialize) -> Vec<u8> {
    #[derive(Serialize)]
    struct Ok<'a, T> {
        id: u64,
        ok: &'a T,
    }
    to_wire(&Ok { id, ok: answer })
}

/// `{"id": id, "error": {...}}`, or `{"error": {...}}` for the connection.
pub fn error_frame(id: Option<u64>, error: &ErrorBody) -> Vec<u8> {
    #[derive(Serialize)]
    struct Error<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        error: &'a ErrorBody,
    }
    to_wire(&Error { id, error })
}

/// `{"event": kind, ...fields}`.
pub fn event_frame(event: &Event) -> Vec<u8> {
    to_wire(event)
}

/// The JSON text of any protocol message, its keys sorted.
pub fn to_wire(message: &impl Serialize) -> Vec<u8> {
    let value = serde_json::to_value(message).expect("protocol messages serialize");
    serde_json::to_vec(&value).expect("JSON values serialize")
}

/// A frame from the server, as a client reads it.
#[derive(Debug)]
pub enum Incoming {
    Event(Event),
    /// The answer to request `id`, its fields left unread until the client
    /// knows what type they are; `id` is `None` for an error about the
    /// connection.
    Answer {
        id: Option<u64>,
        result: Result<Box<RawValue>, ErrorBody>,
    },
}

impl Incoming {
    /// Reads a frame; an error says what in it is not the protocol.
    pub fn decode(frame: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Envelope<'a> {
            #[serde(default)]
            event: Option<IgnoredAny>,
            #[serde(default)]
            id: Option<u64>,
            #[serde(default, borrow)]
            ok: Option<&'a RawValue>,
            #[serde(default)]
            error: Option<ErrorBody>,
        }
        let envelope: Envelope = serde_json::from_slice(frame)?;
        let result = match (envelope.event, envelope.error, envelope.ok) {
            (Some(_), _, _) => return serde_json::from_slice(frame).map(Incoming::Event),
            (None, Some(error), _) => Err(error),
            (None, None, Some(ok)) => Ok(ok.to_owned()),
            (None, None, None) => {
                return Err(serde::de::Error::custom(
                    "a frame with neither `event`, `ok` nor `error`",
                ));
            }
        };
        Ok(Incoming::Answer {
            id: envelope.id,
            result,
        })
    }
}
