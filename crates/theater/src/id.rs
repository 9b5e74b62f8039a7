//! Actor ids: random, printable, parseable.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The identity of one actor for its whole life, also across restarts.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActorId(Uuid);

impl ActorId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id's 16 bytes, as storage keys actors by them.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.into_bytes()
    }

    /// The id whose [`to_bytes`](Self::to_bytes) are `bytes`.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }

    /// The first eight characters, enough to tell actors apart in a table.
    pub fn short(&self) -> String {
        self.to_string()[..8].to_owned()
    }
}

impl Default for ActorId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorId({self})")
    }
}

/// The text was not an actor id.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an actor id (expected a UUID such as 0b6f3e2a-9c1d-4e8f-a7b2-5d4c3b2a1f0e)")]
pub struct ParseActorIdError(String);

impl FromStr for ActorId {
    type Err = ParseActorIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim())
            .map(Self)
            .map_err(|_| ParseActorIdError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let id = ActorId::new();
        assert_eq!(id.to_string().parse::<ActorId>().unwrap(), id);
        assert_eq!(id.short().len(), 8);
        assert!(id.to_string().starts_with(&id.short()));
        assert_eq!(ActorId::from_bytes(id.to_bytes()), id);
    }

    /// Storage keys actors by these bytes: they are the UUID's, as the
    /// text form spells them.
    #[test]
    fn bytes_are_the_uuid_bytes() {
        let id: ActorId = "0b6f3e2a-9c1d-4e8f-a7b2-5d4c3b2a1f0e".parse().unwrap();
        assert_eq!(
            hex::encode(id.to_bytes()),
            "0b6f3e2a9c1d4e8fa7b25d4c3b2a1f0e"
        );
    }

    #[test]
    fn rejects_garbage() {
        let err = "not-an-id".parse::<ActorId>().unwrap_err();
        assert!(err.to_string().contains("not-an-id"));
    }
}
