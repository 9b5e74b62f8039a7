//! `send`, `request`, channels and subscriptions: messages between a
//! client and its actors.

use std::time::Duration;

use super::{Answer, actor_error, answer, internal, payload};
use crate::server::connection::{After, Connection, Events};
use crate::server::protocol::{
    ActorBytes, ChannelClosed, ChannelOpened, ChannelQueued, ErrorBody, ErrorKind, Payload, Queued,
    Reply, Subscribed, Unsubscribed,
};

impl Connection {
    pub(super) async fn send_message(&self, actor: &str, payload: &Payload) -> Answer {
        let (id, message) = self.addressed(actor, payload)?;
        // Answered only once the message is kept: `queued` means it runs
        // once, whatever happens to this process.
        let runtime = &self.shared.runtime;
        runtime.send(None, id, message).await.map_err(actor_error)?;
        answer(Queued {
            actor: id,
            queued: true,
        })
    }

    pub(super) async fn request(&self, actor: &str, payload: &Payload, wait: Duration) -> Answer {
        let (id, message) = self.addressed(actor, payload)?;
        let runtime = &self.shared.runtime;
        let reply = runtime
            .request(None, id, message, wait)
            .await
            .map_err(actor_error)?;
        answer(Reply {
            actor: id,
            reply: ActorBytes::new(Some(reply)),
        })
    }

    pub(super) async fn open_channel(
        &mut self,
        actor: &str,
        payload: &Payload,
        wait: Duration,
    ) -> Answer {
        let (id, message) = self.addressed(actor, payload)?;
        let mut channel = self
            .shared
            .runtime
            .open_client_channel(id, message, wait)
            .await
            .map_err(actor_error)?;
        let opened = ChannelOpened {
            channel: channel.id.clone(),
            actor: id,
            accept_message: ActorBytes::new(channel.accept_message.take()),
        };
        self.after.push(After::Channel(channel));
        answer(opened)
    }

    pub(super) async fn channel_send(&self, channel: String, p: &Payload) -> Answer {
        self.own_channel(&channel)?;
        let message = payload(p)?;
        self.shared
            .runtime
            .send_on_channel(None, &channel, message)
            .await
            .map_err(actor_error)?;
        answer(ChannelQueued {
            channel,
            queued: true,
        })
    }

    pub(super) async fn close_channel(&mut self, channel: String) -> Answer {
        self.own_channel(&channel)?;
        if let Some(task) = self.channels.remove(&channel) {
            task.abort();
        }
        self.shared
            .runtime
            .close_channel(None, &channel)
            .await
            .map_err(actor_error)?;
        answer(ChannelClosed {
            channel,
            closed: true,
        })
    }

    /// Live chain events of one running actor, or of every actor of this
    /// node. In a cluster, one actor's come from its replicated chain,
    /// wherever it runs (named by its full id if not here).
    pub(super) async fn subscribe(&mut self, actor: Option<&str>) -> Answer {
        let cluster = self.shared.config.cluster.clone();
        let (events, actor) = match (actor, cluster) {
            (Some(text), Some(cluster)) => {
                let actor = self.in_cluster(&cluster, text).await?;
                let chain = cluster
                    .chains()
                    .follow(&actor.to_string())
                    .await
                    .map_err(|e| internal("the actor's replicated chain", e))?;
                let events = Events::Replicated {
                    actor,
                    chain: Box::new(chain),
                    cluster,
                };
                (events, Some(actor))
            }
            (actor, _) => {
                let actor = actor.map(|a| self.running(a).map(|h| h.id())).transpose()?;
                let events = Events::Here {
                    events: self.shared.runtime.subscribe(),
                    runtime: self.shared.runtime.clone(),
                };
                (events, actor)
            }
        };
        let subscription = self.next_subscription;
        self.next_subscription += 1;
        // Subscribed before the answer leaves: nothing after it is missed.
        self.after.push(After::Subscription {
            id: subscription,
            events,
            actor,
        });
        answer(Subscribed {
            subscription,
            actor,
        })
    }

    pub(super) fn unsubscribe(&mut self, subscription: u64) -> Answer {
        let task = self.subscriptions.remove(&subscription).ok_or_else(|| {
            ErrorBody::new(
                ErrorKind::UnknownSubscription,
                format!("this connection has no subscription {subscription}"),
            )
        })?;
        task.abort();
        answer(Unsubscribed {
            subscription,
            unsubscribed: true,
        })
    }
}
