//! The `config` of an `http-framework` handler entry: every key optional,
//! every limit with its documented default, unknown keys refused, and a
//! child's bounds checked against its parent's.

use std::time::Duration;

use crate::host::HandlerConfig;
use crate::host::config::{self, ConfigError};

/// Largest request body unless `max_body_bytes` says otherwise (also the
/// largest WebSocket message). Guards the host's memory against a client
/// that sends without end; a larger body is answered 413.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Largest request head (request line and headers) unless
/// `max_header_bytes` says otherwise. Guards against clients that send
/// headers without end; a larger head is answered 431.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// The HTTP parser needs this much for a request head at least.
pub const MIN_MAX_HEADER_BYTES: usize = 8192;
/// How long a request may wait for the actor (queue, middleware and
/// handler) unless `request_timeout_ms` says otherwise; then it is answered
/// 504. Guards clients against an actor that is stuck or far behind.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Open connections per server unless `max_connections` says otherwise.
/// Guards the host's sockets and memory. When they are all open, a new
/// connection closes the one idle longest (from the peer with the most);
/// only when every one is busy (the actor working on its request, or a
/// WebSocket) is the newcomer answered 503.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Open connections per server from one peer (an IPv4 address or an IPv6
/// /64) unless `max_connections_per_peer` says otherwise; a further one
/// closes that peer's longest-idle connection, or is answered 503 if all
/// of them are busy. Guards other clients against one peer that opens
/// connections by the thousand.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 64;
/// How long a connection may wait for a request head to arrive whole
/// unless `header_timeout_ms` says otherwise; the wait starts when the
/// connection opens and again after each response, so it also closes
/// keep-alive connections left idle. Guards against clients that hold
/// connections open, idle or trickling a head a byte at a time.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames per WebSocket connection kept waiting for a full queue under
/// `overflow = "drop-oldest"`, unless `ws_buffer` says otherwise.
pub const DEFAULT_WS_BUFFER: usize = 16;
/// Longest body (as recorded, in JSON text) that the chain keeps whole,
/// in the calls an HTTP request makes and in WebSocket messages the actor
/// sends, unless `record_body_bytes` says otherwise; a longer body is
/// recorded by its size and SHA-256. Guards the chain against growing with
/// every large upload.
pub const DEFAULT_RECORD_BODY_BYTES: usize = super::super::http_record::RECORDED_BODY_CHARS;

/// What happens to an event that finds the actor's queue full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// HTTP requests are answered 503, WebSocket connections are closed
    /// with 1013 (try again later).
    Reject,
    /// HTTP requests are answered 503; WebSocket frames wait in a small
    /// per-connection buffer whose oldest frame is dropped when it is full.
    DropOldest,
}

/// The `config` of an `http-framework` handler entry.
#[derive(Debug, Clone)]
pub struct FrameworkConfig {
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_peer: usize,
    pub header_timeout: Duration,
    pub overflow: Overflow,
    pub ws_buffer: usize,
    pub record_body_bytes: usize,
    /// Listen on a free port whatever port the actor asks for: for a fork
    /// of an actor whose original holds the port it asks for.
    pub ephemeral_ports: bool,
}

impl Default for FrameworkConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            overflow: Overflow::Reject,
            ws_buffer: DEFAULT_WS_BUFFER,
            record_body_bytes: DEFAULT_RECORD_BODY_BYTES,
            ephemeral_ports: false,
        }
    }
}

const KNOWN_KEYS: &[&str] = &[
    "max_body_bytes",
    "max_header_bytes",
    "request_timeout_ms",
    "header_timeout_ms",
    "max_connections",
    "max_connections_per_peer",
    "overflow",
    "ws_buffer",
    "record_body_bytes",
    EPHEMERAL_PORTS,
];

/// Longest request or header timeout a server may be given: an hour.
const MAX_TIMEOUT_MS: u64 = 60 * 60 * 1000;

/// The setting that makes every server of an actor listen on a free port.
pub const EPHEMERAL_PORTS: &str = "ephemeral_ports";

impl HandlerConfig for FrameworkConfig {
    fn from_table(table: &toml::Table) -> Result<Self, ConfigError> {
        config::known_keys(table, KNOWN_KEYS)?;
        let defaults = Self::default();
        let int = |key: &str, range: std::ops::RangeInclusive<u64>, default: usize| {
            config::integer(table, key, range, default as u64).map(|n| n as usize)
        };
        let overflow = match config::string(table, "overflow", "\"reject\" or \"drop-oldest\"")? {
            None | Some("reject") => Overflow::Reject,
            Some("drop-oldest") => Overflow::DropOldest,
            Some(_) => {
                return Err(ConfigError::at(
                    "overflow",
                    "`overflow` must be \"reject\" or \"drop-oldest\"",
                ));
            }
        };
        let millis = |key: &str, default| config::duration(table, key, 1..=MAX_TIMEOUT_MS, default);
        Ok(Self {
            max_body_bytes: int("max_body_bytes", 1..=1 << 30, defaults.max_body_bytes)?,
            max_header_bytes: int(
                "max_header_bytes",
                MIN_MAX_HEADER_BYTES as u64..=1 << 20,
                defaults.max_header_bytes,
            )?,
            request_timeout: millis("request_timeout_ms", defaults.request_timeout)?,
            header_timeout: millis("header_timeout_ms", defaults.header_timeout)?,
            max_connections: int("max_connections", 1..=65_536, defaults.max_connections)?,
            max_connections_per_peer: int(
                "max_connections_per_peer",
                1..=65_536,
                defaults.max_connections_per_peer,
            )?,
            overflow,
            ws_buffer: int("ws_buffer", 1..=4096, defaults.ws_buffer)?,
            record_body_bytes: int("record_body_bytes", 0..=1 << 20, defaults.record_body_bytes)?,
            ephemeral_ports: config::boolean(table, EPHEMERAL_PORTS, false)?,
        })
    }
}

impl FrameworkConfig {
    /// Fails on the first bound of `self` (a child's) above `parent`'s.
    pub fn within(&self, parent: &Self) -> Result<(), ConfigError> {
        let bounds = |c: &Self| {
            [
                ("max_body_bytes", c.max_body_bytes as u64),
                ("max_header_bytes", c.max_header_bytes as u64),
                ("request_timeout_ms", c.request_timeout.as_millis() as u64),
                ("header_timeout_ms", c.header_timeout.as_millis() as u64),
                ("max_connections", c.max_connections as u64),
                (
                    "max_connections_per_peer",
                    c.max_connections_per_peer as u64,
                ),
                ("ws_buffer", c.ws_buffer as u64),
                ("record_body_bytes", c.record_body_bytes as u64),
            ]
        };
        for ((key, child), (_, parent)) in bounds(self).into_iter().zip(bounds(parent)) {
            config::at_most(key, child, parent)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<FrameworkConfig, String> {
        FrameworkConfig::from_table(&toml::from_str(text).unwrap()).map_err(|e| e.message)
    }

    #[test]
    fn an_empty_config_has_the_documented_defaults() {
        let config = config("").unwrap();
        assert_eq!(config.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(config.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(config.overflow, Overflow::Reject);
    }

    #[test]
    fn settings_are_read_and_bad_ones_explained() {
        let config = config(
            "max_body_bytes = 5\nrequest_timeout_ms = 200\noverflow = \"drop-oldest\"\nws_buffer = 2",
        )
        .unwrap();
        assert_eq!(config.max_body_bytes, 5);
        assert_eq!(config.request_timeout, Duration::from_millis(200));
        assert_eq!(config.overflow, Overflow::DropOldest);
        assert_eq!(config.ws_buffer, 2);

        let error = super::tests::config("overflow = \"drop-newest\"").unwrap_err();
        assert!(error.contains("\"reject\" or \"drop-oldest\""), "{error}");
        let error = super::tests::config("max_header_bytes = 100").unwrap_err();
        assert!(error.contains("from 8192"), "{error}");
        let error = super::tests::config("max_body = 1").unwrap_err();
        assert!(error.contains("unknown setting `max_body`"), "{error}");
    }
}
