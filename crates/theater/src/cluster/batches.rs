//! Appends of many actors to their chains, gathered into JetStream atomic
//! batches: one publish of a batch is one acknowledgement and one entry
//! in the stream's replicated log, where each append alone would be one
//! of each. Under load, appends queue while earlier batches are in flight
//! and go out together; a lone append goes out at once, alone.
//!
//! Each message of a batch names its subject's expected last sequence, as
//! an append alone does. A batch is stored whole or not at all: if one of
//! its appends is refused (a chain moved on), its appends are published
//! again one by one, so that each hears its own answer. A stream or
//! server that takes no atomic batches (older than NATS 2.12) gets single
//! appends from then on.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_nats::HeaderMap;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, context};
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{ChainEnd, ClusterError};

const APPENDING: &str = "appending a chain event";

/// Most appends in one batch.
const MOST_APPENDS: usize = 64;
/// Most bytes of events in one batch.
const MOST_BYTES: usize = 4 << 20;
/// Batches (or single appends) in flight at once; while all are, appends
/// gather for the next.
const IN_FLIGHT: usize = 32;
/// Appends waiting for a batch; beyond, appending waits.
const WAITING: usize = 4096;

/// One event for one actor's chain, and where its answer goes.
struct Append {
    actor: String,
    subject: String,
    after: ChainEnd,
    event: Bytes,
    done: oneshot::Sender<Result<ChainEnd, ClusterError>>,
}

/// Where appends go to be batched. Cheap to clone; the batching task ends
/// with the last clone.
#[derive(Clone)]
pub(super) struct Batcher {
    appends: mpsc::Sender<Append>,
    counts: Arc<Counts>,
}

/// How appends went, since the node joined.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendCounts {
    /// Batches JetStream stored.
    pub batches: u64,
    /// Appends in them.
    pub batched: u64,
    /// Appends published alone, stored or not.
    pub alone: u64,
    /// Appends refused because the chain had moved on: this node had
    /// lost the actor.
    pub refused: u64,
    /// Appends with no answer, or another error: stored or not.
    pub failed: u64,
}

#[derive(Default)]
struct Counts {
    batches: AtomicU64,
    batched: AtomicU64,
    alone: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

impl Counts {
    /// Counts how an append that was published went, and passes it on.
    fn answered(&self, stored: Result<ChainEnd, ClusterError>) -> Result<ChainEnd, ClusterError> {
        let counter = match &stored {
            Ok(_) => return stored,
            Err(ClusterError::ChainMoved { .. }) => &self.refused,
            Err(_) => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        stored
    }
}

impl Batcher {
    /// Starts batching appends published through `js`.
    pub(super) fn start(js: jetstream::Context) -> Self {
        let (appends, waiting) = mpsc::channel(WAITING);
        let counts = Arc::new(Counts::default());
        tokio::spawn(gather(js, waiting, counts.clone()));
        Self { appends, counts }
    }

    pub(super) fn counts(&self) -> AppendCounts {
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        AppendCounts {
            batches: count(&self.counts.batches),
            batched: count(&self.counts.batched),
            alone: count(&self.counts.alone),
            refused: count(&self.counts.refused),
            failed: count(&self.counts.failed),
        }
    }

    /// Appends `event` to `actor`'s chain on `subject`, which must end at
    /// `after`; the new end once JetStream stored it.
    pub(super) async fn append(
        &self,
        actor: &str,
        subject: String,
        after: ChainEnd,
        event: Bytes,
    ) -> Result<ChainEnd, ClusterError> {
        let (done, answer) = oneshot::channel();
        let append = Append {
            actor: actor.to_owned(),
            subject,
            after,
            event,
            done,
        };
        let gone = || ClusterError::jetstream(APPENDING, "the cluster connection closed");
        self.appends.send(append).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Gathers waiting appends into batches, [`IN_FLIGHT`] at a time.
async fn gather(js: jetstream::Context, mut waiting: mpsc::Receiver<Append>, counts: Arc<Counts>) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let atomic = Arc::new(AtomicBool::new(true));
    // An append for a chain the batch being gathered already has goes
    // first into the next.
    let mut carried: Option<Append> = None;
    loop {
        let first = match carried.take() {
            Some(append) => append,
            None => match waiting.recv().await {
                Some(append) => append,
                None => return,
            },
        };
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let mut subjects = HashSet::from([first.subject.clone()]);
        let mut bytes = first.event.len();
        let mut batch = vec![first];
        while batch.len() < MOST_APPENDS && bytes < MOST_BYTES {
            let Ok(next) = waiting.try_recv() else { break };
            if !subjects.insert(next.subject.clone()) {
                carried = Some(next);
                break;
            }
            bytes += next.event.len();
            batch.push(next);
        }
        let (js, atomic, counts) = (js.clone(), atomic.clone(), counts.clone());
        tokio::spawn(async move {
            publish(&js, batch, &atomic, &counts).await;
            drop(permit);
        });
    }
}

/// Publishes `batch` and answers each of its appends.
async fn publish(
    js: &jetstream::Context,
    batch: Vec<Append>,
    atomic: &AtomicBool,
    counts: &Counts,
) {
    if batch.len() == 1 || !atomic.load(Ordering::Relaxed) {
        return one_by_one(js, batch, counts).await;
    }
    match commit(js, &batch).await {
        Committed::Stored(last) => {
            counts.batches.fetch_add(1, Ordering::Relaxed);
            counts
                .batched
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            // A batch is stored in one piece: its messages' sequences
            // follow each other up to the last.
            let first = last + 1 - batch.len() as u64;
            for (at, append) in batch.into_iter().enumerate() {
                let _ = append.done.send(Ok(ChainEnd(first + at as u64)));
            }
        }
        Committed::Refused => one_by_one(js, batch, counts).await,
        Committed::NotTaken(why) => {
            tracing::warn!("JetStream takes no atomic batches ({why}); appending one by one");
            atomic.store(false, Ordering::Relaxed);
            one_by_one(js, batch, counts).await;
        }
        Committed::Failed(why) => {
            counts
                .failed
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            for append in batch {
                let _ = append
                    .done
                    .send(Err(ClusterError::jetstream(APPENDING, &why)));
            }
        }
    }
}

/// Publishes each append alone, all at once.
async fn one_by_one(js: &jetstream::Context, batch: Vec<Append>, counts: &Counts) {
    counts
        .alone
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    futures::future::join_all(batch.into_iter().map(|append| async move {
        let stored = counts.answered(alone(js, &append).await);
        let _ = append.done.send(stored);
    }))
    .await;
}

/// Publishes `append` alone.
async fn alone(js: &jetstream::Context, append: &Append) -> Result<ChainEnd, ClusterError> {
    let publish = PublishMessage::build()
        .payload(append.event.clone())
        .expected_last_subject_sequence(append.after.0);
    let acked = match js.send_publish(append.subject.clone(), publish).await {
        Ok(ack) => ack.await,
        Err(e) => Err(e),
    };
    match acked {
        Ok(ack) => Ok(ChainEnd(ack.sequence)),
        Err(e) if e.kind() == context::PublishErrorKind::WrongLastSequence => {
            Err(ClusterError::ChainMoved {
                actor: append.actor.clone(),
            })
        }
        Err(e) => Err(ClusterError::jetstream(APPENDING, e)),
    }
}

/// How a batch's commit went.
enum Committed {
    /// Stored; the last message's sequence.
    Stored(u64),
    /// An expected sequence did not hold: nothing was stored.
    Refused,
    /// The stream or server takes no atomic batches.
    NotTaken(String),
    /// No answer, or another failure: it may or may not be stored.
    Failed(String),
}

/// JetStream's answer to a batch's commit.
#[derive(Deserialize)]
struct CommitAnswer {
    #[serde(default)]
    seq: u64,
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// JetStream's error codes for an expected sequence that did not hold.
const WRONG_LAST_SEQUENCE: [u64; 2] = [10071, 10164];

/// Publishes `batch` as one atomic batch: every message but the last
/// plainly, the last as the commit, whose answer is the batch's.
async fn commit(js: &jetstream::Context, batch: &[Append]) -> Committed {
    let client = js.client();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let failed = |e: &dyn std::fmt::Display| Committed::Failed(e.to_string());
    let (last, rest) = batch.split_last().expect("a batch has appends");
    for (at, append) in rest.iter().enumerate() {
        let headers = batch_headers(&id, at + 1, append.after, false);
        let sent = client
            .publish_with_headers(append.subject.clone(), headers, append.event.clone())
            .await;
        if let Err(e) = sent {
            return failed(&e);
        }
    }
    let headers = batch_headers(&id, batch.len(), last.after, true);
    let request = async_nats::Request::new()
        .headers(headers)
        .payload(last.event.clone())
        .timeout(Some(super::streams::ANSWER_WAIT));
    let answer = match client.send_request(last.subject.clone(), request).await {
        Ok(answer) => answer,
        Err(e) => return failed(&e),
    };
    match serde_json::from_slice::<CommitAnswer>(&answer.payload) {
        Ok(CommitAnswer { error: None, seq }) if seq > 0 => Committed::Stored(seq),
        Ok(CommitAnswer {
            error: Some(error), ..
        }) if WRONG_LAST_SEQUENCE.contains(&error.err_code) => Committed::Refused,
        Ok(CommitAnswer {
            error: Some(error), ..
        }) => Committed::NotTaken(format!("{} ({})", error.description, error.err_code)),
        Ok(_) => Committed::NotTaken("an answer with no sequence".into()),
        Err(e) => failed(&format!("an unreadable answer: {e}")),
    }
}

/// The headers of message `sequence` (from 1) of batch `id`.
fn batch_headers(id: &str, sequence: usize, after: ChainEnd, commit: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Batch-Id", id);
    headers.insert("Nats-Batch-Sequence", sequence.to_string().as_str());
    headers.insert(
        "Nats-Expected-Last-Subject-Sequence",
        after.0.to_string().as_str(),
    );
    if commit {
        headers.insert("Nats-Batch-Commit", "1");
    }
    headers
}
