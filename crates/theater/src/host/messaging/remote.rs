//! Sends and requests between actors on different nodes of a cluster.
//!
//! The sender's node finds the target's owner (in the cluster's placement
//! bucket, remembered afterwards) and hands it the message
//! ([`Cluster::deliver`]); the owner runs it as it would a local one and
//! answers. A request keeps its wait here too and carries the waits that
//! lead to its sender, so a cycle of requests across nodes is refused as
//! it is on one node, and its timeout holds on both sides.
//!
//! A channel between nodes is kept by both: each end's node knows the
//! other end as [`End::Remote`], and messages and the close go to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::{
    Channel, End, Messaging, Party, Sender, accept, accept_channel, ask, close, deliver_on_channel,
    peer,
};
use crate::actor::{ActorHandle, RuntimeServices, WeakRuntime};
use crate::cluster::{
    Answer, Cluster, ClusterError, Delivery, Envelope, Incoming, Refusal, read_acceptance,
    write_acceptance,
};
use crate::error::ActorError;
use crate::host::config::MAX_DURATION_MS;
use crate::id::ActorId;

/// Messages from other nodes this node serves at once; beyond, they are
/// refused at once. Guards the node against a flood from its peers.
pub const MAX_REMOTE_IN_FLIGHT: usize = 1024;
/// Owners remembered; the memory is cleared when full.
const MAX_REMEMBERED_OWNERS: usize = 100_000;
/// How long a message waits for an actor that is moving (see [`deliver`]).
const MOVE_WAIT: Duration = Duration::from_secs(5);
/// The first pause before looking for a moving actor again; each next one
/// doubles, up to [`LAST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const LAST_PAUSE: Duration = Duration::from_millis(500);

/// Which node owns which actor, as last found.
#[derive(Default)]
struct Owners(Mutex<HashMap<ActorId, String>>);

impl Owners {
    fn of(runtime: &dyn RuntimeServices) -> Arc<Self> {
        runtime.shared().get::<Self>()
    }

    fn remembered(&self, actor: ActorId) -> Option<String> {
        self.0.lock().expect("owners lock").get(&actor).cloned()
    }

    fn remember(&self, actor: ActorId, node: &str) {
        let mut owners = self.0.lock().expect("owners lock");
        if owners.len() >= MAX_REMEMBERED_OWNERS {
            owners.clear();
        }
        owners.insert(actor, node.to_owned());
    }

    fn forget(&self, actor: ActorId) {
        self.0.lock().expect("owners lock").remove(&actor);
    }
}

/// An envelope from this node (the cluster fills in its name).
fn envelope(delivery: Delivery, from: Sender, to: Sender, message: Vec<u8>) -> Envelope {
    Envelope {
        delivery,
        node: String::new(),
        from: from.map(|id| id.to_string()),
        to: to.map(|id| id.to_string()),
        waits: Vec::new(),
        message: message.into(),
    }
}

/// [`super::send`] to an actor that does not run here.
pub(super) async fn send(
    runtime: &dyn RuntimeServices,
    cluster: &Cluster,
    from: Sender,
    to: ActorId,
    message: Vec<u8>,
) -> Result<(), ActorError> {
    let envelope = envelope(Delivery::Send, from, Some(to), message);
    deliver(runtime, cluster, to, envelope).await.map(|_| ())
}

/// [`super::request`] to an actor that does not run here.
pub(super) async fn request(
    runtime: &dyn RuntimeServices,
    cluster: &Cluster,
    from: Sender,
    to: ActorId,
    message: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, ActorError> {
    let delivery = Delivery::Request { timeout };
    let (_, reply) = waiting(runtime, cluster, from, to, delivery, message).await?;
    Ok(reply.into())
}

/// [`super::open`] to an actor that does not run here, as `channel`: the
/// end on the other node, and the actor's message back, if any.
pub(super) async fn open(
    runtime: &dyn RuntimeServices,
    cluster: &Cluster,
    from: Sender,
    to: ActorId,
    channel: &str,
    initial: Vec<u8>,
    timeout: Duration,
) -> Result<(End, Option<Vec<u8>>), ActorError> {
    let delivery = Delivery::Open {
        channel: channel.to_owned(),
        timeout,
    };
    let (node, accepted) = waiting(runtime, cluster, from, to, delivery, initial).await?;
    let message = read_acceptance(&accepted).map_err(|why| ActorError::Remote {
        node: node.clone(),
        message: why,
    })?;
    let end = End::Remote {
        node,
        actor: Some(to),
    };
    Ok((end, message))
}

/// A delivery its sender waits on, as for a local request: the wait is
/// kept here as well (a request that comes back through this node to an
/// actor upstream is refused here), and the waits leading to `from` go
/// with it. The node that answered, and its answer.
async fn waiting(
    runtime: &dyn RuntimeServices,
    cluster: &Cluster,
    from: Sender,
    to: ActorId,
    delivery: Delivery,
    message: Vec<u8>,
) -> Result<(String, Bytes), ActorError> {
    let messaging = Messaging::of(runtime);
    let _wait = messaging.clone().wait_for(from, to)?;
    let waits = from
        .map(|from| messaging.upstream(from))
        .unwrap_or_default();
    let mut envelope = envelope(delivery, from, Some(to), message);
    envelope.waits = waits
        .iter()
        .map(|(waiter, awaited)| (waiter.to_string(), awaited.to_string()))
        .collect();
    deliver(runtime, cluster, to, envelope).await
}

/// A message on `channel` from `from` here to `to` on `node`.
pub(super) async fn on_channel(
    cluster: &Cluster,
    node: &str,
    from: Sender,
    to: Sender,
    channel: &str,
    message: Vec<u8>,
) -> Result<(), ActorError> {
    let delivery = Delivery::OnChannel {
        channel: channel.to_owned(),
    };
    let envelope = envelope(delivery, from, to, message);
    match cluster.deliver(node, envelope).await {
        Ok(Answer::Done(_)) => Ok(()),
        Ok(Answer::Refused(Refusal::NotHere, _)) => {
            Err(ActorError::UnknownChannel(channel.to_owned()))
        }
        Ok(Answer::Refused(_, why)) => Err(remote(node, why)),
        Err(e) => Err(remote(node, e.to_string())),
    }
}

/// Tells `to` on `node` that `from` closed `channel`; best effort.
pub(super) async fn closed(cluster: &Cluster, node: &str, from: Sender, to: Sender, channel: &str) {
    let delivery = Delivery::Close {
        channel: channel.to_owned(),
    };
    let envelope = envelope(delivery, from, to, Vec::new());
    match cluster.deliver(node, envelope).await {
        Ok(Answer::Done(_)) => {}
        Ok(Answer::Refused(_, why)) => {
            tracing::debug!("node `{node}` did not take the close of channel {channel}: {why}");
        }
        Err(e) => tracing::debug!("cannot tell node `{node}` of closed channel {channel}: {e}"),
    }
}

fn remote(node: &str, message: String) -> ActorError {
    ActorError::Remote {
        node: node.to_owned(),
        message,
    }
}

/// Hands `envelope` to `to`'s owner: the owner's name and its answer.
///
/// An actor that has an owner which does not run it, or whose owner does
/// not answer, is moving (a migration or a failover under way): the
/// message waits for it, looking its owner up again, for up to
/// [`MOVE_WAIT`] (or a request's own timeout, if shorter).
async fn deliver(
    runtime: &dyn RuntimeServices,
    cluster: &Cluster,
    to: ActorId,
    envelope: Envelope,
) -> Result<(String, Bytes), ActorError> {
    let wait = match envelope.delivery {
        Delivery::Request { timeout } | Delivery::Open { timeout, .. } => MOVE_WAIT.min(timeout),
        _ => MOVE_WAIT,
    };
    let deadline = tokio::time::Instant::now() + wait;
    let owners = Owners::of(runtime);
    let mut node = match owners.remembered(to) {
        Some(node) => node,
        None => find_owner(cluster, to).await?,
    };
    let mut pause = FIRST_PAUSE;
    loop {
        match deliver_to(cluster, &node, to, envelope.clone()).await {
            Ok(reply) => {
                owners.remember(to, &node);
                return Ok((node, reply));
            }
            Err(Delivered::Moving(_)) if tokio::time::Instant::now() + pause < deadline => {
                owners.forget(to);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LAST_PAUSE);
                node = find_owner(cluster, to).await?;
            }
            Err(Delivered::Moving(e) | Delivered::Failed(e)) => {
                owners.forget(to);
                return Err(e);
            }
        }
    }
}

/// The node that owns `to` (perhaps this one, while it moves here);
/// [`ActorError::UnknownActor`] if none does.
async fn find_owner(cluster: &Cluster, to: ActorId) -> Result<String, ActorError> {
    let owner = cluster.owner(&to.to_string()).await.map_err(|e| {
        let why = format!("cannot find the node that runs actor {to}: {e}");
        remote(cluster.node(), why)
    })?;
    owner
        .map(|owner| owner.node)
        .ok_or(ActorError::UnknownActor(to))
}

/// Why a delivery did not go through.
enum Delivered {
    /// The node does not run the actor or does not answer: it may be
    /// moving.
    Moving(ActorError),
    Failed(ActorError),
}

async fn deliver_to(
    cluster: &Cluster,
    node: &str,
    to: ActorId,
    envelope: Envelope,
) -> Result<Bytes, Delivered> {
    let timeout = match envelope.delivery {
        Delivery::Request { timeout } | Delivery::Open { timeout, .. } => timeout,
        _ => Duration::ZERO,
    };
    let failed = |e| Err(Delivered::Failed(e));
    match cluster.deliver(node, envelope).await {
        Ok(Answer::Done(reply)) => Ok(reply),
        Ok(Answer::Refused(Refusal::NotHere, _)) => {
            Err(Delivered::Moving(ActorError::UnknownActor(to)))
        }
        Ok(Answer::Refused(Refusal::Deadlock, why)) => failed(ActorError::Deadlock(why)),
        Ok(Answer::Refused(Refusal::Timeout, _)) => failed(ActorError::Timeout {
            actor: to,
            timeout_ms: timeout.as_millis() as u64,
        }),
        Ok(Answer::Refused(Refusal::Rejected, why)) => failed(ActorError::ChannelRejected {
            actor: to,
            message: (!why.is_empty()).then_some(why),
        }),
        Ok(Answer::Refused(Refusal::Failed, why)) => failed(remote(node, why)),
        Err(e @ ClusterError::Unreachable { .. }) => {
            Err(Delivered::Moving(remote(node, e.to_string())))
        }
        Err(e) => failed(remote(node, e.to_string())),
    }
}

/// Serves the messages other nodes send this node's actors until the
/// runtime is gone. Each runs on its own task, at most
/// [`MAX_REMOTE_IN_FLIGHT`] at once.
pub async fn answer(cluster: Cluster, runtime: WeakRuntime) {
    let mut inbox = match cluster.inbox().await {
        Ok(inbox) => inbox,
        Err(e) => {
            tracing::error!("actors on other nodes cannot reach this node's actors: {e}");
            return;
        }
    };
    let in_flight = Arc::new(Semaphore::new(MAX_REMOTE_IN_FLIGHT));
    while let Some(incoming) = inbox.next().await {
        let Some(runtime) = runtime.upgrade() else {
            return;
        };
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            let why = format!(
                "node `{}` is busy with {MAX_REMOTE_IN_FLIGHT} messages from other nodes; retry later",
                cluster.node()
            );
            incoming
                .reply
                .answer(Answer::Refused(Refusal::Failed, why))
                .await;
            continue;
        };
        tokio::spawn(async move {
            let Incoming { envelope, reply } = incoming;
            let answer = match envelope {
                Ok(envelope) => match run(&*runtime, envelope).await {
                    Ok(done) => Answer::Done(done),
                    Err(e) => refusal(e),
                },
                Err(why) => Answer::Refused(Refusal::Failed, format!("unreadable message: {why}")),
            };
            reply.answer(answer).await;
            drop(permit);
        });
    }
}

/// Runs one message from another node here.
async fn run(runtime: &dyn RuntimeServices, envelope: Envelope) -> Result<Bytes, ActorError> {
    let id = |text: &str| {
        text.parse::<ActorId>()
            .map_err(|_| ActorError::BadActorId(format!("`{text}` is not an actor id")))
    };
    let from = envelope.from.as_deref().map(id).transpose()?;
    let to = envelope.to.as_deref().map(id).transpose()?;
    let waits = || {
        envelope
            .waits
            .iter()
            .map(|(waiter, awaited)| Ok((id(waiter)?, id(awaited)?)))
            .collect::<Result<Vec<_>, ActorError>>()
    };
    let at_most = |timeout: Duration| timeout.min(Duration::from_millis(MAX_DURATION_MS));
    let party = Party::Remote {
        node: &envelope.node,
        actor: from,
    };
    let message = envelope.message.to_vec();
    match &envelope.delivery {
        Delivery::Send => {
            let target = here(runtime, to)?;
            accept(runtime, from, &target, message).await?;
            Ok(Bytes::new())
        }
        Delivery::Request { timeout } => {
            let target = here(runtime, to)?;
            let reply = ask(
                runtime,
                from,
                &target,
                &waits()?,
                message,
                at_most(*timeout),
            )
            .await?;
            Ok(reply.into())
        }
        Delivery::Open { channel, timeout } => {
            let target = here(runtime, to)?;
            let timeout = at_most(*timeout);
            let accepted =
                accept_channel(runtime, from, &target, &waits()?, message, timeout).await?;
            let opener = End::Remote {
                node: envelope.node.clone(),
                actor: from,
            };
            let channel_of = Channel {
                opener,
                target: End::Actor(target.id()),
            };
            let messaging = Messaging::of(runtime);
            let mut channels = messaging.channels.lock().expect("channel lock");
            match channels.entry(channel.clone()) {
                std::collections::hash_map::Entry::Vacant(entry) => entry.insert(channel_of),
                std::collections::hash_map::Entry::Occupied(_) => {
                    return Err(ActorError::BadParams {
                        function: "open-channel".into(),
                        reason: format!("channel id {channel} is taken"),
                    });
                }
            };
            Ok(write_acceptance(accepted.as_deref()))
        }
        Delivery::OnChannel { channel } => {
            let peer = peer(runtime, &party, channel)?;
            deliver_on_channel(runtime, from, channel, peer, message).await?;
            Ok(Bytes::new())
        }
        Delivery::Close { channel } => {
            close(runtime, &party, from, channel).await?;
            Ok(Bytes::new())
        }
    }
}

/// The actor a message is for, which must run here.
fn here(runtime: &dyn RuntimeServices, to: Option<ActorId>) -> Result<ActorHandle, ActorError> {
    let to = to.ok_or_else(|| ActorError::BadActorId("a message names no actor".into()))?;
    runtime.actor(to)
}

/// How `error` travels back to the sender's node.
fn refusal(error: ActorError) -> Answer {
    match error {
        ActorError::UnknownActor(_) | ActorError::UnknownChannel(_) => {
            Answer::Refused(Refusal::NotHere, error.to_string())
        }
        ActorError::Timeout { .. } => Answer::Refused(Refusal::Timeout, error.to_string()),
        ActorError::Deadlock(why) => Answer::Refused(Refusal::Deadlock, why),
        ActorError::ChannelRejected { message, .. } => {
            Answer::Refused(Refusal::Rejected, message.unwrap_or_default())
        }
        other => Answer::Refused(Refusal::Failed, other.to_string()),
    }
}
