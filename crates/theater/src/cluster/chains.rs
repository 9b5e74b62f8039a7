//! Replicated chains: each actor's chain events, in order, in the
//! JetStream stream `THEATER_CHAINS`, one subject per actor
//! (`theater.chain.<actor>`).
//!
//! Every append names the subject sequence its writer last saw. JetStream
//! refuses it if anything was appended since, so a stale owner (paused,
//! cut off, or simply a second writer) can never fork a chain: it learns
//! it lost the actor instead. The bytes are the event as the chain
//! encodes it; this module does not look inside.

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, consumer, context, stream};
use bytes::Bytes;
use futures::StreamExt;

use super::{ClusterError, actor_token};

/// The stream of every actor's chain.
const STREAM: &str = "THEATER_CHAINS";
/// Subjects of the stream: `theater.chain.<actor>`.
const SUBJECTS: &str = "theater.chain.>";
/// How long an append or a read waits for JetStream's answer.
const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The cluster's replicated chains.
#[derive(Clone)]
pub struct ReplicatedChains {
    js: jetstream::Context,
    stream: stream::Stream,
}

/// Where an actor's chain ends: the subject sequence of its last event,
/// which the next append must name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChainEnd(pub u64);

impl ReplicatedChains {
    /// Opens the stream, creating it with `replicas` copies if needed.
    pub(super) async fn open(
        js: &jetstream::Context,
        replicas: usize,
    ) -> Result<Self, ClusterError> {
        let mut stream = js
            .get_or_create_stream(stream::Config {
                name: STREAM.to_owned(),
                subjects: vec![SUBJECTS.to_owned()],
                num_replicas: replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| ClusterError::jetstream("opening the chain stream", e))?;
        // A stream just created takes appends once it has elected its
        // leader; until then the caller tries again.
        let info = stream
            .info()
            .await
            .map_err(|e| ClusterError::jetstream("opening the chain stream", e))?;
        if info.cluster.as_ref().is_some_and(|c| c.leader.is_none()) {
            return Err(ClusterError::jetstream(
                "opening the chain stream",
                "it has no leader yet",
            ));
        }
        // A publish whose answer was lost with its server is sent again
        // (see `ReplicatedLog`) after this long, not after the default 5 s.
        let mut js = js.clone();
        js.set_timeout(ANSWER_WAIT);
        Ok(Self { js, stream })
    }

    /// Appends `event` to `actor`'s chain, which must end at `after` (the
    /// default end: an empty chain). Returns the new end once JetStream
    /// has stored it on its replicas; [`ClusterError::ChainMoved`] if the
    /// chain moved on since `after`.
    pub async fn append(
        &self,
        actor: &str,
        after: ChainEnd,
        event: Bytes,
    ) -> Result<ChainEnd, ClusterError> {
        let publish = PublishMessage::build()
            .payload(event)
            .expected_last_subject_sequence(after.0);
        let moved =
            |e: &context::PublishError| e.kind() == context::PublishErrorKind::WrongLastSequence;
        let acked = match self.js.send_publish(subject(actor)?, publish).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match acked {
            Ok(ack) => Ok(ChainEnd(ack.sequence)),
            Err(e) if moved(&e) => Err(ClusterError::ChainMoved {
                actor: actor.to_owned(),
            }),
            Err(e) => Err(ClusterError::jetstream("appending a chain event", e)),
        }
    }

    /// The newest event of `actor`'s chain and where the chain ends;
    /// `None` for an empty chain.
    pub async fn last(&self, actor: &str) -> Result<Option<(Bytes, ChainEnd)>, ClusterError> {
        match self
            .stream
            .get_last_raw_message_by_subject(&subject(actor)?)
            .await
        {
            Ok(last) => Ok(Some((last.payload, ChainEnd(last.sequence)))),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(ClusterError::jetstream("reading a chain's end", e)),
        }
    }

    /// Every event of `actor`'s chain, oldest first, and where it ends.
    pub async fn read(&self, actor: &str) -> Result<(Vec<Bytes>, ChainEnd), ClusterError> {
        let failed = |e: &dyn std::fmt::Display| ClusterError::jetstream("reading a chain", e);
        let Some((_, ChainEnd(last))) = self.last(actor).await? else {
            return Ok((Vec::new(), ChainEnd::default()));
        };
        let subject = subject(actor)?;
        let consumer = self
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: subject,
                ..Default::default()
            })
            .await
            .map_err(|e| failed(&e))?;
        let mut messages = consumer.messages().await.map_err(|e| failed(&e))?;
        let mut events = Vec::new();
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| failed(&e))?;
            let sequence = message.info().map_err(|e| failed(&e))?.stream_sequence;
            events.push(message.payload.clone());
            if sequence >= last {
                break;
            }
        }
        Ok((events, ChainEnd(last)))
    }
}

/// `actor`'s subject.
fn subject(actor: &str) -> Result<String, ClusterError> {
    Ok(format!("theater.chain.{}", actor_token(actor)?))
}
