//! Sends and requests between actors on different nodes of a cluster.
//!
//! The sender's node finds the target's owner (in the cluster's placement
//! bucket, remembered afterwards) and hands it the message
//! ([`Cluster::deliver`]); the owner runs it as it would a local one and
//! answers. A request keeps its wait here too and carries the waits that
//! lead to its sender, so a cycle of requests across nodes is refused as
//! it is on one node, and its timeout holds on both sides.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::{Messaging, Sender, accept, ask};
use crate::actor::{RuntimeServices, WeakRuntime};
use crate::cluster::{Answer, Cluster, Delivery, Envelope, Incoming, Refusal};
use crate::error::ActorError;
use crate::host::config::MAX_DURATION_MS;
use crate::id::ActorId;

/// Messages from other nodes this node serves at once; beyond, they are
/// refused at once. Guards the node against a flood from its peers.
pub const MAX_REMOTE_IN_FLIGHT: usize = 1024;
/// Owners remembered; the memory is cleared when full.
const MAX_REMEMBERED_OWNERS: usize = 100_000;

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

/// [`super::send`] to an actor that does not run here.
pub(super) async fn send(
    runtime: &dyn RuntimeServices,
    cluster: &Cluster,
    from: Sender,
    to: ActorId,
    message: Vec<u8>,
) -> Result<(), ActorError> {
    let envelope = Envelope {
        delivery: Delivery::Send,
        from: from.map(|id| id.to_string()),
        to: to.to_string(),
        waits: Vec::new(),
        message: message.into(),
    };
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
    let messaging = Messaging::of(runtime);
    // Kept here as well: a request that comes back through this node to
    // an actor upstream is refused here.
    let _wait = messaging.clone().wait_for(from, to)?;
    let waits = from
        .map(|from| messaging.upstream(from))
        .unwrap_or_default();
    let envelope = Envelope {
        delivery: Delivery::Request { timeout },
        from: from.map(|id| id.to_string()),
        to: to.to_string(),
        waits: waits
            .iter()
            .map(|(waiter, awaited)| (waiter.to_string(), awaited.to_string()))
            .collect(),
        message: message.into(),
    };
    let reply = deliver(runtime, cluster, to, envelope).await?;
    Ok(reply.into())
}

/// Hands `envelope` to `to`'s owner. An owner remembered from before that
/// no longer runs it is looked up again, once.
async fn deliver(
    runtime: &dyn RuntimeServices,
    cluster: &Cluster,
    to: ActorId,
    envelope: Envelope,
) -> Result<Bytes, ActorError> {
    let owners = Owners::of(runtime);
    let remembered = owners.remembered(to);
    let fresh = remembered.is_none();
    let node = match remembered {
        Some(node) => node,
        None => find_owner(cluster, to).await?,
    };
    match deliver_to(cluster, &node, to, envelope.clone()).await {
        Err(ActorError::UnknownActor(_) | ActorError::Remote { .. }) if !fresh => {
            owners.forget(to);
            let node = find_owner(cluster, to).await?;
            let answer = deliver_to(cluster, &node, to, envelope).await;
            if answer.is_ok() {
                owners.remember(to, &node);
            }
            answer
        }
        answer => {
            if answer.is_ok() {
                owners.remember(to, &node);
            }
            answer
        }
    }
}

/// The node that owns `to`, unless that is this one (which does not run
/// it) or none.
async fn find_owner(cluster: &Cluster, to: ActorId) -> Result<String, ActorError> {
    let owner = cluster
        .owner(&to.to_string())
        .await
        .map_err(|e| ActorError::Remote {
            actor: to,
            node: cluster.node().to_owned(),
            message: format!("cannot find the node that runs it: {e}"),
        })?;
    match owner {
        Some(owner) if owner.node != cluster.node() => Ok(owner.node),
        _ => Err(ActorError::UnknownActor(to)),
    }
}

async fn deliver_to(
    cluster: &Cluster,
    node: &str,
    to: ActorId,
    envelope: Envelope,
) -> Result<Bytes, ActorError> {
    let delivery = envelope.delivery;
    let remote = |message: String| ActorError::Remote {
        actor: to,
        node: node.to_owned(),
        message,
    };
    let timeout = |timeout: Duration| ActorError::Timeout {
        actor: to,
        timeout_ms: timeout.as_millis() as u64,
    };
    match (cluster.deliver(node, envelope).await, delivery) {
        (Ok(Answer::Done(reply)), _) => Ok(reply),
        (Ok(Answer::Refused(Refusal::NotHere, _)), _) => Err(ActorError::UnknownActor(to)),
        (Ok(Answer::Refused(Refusal::Deadlock, why)), _) => Err(ActorError::Deadlock(why)),
        (Ok(Answer::Refused(Refusal::Timeout, _)), Delivery::Request { timeout: t }) => {
            Err(timeout(t))
        }
        (Ok(Answer::Refused(_, why)), _) => Err(remote(why)),
        (Err(e), _) => Err(remote(e.to_string())),
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

/// Runs one message from another node on the actor it is for.
async fn run(runtime: &dyn RuntimeServices, envelope: Envelope) -> Result<Bytes, ActorError> {
    let id = |text: &str| {
        text.parse::<ActorId>()
            .map_err(|_| ActorError::BadActorId(format!("`{text}` is not an actor id")))
    };
    let to = id(&envelope.to)?;
    let from = envelope.from.as_deref().map(id).transpose()?;
    let target = runtime.actor(to)?;
    let message = envelope.message.to_vec();
    match envelope.delivery {
        Delivery::Send => accept(runtime, from, &target, message)
            .await
            .map(|()| Bytes::new()),
        Delivery::Request { timeout } => {
            let waits = envelope
                .waits
                .iter()
                .map(|(waiter, awaited)| Ok((id(waiter)?, id(awaited)?)))
                .collect::<Result<Vec<_>, ActorError>>()?;
            let timeout = timeout.min(Duration::from_millis(MAX_DURATION_MS));
            ask(runtime, from, &target, &waits, message, timeout)
                .await
                .map(Bytes::from)
        }
    }
}

/// How `error` travels back to the sender's node.
fn refusal(error: ActorError) -> Answer {
    match error {
        ActorError::UnknownActor(_) => Answer::Refused(Refusal::NotHere, error.to_string()),
        ActorError::Timeout { .. } => Answer::Refused(Refusal::Timeout, error.to_string()),
        ActorError::Deadlock(why) => Answer::Refused(Refusal::Deadlock, why),
        other => Answer::Refused(Refusal::Failed, other.to_string()),
    }
}
