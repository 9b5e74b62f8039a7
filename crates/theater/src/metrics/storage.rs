//! The chain log's own counts, read at each scrape.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

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
            let size = ConstGauge::new(bytes as i64);
            let metric = encoder.encode_descriptor(
                "storage_bytes",
                "Size of the chain database on disk",
                None,
                size.metric_type(),
            )?;
            size.encode(metric)?;
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
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        let largest = ConstGauge::new(stats.largest_batch as i64);
        let metric = encoder.encode_descriptor(
            "storage_largest_batch",
            "Most appends committed in one transaction so far",
            None,
            largest.metric_type(),
        )?;
        largest.encode(metric)
    }
}
