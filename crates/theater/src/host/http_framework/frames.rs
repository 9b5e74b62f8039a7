//! WebSocket frames as the actor sees them and as clients get them, the
//! close codes this server sends, and how a read error ends a connection.

use axum::extract::ws::Message;
use bytes::Bytes;

use super::types::{MessageType, WebsocketMessage};

/// Longest close reason a close frame carries (the protocol's limit).
pub const MAX_CLOSE_REASON: usize = 123;

/// Close codes (RFC 6455, 7.4.1).
pub const NORMAL: u16 = 1000;
pub const GOING_AWAY: u16 = 1001;
pub const PROTOCOL_ERROR: u16 = 1002;
pub const INVALID_DATA: u16 = 1007;
pub const MESSAGE_TOO_BIG: u16 = 1009;
pub const INTERNAL_ERROR: u16 = 1011;
pub const TRY_AGAIN_LATER: u16 = 1013;

/// How a connection ends.
#[derive(Debug)]
pub enum Cause {
    /// The client sent a close frame (answered by the protocol layer).
    Client(Option<(u16, String)>),
    /// The connection broke without a closing handshake.
    Lost(String),
    /// This side closes with this code and reason.
    Close(u16, String),
}

/// How a connection ends after a frame could not be read: with a close
/// frame that says why when the client broke a rule, else as lost.
pub fn read_error(error: &str) -> Cause {
    if error.starts_with("Space limit exceeded") {
        Cause::Close(
            MESSAGE_TOO_BIG,
            "message larger than the server's limit".into(),
        )
    } else if error.starts_with("WebSocket protocol error") {
        Cause::Close(PROTOCOL_ERROR, "protocol error".into())
    } else if error.starts_with("UTF-8 encoding error") {
        Cause::Close(INVALID_DATA, "text frame is not UTF-8".into())
    } else {
        Cause::Lost(error.to_owned())
    }
}

/// A client frame as the actor sees it; `None` for a close frame.
pub fn from_frame(frame: Message) -> Option<WebsocketMessage> {
    Some(match frame {
        Message::Text(text) => WebsocketMessage::text(text.as_str()),
        Message::Binary(data) => WebsocketMessage::with_data(MessageType::Binary, data.to_vec()),
        Message::Ping(data) => WebsocketMessage::with_data(MessageType::Ping, data.to_vec()),
        Message::Pong(data) => WebsocketMessage::with_data(MessageType::Pong, data.to_vec()),
        Message::Close(_) => return None,
    })
}

pub enum Outgoing {
    Frame(Message),
    Close(u16, String),
    Skip(&'static str),
}

/// A message from the actor as a frame. Text goes as `text` (or `data`
/// read as UTF-8), everything else as `data` (or `text`'s bytes).
pub fn to_frame(message: WebsocketMessage) -> Outgoing {
    let WebsocketMessage { ty, data, text } = message;
    let bytes = || -> Bytes {
        data.clone()
            .or_else(|| text.clone().map(String::into_bytes))
            .unwrap_or_default()
            .into()
    };
    match ty {
        MessageType::Text => Outgoing::Frame(Message::text(text.clone().unwrap_or_else(|| {
            String::from_utf8_lossy(data.as_deref().unwrap_or_default()).into_owned()
        }))),
        MessageType::Binary => Outgoing::Frame(Message::Binary(bytes())),
        MessageType::Ping => {
            Outgoing::Frame(Message::Ping(bytes().slice(..bytes().len().min(125))))
        }
        MessageType::Pong => {
            Outgoing::Frame(Message::Pong(bytes().slice(..bytes().len().min(125))))
        }
        MessageType::Close => Outgoing::Close(NORMAL, text.clone().unwrap_or_default()),
        MessageType::Connect => Outgoing::Skip("connect"),
        MessageType::Other(_) => Outgoing::Skip("other"),
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_messages_become_the_right_frames() {
        let text = WebsocketMessage::text("hi");
        assert!(matches!(to_frame(text), Outgoing::Frame(Message::Text(t)) if t.as_str() == "hi"));
        let binary = WebsocketMessage::with_data(MessageType::Binary, vec![1, 2]);
        assert!(matches!(to_frame(binary), Outgoing::Frame(Message::Binary(b)) if b[..] == [1, 2]));
        let close = WebsocketMessage {
            ty: MessageType::Close,
            data: None,
            text: Some("bye".into()),
        };
        assert!(matches!(to_frame(close), Outgoing::Close(1000, r) if r == "bye"));
        let ping = WebsocketMessage::with_data(MessageType::Ping, vec![7; 200]);
        assert!(matches!(to_frame(ping), Outgoing::Frame(Message::Ping(b)) if b.len() == 125));
        let other = WebsocketMessage::with_data(MessageType::Other("x".into()), vec![]);
        assert!(matches!(to_frame(other), Outgoing::Skip(_)));
    }

    #[test]
    fn close_reasons_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("abc", 2), "ab");
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("ok", 123), "ok");
    }
}
