//! Replicated chains: each actor's chain events, in order, in the
//! JetStream stream `THEATER_CHAINS`, one subject per actor
//! (`theater.chain.<actor>`).
//!
//! Every append names the subject sequence its writer last saw. JetStream
//! refuses it if anything was appended since, so a stale owner (paused,
//! cut off, or simply a second writer) can never fork a chain: it learns
//! it lost the actor instead. The bytes are the event as the chain
//! encodes it; this module does not look inside. Appends of many actors
//! go out together in atomic batches (see [`batches`](super::batches)).

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

use super::batches::{AppendCounts, Batcher};
use super::{ClusterError, actor_token, streams};

/// The stream of every actor's chain.
const STREAM: &str = "THEATER_CHAINS";
/// Subjects of the stream: `theater.chain.<actor>`.
const SUBJECTS: &str = "theater.chain.>";

/// The cluster's replicated chains.
#[derive(Clone)]
pub struct ReplicatedChains {
    batcher: Batcher,
    stream: stream::Stream,
}

const FOLLOWING: &str = "following a chain";

/// One actor's chain, followed from when [`ReplicatedChains::follow`]
/// started.
pub struct Follower(consumer::Consumer<consumer::pull::OrderedConfig>);

impl Follower {
    /// The events as they are stored.
    pub async fn events(
        self,
    ) -> Result<BoxStream<'static, Result<Bytes, ClusterError>>, ClusterError> {
        let failed = |e: &dyn std::fmt::Display| ClusterError::jetstream(FOLLOWING, e);
        let messages = self.0.messages().await.map_err(|e| failed(&e))?;
        Ok(messages
            .map(move |message| {
                message
                    .map(|message| message.payload.clone())
                    .map_err(|e| failed(&e))
            })
            .boxed())
    }
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
        let (js, stream) = streams::open(
            js,
            STREAM,
            SUBJECTS,
            replicas,
            true,
            "opening the chain stream",
        )
        .await?;
        Ok(Self {
            batcher: Batcher::start(js),
            stream,
        })
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
        let subject = subject(actor)?;
        self.batcher.append(actor, subject, after, event).await
    }

    /// How this node's appends went: in batches or alone, refused or
    /// failed.
    pub fn append_counts(&self) -> AppendCounts {
        self.batcher.counts()
    }

    /// The newest event of `actor`'s chain and where the chain ends;
    /// `None` for an empty chain.
    pub async fn last(&self, actor: &str) -> Result<Option<(Bytes, ChainEnd)>, ClusterError> {
        let last = streams::last(&self.stream, &subject(actor)?).await?;
        Ok(last.map(|(event, sequence)| (event, ChainEnd(sequence))))
    }

    /// Starts following `actor`'s chain: the events appended from now
    /// on, by whichever node runs it.
    pub async fn follow(&self, actor: &str) -> Result<Follower, ClusterError> {
        let consumer = self
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: subject(actor)?,
                deliver_policy: consumer::DeliverPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(|e| ClusterError::jetstream(FOLLOWING, e))?;
        Ok(Follower(consumer))
    }

    /// Every event of `actor`'s chain, oldest first, and where it ends.
    pub async fn read(&self, actor: &str) -> Result<(Vec<Bytes>, ChainEnd), ClusterError> {
        let read = streams::read(&self.stream, &subject(actor)?).await?;
        let end = ChainEnd(read.last().map_or(0, |(sequence, _)| *sequence));
        Ok((read.into_iter().map(|(_, event)| event).collect(), end))
    }
}

/// `actor`'s subject.
fn subject(actor: &str) -> Result<String, ClusterError> {
    Ok(format!("theater.chain.{}", actor_token(actor)?))
}
