//! Finding what a request names: an actor by full id or unambiguous
//! prefix (running, or known to the log), its stored record and chain,
//! and a channel of this connection.

use super::{bad_request, internal};
use crate::actor::ActorHandle;
use crate::chain::ChainEvent;
use crate::id::ActorId;
use crate::server::connection::Connection;
use crate::server::protocol::{ChainHead, ErrorBody, ErrorKind, Payload};
use crate::storage::SavedActor;

impl Connection {
    /// The stored record of an actor the log knows, by id or prefix.
    pub(super) async fn saved(&self, actor: &str) -> Result<SavedActor, ErrorBody> {
        let id = self.known(actor).await?;
        self.shared
            .runtime
            .read_log(move |log| log.saved_actor(&id))
            .await
            .map_err(|e| internal("the log", e))?
            .ok_or_else(|| unknown(actor))
    }

    pub(super) async fn saved_actors(&self) -> Result<Vec<SavedActor>, ErrorBody> {
        self.shared
            .runtime
            .read_log(|log| log.saved_actors())
            .await
            .map_err(|e| internal("the log", e))
    }

    /// `id`'s chain from index `start` on.
    pub(super) async fn chain_from(
        &self,
        id: ActorId,
        start: u64,
    ) -> Result<Vec<ChainEvent>, ErrorBody> {
        self.shared
            .runtime
            .chain_from(id, start)
            .await
            .map_err(|e| internal("the chain", e))
    }

    /// How many events `id`'s chain has, and the newest one's hash.
    pub(super) async fn chain_head(&self, id: ActorId) -> Result<ChainHead, ErrorBody> {
        let head = self
            .shared
            .runtime
            .chain_head(id)
            .await
            .map_err(|e| internal("the chain", e))?;
        Ok(ChainHead {
            events: head.map_or(0, |(events, _)| events),
            head: head.map(|(_, hash)| hex::encode(hash)),
        })
    }

    pub(super) fn own_channel(&self, channel: &str) -> Result<(), ErrorBody> {
        if self.channels.contains_key(channel) {
            Ok(())
        } else {
            Err(ErrorBody::new(
                ErrorKind::UnknownChannel,
                format!(
                    "this connection has no open channel {channel}; open one with `open_channel`"
                ),
            ))
        }
    }

    /// The running actor `actor` names and the message `payload` holds,
    /// for an operation that sends it one.
    pub(super) fn addressed(
        &self,
        actor: &str,
        payload: &Payload,
    ) -> Result<(ActorId, Vec<u8>), ErrorBody> {
        let id = match self.running(actor) {
            Ok(handle) => handle.id(),
            // In a cluster, an actor named by its full id may run on
            // another node: the runtime routes the message there.
            Err(e) if self.shared.config.cluster.is_some() => {
                actor.trim().parse::<ActorId>().map_err(|_| e)?
            }
            Err(e) => return Err(e),
        };
        Ok((id, super::payload(payload)?))
    }

    /// A running actor, by full id or unambiguous prefix.
    pub(super) fn running(&self, text: &str) -> Result<ActorHandle, ErrorBody> {
        let running = self.shared.runtime.actors();
        let ids: Vec<ActorId> = running.iter().map(ActorHandle::id).collect();
        let id = resolve(text, &ids)?;
        running
            .into_iter()
            .find(|h| h.id() == id)
            .ok_or_else(|| unknown(text))
    }

    /// A running actor or, by full id, any actor whose chain the log may
    /// hold; by prefix, one the log knows.
    pub(super) async fn any_actor(&self, text: &str) -> Result<ActorId, ErrorBody> {
        if let Ok(id) = text.trim().parse::<ActorId>() {
            // A full id names a chain even if this server never saw the actor.
            return Ok(id);
        }
        self.known(text).await
    }

    /// An actor by full id or unambiguous prefix: among the running ones,
    /// then among every actor the log knows, stopped ones too.
    pub(super) async fn known(&self, text: &str) -> Result<ActorId, ErrorBody> {
        let runtime = &self.shared.runtime;
        match resolve(text, &runtime.actor_ids()) {
            Err(e) if e.kind == ErrorKind::UnknownActor => {}
            found => return found,
        }
        let ids = runtime
            .saved_ids()
            .await
            .map_err(|e| internal("the log", e))?;
        resolve(text, &ids).map_err(|e| match e.kind {
            ErrorKind::UnknownActor => ErrorBody::new(
                ErrorKind::UnknownActor,
                format!(
                    "no actor `{}` is running or in this server's log; `theater list` shows the running ones",
                    text.trim()
                ),
            ),
            _ => e,
        })
    }
}

fn unknown(text: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorKind::UnknownActor,
        format!("no running actor `{text}`; `theater list` shows the running ones"),
    )
}

/// Finds the one id that `text` is or begins.
fn resolve(text: &str, ids: &[ActorId]) -> Result<ActorId, ErrorBody> {
    let text = text.trim().to_ascii_lowercase();
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(bad_request(format!(
            "`{text}` is not an actor id; give the full id or its first characters (e.g. the 8-character short id)"
        )));
    }
    let matches: Vec<ActorId> = ids
        .iter()
        .copied()
        .filter(|id| id.to_string().starts_with(&text))
        .collect();
    match matches.as_slice() {
        [] => Err(unknown(&text)),
        [one] => Ok(*one),
        many => Err(ErrorBody::new(
            ErrorKind::AmbiguousActor,
            format!(
                "`{text}` matches {} actors ({}); give more characters",
                many.len(),
                many.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_resolve_by_unambiguous_prefix() {
        let a: ActorId = "1a2b3c4d-0000-4000-8000-000000000001".parse().unwrap();
        let b: ActorId = "1a2b9999-0000-4000-8000-000000000002".parse().unwrap();
        let ids = [a, b];
        assert_eq!(resolve("1a2b3c4d", &ids).unwrap(), a);
        assert_eq!(resolve("1A2B9", &ids).unwrap(), b);
        assert_eq!(
            resolve("1a2b", &ids).unwrap_err().kind,
            ErrorKind::AmbiguousActor
        );
        assert_eq!(
            resolve("ffff", &ids).unwrap_err().kind,
            ErrorKind::UnknownActor
        );
        assert_eq!(
            resolve("not an id", &ids).unwrap_err().kind,
            ErrorKind::BadRequest
        );
        assert_eq!(resolve("", &ids).unwrap_err().kind, ErrorKind::BadRequest);
    }
}
