//! Errors as the protocol carries them: the `kind` a client can act on and
//! a message for people.

use serde::{Deserialize, Serialize};

/// What went wrong, as the `kind` of an error frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The frame is not JSON, or not a request.
    BadFrame,
    /// The frame is larger than [`super::MAX_FRAME_BYTES`]; the connection closes.
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
