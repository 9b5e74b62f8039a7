//! The management protocol as types that the server and its clients
//! share: every request, answer and event, and the framing that carries
//! them. `docs/protocol.md` is the reference for people writing clients.
//!
//! Every frame is a 4-byte big-endian length followed by that many bytes
//! of UTF-8 JSON. The client speaks first with a `hello`, then sends
//! requests carrying an `id` that the response echoes; the server may also
//! send events (subscriptions, channel messages) at any time.
//!
//! - [`handshake`]: the `hello` each side sends.
//! - [`request`]: what a client asks ([`Request`], [`Op`]).
//! - [`actors`], [`messaging`], [`history`]: what the server answers
//!   each op with.
//! - [`events`]: what the server sends unasked.
//! - [`bytes`]: how actor bytes travel (JSON when they are, else hex).
//! - [`error`]: error frames and their kinds.
//! - [`envelope`]: the frames around all of these.

pub mod actors;
pub mod bytes;
pub mod envelope;
pub mod error;
pub mod events;
pub mod handshake;
pub mod history;
pub mod messaging;
pub mod request;
#[cfg(test)]
mod tests;

pub use actors::{
    ActorList, ActorState, ChainHead, Counters, Ending, Events, Inspected, ListedActor, Migrated,
    Nodes, Pong, Restarted, Started, Status, Stopped, Tree, TreeNode, Verified,
};
pub use bytes::{ActorBytes, BytesField};
pub use envelope::{Incoming, error_frame, event_frame, ok_frame, to_wire};
pub use error::{DecodeError, ErrorBody, ErrorKind};
pub use events::Event;
pub use handshake::{Hello, HelloFrame, Welcome, WelcomeFrame, decode_hello};
pub use history::{Diverged, Forked, ForkedFrom, Replayed, Reverted, StoppedAt};
pub use messaging::{
    ChannelClosed, ChannelOpened, ChannelQueued, Queued, Reply, Subscribed, Unsubscribed,
};
pub use request::{MIN_EVENT_PREFIX, Op, Payload, Request, decode_request};

use tokio_util::codec::LengthDelimitedCodec;

/// The protocol version this server and client speak.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame either side accepts, in bytes (the length prefix not
/// counted). Guards the server against a client that announces or sends
/// an unbounded frame; a client asking for more is closed, since the
/// stream cannot be resynchronized.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// The codec both sides frame with: 4-byte big-endian length prefix,
/// frames up to [`MAX_FRAME_BYTES`].
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// `body` with its length prefix, ready for the wire.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    frame
}
