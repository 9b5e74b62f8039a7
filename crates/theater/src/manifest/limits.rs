//! The `[limits]` table: what an actor may use, each limit's default and
//! the range a manifest may set it in.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

/// Default linear-memory cap per actor. Guards the host against a guest
/// that allocates without bound.
pub const DEFAULT_MEMORY_MB: u64 = 128;
/// Default wall-clock budget of one call into an actor. Guards against a
/// guest that never returns.
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 10_000;
/// Default capacity of an actor's event queue. Guards the host against
/// callers that produce work faster than the actor can handle it.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// Default cap on one message delivered to an actor (send, request, channel
/// message). Guards the receiver against a sender that floods its memory.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Default cap on the state a call leaves behind. Guards the host's memory
/// and disk against an actor that grows its state without bound: every
/// call hands the state to the actor and back, and a changed state is
/// written to the chain database.
pub const DEFAULT_MAX_STATE_BYTES: usize = 8 * 1024 * 1024;
/// Default cap on a call's result as its chain event records it (JSON, in
/// which a byte list takes up to four bytes per byte) and on the message of
/// an `Err`. Guards the chain database and the callers against an actor that
/// answers without bound.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 16 * 1024 * 1024;
/// Largest state cap a manifest may ask for.
pub const MAX_STATE_BYTES: usize = 1 << 30;
/// Largest result cap a manifest may ask for.
pub const MAX_RESULT_BYTES: usize = 1 << 30;
/// Largest linear memory a manifest may allow: all a 32-bit guest can address.
pub const MAX_MEMORY_MB: u64 = 4096;
/// Longest call a manifest may allow: an hour. A call holds its actor's
/// queue for as long as it runs.
pub const MAX_CALL_TIMEOUT_MS: u64 = 60 * 60 * 1000;
/// Largest queue a manifest may ask for.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;
/// Largest message a manifest may let its actor take: 256 MiB, each held
/// in memory whole.
pub const MAX_MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// The `[limits]` table.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub memory_mb: u64,
    pub call_timeout_ms: u64,
    pub queue_capacity: usize,
    pub max_message_bytes: usize,
    pub max_state_bytes: usize,
    pub max_result_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mb: DEFAULT_MEMORY_MB,
            call_timeout_ms: DEFAULT_CALL_TIMEOUT_MS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_state_bytes: DEFAULT_MAX_STATE_BYTES,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
        }
    }
}

impl Limits {
    /// Each limit: its key, its value and the values a manifest may give it.
    fn entries(&self) -> [(&'static str, u64, RangeInclusive<u64>); 6] {
        let entry = |key, value: usize, max: usize| (key, value as u64, 1..=max as u64);
        [
            ("memory_mb", self.memory_mb, 1..=MAX_MEMORY_MB),
            (
                "call_timeout_ms",
                self.call_timeout_ms,
                1..=MAX_CALL_TIMEOUT_MS,
            ),
            entry("queue_capacity", self.queue_capacity, MAX_QUEUE_CAPACITY),
            entry(
                "max_message_bytes",
                self.max_message_bytes,
                MAX_MAX_MESSAGE_BYTES,
            ),
            entry("max_state_bytes", self.max_state_bytes, MAX_STATE_BYTES),
            entry("max_result_bytes", self.max_result_bytes, MAX_RESULT_BYTES),
        ]
    }

    /// Fails on the first limit out of its range, with its key.
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        for (key, value, range) in self.entries() {
            if !range.contains(&value) {
                let (min, max) = range.into_inner();
                return Err((
                    key,
                    format!("`limits.{key}` is {value}; it must be from {min} to {max}"),
                ));
            }
        }
        Ok(())
    }

    /// These limits for a child an actor spawns: each one its manifest does
    /// not set (`set` says which it does) is lowered to the parent's, so a
    /// child left at the defaults never has more than its parent.
    pub fn inherited(self, parent: &Limits, set: impl Fn(&str) -> bool) -> Limits {
        let (own, parents) = (self.entries(), parent.entries());
        let [memory_mb, call_timeout_ms, queue, message, state, result] =
            std::array::from_fn(|i| {
                let (key, value, _) = &own[i];
                if set(key) {
                    *value
                } else {
                    (*value).min(parents[i].1)
                }
            });
        // Each came from a `usize` field, so it fits one again.
        Limits {
            memory_mb,
            call_timeout_ms,
            queue_capacity: queue as usize,
            max_message_bytes: message as usize,
            max_state_bytes: state as usize,
            max_result_bytes: result as usize,
        }
    }

    /// Fails on the first limit higher than the parent's, with its key: a
    /// child an actor spawns may have no more than its parent.
    pub fn within(&self, parent: &Limits) -> Result<(), (&'static str, String)> {
        for ((key, child, _), (_, parent, _)) in self.entries().into_iter().zip(parent.entries()) {
            if child > parent {
                return Err((
                    key,
                    format!("`limits.{key}` is {child}, more than the parent's {parent}"),
                ));
            }
        }
        Ok(())
    }
}
