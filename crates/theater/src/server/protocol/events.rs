//! What the server sends unasked, between answers: chain events of
//! subscriptions and messages of channels.

use serde::de;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use super::bytes::{ActorBytes, MessageField};
use crate::chain::ChainEvent;
use crate::id::ActorId;

/// A frame with an `event` field and no `id`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// An event became durable in the chain of a subscribed actor.
    Chain(ChainNotice),
    /// The client read too slowly and `missed` events of a subscription
    /// were dropped; the chain itself is complete.
    Lagged(Lagged),
    /// The actor of a one-actor subscription stopped; the subscription ends.
    ActorStopped(ActorStopped),
    /// The actor sent on a channel this connection opened.
    ChannelMessage(ChannelMessage),
    /// The actor sent a message too large for a frame; it was not delivered.
    ChannelMessageTooLarge(ChannelMessageTooLarge),
    /// The actor closed the channel, or stopped.
    ChannelClosed(ChannelEnded),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChainNotice {
    pub subscription: u64,
    pub actor: ActorId,
    pub chain_event: ChainEvent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lagged {
    pub subscription: u64,
    pub missed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorStopped {
    pub subscription: u64,
    pub actor: ActorId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelMessage {
    pub channel: String,
    #[serde(flatten)]
    pub message: ActorBytes<MessageField>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMessageTooLarge {
    pub channel: String,
    pub bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelEnded {
    pub channel: String,
}

impl Event {
    /// The channel this event is about, if it is about one.
    pub fn channel(&self) -> Option<&str> {
        match self {
            Event::ChannelMessage(ChannelMessage { channel, .. })
            | Event::ChannelMessageTooLarge(ChannelMessageTooLarge { channel, .. })
            | Event::ChannelClosed(ChannelEnded { channel }) => Some(channel),
            Event::Chain(_) | Event::Lagged(_) | Event::ActorStopped(_) => None,
        }
    }
}

/// The `event` names, for error messages.
const KINDS: &[&str] = &[
    "chain",
    "lagged",
    "actor_stopped",
    "channel_message",
    "channel_message_too_large",
    "channel_closed",
];

/// Read by the `event` field, then as that kind's fields. Written by hand
/// because a chain event's data is kept byte for byte ([`RawValue`]),
/// which serde's buffering of tagged enums cannot do.
impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Kind {
            event: String,
        }
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        let kind: Kind = serde_json::from_str(text).map_err(<D::Error as de::Error>::custom)?;
        let event = match kind.event.as_str() {
            "chain" => serde_json::from_str(text).map(Event::Chain),
            "lagged" => serde_json::from_str(text).map(Event::Lagged),
            "actor_stopped" => serde_json::from_str(text).map(Event::ActorStopped),
            "channel_message" => serde_json::from_str(text).map(Event::ChannelMessage),
            "channel_message_too_large" => {
                serde_json::from_str(text).map(Event::ChannelMessageTooLarge)
            }
            "channel_closed" => serde_json::from_str(text).map(Event::ChannelClosed),
            other => return Err(de::Error::unknown_variant(other, KINDS)),
        };
        event.map_err(de::Error::custom)
    }
}
