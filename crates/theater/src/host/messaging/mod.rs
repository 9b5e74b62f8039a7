//! The message server's rules: send, request and channels, between actors
//! and from clients outside the runtime.
//!
//! Routing is by actor id through [`RuntimeServices::actor`]; in a
//! cluster, sends and requests for actors that do not run here go to the
//! node that owns them ([`remote`]). The channels
//! and who waits on whom are this capability's state, one per runtime
//! ([`RuntimeServices::shared`]). A send returns
//! once the message is accepted (queued, and kept in the durable inbox when
//! the log is durable); a request waits for the reply with a timeout; a
//! channel is a pair of ends, each an actor or an outside client, and
//! closes on both sides when either closes it or an actor at one end stops.

pub mod remote;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::message_server::{
    CHANNEL_CLOSE, CHANNEL_MESSAGE, CHANNEL_OPEN, ChannelAccept, HANDLE_REQUEST, HANDLE_SEND,
};
use crate::actor::{ActorHandle, RuntimeServices};
use crate::cluster::{Cluster, MAX_WAITS};
use crate::error::ActorError;
use crate::id::ActorId;
use crate::wasm::Bytes;

/// Messages an outside client's end of a channel can hold before the
/// sending actor gets `QueueFull`. Guards the host against a client that
/// stops reading.
pub const EXTERNAL_CHANNEL_CAPACITY: usize = 1024;

/// Who is sending: an actor, or a client outside the runtime.
pub type Sender = Option<ActorId>;

/// What reaches an outside client's end of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelEvent {
    Message(Vec<u8>),
    Closed,
}

/// One end of a channel.
#[derive(Clone)]
enum End {
    Actor(ActorId),
    Client(mpsc::Sender<ChannelEvent>),
    /// An end on another node of the cluster: an actor there, or a client
    /// of that node.
    Remote {
        node: String,
        actor: Sender,
    },
}

/// Who acts on a channel: a sender here, or one on another node.
enum Party<'a> {
    Here(Sender),
    Remote { node: &'a str, actor: Sender },
}

impl End {
    fn is(&self, party: &Party) -> bool {
        match (self, party) {
            (End::Actor(id), Party::Here(sender)) => *sender == Some(*id),
            (End::Client(_), Party::Here(sender)) => sender.is_none(),
            (
                End::Remote { node, actor },
                Party::Remote {
                    node: from,
                    actor: who,
                },
            ) => node == from && actor == who,
            _ => false,
        }
    }

    /// Whether the actor `actor`, here, is this end.
    fn is_actor(&self, actor: ActorId) -> bool {
        matches!(self, End::Actor(id) if *id == actor)
    }
}

struct Channel {
    opener: End,
    target: End,
}

/// A runtime's channels and who is waiting on whom.
#[derive(Default)]
struct Messaging {
    channels: Mutex<HashMap<String, Channel>>,
    /// Actor → the actor whose reply it is waiting for.
    waiting: Mutex<HashMap<ActorId, ActorId>>,
}

/// Removes a wait edge however the wait ends.
struct WaitGuard {
    messaging: Arc<Messaging>,
    waiter: Option<ActorId>,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter {
            self.messaging
                .waiting
                .lock()
                .expect("wait lock")
                .remove(&waiter);
        }
    }
}

impl Messaging {
    /// The messaging state of `runtime`.
    fn of(runtime: &dyn RuntimeServices) -> Arc<Self> {
        runtime.shared().get::<Self>()
    }

    /// Records that `from` now waits for `to`, refusing a wait that would
    /// close a cycle: such a request could only end in a timeout.
    fn wait_for(self: Arc<Self>, from: Sender, to: ActorId) -> Result<WaitGuard, ActorError> {
        let Some(from) = from else {
            return Ok(WaitGuard {
                messaging: self,
                waiter: None,
            });
        };
        if from == to {
            return Err(ActorError::Deadlock(format!(
                "actor {from} cannot wait for itself: it is busy with the call that asks"
            )));
        }
        let mut waiting = self.waiting.lock().expect("wait lock");
        let mut path = vec![from, to];
        let mut next = to;
        while let Some(&after) = waiting.get(&next) {
            path.push(after);
            if after == from {
                let cycle: Vec<String> = path.iter().map(|id| id.short()).collect();
                return Err(ActorError::Deadlock(format!(
                    "the actors would wait for each other: {}",
                    cycle.join(" → ")
                )));
            }
            next = after;
        }
        waiting.insert(from, to);
        drop(waiting);
        Ok(WaitGuard {
            messaging: self,
            waiter: Some(from),
        })
    }

    /// Takes in the waits another node said are upstream of a request it
    /// sent here, for as long as the guard lives, so that a cycle through
    /// several nodes is seen. A waiter already known here keeps its wait.
    fn assume(self: Arc<Self>, waits: &[(ActorId, ActorId)]) -> AssumedWaits {
        let mut waiting = self.waiting.lock().expect("wait lock");
        let mut assumed = Vec::new();
        for &(waiter, awaited) in waits {
            if let std::collections::hash_map::Entry::Vacant(entry) = waiting.entry(waiter) {
                entry.insert(awaited);
                assumed.push((waiter, awaited));
            }
        }
        drop(waiting);
        AssumedWaits {
            messaging: self,
            assumed,
        }
    }

    /// The waits that lead to `actor`: whoever waits for it, whoever waits
    /// for them, and so on (at most [`MAX_WAITS`]).
    fn upstream(&self, actor: ActorId) -> Vec<(ActorId, ActorId)> {
        let waiting = self.waiting.lock().expect("wait lock");
        let mut found = Vec::new();
        let mut next = 0;
        let mut awaited = actor;
        loop {
            for (&waiter, &to) in waiting.iter() {
                if to == awaited && found.len() < MAX_WAITS && !found.contains(&(waiter, to)) {
                    found.push((waiter, to));
                }
            }
            match found.get(next) {
                Some(&(waiter, _)) => awaited = waiter,
                None => return found,
            }
            next += 1;
        }
    }
}

/// Waits taken in from another node, given up however the request ends.
struct AssumedWaits {
    messaging: Arc<Messaging>,
    assumed: Vec<(ActorId, ActorId)>,
}

impl Drop for AssumedWaits {
    fn drop(&mut self) {
        let mut waiting = self.messaging.waiting.lock().expect("wait lock");
        for (waiter, awaited) in &self.assumed {
            if waiting.get(waiter) == Some(awaited) {
                waiting.remove(waiter);
            }
        }
    }
}

/// Where a message for an actor goes.
enum Route<'a> {
    /// It runs here.
    Here(ActorHandle),
    /// It does not run here; another node of the cluster may run it.
    Cluster(&'a Cluster),
}

fn route(runtime: &dyn RuntimeServices, to: ActorId) -> Result<Route<'_>, ActorError> {
    match (runtime.actor(to), runtime.cluster()) {
        (Err(ActorError::UnknownActor(_)), Some(cluster)) => Ok(Route::Cluster(cluster)),
        (target, _) => target.map(Route::Here),
    }
}

/// An outside client's end of a channel.
pub struct ClientChannel {
    pub id: String,
    /// Messages from the actor, then `Closed` once either side closes.
    pub events: mpsc::Receiver<ChannelEvent>,
    /// The message the actor sent with its acceptance, if any.
    pub accept_message: Option<Vec<u8>>,
}

/// Accepts `message` for `to`'s `handle-send` without waiting for the
/// call: returns once the message is queued and, with a durable log,
/// kept in `to`'s inbox, from which it runs once even if the process
/// dies first (see [`ActorHandle::deliver`](crate::ActorHandle::deliver)).
pub async fn send(
    runtime: &dyn RuntimeServices,
    from: Sender,
    to: ActorId,
    message: Vec<u8>,
) -> Result<(), ActorError> {
    match route(runtime, to)? {
        Route::Here(target) => accept(runtime, from, &target, message).await,
        Route::Cluster(cluster) => remote::send(runtime, cluster, from, to, message).await,
    }
}

/// [`send`] to an actor that runs here.
async fn accept(
    runtime: &dyn RuntimeServices,
    from: Sender,
    target: &ActorHandle,
    message: Vec<u8>,
) -> Result<(), ActorError> {
    target.check_export(HANDLE_SEND)?;
    target.check_message_size(message.len())?;
    target
        .deliver(runtime.event_log(), from, HANDLE_SEND, (Bytes(message),))
        .await
}

/// Calls `to`'s `handle-request` and waits up to `timeout` for the reply.
pub async fn request(
    runtime: &dyn RuntimeServices,
    from: Sender,
    to: ActorId,
    message: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, ActorError> {
    match route(runtime, to)? {
        Route::Here(target) => ask(runtime, from, &target, &[], message, timeout).await,
        Route::Cluster(cluster) => {
            remote::request(runtime, cluster, from, to, message, timeout).await
        }
    }
}

/// [`request`] to an actor that runs here, for `from`, downstream of
/// `upstream` (waits another node told of).
async fn ask(
    runtime: &dyn RuntimeServices,
    from: Sender,
    target: &ActorHandle,
    upstream: &[(ActorId, ActorId)],
    message: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, ActorError> {
    let to = target.id();
    target.check_message_size(message.len())?;
    let messaging = Messaging::of(runtime);
    let _upstream = messaging.clone().assume(upstream);
    let _wait = messaging.wait_for(from, to)?;
    let call = target.call_function_from::<_, (Vec<u8>,)>(from, HANDLE_REQUEST, (Bytes(message),));
    match tokio::time::timeout(timeout, call).await {
        Ok(reply) => reply.map(|(reply,)| reply),
        Err(_) => Err(ActorError::Timeout {
            actor: to,
            timeout_ms: timeout.as_millis() as u64,
        }),
    }
}

/// An actor opens a channel to `to`. On acceptance the id is returned
/// and the acceptance message, if any, is queued for the opener.
pub async fn open_channel(
    runtime: &dyn RuntimeServices,
    from: ActorId,
    to: ActorId,
    initial: Vec<u8>,
    timeout: Duration,
) -> Result<String, ActorError> {
    let (id, message) = open(runtime, Some(from), End::Actor(from), to, initial, timeout).await?;
    if let Some(message) = message {
        runtime.actor(from)?.cast_function(
            Some(to),
            CHANNEL_MESSAGE,
            (id.clone(), Bytes(message)),
        )?;
    }
    Ok(id)
}

/// A client outside the runtime opens a channel to `to`.
pub async fn open_client_channel(
    runtime: &dyn RuntimeServices,
    to: ActorId,
    initial: Vec<u8>,
    timeout: Duration,
) -> Result<ClientChannel, ActorError> {
    let (events_in, events) = mpsc::channel(EXTERNAL_CHANNEL_CAPACITY);
    let (id, accept_message) =
        open(runtime, None, End::Client(events_in), to, initial, timeout).await?;
    Ok(ClientChannel {
        id,
        events,
        accept_message,
    })
}

async fn open(
    runtime: &dyn RuntimeServices,
    from: Sender,
    opener: End,
    to: ActorId,
    initial: Vec<u8>,
    timeout: Duration,
) -> Result<(String, Option<Vec<u8>>), ActorError> {
    let id = uuid::Uuid::new_v4().to_string();
    let (target, message) = match route(runtime, to)? {
        Route::Here(target) => {
            let message = accept_channel(runtime, from, &target, &[], initial, timeout).await?;
            (End::Actor(to), message)
        }
        Route::Cluster(cluster) => {
            remote::open(runtime, cluster, from, to, &id, initial, timeout).await?
        }
    };
    Messaging::of(runtime)
        .channels
        .lock()
        .expect("channel lock")
        .insert(id.clone(), Channel { opener, target });
    Ok((id, message))
}

/// Asks `target`, here, to take a channel from `from` (downstream of
/// `upstream`, as for [`ask`]); its message back, if any.
async fn accept_channel(
    runtime: &dyn RuntimeServices,
    from: Sender,
    target: &ActorHandle,
    upstream: &[(ActorId, ActorId)],
    initial: Vec<u8>,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, ActorError> {
    let to = target.id();
    target.check_message_size(initial.len())?;
    let messaging = Messaging::of(runtime);
    let _upstream = messaging.clone().assume(upstream);
    let _wait = messaging.wait_for(from, to)?;
    let call = target.call_function_from::<_, ChannelAccept>(from, CHANNEL_OPEN, (Bytes(initial),));
    let accept = match tokio::time::timeout(timeout, call).await {
        Ok(Ok(accept)) => accept,
        Ok(Err(ActorError::UnknownFunction { .. })) => {
            return Err(ActorError::NoChannels { actor: to });
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(ActorError::Timeout {
                actor: to,
                timeout_ms: timeout.as_millis() as u64,
            });
        }
    };
    if !accept.accepted {
        return Err(ActorError::ChannelRejected {
            actor: to,
            message: accept
                .message
                .map(|m| String::from_utf8_lossy(&m).into_owned()),
        });
    }
    Ok(accept.message)
}

/// Delivers `message` to the other end of `channel`, in order.
pub async fn send_on_channel(
    runtime: &dyn RuntimeServices,
    from: Sender,
    channel: &str,
    message: Vec<u8>,
) -> Result<(), ActorError> {
    let peer = peer(runtime, &Party::Here(from), channel)?;
    deliver_on_channel(runtime, from, channel, peer, message).await
}

/// Hands `message` from `from` to `peer`, the other end of `channel`.
async fn deliver_on_channel(
    runtime: &dyn RuntimeServices,
    from: Sender,
    channel: &str,
    peer: End,
    message: Vec<u8>,
) -> Result<(), ActorError> {
    match peer {
        End::Actor(peer) => {
            let target = runtime.actor(peer)?;
            target.check_message_size(message.len())?;
            target.cast_function(from, CHANNEL_MESSAGE, (channel.to_owned(), Bytes(message)))
        }
        End::Client(client) => {
            client
                .try_send(ChannelEvent::Message(message))
                .map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => {
                        ActorError::ClientNotReading(channel.to_owned())
                    }
                    mpsc::error::TrySendError::Closed(_) => {
                        ActorError::UnknownChannel(channel.to_owned())
                    }
                })
        }
        End::Remote { node, actor } => {
            let cluster = runtime
                .cluster()
                .ok_or_else(|| ActorError::UnknownChannel(channel.to_owned()))?;
            remote::on_channel(cluster, &node, from, actor, channel, message).await
        }
    }
}

/// Closes `channel`; the other end hears `handle-channel-close`.
pub async fn close_channel(
    runtime: &dyn RuntimeServices,
    from: Sender,
    channel: &str,
) -> Result<(), ActorError> {
    close(runtime, &Party::Here(from), from, channel).await
}

/// Closes `channel` for `party`, an end of it, who is `from`.
async fn close(
    runtime: &dyn RuntimeServices,
    party: &Party<'_>,
    from: Sender,
    channel: &str,
) -> Result<(), ActorError> {
    let peer = peer(runtime, party, channel)?;
    Messaging::of(runtime)
        .channels
        .lock()
        .expect("channel lock")
        .remove(channel);
    if let Some(closing) = notify_closed(runtime, from, channel, peer) {
        closing.await;
    }
    Ok(())
}

/// Closes every channel of an actor that stopped, telling the other ends.
pub(crate) fn close_channels_of(runtime: &dyn RuntimeServices, actor: ActorId) {
    let closed: Vec<(String, End)> = {
        let messaging = Messaging::of(runtime);
        let mut channels = messaging.channels.lock().expect("channel lock");
        let ids: Vec<String> = channels
            .iter()
            .filter(|(_, c)| c.target.is_actor(actor) || c.opener.is_actor(actor))
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| {
                let channel = channels.remove(&id)?;
                let peer = match channel.target.is_actor(actor) {
                    true => channel.opener,
                    false => channel.target,
                };
                Some((id, peer))
            })
            .collect()
    };
    for (id, peer) in closed {
        // Called as the actor ends, where nothing waits: a notice to
        // another node goes on its own.
        if let Some(closing) = notify_closed(runtime, Some(actor), &id, peer) {
            tokio::spawn(closing);
        }
    }
}

/// Closes every channel whose other end is on a node `gone` says has
/// left the cluster, telling the end here: nothing of that node's side
/// is left to talk to (an actor that fails over comes back without it).
pub(crate) fn close_channels_to(runtime: &dyn RuntimeServices, gone: impl Fn(&str) -> bool) {
    let on_gone_node = |end: &End| matches!(end, End::Remote { node, .. } if gone(node));
    let closed: Vec<(String, End, Sender)> = {
        let messaging = Messaging::of(runtime);
        let mut channels = messaging.channels.lock().expect("channel lock");
        let ids: Vec<String> = channels
            .iter()
            .filter(|(_, c)| on_gone_node(&c.opener) || on_gone_node(&c.target))
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| {
                let channel = channels.remove(&id)?;
                let (here, there) = match on_gone_node(&channel.target) {
                    true => (channel.opener, channel.target),
                    false => (channel.target, channel.opener),
                };
                let End::Remote { actor, .. } = there else {
                    return None;
                };
                Some((id, here, actor))
            })
            .collect()
    };
    for (id, here, from) in closed {
        // The end here is an actor or a client: its notice is sent at once.
        let _ = notify_closed(runtime, from, &id, here);
    }
}

/// The end of `channel` that is not `party`; `party` must be an end.
fn peer(runtime: &dyn RuntimeServices, party: &Party, channel: &str) -> Result<End, ActorError> {
    let messaging = Messaging::of(runtime);
    let channels = messaging.channels.lock().expect("channel lock");
    let found = channels
        .get(channel)
        .ok_or_else(|| ActorError::UnknownChannel(channel.to_owned()))?;
    if found.opener.is(party) {
        Ok(found.target.clone())
    } else if found.target.is(party) {
        Ok(found.opener.clone())
    } else {
        Err(ActorError::UnknownChannel(channel.to_owned()))
    }
}

/// Best effort: an end that is gone needs no notice. An end here hears
/// at once; for one on another node, the notice to send is returned.
fn notify_closed(
    runtime: &dyn RuntimeServices,
    from: Sender,
    channel: &str,
    peer: End,
) -> Option<impl Future<Output = ()> + Send + 'static> {
    match peer {
        End::Actor(peer) => {
            if let Ok(target) = runtime.actor(peer)
                && let Err(e) = target.cast_function(from, CHANNEL_CLOSE, (channel.to_owned(),))
            {
                tracing::debug!(actor = %peer, "cannot tell of closed channel {channel}: {e}");
            }
            None
        }
        End::Client(client) => {
            let _ = client.try_send(ChannelEvent::Closed);
            None
        }
        End::Remote { node, actor } => {
            let cluster = runtime.cluster()?.clone();
            let channel = channel.to_owned();
            Some(async move { remote::closed(&cluster, &node, from, actor, &channel).await })
        }
    }
}
