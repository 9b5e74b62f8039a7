//! The chain log's own counts, read at each scrape.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::{encode_counters, encode_gauges};
use crate::storage::EventLog;

/// Reports what the log's writer has done, if the log keeps such counts
/// (the durable log does; the in-memory one reports nothing).
pub struct LogCollector(pub Arc<dyn EventLog>);

impl fmt::Debug for LogCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogCollector")
    }
}

impl Collector for LogCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        if let Some(bytes) = self.0.size_bytes() {
            let size = [(
                "storage_bytes",
                "Size of the chain database on disk",
                bytes as i64,
            )];
            encode_gauges(&mut encoder, &size)?;
        }
        let Some(stats) = self.0.stats() else {
            return Ok(());
        };
        let counters = [
            (
                "storage_events",
                "Chain events the log stored",
                stats.events,
            ),
            (
                "storage_commits",
                "Write transactions the log committed",
                stats.commits,
            ),
            (
                "storage_fsyncs",
                "Commits flushed to disk with fsync",
                stats.syncs,
            ),
        ];
        encode_counters(&mut encoder, &counters)?;
        let largest = [(
            "storage_largest_batch",
            "Most appends committed in one transaction so far",
            stats.largest_batch as i64,
        )];
        encode_gauges(&mut encoder, &largest)
    }
}
