//! Messages to actors on other nodes, management operations for them and
//! supervision across nodes, over core NATS request and reply. Each node
//! listens on `theater.node.<name>.messages`, `….operations` and
//! `….supervision`; a message goes to the node that owns its target,
//! whose answer is the send's acceptance or the request's reply.
//!
//! What a message says of itself travels in headers and its bytes are
//! the payload, untouched. Everything read here comes from the network
//! and is checked: ids must be tokens, numbers numbers, and the list of
//! waits is bounded.

use std::time::Duration;

use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use futures::StreamExt;

use super::{Cluster, ClusterError, actor_token};

/// Most "who waits on whom" pairs one message carries.
pub const MAX_WAITS: usize = 64;
/// How long a send waits for the target's node to accept it.
const SEND_WAIT: Duration = Duration::from_secs(10);
/// How much longer than its own timeout a request waits for the target's
/// node, so that the node's answer (a reply or its timeout) comes first.
const ANSWER_MARGIN: Duration = Duration::from_secs(1);
const MESSAGES: &str = "messages";
const OPERATIONS: &str = "operations";
const SUPERVISION: &str = "supervision";

const DELIVERY: &str = "Theater-Delivery";
const TIMEOUT_MS: &str = "Theater-Timeout-Ms";
const CHANNEL: &str = "Theater-Channel";
const NODE: &str = "Theater-Node";
const FROM: &str = "Theater-From";
const TO: &str = "Theater-To";
const WAITS: &str = "Theater-Waits";
const REFUSED: &str = "Theater-Refused";

/// What a message asks of the actor it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Accept it for `handle-send`.
    Send,
    /// Call `handle-request` and answer its reply within `timeout`.
    Request { timeout: Duration },
    /// Open `channel` with the message as its first: the actor's
    /// acceptance (see [`write_acceptance`]) within `timeout`.
    Open { channel: String, timeout: Duration },
    /// A message on `channel`.
    OnChannel { channel: String },
    /// `channel` was closed at the sender's end.
    Close { channel: String },
}

impl Delivery {
    /// How long the sender waits for the target's node.
    fn wait(&self) -> Duration {
        match self {
            Self::Request { timeout } | Self::Open { timeout, .. } => *timeout + ANSWER_MARGIN,
            Self::Send | Self::OnChannel { .. } | Self::Close { .. } => SEND_WAIT,
        }
    }
}

/// A message for an actor on another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub delivery: Delivery,
    /// The sender's node (set by [`Cluster::deliver`]).
    pub node: String,
    /// The sending actor; `None` for a client outside any runtime.
    pub from: Option<String>,
    /// The actor it is for; `None` for a client of the target node (the
    /// end of a channel).
    pub to: Option<String>,
    /// Who waits on whom, upstream of `from` (waiter, awaited): the target's
    /// node refuses a request that would close a cycle across nodes.
    pub waits: Vec<(String, String)>,
    pub message: Bytes,
}

/// Why the target's node did not do what a message asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The actor does not run on that node.
    NotHere,
    /// The request got no reply in its time.
    Timeout,
    /// The request would close a cycle of waits.
    Deadlock,
    /// The actor did not accept the channel; the message is its own.
    Rejected,
    /// Any other failure, said in the message.
    Failed,
}

impl Refusal {
    fn name(self) -> &'static str {
        match self {
            Self::NotHere => "not-here",
            Self::Timeout => "timeout",
            Self::Deadlock => "deadlock",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }

    fn parse(name: &str) -> Self {
        match name {
            "not-here" => Self::NotHere,
            "timeout" => Self::Timeout,
            "deadlock" => Self::Deadlock,
            "rejected" => Self::Rejected,
            _ => Self::Failed,
        }
    }
}

/// The target node's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Done: the request's reply, or nothing for a send.
    Done(Bytes),
    Refused(Refusal, String),
}

/// A message that reached this node, and where its answer goes.
pub struct Incoming {
    /// The message, or why it could not be read.
    pub envelope: Result<Envelope, String>,
    pub reply: ReplyTo,
}

/// Where the answer to a message goes.
pub struct ReplyTo {
    reply: Option<Subject>,
    client: async_nats::Client,
}

impl ReplyTo {
    /// Sends `answer` back; a sender that gave up meanwhile is not told.
    pub async fn answer(self, answer: Answer) {
        let Some(reply) = self.reply else { return };
        let (headers, payload) = match answer {
            Answer::Done(bytes) => (HeaderMap::new(), bytes),
            Answer::Refused(why, message) => {
                let mut headers = HeaderMap::new();
                headers.insert(REFUSED, why.name());
                (headers, Bytes::from(message))
            }
        };
        if let Err(e) = self
            .client
            .publish_with_headers(reply, headers, payload)
            .await
        {
            tracing::debug!("answering a message from another node: {e}");
        }
    }
}

/// What other nodes ask of this node on one subject.
pub struct Listener {
    subscriber: async_nats::Subscriber,
    client: async_nats::Client,
}

impl Listener {
    /// The next request, and where its answer goes; `None` once the
    /// connection is closed for good.
    async fn next_message(&mut self) -> Option<(async_nats::Message, ReplyTo)> {
        let mut message = self.subscriber.next().await?;
        let reply = ReplyTo {
            reply: message.reply.take(),
            client: self.client.clone(),
        };
        Some((message, reply))
    }

    /// The next forwarded operation's bytes, and where its answer goes.
    pub async fn next(&mut self) -> Option<(Bytes, ReplyTo)> {
        let (message, reply) = self.next_message().await?;
        Some((message.payload, reply))
    }
}

/// The messages other nodes send this node's actors.
pub struct Inbox(Listener);

impl Inbox {
    /// The next message; `None` once the connection is closed for good.
    pub async fn next(&mut self) -> Option<Incoming> {
        let (message, reply) = self.0.next_message().await?;
        Some(Incoming {
            envelope: read(message.headers.as_ref(), message.payload),
            reply,
        })
    }
}

impl Cluster {
    /// Starts listening for messages to this node's actors.
    pub async fn inbox(&self) -> Result<Inbox, ClusterError> {
        self.listen(MESSAGES).await.map(Inbox)
    }

    /// Starts listening for management operations other nodes forward.
    pub async fn operations(&self) -> Result<Listener, ClusterError> {
        self.listen(OPERATIONS).await
    }

    /// Starts listening for what nodes that run this node's actors'
    /// children, or their parents, tell it.
    pub async fn supervision(&self) -> Result<Listener, ClusterError> {
        self.listen(SUPERVISION).await
    }

    async fn listen(&self, topic: &str) -> Result<Listener, ClusterError> {
        let client = self.inner.client.clone();
        let subscriber = client
            .subscribe(subject(self.node(), topic))
            .await
            .map_err(|e| ClusterError::Unreachable {
                node: self.node().to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Listener { subscriber, client })
    }

    /// Sends `envelope` to `node`, from this node, and waits for its
    /// answer.
    pub async fn deliver(
        &self,
        node: &str,
        mut envelope: Envelope,
    ) -> Result<Answer, ClusterError> {
        let wait = envelope.delivery.wait();
        envelope.node = self.node().to_owned();
        let (headers, payload) = write(envelope);
        let reply = self.ask(node, MESSAGES, headers, payload, wait).await?;
        let refused = reply
            .headers
            .as_ref()
            .and_then(|h| h.get(REFUSED))
            .map(|why| Refusal::parse(why.as_str()));
        Ok(match refused {
            None => Answer::Done(reply.payload),
            Some(why) => Answer::Refused(why, String::from_utf8_lossy(&reply.payload).into_owned()),
        })
    }

    /// Hands a management operation to `node` and waits up to `wait` for
    /// its answer.
    pub async fn forward(
        &self,
        node: &str,
        operation: Bytes,
        wait: Duration,
    ) -> Result<Bytes, ClusterError> {
        let reply = self
            .ask(node, OPERATIONS, HeaderMap::new(), operation, wait)
            .await?;
        Ok(reply.payload)
    }

    /// Hands `node` a note about a parent or child it runs and waits up
    /// to `wait` for its answer.
    pub async fn supervise(
        &self,
        node: &str,
        note: Bytes,
        wait: Duration,
    ) -> Result<Bytes, ClusterError> {
        let reply = self
            .ask(node, SUPERVISION, HeaderMap::new(), note, wait)
            .await?;
        Ok(reply.payload)
    }

    async fn ask(
        &self,
        node: &str,
        topic: &str,
        headers: HeaderMap,
        payload: Bytes,
        wait: Duration,
    ) -> Result<async_nats::Message, ClusterError> {
        let request = async_nats::Request::new()
            .headers(headers)
            .payload(payload)
            .timeout(Some(wait));
        let unreachable = |reason: String| ClusterError::Unreachable {
            node: node.to_owned(),
            reason,
        };
        self.inner
            .client
            .send_request(subject(node, topic), request)
            .await
            .map_err(|e| match e.kind() {
                async_nats::RequestErrorKind::NoResponders => {
                    unreachable("it is not listening (gone, or not started yet)".into())
                }
                async_nats::RequestErrorKind::TimedOut => {
                    unreachable(format!("no answer within {} ms", wait.as_millis()))
                }
                _ => unreachable(e.to_string()),
            })
    }
}

/// The subject `node` listens on for `topic`.
fn subject(node: &str, topic: &str) -> String {
    format!("theater.node.{node}.{topic}")
}

fn write(envelope: Envelope) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    let (name, timeout, channel) = match &envelope.delivery {
        Delivery::Send => ("send", None, None),
        Delivery::Request { timeout } => ("request", Some(timeout), None),
        Delivery::Open { channel, timeout } => ("open", Some(timeout), Some(channel)),
        Delivery::OnChannel { channel } => ("on-channel", None, Some(channel)),
        Delivery::Close { channel } => ("close", None, Some(channel)),
    };
    headers.insert(DELIVERY, name);
    if let Some(timeout) = timeout {
        headers.insert(TIMEOUT_MS, timeout.as_millis().to_string().as_str());
    }
    if let Some(channel) = channel {
        headers.insert(CHANNEL, channel.as_str());
    }
    headers.insert(NODE, envelope.node.as_str());
    if let Some(from) = &envelope.from {
        headers.insert(FROM, from.as_str());
    }
    if let Some(to) = &envelope.to {
        headers.insert(TO, to.as_str());
    }
    if !envelope.waits.is_empty() {
        let waits: Vec<String> = envelope
            .waits
            .iter()
            .map(|(waiter, awaited)| format!("{waiter}>{awaited}"))
            .collect();
        headers.insert(WAITS, waits.join(" ").as_str());
    }
    (headers, envelope.message)
}

fn read(headers: Option<&HeaderMap>, message: Bytes) -> Result<Envelope, String> {
    let headers = headers.ok_or("a message with no headers")?;
    let header = |name: &str| headers.get(name).map(|v| v.as_str());
    let token = |text: &str| {
        actor_token(text)
            .map(str::to_owned)
            .map_err(|e| e.to_string())
    };
    let timeout = || {
        header(TIMEOUT_MS)
            .and_then(|ms| ms.parse::<u64>().ok())
            .map(Duration::from_millis)
            .ok_or("a request with no timeout")
    };
    let channel = || token(header(CHANNEL).ok_or("no channel named")?);
    let delivery = match header(DELIVERY) {
        Some("send") => Delivery::Send,
        Some("request") => Delivery::Request {
            timeout: timeout()?,
        },
        Some("open") => Delivery::Open {
            channel: channel()?,
            timeout: timeout()?,
        },
        Some("on-channel") => Delivery::OnChannel {
            channel: channel()?,
        },
        Some("close") => Delivery::Close {
            channel: channel()?,
        },
        other => return Err(format!("unknown delivery {other:?}")),
    };
    let node = token(header(NODE).ok_or("a message with no sending node")?)?;
    let from = header(FROM).map(token).transpose()?;
    let to = header(TO).map(token).transpose()?;
    let mut waits = Vec::new();
    for pair in header(WAITS).unwrap_or_default().split_whitespace() {
        if waits.len() == MAX_WAITS {
            return Err(format!("more than {MAX_WAITS} waits"));
        }
        let (waiter, awaited) = pair.split_once('>').ok_or("a wait is not `a>b`")?;
        waits.push((token(waiter)?, token(awaited)?));
    }
    Ok(Envelope {
        delivery,
        node,
        from,
        to,
        waits,
        message,
    })
}

/// An actor's acceptance of a channel, as the answer to [`Delivery::Open`]
/// carries it: whether it sent a message back, then the message.
pub fn write_acceptance(message: Option<&[u8]>) -> Bytes {
    match message {
        None => Bytes::from_static(&[0]),
        Some(message) => [&[1], message].concat().into(),
    }
}

/// The acceptance message [`write_acceptance`] wrote.
pub fn read_acceptance(bytes: &[u8]) -> Result<Option<Vec<u8>>, String> {
    match bytes.split_first() {
        Some((0, [])) => Ok(None),
        Some((1, message)) => Ok(Some(message.to_vec())),
        _ => Err("an unreadable acceptance".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_reads_back_as_written() {
        let envelope = Envelope {
            delivery: Delivery::Request {
                timeout: Duration::from_millis(1500),
            },
            node: "n1".into(),
            from: Some("a".into()),
            to: Some("b".into()),
            waits: vec![("x".into(), "a".into()), ("y".into(), "x".into())],
            message: Bytes::from_static(b"\0any bytes\xff"),
        };
        let (headers, payload) = write(envelope.clone());
        assert_eq!(read(Some(&headers), payload), Ok(envelope.clone()));
        let deliveries = [
            Delivery::Send,
            Delivery::Open {
                channel: "c-1".into(),
                timeout: Duration::from_secs(2),
            },
            Delivery::OnChannel {
                channel: "c-1".into(),
            },
            Delivery::Close {
                channel: "c-1".into(),
            },
        ];
        for delivery in deliveries {
            let envelope = Envelope {
                delivery,
                ..envelope.clone()
            };
            let (headers, payload) = write(envelope.clone());
            assert_eq!(read(Some(&headers), payload), Ok(envelope));
        }
    }

    #[test]
    fn an_acceptance_reads_back_as_written() {
        for message in [None, Some(&b""[..]), Some(b"\x00hello")] {
            let bytes = write_acceptance(message);
            assert_eq!(read_acceptance(&bytes), Ok(message.map(<[u8]>::to_vec)));
        }
        assert!(read_acceptance(b"").is_err());
        assert!(read_acceptance(b"\x00junk").is_err());
        assert!(read_acceptance(b"\x07").is_err());
    }

    #[test]
    fn a_hostile_envelope_is_refused() {
        let with = |pairs: &[(&str, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, *value);
            }
            read(Some(&headers), Bytes::new())
        };
        assert!(read(None, Bytes::new()).is_err());
        let n = (NODE, "n1");
        assert!(with(&[n, (DELIVERY, "eat"), (TO, "b")]).is_err());
        assert!(with(&[n, (DELIVERY, "request"), (TO, "b")]).is_err());
        assert!(with(&[n, (DELIVERY, "open"), (TIMEOUT_MS, "5"), (TO, "b")]).is_err());
        assert!(with(&[n, (DELIVERY, "close"), (CHANNEL, "x y"), (TO, "b")]).is_err());
        assert!(with(&[n, (DELIVERY, "send"), (TO, "b.c")]).is_err());
        assert!(with(&[n, (DELIVERY, "send"), (TO, "b"), (WAITS, "a-b")]).is_err());
        let many = vec!["a>b"; MAX_WAITS + 1].join(" ");
        assert!(with(&[n, (DELIVERY, "send"), (TO, "b"), (WAITS, many.as_str())]).is_err());
        assert!(with(&[(DELIVERY, "send"), (TO, "b")]).is_err(), "no node");
        assert!(with(&[(NODE, "n.1"), (DELIVERY, "send"), (TO, "b")]).is_err());
        assert!(with(&[n, (DELIVERY, "send"), (TO, "b")]).is_ok());
        assert!(with(&[n, (DELIVERY, "send")]).is_ok(), "for a client");
    }
}
