//! The records of `ntwk:theater/http-types` and `websocket-types` as Rust
//! types: lifted from and lowered into components, and serialized (as JSON)
//! on their way through an actor's queue and into its chain.
//!
//! Bodies and frame payloads are serialized the way people read them in a
//! chain: a JSON string when the bytes are UTF-8, `{"hex": "..."}` when they
//! are not. Both forms (and a plain array of byte values) read back to the
//! same bytes.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wasmtime::component::{ComponentType, Lift, Lower};

/// `http-types.http-request`. `uri` is the path and query only (`/a/b?x=1`).
#[derive(Debug, Clone, PartialEq, Eq, ComponentType, Lift, Lower, Serialize, Deserialize)]
#[component(record)]
pub struct HttpRequest {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    #[serde(with = "bytes_as_text")]
    pub body: Option<Vec<u8>>,
}

/// `http-types.http-response`.
#[derive(Debug, Clone, PartialEq, Eq, ComponentType, Lift, Lower, Serialize, Deserialize)]
#[component(record)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    #[serde(with = "bytes_as_text")]
    pub body: Option<Vec<u8>>,
}

/// `http-types.tls-config`.
#[derive(Debug, Clone, PartialEq, Eq, ComponentType, Lift, Lower, Serialize, Deserialize)]
#[component(record)]
pub struct TlsConfig {
    #[component(name = "cert-path")]
    pub cert_path: String,
    #[component(name = "key-path")]
    pub key_path: String,
}

/// `http-types.server-config`.
#[derive(Debug, Clone, PartialEq, Eq, ComponentType, Lift, Lower, Serialize, Deserialize)]
#[component(record)]
pub struct ServerConfig {
    pub port: Option<u16>,
    pub host: Option<String>,
    #[component(name = "tls-config")]
    pub tls_config: Option<TlsConfig>,
}

/// `http-types.server-info`.
#[derive(Debug, Clone, PartialEq, Eq, ComponentType, Lift, Lower, Serialize, Deserialize)]
#[component(record)]
pub struct ServerInfo {
    pub id: u64,
    pub port: u16,
    pub host: String,
    pub running: bool,
    #[component(name = "routes-count")]
    pub routes_count: u32,
    #[component(name = "middleware-count")]
    pub middleware_count: u32,
    #[component(name = "websocket-enabled")]
    pub websocket_enabled: bool,
}

/// `http-types.middleware-result`: whether the request goes on, and the
/// request as the middleware left it.
#[derive(Debug, Clone, PartialEq, Eq, ComponentType, Lift, Lower, Serialize, Deserialize)]
#[component(record)]
pub struct MiddlewareResult {
    pub proceed: bool,
    pub request: HttpRequest,
}

/// `websocket-types.message-type`.
#[derive(Debug, Clone, PartialEq, Eq, ComponentType, Lift, Lower, Serialize, Deserialize)]
#[component(variant)]
#[serde(rename_all = "kebab-case")]
pub enum MessageType {
    #[component(name = "text")]
    Text,
    #[component(name = "binary")]
    Binary,
    #[component(name = "connect")]
    Connect,
    #[component(name = "close")]
    Close,
    #[component(name = "ping")]
    Ping,
    #[component(name = "pong")]
    Pong,
    #[component(name = "other")]
    Other(String),
}

/// `websocket-types.websocket-message`: text frames carry `text`, the
/// others `data`.
#[derive(Debug, Clone, PartialEq, Eq, ComponentType, Lift, Lower, Serialize, Deserialize)]
#[component(record)]
pub struct WebsocketMessage {
    pub ty: MessageType,
    #[serde(with = "bytes_as_text")]
    pub data: Option<Vec<u8>>,
    pub text: Option<String>,
}

impl WebsocketMessage {
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            ty: MessageType::Text,
            data: None,
            text: Some(text.into()),
        }
    }

    pub fn with_data(ty: MessageType, data: Vec<u8>) -> Self {
        Self {
            ty,
            data: Some(data),
            text: None,
        }
    }

    /// Payload size in bytes.
    pub fn len(&self) -> usize {
        self.data.as_ref().map_or(0, Vec::len) + self.text.as_ref().map_or(0, String::len)
    }
}

/// Bytes for a chain reader: at most `cap` of them, as text when they are
/// UTF-8 (cut at a character boundary) and as hex otherwise.
pub fn capped(bytes: &[u8], cap: usize) -> Value {
    let truncated = bytes.len() > cap;
    let shown = &bytes[..bytes.len().min(cap)];
    let mut value = match std::str::from_utf8(shown) {
        Ok(text) => json!({ "text": text }),
        // A multi-byte character cut in two at the cap is still text.
        Err(e) if truncated && e.error_len().is_none() => {
            json!({ "text": std::str::from_utf8(&shown[..e.valid_up_to()]).unwrap_or_default() })
        }
        Err(_) => json!({ "hex": hex::encode(shown) }),
    };
    value["size"] = json!(bytes.len());
    if truncated {
        value["truncated"] = json!(true);
    }
    value
}

/// Serde for `option<list<u8>>` fields: text when UTF-8, `{"hex": ...}`
/// otherwise; reads those two forms and arrays of byte values.
mod bytes_as_text {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Hex { hex: String },
        Bytes(Vec<u8>),
    }

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            None => s.serialize_none(),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => s.serialize_str(text),
                Err(_) => Repr::Hex {
                    hex: hex::encode(bytes),
                }
                .serialize(s),
            },
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(match Option::<Repr>::deserialize(d)? {
            None => None,
            Some(Repr::Text(text)) => Some(text.into_bytes()),
            Some(Repr::Hex { hex }) => Some(hex::decode(hex).map_err(D::Error::custom)?),
            Some(Repr::Bytes(bytes)) => Some(bytes),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(body: Option<Vec<u8>>) -> (String, Option<Vec<u8>>) {
        let request = HttpRequest {
            method: "POST".into(),
            uri: "/x".into(),
            headers: vec![],
            body,
        };
        let text = serde_json::to_string(&request).unwrap();
        let back: HttpRequest = serde_json::from_str(&text).unwrap();
        (text, back.body)
    }

    #[test]
    fn bodies_read_as_text_or_hex_and_come_back_unchanged() {
        let (text, back) = round_trip(Some(b"hi \"you\"".to_vec()));
        assert!(text.contains(r#""body":"hi \"you\"""#), "{text}");
        assert_eq!(back.unwrap(), b"hi \"you\"");

        let (text, back) = round_trip(Some(vec![0xff, 0, 1]));
        assert!(text.contains(r#""body":{"hex":"ff0001"}"#), "{text}");
        assert_eq!(back.unwrap(), vec![0xff, 0, 1]);

        let (text, back) = round_trip(None);
        assert!(text.contains(r#""body":null"#), "{text}");
        assert_eq!(back, None);

        let old: HttpRequest =
            serde_json::from_str(r#"{"method":"GET","uri":"/","headers":[],"body":[104,105]}"#)
                .unwrap();
        assert_eq!(old.body.unwrap(), b"hi");
    }

    #[test]
    fn message_types_serialize_in_kebab_case() {
        let message = WebsocketMessage::with_data(MessageType::Other("x".into()), vec![1]);
        let text = serde_json::to_string(&message).unwrap();
        assert_eq!(text, r#"{"ty":{"other":"x"},"data":"\u0001","text":null}"#);
        let ping = serde_json::to_string(&MessageType::Ping).unwrap();
        assert_eq!(ping, r#""ping""#);
    }

    #[test]
    fn capped_bodies_say_what_was_cut() {
        assert_eq!(capped(b"hello", 10), json!({ "text": "hello", "size": 5 }));
        assert_eq!(
            capped(b"hello", 2),
            json!({ "text": "he", "size": 5, "truncated": true })
        );
        assert_eq!(
            capped("é!".as_bytes(), 1),
            json!({ "text": "", "size": 3, "truncated": true })
        );
        assert_eq!(capped(&[0xff, 1], 8), json!({ "hex": "ff01", "size": 2 }));
    }
}
