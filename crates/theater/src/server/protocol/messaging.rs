//! Answers about messages: `send`, `request`, channels and subscriptions.

use serde::{Deserialize, Serialize};

use super::bytes::{AcceptField, ActorBytes, ReplyField};
use crate::id::ActorId;

/// `send`: the message is kept in the actor's inbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queued {
    pub actor: ActorId,
    pub queued: bool,
}

/// `request`: the actor's reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub actor: ActorId,
    #[serde(flatten)]
    pub reply: ActorBytes<ReplyField>,
}

/// `open_channel`: the channel, and what the actor accepted it with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelOpened {
    pub channel: String,
    pub actor: ActorId,
    #[serde(flatten)]
    pub accept_message: ActorBytes<AcceptField>,
}

/// `channel_send`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelQueued {
    pub channel: String,
    pub queued: bool,
}

/// `close_channel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelClosed {
    pub channel: String,
    pub closed: bool,
}

/// `subscribe`: the subscription's number on this connection, and its
/// actor (`None`: every actor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    pub subscription: u64,
    pub actor: Option<ActorId>,
}

/// `unsubscribe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unsubscribed {
    pub subscription: u64,
    pub unsubscribed: bool,
}
