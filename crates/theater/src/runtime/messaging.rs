//! The message server's rules ([`host::messaging`]) for callers outside
//! the runtime, such as the management server and embedders: each runs
//! against this runtime.

use std::time::Duration;

use super::TheaterRuntime;
use crate::error::ActorError;
use crate::host::messaging::{self, ClientChannel, Sender};
use crate::id::ActorId;

impl TheaterRuntime {
    /// [`messaging::send`]: accepts `message` for `to`'s `handle-send`.
    pub async fn send(
        &self,
        from: Sender,
        to: ActorId,
        message: Vec<u8>,
    ) -> Result<(), ActorError> {
        messaging::send(self.services(), from, to, message).await
    }

    /// [`messaging::request`]: calls `to`'s `handle-request` and waits up
    /// to `timeout` for the reply.
    pub async fn request(
        &self,
        from: Sender,
        to: ActorId,
        message: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ActorError> {
        messaging::request(self.services(), from, to, message, timeout).await
    }

    /// [`messaging::open_client_channel`]: a client outside the runtime
    /// opens a channel to `to`.
    pub async fn open_client_channel(
        &self,
        to: ActorId,
        initial: Vec<u8>,
        timeout: Duration,
    ) -> Result<ClientChannel, ActorError> {
        messaging::open_client_channel(self.services(), to, initial, timeout).await
    }

    /// [`messaging::send_on_channel`].
    pub async fn send_on_channel(
        &self,
        from: Sender,
        channel: &str,
        message: Vec<u8>,
    ) -> Result<(), ActorError> {
        messaging::send_on_channel(self.services(), from, channel, message).await
    }

    /// [`messaging::close_channel`].
    pub async fn close_channel(&self, from: Sender, channel: &str) -> Result<(), ActorError> {
        messaging::close_channel(self.services(), from, channel).await
    }

    /// Closes the channels to nodes that left the cluster (`live` names
    /// the nodes that are still in it), telling their ends here.
    pub fn close_channels_to_gone_nodes(&self, live: &[String]) {
        messaging::close_channels_to(self.services(), |node| !live.iter().any(|n| n == node));
    }
}
