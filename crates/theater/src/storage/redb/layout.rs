//! The on-disk layout of the chain database (layout 2): its tables, what
//! each is keyed by, and the key of an actor. `docs/durability.md` shows it
//! for people.

use std::ops::RangeInclusive;

use redb::TableDefinition;

use crate::id::ActorId;

/// The layout version of the database, kept in [`META`]. Layout 1 kept
/// every state inline; a database in it is converted when opened.
pub(super) const FORMAT: u64 = 2;

/// Encoded events by (actor id bytes, sequence number from 0).
pub(super) const EVENTS: TableDefinition<([u8; 16], u64), &[u8]> =
    TableDefinition::new("chain-events");
/// Per actor: (number of events, hash of the newest).
pub(super) const HEADS: TableDefinition<[u8; 16], (u64, [u8; 32])> =
    TableDefinition::new("chain-heads");
/// Per actor: where its newest state is (see `codec::encode_state_ref`).
pub(super) const STATES: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("actor-states");
/// Where the states of (actor, index of the event that left them) are,
/// every [`LogOptions::snapshot_every`](super::LogOptions::snapshot_every) events.
pub(super) const SNAPSHOTS: TableDefinition<([u8; 16], u64), &[u8]> =
    TableDefinition::new("snapshots");
/// State bytes by their SHA-256: each state is stored once, however many
/// events and actors leave it.
pub(super) const STATE_BLOBS: TableDefinition<[u8; 32], &[u8]> =
    TableDefinition::new("state-blobs");
/// How many entries of [`STATES`] and [`SNAPSHOTS`] name each stored
/// state; a state no entry names is removed.
pub(super) const STATE_REFS: TableDefinition<[u8; 32], u64> = TableDefinition::new("state-refs");
/// Accepted messages not yet run, by (actor, number); each leaves in the
/// transaction that appends its call's event (see `EventLog::accept`).
pub(super) const INBOX: TableDefinition<([u8; 16], u64), &[u8]> = TableDefinition::new("inbox");
/// Per actor: how it was started ([`ActorRecord`](crate::storage::ActorRecord) as JSON).
pub(super) const ACTORS: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("actors");
/// `format` → [`FORMAT`].
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("chain-meta");

/// The key of `actor` in every table: its id's 16 bytes.
pub(super) fn key_of(actor: &ActorId) -> [u8; 16] {
    actor.to_bytes()
}

pub(super) fn actor_of(key: [u8; 16]) -> ActorId {
    ActorId::from_bytes(key)
}

/// Every key of `actor` in a table keyed by (actor, number).
pub(super) fn range_of(actor: &ActorId) -> RangeInclusive<([u8; 16], u64)> {
    range_of_key(key_of(actor))
}

pub(super) fn range_of_key(key: [u8; 16]) -> RangeInclusive<([u8; 16], u64)> {
    (key, 0)..=(key, u64::MAX)
}
