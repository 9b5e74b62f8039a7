//! How much of the server any client, or any crowd of clients, may hold.
//! `docs/security.md` explains how the limits work together.

use std::time::Duration;

use super::ServerError;
use super::protocol::MAX_FRAME_BYTES;

/// Authenticated clients served at once unless `max_connections` says
/// otherwise; a `hello` beyond it is answered `too_many_connections`.
/// Guards the server's tasks and memory against a flood of clients that
/// hold the token. Connections still in their `hello` never take one of
/// these seats, so they stay free for clients that authenticate.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// Connections still in their `hello` unless `max_unauthenticated` says
/// otherwise. When they are all taken, a new connection closes the one
/// that has waited longest, from the peer with the most of them. Guards
/// against peers that open connections and never speak, so that a client
/// that says `hello` at once always gets its turn.
pub const DEFAULT_MAX_UNAUTHENTICATED: usize = 64;

/// Connections still in their `hello` from one peer (an IPv4 address or
/// an IPv6 /64) unless `max_unauthenticated_per_peer` says otherwise; a
/// further one closes that peer's oldest. Guards other peers against one
/// that opens connections in a loop.
pub const DEFAULT_MAX_UNAUTHENTICATED_PER_PEER: usize = 8;

/// How long a new connection has to complete its `hello` unless
/// `hello_timeout` says otherwise. A client sends it as soon as it
/// connects; this only guards against connections that hold a place
/// without speaking.
pub const DEFAULT_HELLO_TIMEOUT: Duration = Duration::from_secs(3);

/// Largest `hello` frame unless `max_hello_bytes` says otherwise; larger
/// is answered `frame_too_large` and closed. Guards the server's memory
/// against unauthenticated peers: only authenticated clients may send
/// frames up to [`MAX_FRAME_BYTES`].
pub const DEFAULT_MAX_HELLO_BYTES: usize = 8 * 1024;

/// Bytes of frames held at once across all connections, beyond each
/// connection's small allowance, unless `max_bytes_in_flight` says
/// otherwise. Guards the server's memory against many clients announcing
/// large frames together: a frame that does not fit waits for room.
pub const DEFAULT_MAX_BYTES_IN_FLIGHT: usize = 64 * 1024 * 1024;

/// How long a frame may take to arrive once begun, and to be taken by the
/// client once queued, unless `frame_timeout` says otherwise; then the
/// connection is closed. Guards the byte budget against clients that
/// announce a frame and stall, or stop reading their answers.
pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// The server's limits; [`Default`] gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub max_unauthenticated: usize,
    pub max_unauthenticated_per_peer: usize,
    pub hello_timeout: Duration,
    pub max_hello_bytes: usize,
    pub max_bytes_in_flight: usize,
    pub frame_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_unauthenticated: DEFAULT_MAX_UNAUTHENTICATED,
            max_unauthenticated_per_peer: DEFAULT_MAX_UNAUTHENTICATED_PER_PEER,
            hello_timeout: DEFAULT_HELLO_TIMEOUT,
            max_hello_bytes: DEFAULT_MAX_HELLO_BYTES,
            max_bytes_in_flight: DEFAULT_MAX_BYTES_IN_FLIGHT,
            frame_timeout: DEFAULT_FRAME_TIMEOUT,
        }
    }
}

/// Smallest `max_hello_bytes`: room for a version, a long token and a
/// client name.
pub const MIN_HELLO_BYTES: usize = 1024;

impl ServerLimits {
    /// Checks that the limits can work together.
    pub fn validate(&self) -> Result<(), ServerError> {
        let problem = |setting, problem: String| Err(ServerError::Limits { setting, problem });
        for (setting, value) in [
            ("max_connections", self.max_connections),
            ("max_unauthenticated", self.max_unauthenticated),
            (
                "max_unauthenticated_per_peer",
                self.max_unauthenticated_per_peer,
            ),
        ] {
            if value == 0 {
                return problem(setting, "must be at least 1".into());
            }
        }
        for (setting, value) in [
            ("hello_timeout", self.hello_timeout),
            ("frame_timeout", self.frame_timeout),
        ] {
            if value.is_zero() {
                return problem(setting, "must be longer than 0".into());
            }
        }
        if !(MIN_HELLO_BYTES..=MAX_FRAME_BYTES).contains(&self.max_hello_bytes) {
            return problem(
                "max_hello_bytes",
                format!("must be from {MIN_HELLO_BYTES} to {MAX_FRAME_BYTES}"),
            );
        }
        if self.max_bytes_in_flight < MAX_FRAME_BYTES {
            return problem(
                "max_bytes_in_flight",
                format!(
                    "must be at least the frame limit, {MAX_FRAME_BYTES} bytes, so that every frame fits"
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_nonsense_is_named() {
        ServerLimits::default().validate().unwrap();
        let bad = [
            ServerLimits {
                max_unauthenticated: 0,
                ..Default::default()
            },
            ServerLimits {
                max_bytes_in_flight: 1024,
                ..Default::default()
            },
            ServerLimits {
                hello_timeout: Duration::ZERO,
                ..Default::default()
            },
            ServerLimits {
                max_hello_bytes: 10,
                ..Default::default()
            },
        ];
        let named = [
            "max_unauthenticated",
            "max_bytes_in_flight",
            "hello_timeout",
            "max_hello_bytes",
        ];
        for (limits, name) in bad.iter().zip(named) {
            let error = limits.validate().unwrap_err().to_string();
            assert!(error.contains(&format!("`{name}`")), "{error}");
        }
    }
}
