//! One client connection: the `hello`, then requests in order, with events
//! from its subscriptions and channels interleaved on the way out.
//!
//! Until its `hello` is accepted a connection holds only an unauthenticated
//! seat (which a newcomer may take, closing it), may send one small frame,
//! and has a few seconds to do so. Once accepted it holds a seat of an
//! authenticated client and may send frames up to the protocol's limit.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Buf;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OwnedSemaphorePermit, broadcast, mpsc};
use tokio::task::JoinHandle;

use super::budget::{Charge, ConnectionBudget};
use super::frames::{FrameReader, ReadError};
use super::protocol::events::{
    ActorStopped, ChainNotice, ChannelEnded, ChannelMessage, ChannelMessageTooLarge, Lagged,
};
use super::protocol::{
    self, ActorBytes, ErrorBody, ErrorKind, Event, MAX_FRAME_BYTES, PROTOCOL_VERSION, Welcome,
    WelcomeFrame,
};
use super::{OUTBOX_CAPACITY, Shared};
use crate::actor::ActorEvent;
use crate::admission::{Seat, same_secret};
use crate::cluster::{Cluster, ClusterError, Follower};
use crate::host::messaging::{ChannelEvent, ClientChannel};
use crate::id::ActorId;
use crate::runtime::TheaterRuntime;
use crate::storage::Replicated;

/// How long a closing connection waits for its last frames to go out.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Bytes a closing connection reads and discards so that the close is a
/// clean FIN rather than a reset that could destroy its last error frame.
const DRAIN_LIMIT: usize = 1024 * 1024;
/// How long a connection whose seat a newcomer took may still finish a
/// `hello` already on its way.
const EVICTION_GRACE: Duration = Duration::from_millis(100);
/// How often a subscription to one actor checks that the actor still runs.
const LIVENESS_CHECK: Duration = Duration::from_millis(500);

/// Work started once a response is on its way, so that the response
/// precedes whatever the work sends.
pub(crate) enum After {
    Channel(ClientChannel),
    Subscription {
        id: u64,
        events: Events,
        actor: Option<ActorId>,
    },
}

/// Where a subscription's chain events come from.
pub(crate) enum Events {
    /// This node's actors, live.
    Here {
        events: broadcast::Receiver<ActorEvent>,
        runtime: TheaterRuntime,
    },
    /// In a cluster, one actor's replicated chain, followed wherever the
    /// actor runs: across migrations and failovers, until it stops.
    Replicated {
        actor: ActorId,
        chain: Box<Follower>,
        cluster: Cluster,
    },
}

/// [`Events`] as a subscription's task reads them.
enum Live {
    Here {
        events: broadcast::Receiver<ActorEvent>,
        runtime: TheaterRuntime,
    },
    Replicated {
        actor: ActorId,
        chain: BoxStream<'static, Result<bytes::Bytes, ClusterError>>,
        cluster: Cluster,
    },
}

impl Live {
    async fn start(events: Events) -> Result<Self, ClusterError> {
        Ok(match events {
            Events::Here { events, runtime } => Self::Here { events, runtime },
            Events::Replicated {
                actor,
                chain,
                cluster,
            } => Self::Replicated {
                actor,
                chain: chain.events().await?,
                cluster,
            },
        })
    }

    /// The next event, or how many were missed; `None` once there are no
    /// more.
    async fn next(&mut self) -> Option<Result<ActorEvent, u64>> {
        match self {
            Self::Here { events, .. } => match events.recv().await {
                Ok(event) => Some(Ok(event)),
                Err(broadcast::error::RecvError::Lagged(missed)) => Some(Err(missed)),
                Err(broadcast::error::RecvError::Closed) => None,
            },
            Self::Replicated { actor, chain, .. } => loop {
                match chain.next().await? {
                    Ok(bytes) => {
                        return Some(match Replicated::decode(&bytes) {
                            Ok(entry) => Ok(ActorEvent {
                                actor: *actor,
                                event: Arc::new(entry.event),
                            }),
                            Err(_) => Err(1),
                        });
                    }
                    // The consumer takes up again where it was by itself.
                    Err(e) => tracing::debug!(%actor, "following a replicated chain: {e}"),
                }
            },
        }
    }

    /// Whether `actor` still runs (here, or anywhere in the cluster).
    fn runs(&self, actor: ActorId) -> impl Future<Output = bool> + Send + 'static {
        let cluster = match self {
            Self::Here { runtime, .. } => Err(runtime.actor(actor).is_ok()),
            Self::Replicated { cluster, .. } => Ok(cluster.clone()),
        };
        async move {
            match cluster {
                Err(here) => here,
                Ok(cluster) => !matches!(cluster.owner(&actor.to_string()).await, Ok(None)),
            }
        }
    }
}

pub(crate) struct Connection {
    pub shared: Arc<Shared>,
    outbox: Outbox,
    /// Channels this client opened, with the task forwarding their messages.
    pub channels: HashMap<String, JoinHandle<()>>,
    pub subscriptions: HashMap<u64, JoinHandle<()>>,
    pub next_subscription: u64,
    pub after: Vec<After>,
    /// Whether its operations come from another node of the cluster:
    /// they run here, and are never forwarded again.
    pub forwarded: bool,
}

/// A frame on its way to the client, holding its bytes of the budget.
struct Outgoing {
    bytes: Vec<u8>,
    _charge: Charge,
}

/// Where frames for the client queue, in order.
#[derive(Clone)]
struct Outbox {
    frames: mpsc::Sender<Outgoing>,
    budget: ConnectionBudget,
}

impl Outbox {
    /// Queues a frame once the budget has room for it; `false` once the
    /// client is gone. Frames over the protocol's limit are not sent (the
    /// client could not read them): callers check [`fits`] and send
    /// something smaller instead.
    async fn send(&self, bytes: Vec<u8>) -> bool {
        if !fits(&bytes) {
            tracing::warn!(
                bytes = bytes.len(),
                "a frame over the protocol limit was not sent"
            );
            return true;
        }
        let charge = self.budget.charge(bytes.len()).await;
        let frame = Outgoing {
            bytes,
            _charge: charge,
        };
        self.frames.send(frame).await.is_ok()
    }
}

/// Whether a frame is within the protocol's limit.
fn fits(frame: &[u8]) -> bool {
    frame.len() <= MAX_FRAME_BYTES
}

/// Serves one connection to its end; `seat` is its place among the
/// connections still in their `hello`.
pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream, seat: Seat) {
    let (read, write) = stream.into_split();
    let budget = shared.budget.connection();
    let timeout = shared.config.limits.frame_timeout;
    let mut reader = FrameReader::new(read, budget.clone(), timeout);
    let welcomed = tokio::select! {
        biased;
        () = seat.evicted() => None,
        welcomed = welcome(&shared, &mut reader) => Some(welcomed),
    };
    let welcomed = match welcomed {
        Some(welcomed) => welcomed,
        // A newcomer took the seat before this task ran. In a burst of
        // clients from one address the hello may be here already: only a
        // connection that stays silent is closed.
        None => match tokio::time::timeout(EVICTION_GRACE, welcome(&shared, &mut reader)).await {
            Ok(welcomed) => welcomed,
            Err(_) => {
                bump_out(&shared, &write);
                return;
            }
        },
    };
    let (permit, client) = match welcomed {
        Ok(welcomed) => welcomed,
        Err(refusal) => {
            tokio::select! {
                // It is on its way out already; the newcomer need not wait.
                () = seat.evicted() => {}
                () = farewell(write, reader, refusal) => {}
            }
            return;
        }
    };
    drop(seat);
    tracing::debug!(client, "client connected");
    serve_authenticated(shared, reader, write, budget, permit).await;
}

/// Reads the `hello` and checks it; on success, the seat of an
/// authenticated client and the client's name. `Err(None)` when the client
/// left without a word.
async fn welcome(
    shared: &Shared,
    reader: &mut FrameReader,
) -> Result<(OwnedSemaphorePermit, String), Option<ErrorBody>> {
    let limits = &shared.config.limits;
    let too_slow = || {
        ErrorBody::new(
            ErrorKind::HandshakeRequired,
            format!(
                "no hello within {} ms; send {{\"hello\": {{\"version\": {PROTOCOL_VERSION}}}}} as soon as the connection opens",
                limits.hello_timeout.as_millis()
            ),
        )
    };
    let frame = match tokio::time::timeout(
        limits.hello_timeout,
        reader.next(limits.max_hello_bytes),
    )
    .await
    {
        Err(_) | Ok(Err(ReadError::Stalled)) => return Err(Some(too_slow())),
        Ok(Err(ReadError::TooLarge { announced, limit })) => {
            let error = ErrorBody::new(
                ErrorKind::FrameTooLarge,
                format!(
                    "the hello announces {announced} bytes, over the limit of {limit} for a hello; larger frames are for clients that have said hello"
                ),
            );
            return Err(Some(error));
        }
        Ok(Err(ReadError::Closed | ReadError::Io(_))) => return Err(None),
        Ok(Ok(frame)) => frame,
    };
    let hello = protocol::decode_hello(&frame.bytes).map_err(Some)?;
    if hello.version != PROTOCOL_VERSION {
        return Err(Some(ErrorBody::new(
            ErrorKind::UnsupportedVersion,
            format!(
                "this server speaks protocol version {PROTOCOL_VERSION}, not {}; use a matching client",
                hello.version
            ),
        )));
    }
    if let Some(expected) = &shared.config.token {
        let accepted = hello
            .token
            .as_deref()
            .is_some_and(|given| same_secret(given, expected));
        if !accepted {
            if let Some(refused) = now_and_then(&shared.unauthorized) {
                tracing::warn!(refused, "refused a client with a wrong or missing token");
            }
            return Err(Some(ErrorBody::new(
                ErrorKind::Unauthorized,
                "this server requires a token: pass the server's --token (or set THEATER_TOKEN)",
            )));
        }
    }
    let Ok(permit) = shared.authenticated.clone().try_acquire_owned() else {
        let most = limits.max_connections;
        return Err(Some(ErrorBody::new(
            ErrorKind::TooManyConnections,
            format!(
                "the server already serves {most} clients, its most (`--max-connections`); retry later"
            ),
        )));
    };
    let client = hello.client.unwrap_or_else(|| "unnamed".into());
    Ok((permit, client))
}

/// Closes a connection whose seat a newcomer took, telling it why if its
/// socket takes the frame at once: no waiting on a connection that lost
/// its place.
fn bump_out(shared: &Shared, write: &OwnedWriteHalf) {
    if let Some(bumped) = now_and_then(&shared.bumped) {
        tracing::warn!(
            bumped,
            "closed a connection that had not said hello to make room for a newer one; a peer may be flooding the server"
        );
    }
    let error = ErrorBody::new(
        ErrorKind::TooManyConnections,
        "closed to make room for newer connections: send the hello as soon as the connection opens",
    );
    let frame = protocol::frame(&protocol::error_frame(None, &error));
    let _ = write.as_ref().try_write(&frame);
}

/// Counts one more; the count when it is the first or a thousandth, so
/// that a flood makes a few log lines, not one per connection.
fn now_and_then(counter: &AtomicU64) -> Option<u64> {
    let count = counter.fetch_add(1, Ordering::Relaxed) + 1;
    (count == 1 || count.is_multiple_of(1000)).then_some(count)
}

/// Tells a refused client why, then closes cleanly, within [`CLOSE_GRACE`].
async fn farewell(mut write: OwnedWriteHalf, reader: FrameReader, refusal: Option<ErrorBody>) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if let Some(error) = refusal {
            let frame = protocol::frame(&protocol::error_frame(None, &error));
            let _ = write.write_all(&frame).await;
        }
        let _ = write.shutdown().await;
        drain(reader.into_inner()).await;
    })
    .await;
}

async fn serve_authenticated(
    shared: Arc<Shared>,
    mut reader: FrameReader,
    write: OwnedWriteHalf,
    budget: ConnectionBudget,
    permit: OwnedSemaphorePermit,
) {
    let (frames, queued) = mpsc::channel(OUTBOX_CAPACITY);
    let timeout = shared.config.limits.frame_timeout;
    let writer = tokio::spawn(write_frames(write, queued, timeout));
    let mut connection = Connection::new(shared, Outbox { frames, budget }, false);
    let welcome = WelcomeFrame {
        hello: Welcome::of_this_server(),
    };
    if connection.send(protocol::to_wire(&welcome)).await {
        connection.requests(&mut reader).await;
    }
    connection.close();
    drop(connection);
    // Every sender is gone now (the forwarding tasks were aborted), so the
    // writer flushes what is queued and ends.
    if let Ok(Ok(Some(mut write))) = tokio::time::timeout(CLOSE_GRACE, writer).await {
        let _ = write.shutdown().await;
        drain(reader.into_inner()).await;
    }
    drop(permit);
}

impl Connection {
    fn new(shared: Arc<Shared>, outbox: Outbox, forwarded: bool) -> Self {
        Self {
            shared,
            outbox,
            channels: HashMap::new(),
            subscriptions: HashMap::new(),
            next_subscription: 1,
            after: Vec::new(),
            forwarded,
        }
    }

    /// A connection with no client, for the operations another node of
    /// the cluster forwards: their answers are returned, and nothing else
    /// is sent anywhere.
    pub(crate) fn forwarded(shared: Arc<Shared>) -> Self {
        let budget = shared.budget.connection();
        let (frames, _) = mpsc::channel(1);
        Self::new(shared, Outbox { frames, budget }, true)
    }
}

/// Writes queued frames until every sender is gone or the client is, each
/// within `timeout`; hands back the socket's write half for a clean
/// shutdown.
async fn write_frames(
    mut write: OwnedWriteHalf,
    mut frames: mpsc::Receiver<Outgoing>,
    timeout: Duration,
) -> Option<OwnedWriteHalf> {
    while let Some(frame) = frames.recv().await {
        let prefix = (frame.bytes.len() as u32).to_be_bytes();
        let mut whole = Buf::chain(&prefix[..], frame.bytes.as_slice());
        match tokio::time::timeout(timeout, write.write_all_buf(&mut whole)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!("writing to a client: {e}");
                return None;
            }
            Err(_) => {
                tracing::debug!(
                    "a client took no frame for {} s; closing it",
                    timeout.as_secs()
                );
                return None;
            }
        }
    }
    Some(write)
}

/// Reads and discards what the client still sends, for a bounded time and
/// amount, until it closes its side.
async fn drain(mut read: OwnedReadHalf) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0;
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while total < DRAIN_LIMIT {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

impl Connection {
    /// Queues a frame for the client; `false` once the client is gone.
    pub async fn send(&self, frame: Vec<u8>) -> bool {
        self.outbox.send(frame).await
    }

    /// Answers requests, one at a time and in order, until the client
    /// leaves or must be closed.
    async fn requests(&mut self, reader: &mut FrameReader) {
        loop {
            let frame = tokio::select! {
                frame = reader.next(MAX_FRAME_BYTES) => frame,
                () = self.outbox.frames.closed() => return,
            };
            let frame = match frame {
                Ok(frame) => frame,
                Err(ReadError::TooLarge { announced, limit }) => {
                    let error = ErrorBody::new(
                        ErrorKind::FrameTooLarge,
                        format!(
                            "the frame announces {announced} bytes, over the limit of {limit}; the connection is closed because the stream cannot be resynchronized"
                        ),
                    );
                    self.send(protocol::error_frame(None, &error)).await;
                    return;
                }
                Err(ReadError::Stalled) => {
                    let timeout = self.shared.config.limits.frame_timeout;
                    let error = ErrorBody::new(
                        ErrorKind::BadFrame,
                        format!(
                            "a frame began but did not arrive whole within {} s; the connection is closed",
                            timeout.as_secs()
                        ),
                    );
                    self.send(protocol::error_frame(None, &error)).await;
                    return;
                }
                Err(ReadError::Closed) => return,
                Err(ReadError::Io(e)) => {
                    tracing::debug!("reading from a client: {e}");
                    return;
                }
            };
            let request = protocol::decode_request(&frame.bytes);
            // The frame's bytes go back to the budget before the work starts.
            drop(frame);
            let response = match request {
                Err(bad) => protocol::error_frame(bad.id, &bad.error),
                Ok(request) => {
                    let id = request.id;
                    let op = request.op.name();
                    let result = self.handle(request.op).await;
                    let metrics = self.shared.runtime.metrics();
                    metrics.management_request(op, result.is_ok());
                    let frame = match result {
                        Ok(answer) => protocol::ok_frame(id, &answer),
                        Err(error) => protocol::error_frame(Some(id), &error),
                    };
                    if fits(&frame) {
                        frame
                    } else {
                        let error = ErrorBody::new(
                            ErrorKind::BadRequest,
                            format!(
                                "the answer would be {} bytes, over the frame limit of {MAX_FRAME_BYTES}; ask for less (e.g. `limit` on events)",
                                frame.len()
                            ),
                        );
                        self.after.clear();
                        protocol::error_frame(Some(id), &error)
                    }
                }
            };
            if !self.send(response).await {
                return;
            }
            for after in std::mem::take(&mut self.after) {
                self.start(after);
            }
        }
    }

    /// Starts forwarding a channel's messages or a subscription's events.
    fn start(&mut self, after: After) {
        let outbox = self.outbox.clone();
        match after {
            After::Channel(channel) => {
                let id = channel.id.clone();
                let task = tokio::spawn(forward_channel(outbox, channel));
                if let Some(old) = self.channels.insert(id, task) {
                    old.abort();
                }
            }
            After::Subscription { id, events, actor } => {
                let task = tokio::spawn(forward_events(outbox, id, events, actor));
                self.subscriptions.insert(id, task);
            }
        }
    }

    /// Ends everything the connection owns: its subscriptions stop and its
    /// channels close, so the actors at their other ends hear of it (an
    /// end on another node by a notice sent on its own).
    fn close(&mut self) {
        for (_, task) in self.subscriptions.drain() {
            task.abort();
        }
        let mut channels: Vec<String> = Vec::new();
        for (channel, task) in self.channels.drain() {
            task.abort();
            channels.push(channel);
        }
        for after in self.after.drain(..) {
            if let After::Channel(channel) = after {
                channels.push(channel.id);
            }
        }
        if !channels.is_empty() {
            let runtime = self.shared.runtime.clone();
            tokio::spawn(async move {
                for channel in channels {
                    let _ = runtime.close_channel(None, &channel).await;
                }
            });
        }
    }
}

async fn forward_channel(outbox: Outbox, mut channel: ClientChannel) {
    let id = channel.id.clone();
    while let Some(event) = channel.events.recv().await {
        let frame = match event {
            ChannelEvent::Message(bytes) => {
                let size = bytes.len();
                let message = Event::ChannelMessage(ChannelMessage {
                    channel: id.clone(),
                    message: ActorBytes::new(Some(bytes)),
                });
                let frame = protocol::event_frame(&message);
                if fits(&frame) {
                    frame
                } else {
                    protocol::event_frame(&Event::ChannelMessageTooLarge(ChannelMessageTooLarge {
                        channel: id.clone(),
                        bytes: size,
                    }))
                }
            }
            ChannelEvent::Closed => {
                let closed = Event::ChannelClosed(ChannelEnded { channel: id });
                outbox.send(protocol::event_frame(&closed)).await;
                return;
            }
        };
        if !outbox.send(frame).await {
            return;
        }
    }
}

async fn forward_events(outbox: Outbox, subscription: u64, events: Events, actor: Option<ActorId>) {
    let mut events = match Live::start(events).await {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(
                subscription,
                "cannot follow the actor's replicated chain: {e}"
            );
            return;
        }
    };
    let mut check = tokio::time::interval(LIVENESS_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let frame = tokio::select! {
            biased;
            event = events.next() => match event {
                Some(Ok(event)) => {
                    if actor.is_some_and(|wanted| wanted != event.actor) {
                        continue;
                    }
                    let notice = Event::Chain(ChainNotice {
                        subscription,
                        actor: event.actor,
                        chain_event: (*event.event).clone(),
                    });
                    let frame = protocol::event_frame(&notice);
                    // An event too large for a frame is one the client missed.
                    if fits(&frame) { frame } else { lagged(subscription, 1) }
                }
                Some(Err(missed)) => lagged(subscription, missed),
                None => return,
            },
            _ = check.tick(), if actor.is_some() => {
                let actor = actor.expect("checked by the guard");
                if events.runs(actor).await {
                    continue;
                }
                let stopped = Event::ActorStopped(ActorStopped { subscription, actor });
                outbox.send(protocol::event_frame(&stopped)).await;
                return;
            }
        };
        if !outbox.send(frame).await {
            return;
        }
    }
}

fn lagged(subscription: u64, missed: u64) -> Vec<u8> {
    protocol::event_frame(&Event::Lagged(Lagged {
        subscription,
        missed,
    }))
}
