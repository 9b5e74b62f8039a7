//! `replay`, `fork` and `revert`: an actor's chain run again, and new
//! states taken from its past (see `docs/replay.md`).

use sha2::{Digest, Sha256};

use super::{Answer, actor_error, answer, bad_request};
use crate::chain::Hash;
use crate::id::ActorId;
use crate::replay::ReplayReport;
use crate::runtime::{ForkOptions, HistoryError};
use crate::server::connection::Connection;
use crate::server::protocol::{
    Diverged, ErrorBody, ErrorKind, Forked, ForkedFrom, MIN_EVENT_PREFIX, Replayed, Reverted,
    StoppedAt,
};

impl Connection {
    pub(super) async fn replay(&self, actor: &str) -> Answer {
        let id = self.known(actor).await?;
        let report = self
            .shared
            .runtime
            .replay(id)
            .await
            .map_err(history_error)?;
        answer(replayed(id, report))
    }

    pub(super) async fn fork(&self, actor: &str, at: &str, ephemeral_ports: bool) -> Answer {
        let id = self.known(actor).await?;
        let at = self.event(id, at).await?;
        let options = ForkOptions { ephemeral_ports };
        let handle = self
            .shared
            .runtime
            .fork_with(id, at, options)
            .await
            .map_err(history_error)?;
        self.started(handle.id());
        answer(Forked {
            actor: handle.id(),
            short: handle.id().short(),
            name: handle.name().to_owned(),
            forked_from: ForkedFrom {
                actor: id,
                event: hex::encode(at),
            },
        })
    }

    pub(super) async fn revert(&self, actor: &str, to: &str) -> Answer {
        let id = self.known(actor).await?;
        // The library would only say "unknown actor" of a stopped one.
        if self.shared.runtime.actor(id).is_err() {
            return Err(ErrorBody::new(
                ErrorKind::UnknownActor,
                format!(
                    "actor {id} is not running: revert sets the state of a running actor; `theater fork` starts a new one from an event of a stopped one"
                ),
            ));
        }
        let to = self.event(id, to).await?;
        let event = self
            .shared
            .runtime
            .revert(id, to)
            .await
            .map_err(history_error)?;
        answer(Reverted {
            actor: id,
            to: hex::encode(to),
            event: hex::encode(event),
        })
    }

    /// The event of `actor`'s chain that `text` names: its whole hash or a
    /// unique prefix of it.
    async fn event(&self, actor: ActorId, text: &str) -> Result<Hash, ErrorBody> {
        let text = text.trim().to_ascii_lowercase();
        let hex_digits = text.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex_digits || !(MIN_EVENT_PREFIX..=64).contains(&text.len()) {
            return Err(bad_request(format!(
                "`{text}` does not name an event: give its hash, 64 hex digits, or at least the first {MIN_EVENT_PREFIX} of them (`theater events {}` shows them)",
                actor.short()
            )));
        }
        let events = self.chain_from(actor, 0).await?;
        let mut matching = events
            .iter()
            .filter(|event| hex::encode(event.hash).starts_with(&text));
        match (matching.next(), matching.next()) {
            (Some(event), None) => Ok(event.hash),
            (None, _) => Err(ErrorBody::new(
                ErrorKind::UnknownEvent,
                format!(
                    "no event {text} in the chain of actor {actor}; `theater events {}` lists its events",
                    actor.short()
                ),
            )),
            (Some(_), Some(_)) => Err(bad_request(format!(
                "`{text}` begins the hashes of several events of actor {actor}; give more digits"
            ))),
        }
    }
}

/// The `replay` answer; `matched` only when every event was reproduced:
/// nothing diverged and nothing stopped the replay.
fn replayed(actor: ActorId, report: ReplayReport) -> Replayed {
    Replayed {
        actor,
        events: report.events,
        calls: report.calls,
        matched: report.divergence.is_none() && report.stopped_at.is_none(),
        divergence: report.divergence.map(|d| Diverged {
            index: d.index,
            hash: d.hash,
            function: d.function,
            reason: d.reason,
        }),
        stopped_at: report.stopped_at.map(|s| StoppedAt {
            index: s.index,
            hash: s.hash,
            reason: s.reason,
        }),
        state_sha256: report.state.map(|state| hex::encode(Sha256::digest(state))),
    }
}

/// The protocol's form of a history error: a refused revert of a running
/// actor reads as any other actor error.
fn history_error(e: HistoryError) -> ErrorBody {
    let kind = match e {
        HistoryError::Actor(e) => return actor_error(e),
        HistoryError::Spawn(_) | HistoryError::ForkStart { .. } => ErrorKind::SpawnFailed,
        HistoryError::Log(_) => ErrorKind::Internal,
        HistoryError::UnknownActor(_) => ErrorKind::UnknownActor,
        HistoryError::UnknownEvent { .. } => ErrorKind::UnknownEvent,
        HistoryError::NoState { .. } => ErrorKind::NoState,
    };
    ErrorBody::new(kind, e.to_string())
}
