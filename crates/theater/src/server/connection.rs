//! One client connection: handshake, then requests in order, with events
//! from its subscriptions and channels interleaved on the way out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec, LengthDelimitedCodecError};

use super::protocol::{self, ErrorBody, ErrorKind, MAX_FRAME_BYTES, PROTOCOL_VERSION};
use super::{HANDSHAKE_TIMEOUT, OUTBOX_CAPACITY, Shared};
use crate::actor::ActorEvent;
use crate::id::ActorId;
use crate::runtime::{ChannelEvent, ClientChannel};

/// How long a closing connection waits for its last frames to go out.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Bytes a closing connection reads and discards so that the close is a
/// clean FIN rather than a reset that could destroy its last error frame.
const DRAIN_LIMIT: usize = 1024 * 1024;
/// How often a subscription to one actor checks that the actor still runs.
const LIVENESS_CHECK: Duration = Duration::from_millis(500);

type Reader = FramedRead<OwnedReadHalf, LengthDelimitedCodec>;

/// Work started once a response is on its way, so that the response
/// precedes whatever the work sends.
pub(crate) enum After {
    Channel(ClientChannel),
    Subscription {
        id: u64,
        events: broadcast::Receiver<ActorEvent>,
        actor: Option<ActorId>,
    },
}

pub(crate) struct Connection {
    pub shared: Arc<Shared>,
    outbox: mpsc::Sender<Vec<u8>>,
    /// Channels this client opened, with the task forwarding their messages.
    pub channels: HashMap<String, JoinHandle<()>>,
    pub subscriptions: HashMap<u64, JoinHandle<()>>,
    pub next_subscription: u64,
    pub after: Vec<After>,
}

/// Serves one connection to its end.
pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let (read, write) = stream.into_split();
    let mut reader = FramedRead::new(read, protocol::codec());
    let (outbox, frames) = mpsc::channel(OUTBOX_CAPACITY);
    let writer = tokio::spawn(write_frames(
        FramedWrite::new(write, protocol::codec()),
        frames,
    ));
    let mut connection = Connection {
        shared,
        outbox,
        channels: HashMap::new(),
        subscriptions: HashMap::new(),
        next_subscription: 1,
        after: Vec::new(),
    };
    if connection.handshake(&mut reader).await {
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
}

/// Writes queued frames until every sender is gone or the client is;
/// hands back the socket's write half for a clean shutdown.
async fn write_frames(
    mut out: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    mut frames: mpsc::Receiver<Vec<u8>>,
) -> Option<OwnedWriteHalf> {
    while let Some(frame) = frames.recv().await {
        if let Err(e) = out.send(Bytes::from(frame)).await {
            tracing::debug!("writing to a client: {e}");
            return None;
        }
    }
    Some(out.into_inner())
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

/// Whether a read error is the codec refusing an oversized frame.
fn is_too_large(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>())
}

fn too_large() -> ErrorBody {
    ErrorBody::new(
        ErrorKind::FrameTooLarge,
        format!(
            "the frame is larger than the limit of {MAX_FRAME_BYTES} bytes; the connection is closed because the stream cannot be resynchronized"
        ),
    )
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell how much of a guess was right.
fn same_secret(given: &str, expected: &str) -> bool {
    let (given, expected) = (given.as_bytes(), expected.as_bytes());
    let mut diff = given.len() ^ expected.len();
    for (i, b) in expected.iter().enumerate() {
        diff |= usize::from(given.get(i).copied().unwrap_or(0) ^ b);
    }
    diff == 0
}

impl Connection {
    /// Queues a frame for the client; `false` once the client is gone.
    pub async fn send(&self, frame: Vec<u8>) -> bool {
        self.outbox.send(frame).await.is_ok()
    }

    async fn send_error(&self, id: Option<u64>, error: &ErrorBody) -> bool {
        self.send(protocol::error_frame(id, error)).await
    }

    /// Reads the `hello` and answers it; `false` closes the connection.
    async fn handshake(&mut self, reader: &mut Reader) -> bool {
        let frame = match tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.next()).await {
            Err(_) => {
                let error = ErrorBody::new(
                    ErrorKind::HandshakeRequired,
                    format!(
                        "no hello within {} s; send {{\"hello\": {{\"version\": {PROTOCOL_VERSION}}}}} first",
                        HANDSHAKE_TIMEOUT.as_secs()
                    ),
                );
                self.send_error(None, &error).await;
                return false;
            }
            Ok(None) => return false,
            Ok(Some(Err(e))) => {
                if is_too_large(&e) {
                    self.send_error(None, &too_large()).await;
                }
                return false;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let hello = match protocol::decode_hello(&frame) {
            Ok(hello) => hello,
            Err(error) => {
                self.send_error(None, &error).await;
                return false;
            }
        };
        if hello.version != PROTOCOL_VERSION {
            let error = ErrorBody::new(
                ErrorKind::UnsupportedVersion,
                format!(
                    "this server speaks protocol version {PROTOCOL_VERSION}, not {}; use a matching client",
                    hello.version
                ),
            );
            self.send_error(None, &error).await;
            return false;
        }
        if let Some(expected) = &self.shared.config.token {
            let accepted = hello
                .token
                .as_deref()
                .is_some_and(|given| same_secret(given, expected));
            if !accepted {
                tracing::warn!("refused a client with a wrong or missing token");
                let error = ErrorBody::new(
                    ErrorKind::Unauthorized,
                    "this server requires a token: pass the server's --token (or set THEATER_TOKEN)",
                );
                self.send_error(None, &error).await;
                return false;
            }
        }
        tracing::debug!(
            client = hello.client.as_deref().unwrap_or("unnamed"),
            "client connected"
        );
        let answer = json!({
            "hello": {
                "version": PROTOCOL_VERSION,
                "server": format!("theater {}", env!("CARGO_PKG_VERSION")),
                "max_frame_bytes": MAX_FRAME_BYTES,
            }
        });
        self.send(serde_json::to_vec(&answer).expect("JSON values serialize"))
            .await
    }

    /// Answers requests, one at a time and in order, until the client
    /// leaves or must be closed.
    async fn requests(&mut self, reader: &mut Reader) {
        loop {
            let frame = tokio::select! {
                frame = reader.next() => frame,
                () = self.outbox.closed() => return,
            };
            let frame = match frame {
                None => return,
                Some(Err(e)) => {
                    if is_too_large(&e) {
                        self.send_error(None, &too_large()).await;
                    } else {
                        tracing::debug!("reading from a client: {e}");
                    }
                    return;
                }
                Some(Ok(frame)) => frame,
            };
            let response = match protocol::decode_request(&frame) {
                Err(bad) => protocol::error_frame(bad.id, &bad.error),
                Ok(request) => {
                    let id = request.id;
                    let result = self.handle(request.op).await;
                    let frame = match result {
                        Ok(value) => protocol::ok_frame(id, value),
                        Err(error) => protocol::error_frame(Some(id), &error),
                    };
                    if frame.len() > MAX_FRAME_BYTES {
                        let error = ErrorBody::new(
                            ErrorKind::BadRequest,
                            format!(
                                "the answer would be {} bytes, over the frame limit of {MAX_FRAME_BYTES}; ask for less (e.g. `limit` on events)",
                                frame.len()
                            ),
                        );
                        self.after.clear();
                        protocol::error_frame(Some(id), &error)
                    } else {
                        frame
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
                let runtime = self.shared.runtime.clone();
                let task = tokio::spawn(async move {
                    forward_events(outbox, id, events, actor, move |actor| {
                        runtime.actor(actor).is_ok()
                    })
                    .await;
                });
                self.subscriptions.insert(id, task);
            }
        }
    }

    /// Ends everything the connection owns: its subscriptions stop and its
    /// channels close, so the actors at their other ends hear of it.
    fn close(&mut self) {
        for (_, task) in self.subscriptions.drain() {
            task.abort();
        }
        for (channel, task) in self.channels.drain() {
            task.abort();
            let _ = self.shared.runtime.close_channel(None, &channel);
        }
        for after in self.after.drain(..) {
            if let After::Channel(channel) = after {
                let _ = self.shared.runtime.close_channel(None, &channel.id);
            }
        }
    }
}

async fn forward_channel(outbox: mpsc::Sender<Vec<u8>>, mut channel: ClientChannel) {
    while let Some(event) = channel.events.recv().await {
        let frame = match event {
            ChannelEvent::Message(bytes) => {
                let mut fields = serde_json::Map::new();
                fields.insert("channel".into(), channel.id.clone().into());
                protocol::put_bytes(&mut fields, "message", Some(&bytes));
                protocol::event_frame("channel_message", Value::Object(fields))
            }
            ChannelEvent::Closed => {
                let frame =
                    protocol::event_frame("channel_closed", json!({ "channel": channel.id }));
                let _ = outbox.send(frame).await;
                return;
            }
        };
        if outbox.send(frame).await.is_err() {
            return;
        }
    }
}

async fn forward_events(
    outbox: mpsc::Sender<Vec<u8>>,
    subscription: u64,
    mut events: broadcast::Receiver<ActorEvent>,
    actor: Option<ActorId>,
    is_running: impl Fn(ActorId) -> bool,
) {
    let mut check = tokio::time::interval(LIVENESS_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let frame = tokio::select! {
            biased;
            event = events.recv() => match event {
                Ok(event) => {
                    if actor.is_some_and(|wanted| wanted != event.actor) {
                        continue;
                    }
                    protocol::event_frame(
                        "chain",
                        json!({
                            "subscription": subscription,
                            "actor": event.actor.to_string(),
                            "chain_event": &*event.event,
                        }),
                    )
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => protocol::event_frame(
                    "lagged",
                    json!({ "subscription": subscription, "missed": missed }),
                ),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = check.tick(), if actor.is_some() => {
                let actor = actor.expect("checked by the guard");
                if is_running(actor) {
                    continue;
                }
                let frame = protocol::event_frame(
                    "actor_stopped",
                    json!({ "subscription": subscription, "actor": actor.to_string() }),
                );
                let _ = outbox.send(frame).await;
                return;
            }
        };
        if outbox.send(frame).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cre", "s3cret"));
        assert!(!same_secret("s3cretx", "s3cret"));
        assert!(!same_secret("", "s3cret"));
        assert!(!same_secret("S3cret", "s3cret"));
    }
}
