//! Nodes' heartbeats: each node's entry in the `theater-nodes` bucket.

use std::time::Duration;

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};

use super::{ClusterError, streams};

/// What a node says of itself at each heartbeat.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    /// The process behind the name: a restart gets a new one.
    #[serde(default)]
    pub instance: String,
    /// Where its management server listens, if it has one.
    pub management: Option<String>,
    /// Actors it runs: its load.
    pub actors: usize,
    /// When it joined (ms since the Unix epoch).
    pub started_ms: u64,
}

/// A node as the cluster sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeStatus {
    pub node: String,
    #[serde(flatten)]
    pub info: NodeInfo,
    /// How long ago its last heartbeat was stored, by the NATS server's
    /// clock.
    pub seen_ms_ago: u64,
}

/// Writes this node's first entry: only where no live node holds the
/// name. Returns the entry's revision.
pub(super) async fn announce(
    nodes: &kv::Store,
    node: &str,
    info: &NodeInfo,
    timeout: Duration,
) -> Result<u64, ClusterError> {
    let value = encode(info);
    match nodes.entry(node).await {
        Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
            let seen_ms = age_ms(&entry);
            if seen_ms < timeout.as_millis() as u64 {
                return Err(ClusterError::NameTaken {
                    node: node.to_owned(),
                    seen_ms,
                });
            }
            nodes
                .update(node, value, entry.revision)
                .await
                .map_err(|e| ClusterError::jetstream("announcing the node", e))
        }
        Ok(_) => nodes
            .create(node, value)
            .await
            .map_err(|e| ClusterError::jetstream("announcing the node", e)),
        Err(e) => Err(ClusterError::jetstream("reading the node list", e)),
    }
}

/// A node's heartbeat, from the revision its announcement wrote.
pub(super) struct Heartbeat {
    pub nodes: kv::Store,
    pub node: String,
    pub instance: String,
    pub every: Duration,
    pub revision: u64,
}

impl Heartbeat {
    /// Rewrites the entry every beat, each time only at the revision it
    /// wrote last; when that fails because the entry changed or expired,
    /// the node is fenced: `fenced` is called and the beat stops.
    pub(super) async fn run(
        mut self,
        info: impl Fn() -> NodeInfo + Send + Sync + 'static,
        fenced: impl FnOnce() + Send + 'static,
    ) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let value = encode(&NodeInfo {
                instance: self.instance.clone(),
                ..info()
            });
            let lost = match self.nodes.update(&self.node, value, self.revision).await {
                Ok(revision) => {
                    self.revision = revision;
                    false
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => true,
                // A timeout or a reconnection: the entry tells whether
                // this node still holds its place.
                Err(e) => {
                    tracing::warn!(node = %self.node, "heartbeat not stored: {e}");
                    self.entry_is_gone().await
                }
            };
            if lost {
                tracing::error!(
                    node = %self.node,
                    "this node lost its place in the cluster: its heartbeat entry was taken over or expired"
                );
                fenced();
                return;
            }
        }
    }
}

impl Heartbeat {
    /// Whether the node's entry is gone or was rewritten by another
    /// process; `false` when NATS cannot say (unreachable for now).
    async fn entry_is_gone(&self) -> bool {
        match self.nodes.entry(&self.node).await {
            Ok(Some(entry)) => {
                entry.operation != kv::Operation::Put || entry.revision != self.revision
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }
}

/// Most nodes a listing reads: anyone with write access to the bucket
/// could add keys without end.
pub(super) const MAX_LISTED_NODES: usize = 1024;

/// The live nodes (at most [`MAX_LISTED_NODES`]), by name.
pub(super) async fn list(nodes: &kv::Store) -> Result<Vec<NodeStatus>, ClusterError> {
    let entries = streams::latest_entries(nodes, MAX_LISTED_NODES, "listing nodes").await?;
    let mut found = Vec::with_capacity(entries.len());
    for entry in entries {
        if entry.operation != kv::Operation::Put {
            continue;
        }
        let Ok(info) = serde_json::from_slice::<NodeInfo>(&entry.value) else {
            tracing::warn!(node = %entry.key, "ignoring a node entry that is not a node's");
            continue;
        };
        found.push(NodeStatus {
            seen_ms_ago: age_ms(&entry),
            node: entry.key,
            info,
        });
    }
    found.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(found)
}

fn encode(info: &NodeInfo) -> bytes::Bytes {
    serde_json::to_vec(info)
        .expect("node info serializes")
        .into()
}

/// How long ago the NATS server stored `entry`.
fn age_ms(entry: &kv::Entry) -> u64 {
    let stored = std::time::SystemTime::from(entry.created);
    let age = std::time::SystemTime::now().duration_since(stored);
    age.map_or(0, |age| age.as_millis() as u64)
}
