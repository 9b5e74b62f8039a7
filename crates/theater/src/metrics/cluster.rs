//! A node's counts of its cluster, read at each scrape.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::{encode_counters, encode_gauges};
use crate::cluster::Cluster;

/// Reports what [`Cluster::counts`] says.
pub struct ClusterCollector(pub Cluster);

impl fmt::Debug for ClusterCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterCollector")
    }
}

impl Collector for ClusterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let counts = self.0.counts();
        let gauges = [
            (
                "cluster_nodes",
                "Live nodes of the cluster, this one included, when it last read the node list",
                counts.live_nodes as i64,
            ),
            (
                "cluster_fenced",
                "1 if this node lost its place in the cluster and claims no actors",
                i64::from(counts.fenced),
            ),
        ];
        encode_gauges(&mut encoder, &gauges)?;
        let appends = counts.appends;
        let counters = [
            (
                "cluster_append_batches",
                "Atomic batches of chain appends JetStream stored",
                appends.batches,
            ),
            (
                "cluster_appends_batched",
                "Chain appends stored in atomic batches",
                appends.batched,
            ),
            (
                "cluster_appends_alone",
                "Chain appends published one by one, stored or not",
                appends.alone,
            ),
            (
                "cluster_appends_refused",
                "Chain appends refused because the chain had moved on: the node had lost the actor",
                appends.refused,
            ),
            (
                "cluster_appends_failed",
                "Chain appends with no answer from JetStream, or another error",
                appends.failed,
            ),
            (
                "cluster_takeovers",
                "Actors this node took over from nodes that left the cluster",
                counts.taken_over,
            ),
            (
                "cluster_handovers",
                "Ownership hand-overs this node made: migrations, and a failed one's return",
                counts.handed_over,
            ),
        ];
        encode_counters(&mut encoder, &counters)
    }
}
