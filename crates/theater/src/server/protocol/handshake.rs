//! The handshake: the client's `hello`, and the server's answer to it.

use serde::{Deserialize, Serialize};

use super::PROTOCOL_VERSION;
use super::error::{ErrorBody, ErrorKind};

/// The first frame a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Free text naming the client, for the server's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// The `hello` frame as it travels: `{"hello": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelloFrame {
    pub hello: Hello,
}

impl HelloFrame {
    /// The `hello` of this library's client, naming it and its version.
    pub fn of_this_client(token: Option<&str>) -> Self {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            token: token.map(str::to_owned),
            client: Some(format!("theater {}", env!("CARGO_PKG_VERSION"))),
        };
        Self { hello }
    }
}

/// The server's answer to an accepted `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the server speaks.
    pub version: u32,
    /// Free text naming the server and its version.
    pub server: String,
    /// The largest frame the server takes or sends.
    pub max_frame_bytes: usize,
}

impl Welcome {
    /// What this library's server says.
    pub fn of_this_server() -> Self {
        Self {
            version: PROTOCOL_VERSION,
            server: format!("theater {}", env!("CARGO_PKG_VERSION")),
            max_frame_bytes: super::MAX_FRAME_BYTES,
        }
    }
}

/// The welcome as it travels: `{"hello": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WelcomeFrame {
    pub hello: Welcome,
}

/// Reads the `hello` frame.
pub fn decode_hello(frame: &[u8]) -> Result<Hello, ErrorBody> {
    serde_json::from_slice::<HelloFrame>(frame)
        .map(|frame| frame.hello)
        .map_err(|e| {
            ErrorBody::new(
                ErrorKind::HandshakeRequired,
                format!(
                    "the first frame must be {{\"hello\": {{\"version\": {PROTOCOL_VERSION}, \"token\": ...}}}}: {e}"
                ),
            )
        })
}
