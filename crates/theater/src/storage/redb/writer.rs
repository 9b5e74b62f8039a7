//! The one thread that writes: it takes requests off a queue, gathers
//! those that arrive together into a batch, commits each batch in one
//! transaction (one `fsync` in durable mode) and answers every request.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::oneshot;

use super::batch::{Committed, write_batch};
use super::error::{StorageError, WriteError};
use super::options::{Durability, GROUP_COMMIT_WINDOW, LogOptions, MAX_BATCH};
use super::{RedbEventLog, Shared};
use crate::chain::Hash;
use crate::storage::KeptState;

/// Where the writer answers one request.
pub(super) type Reply = oneshot::Sender<Result<(), WriteError>>;

/// What the writer is asked to store; actors are keyed by their id bytes.
pub(super) enum Request {
    Append {
        actor: [u8; 16],
        hash: Hash,
        parent: Option<Hash>,
        bytes: Vec<u8>,
        /// The state the event leaves behind, if it is a state transition,
        /// and whether it is snapshotted whatever the interval.
        state: Option<(KeptState, bool)>,
        /// The inbox entry the event's call delivered.
        delivered: Option<u64>,
        reply: Reply,
    },
    /// A message for an actor's inbox, under its number.
    Accept {
        actor: [u8; 16],
        number: u64,
        message: Vec<u8>,
        reply: Reply,
    },
    /// How an actor was started, as JSON.
    SaveActor {
        actor: [u8; 16],
        record: Vec<u8>,
        reply: Reply,
    },
    SetRunning {
        actor: [u8; 16],
        running: bool,
        reply: Reply,
    },
    /// A whole verified chain for an actor that has none.
    Import {
        actor: [u8; 16],
        events: Vec<(Hash, Vec<u8>)>,
        reply: Reply,
    },
    /// A durable commit, even if nothing is waiting.
    Sync { reply: Reply },
}

/// The writer's answer to one request, to be waited for.
pub(super) struct Answer {
    /// `None` if the request never reached the writer.
    answer: Option<oneshot::Receiver<Result<(), WriteError>>>,
    shared: Arc<Shared>,
}

impl Answer {
    /// The writer's answer; `Err` if the writer stopped before it gave one.
    pub async fn wait(self) -> Result<Result<(), WriteError>, StorageError> {
        let closed = || StorageError::Closed {
            path: self.shared.path.clone(),
        };
        match self.answer {
            Some(answer) => answer.await.map_err(|_| closed()),
            None => Err(closed()),
        }
    }
}

/// Starts the writer thread of `shared`'s database; requests go to the
/// returned queue, and it stops once the queue is dropped.
pub(super) fn start(
    shared: Arc<Shared>,
    options: &LogOptions,
) -> Result<(mpsc::Sender<Request>, JoinHandle<()>), StorageError> {
    let (queue, requests) = mpsc::channel();
    let writer = Writer {
        shared: shared.clone(),
        requests,
        durability: options.durability,
        snapshot_every: options.snapshot_every,
        expected: 1,
        unsynced_since: None,
    };
    let thread = std::thread::Builder::new()
        .name("theater-chain-writer".into())
        .spawn(move || writer.run())
        .map_err(|source| StorageError::WriterStart {
            path: shared.path.clone(),
            source,
        })?;
    Ok((queue, thread))
}

impl RedbEventLog {
    /// Hands the writer the request `build` makes around its reply.
    pub(super) fn submit(&self, build: impl FnOnce(Reply) -> Request) -> Answer {
        let (reply, answer) = oneshot::channel();
        let sent = (self.queue.as_ref()).is_some_and(|queue| queue.send(build(reply)).is_ok());
        Answer {
            answer: sent.then_some(answer),
            shared: self.shared.clone(),
        }
    }

    /// Makes everything committed so far durable now (useful with
    /// [`Durability::Buffered`]; with `Durable` it is already).
    pub fn sync(&self) -> impl Future<Output = Result<(), StorageError>> + Send + use<> {
        let answer = self.submit(|reply| Request::Sync { reply });
        async move {
            let path = answer.shared.path.clone();
            answer.wait().await?.map_err(|source| StorageError::Write {
                path,
                source: Box::new(source),
            })
        }
    }
}

/// The one thread that writes: takes batches of requests off the queue and
/// commits each batch in one transaction.
struct Writer {
    shared: Arc<Shared>,
    requests: mpsc::Receiver<Request>,
    durability: Durability,
    snapshot_every: u64,
    /// How many requests a batch waits for (within the window), from the
    /// recent batch sizes.
    expected: usize,
    /// When the oldest commit that is not yet durable completed.
    unsynced_since: Option<Instant>,
}

impl Writer {
    fn run(mut self) {
        loop {
            let first = match self.sync_deadline() {
                None => match self.requests.recv() {
                    Ok(request) => request,
                    Err(_) => break,
                },
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    match self.requests.recv_timeout(wait) {
                        Ok(request) => request,
                        Err(RecvTimeoutError::Timeout) => {
                            self.commit(Vec::new(), true);
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            let (batch, closed) = self.gather(first);
            self.commit(batch, false);
            if closed {
                break;
            }
        }
        if self.unsynced_since.is_some() {
            self.commit(Vec::new(), true);
        }
    }

    fn sync_deadline(&self) -> Option<Instant> {
        match self.durability {
            Durability::Durable => None,
            Durability::Buffered { max_unsynced } => self.unsynced_since.map(|t| t + max_unsynced),
        }
    }

    /// Collects requests after `first` until the batch is full, as many as
    /// recent batches held have arrived, or the window has passed. `true`
    /// if the queue was closed.
    fn gather(&mut self, first: Request) -> (Vec<Request>, bool) {
        let mut batch = vec![first];
        let close = Instant::now() + GROUP_COMMIT_WINDOW;
        let mut closed = false;
        while batch.len() < MAX_BATCH {
            match self.requests.try_recv() {
                Ok(request) => {
                    batch.push(request);
                    continue;
                }
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
                Err(TryRecvError::Empty) => {}
            }
            let now = Instant::now();
            if batch.len() >= self.expected || now >= close {
                break;
            }
            match self.requests.recv_timeout(close - now) {
                Ok(request) => batch.push(request),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        // Follow rising concurrency at once, falling concurrency gradually.
        self.expected = batch.len().max(self.expected * 3 / 4).max(1);
        (batch, closed)
    }

    /// Commits `batch` in one transaction and answers every request in it.
    fn commit(&mut self, batch: Vec<Request>, force_sync: bool) {
        let sync = force_sync
            || batch.iter().any(|r| matches!(r, Request::Sync { .. }))
            || match self.sync_deadline() {
                None => matches!(self.durability, Durability::Durable),
                Some(deadline) => Instant::now() >= deadline,
            };
        let result = write_batch(&self.shared, &batch, sync, self.snapshot_every);
        let replies = batch.into_iter().map(|request| match request {
            Request::Append { reply, .. }
            | Request::Accept { reply, .. }
            | Request::SaveActor { reply, .. }
            | Request::SetRunning { reply, .. }
            | Request::Import { reply, .. }
            | Request::Sync { reply } => reply,
        });
        match result {
            Ok(Committed {
                outcomes,
                mut counts,
            }) => {
                counts.synced = sync;
                self.shared.counters.add(&counts);
                if sync {
                    self.unsynced_since = None;
                } else if self.unsynced_since.is_none() {
                    self.unsynced_since = Some(Instant::now());
                }
                for (reply, outcome) in replies.zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                tracing::error!("chain batch not stored: {error}");
                let error = Arc::new(error);
                for reply in replies {
                    let _ = reply.send(Err(WriteError::Batch(error.clone())));
                }
            }
        }
    }
}
