//! What a server says of the cluster its node belongs to.

use super::{Answer, answer, bad_request, internal};
use crate::server::connection::Connection;
use crate::server::protocol::Nodes;

impl Connection {
    /// `nodes`: the cluster's live nodes.
    pub(super) async fn nodes(&self) -> Answer {
        let Some(cluster) = &self.shared.config.cluster else {
            return Err(bad_request(
                "this server is not in a cluster; start it with `theater server --cluster nats://HOST:PORT --node NAME`",
            ));
        };
        let nodes = cluster
            .nodes()
            .await
            .map_err(|e| internal("the cluster's nodes", e))?;
        answer(Nodes {
            node: cluster.node().to_owned(),
            nodes,
        })
    }

    /// This server's node, in a cluster.
    pub(super) fn node(&self) -> Option<String> {
        let cluster = self.shared.config.cluster.as_ref()?;
        Some(cluster.node().to_owned())
    }

    /// Gives up the cluster's record that this node owns `actor`, which
    /// it no longer runs.
    pub(super) async fn release(&self, actor: crate::id::ActorId) {
        if let Some(cluster) = &self.shared.config.cluster
            && let Err(e) = cluster.release(&actor.to_string()).await
        {
            tracing::warn!(%actor, "the cluster still names this node as the actor's owner: {e}");
        }
    }
}
