//! Replicated inboxes: the messages accepted for each actor and not yet
//! run, in the JetStream stream `THEATER_INBOXES`, one subject per actor
//! (`theater.inbox.<actor>`). A message's stream sequence names it: the
//! chain event of its call carries that number, so a node that takes the
//! actor on runs the messages no event names, once.
//!
//! Messages whose calls ran are dropped from the front of a subject now
//! and then, and a stopped actor's all at once.

use async_nats::jetstream::{self, stream};
use bytes::Bytes;

use super::{ClusterError, actor_token, streams};

/// The stream of every actor's inbox.
const STREAM: &str = "THEATER_INBOXES";
/// Subjects of the stream: `theater.inbox.<actor>`.
const SUBJECTS: &str = "theater.inbox.>";

/// The cluster's replicated inboxes.
#[derive(Clone)]
pub struct ReplicatedInboxes {
    js: jetstream::Context,
    stream: stream::Stream,
}

impl ReplicatedInboxes {
    /// Opens the stream, creating it with `replicas` copies if needed.
    pub(super) async fn open(
        js: &jetstream::Context,
        replicas: usize,
    ) -> Result<Self, ClusterError> {
        let (js, stream) = streams::open(
            js,
            STREAM,
            SUBJECTS,
            replicas,
            false,
            "opening the inbox stream",
        )
        .await?;
        Ok(Self { js, stream })
    }

    /// Keeps `message` in `actor`'s inbox; its sequence, once JetStream
    /// has stored it on its replicas.
    pub async fn accept(&self, actor: &str, message: Bytes) -> Result<u64, ClusterError> {
        let failed = |e: &dyn std::fmt::Display| ClusterError::jetstream("keeping a message", e);
        let ack = self
            .js
            .publish(subject(actor)?, message)
            .await
            .map_err(|e| failed(&e))?;
        Ok(ack.await.map_err(|e| failed(&e))?.sequence)
    }

    /// Every message in `actor`'s inbox, oldest first, with its sequence.
    pub async fn read(&self, actor: &str) -> Result<Vec<(u64, Bytes)>, ClusterError> {
        streams::read(&self.stream, &subject(actor)?).await
    }

    /// Drops `actor`'s messages before sequence `until` (all of them if
    /// `None`).
    pub async fn drop_before(&self, actor: &str, until: Option<u64>) -> Result<(), ClusterError> {
        let purge = self.stream.purge().filter(subject(actor)?);
        let purged = match until {
            Some(until) => purge.sequence(until).await,
            None => purge.await,
        };
        purged
            .map(drop)
            .map_err(|e| ClusterError::jetstream("dropping messages that ran", e))
    }
}

/// `actor`'s subject.
fn subject(actor: &str) -> Result<String, ClusterError> {
    Ok(format!("theater.inbox.{}", actor_token(actor)?))
}
