//! Prometheus metrics of one runtime: what its actors, queues, chains,
//! HTTP servers and management server have done, in the text format.
//!
//! Each runtime owns its own [`Metrics`] (two runtimes in one process keep
//! separate counts). They are off unless `RuntimeConfig::metrics` asks for
//! them; off, every hook is a branch on `None` and nothing more. Labels are
//! bounded: no actor ids unless [`MetricsConfig::per_actor`] asks for them,
//! and at most [`MAX_EXPORT_LABELS`] export names, the rest counted as
//! [`OTHER_EXPORT`]. `docs/metrics.md` describes every metric.

mod actor;
mod cluster;
mod labels;
mod serve;
mod storage;

pub use actor::ActorMetrics;
pub use serve::{MetricsServer, MetricsServerError, Scrape};

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::cluster::Cluster;
use crate::error::ActorError;
use crate::id::ActorId;
use crate::storage::EventLog;
use labels::{ActorLabel, CallLabels, ExportLabels, Label, StatusLabel};

/// Distinct export names a runtime labels its call metrics with; calls of
/// further exports are counted under [`OTHER_EXPORT`]. Guards the scrape
/// (and Prometheus) against components that export without end.
pub const MAX_EXPORT_LABELS: usize = 256;

/// The export label of calls beyond [`MAX_EXPORT_LABELS`], and of calls to
/// functions an actor does not export.
pub const OTHER_EXPORT: &str = "other";

/// Upper bounds (seconds) of the call latency histogram buckets: from a
/// tenth of a millisecond (a call that only commits a state) to ten seconds
/// (one that waits on the network).
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Every `outcome` label of `theater_calls_total`.
pub const OUTCOMES: [&str; 10] = [
    "ok",
    "actor-error",
    "bad-params",
    "trap",
    "time-limit",
    "memory-limit",
    "state-too-large",
    "result-too-large",
    "unknown-function",
    "storage-error",
];

/// The `outcome` label of a call that ended with `result`.
pub fn outcome<T>(result: &Result<T, ActorError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(ActorError::Failed { .. }) => "actor-error",
        Err(ActorError::BadParams { .. }) => "bad-params",
        Err(ActorError::TimeLimit { .. }) => "time-limit",
        Err(ActorError::MemoryLimit { .. }) => "memory-limit",
        Err(ActorError::StateTooLarge { .. }) => "state-too-large",
        Err(ActorError::ResultTooLarge { .. }) => "result-too-large",
        Err(ActorError::UnknownFunction { .. }) => "unknown-function",
        Err(ActorError::Log(_)) => "storage-error",
        Err(_) => "trap",
    }
}

/// How a runtime counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Label call, latency and queue metrics with the actor's id as well.
    /// Each actor then adds series of its own: only for deployments with
    /// few actors.
    pub per_actor: bool,
}

/// The metrics of one runtime; cheap to clone, and free when disabled.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Option<Arc<Families>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("enabled", &self.inner.is_some())
            .finish()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Builds the latency histograms of a family.
#[derive(Clone)]
struct Latency;

impl MetricConstructor<Histogram> for Latency {
    fn new_metric(&self) -> Histogram {
        latency_histogram()
    }
}

struct Families {
    registry: Registry,
    per_actor: bool,
    /// Export names labelled so far (at most [`MAX_EXPORT_LABELS`]).
    exports: Mutex<HashSet<Arc<str>>>,
    other: Arc<str>,
    actors: Family<Label, Gauge>,
    spawns: Counter,
    stops: Counter,
    decisions: Family<Label, Counter>,
    calls: Family<CallLabels, Counter>,
    latency: Family<ExportLabels, Histogram, Latency>,
    queue_depth: Gauge,
    queue_depth_max: Gauge,
    actor_queue_depth: Family<ActorLabel, Gauge>,
    overflow: Family<Label, Counter>,
    chain_events: Counter,
    http_responses: Family<StatusLabel, Counter>,
    ws_opened: Counter,
    ws_open: Gauge,
    management: Family<[(&'static str, &'static str); 2], Counter>,
}

impl Metrics {
    /// Metrics that count nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Metrics of a runtime whose chains `log` keeps, on a node of
    /// `cluster` if it is in one.
    pub(crate) fn new(
        config: MetricsConfig,
        log: Arc<dyn EventLog>,
        cluster: Option<Cluster>,
    ) -> Self {
        let mut families = Families {
            registry: Registry::with_prefix("theater"),
            per_actor: config.per_actor,
            exports: Mutex::default(),
            other: OTHER_EXPORT.into(),
            actors: Family::default(),
            spawns: Counter::default(),
            stops: Counter::default(),
            decisions: Family::default(),
            calls: Family::default(),
            latency: Family::new_with_constructor(Latency),
            queue_depth: Gauge::default(),
            queue_depth_max: Gauge::default(),
            actor_queue_depth: Family::default(),
            overflow: Family::default(),
            chain_events: Counter::default(),
            http_responses: Family::default(),
            ws_opened: Counter::default(),
            ws_open: Gauge::default(),
            management: Family::default(),
        };
        families.register(log, cluster);
        Self {
            inner: Some(Arc::new(families)),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Handles for one actor's call metrics, resolved once for each of its
    /// `exports` (by slot: the name it is exported as, if it is) so that a
    /// call does not look labels up.
    pub(crate) fn actor<'a>(
        &self,
        actor: ActorId,
        exports: impl IntoIterator<Item = Option<&'a str>>,
    ) -> ActorMetrics {
        match &self.inner {
            Some(families) => ActorMetrics::new(families.clone(), actor, exports),
            None => ActorMetrics::default(),
        }
    }

    pub(crate) fn spawned(&self) {
        if let Some(f) = &self.inner {
            f.spawns.inc();
        }
    }

    pub(crate) fn stopped(&self) {
        if let Some(f) = &self.inner {
            f.stops.inc();
        }
    }

    /// A supervision `decision`: `restart`, `stop` or `escalate`.
    pub(crate) fn decision(&self, decision: &'static str) {
        if let Some(f) = &self.inner {
            f.decisions
                .get_or_create(&Label("decision", decision))
                .inc();
        }
    }

    /// Work dropped under the overflow `policy` (`reject` is counted by
    /// each actor's [`ActorMetrics`]).
    pub(crate) fn overflow(&self, policy: &'static str) {
        if let Some(f) = &self.inner {
            f.overflow.get_or_create(&Label("policy", policy)).inc();
        }
    }

    pub(crate) fn chain_event(&self) {
        if let Some(f) = &self.inner {
            f.chain_events.inc();
        }
    }

    /// An actor HTTP server answered with `status`.
    pub(crate) fn http_response(&self, status: u16) {
        if let Some(f) = &self.inner {
            f.http_responses.get_or_create(&StatusLabel(status)).inc();
        }
    }

    /// A WebSocket connection was accepted; the returned guard counts it
    /// open until dropped.
    pub(crate) fn websocket(&self) -> OpenConnection {
        if let Some(f) = &self.inner {
            f.ws_opened.inc();
            f.ws_open.inc();
        }
        OpenConnection(self.clone())
    }

    /// The management server answered an `op` request.
    pub(crate) fn management_request(&self, op: &'static str, ok: bool) {
        if let Some(f) = &self.inner {
            let outcome = if ok { "ok" } else { "error" };
            f.management
                .get_or_create(&[("op", op), ("outcome", outcome)])
                .inc();
        }
    }

    /// The text exposition of everything counted, with `snapshot`'s gauges.
    /// `None` when metrics are disabled.
    pub(crate) fn encode(&self, snapshot: &Snapshot) -> Option<String> {
        let f = self.inner.as_ref()?;
        f.actors.clear();
        for (state, count) in &snapshot.actors {
            f.actors.get_or_create(&Label("state", state)).set(*count);
        }
        f.queue_depth.set(snapshot.queue_depth);
        f.queue_depth_max.set(snapshot.queue_depth_max);
        if f.per_actor {
            f.actor_queue_depth.clear();
            for (actor, depth) in &snapshot.per_actor_queue {
                f.actor_queue_depth
                    .get_or_create(&ActorLabel(actor.to_string().into()))
                    .set(*depth);
            }
        }
        let mut text = String::new();
        encode(&mut text, &f.registry).expect("writing to a String cannot fail");
        Some(text)
    }
}

/// Counts a WebSocket connection as open while it lives.
pub(crate) struct OpenConnection(Metrics);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if let Some(f) = &self.0.inner {
            f.ws_open.dec();
        }
    }
}

/// What the runtime looks like at a scrape: the gauges read from its
/// registry rather than counted.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Actors by state (`running`, `stopping`).
    pub actors: Vec<(&'static str, i64)>,
    pub queue_depth: i64,
    pub queue_depth_max: i64,
    /// Each actor's queue depth, for per-actor metrics.
    pub per_actor_queue: Vec<(ActorId, i64)>,
}

/// Writes each (name, help, value) of `counters` as a counter, for a
/// collector that reads its counts at the scrape.
fn encode_counters(
    encoder: &mut DescriptorEncoder,
    counters: &[(&str, &str, u64)],
) -> std::fmt::Result {
    for &(name, help, value) in counters {
        let counter = ConstCounter::new(value);
        let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
        counter.encode(metric)?;
    }
    Ok(())
}

/// [`encode_counters`] for gauges.
fn encode_gauges(
    encoder: &mut DescriptorEncoder,
    gauges: &[(&str, &str, i64)],
) -> std::fmt::Result {
    for &(name, help, value) in gauges {
        let gauge = ConstGauge::new(value);
        let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
        gauge.encode(metric)?;
    }
    Ok(())
}

impl Families {
    /// Names every family in the registry, as `docs/metrics.md` lists them.
    fn register(&mut self, log: Arc<dyn EventLog>, cluster: Option<Cluster>) {
        let r = &mut self.registry;
        r.register(
            "actors",
            "Actors in the registry, by state",
            self.actors.clone(),
        );
        r.register(
            "actor_spawns",
            "Actors started (new, resumed, forked or spawned by a parent)",
            self.spawns.clone(),
        );
        r.register(
            "actor_stops",
            "Actors that ended (stopped, shut down or given up on)",
            self.stops.clone(),
        );
        r.register(
            "supervision_decisions",
            "What supervision decided after an actor failed or asked to shut down",
            self.decisions.clone(),
        );
        r.register(
            "calls",
            "Calls of actor exports, by export and outcome",
            self.calls.clone(),
        );
        r.register(
            "call_duration_seconds",
            "Time from taking a call off the queue to its answer, chain append included",
            self.latency.clone(),
        );
        r.register(
            "queue_depth",
            "Calls waiting in all actor queues",
            self.queue_depth.clone(),
        );
        r.register(
            "queue_depth_max",
            "Calls waiting in the fullest actor queue",
            self.queue_depth_max.clone(),
        );
        if self.per_actor {
            r.register(
                "actor_queue_depth",
                "Calls waiting in each actor's queue",
                self.actor_queue_depth.clone(),
            );
        }
        r.register(
            "queue_overflow",
            "Work refused or dropped because an actor queue was full, by overflow policy",
            self.overflow.clone(),
        );
        r.register(
            "chain_events",
            "Events appended to actor chains",
            self.chain_events.clone(),
        );
        r.register(
            "http_responses",
            "Responses of actor HTTP servers, by status code",
            self.http_responses.clone(),
        );
        r.register(
            "websocket_connections",
            "WebSocket connections accepted by actor HTTP servers",
            self.ws_opened.clone(),
        );
        r.register(
            "websocket_connections_open",
            "WebSocket connections open now",
            self.ws_open.clone(),
        );
        r.register(
            "management_requests",
            "Management server requests, by op and outcome",
            self.management.clone(),
        );
        r.register_collector(Box::new(storage::LogCollector(log)));
        if let Some(cluster) = cluster {
            r.register_collector(Box::new(cluster::ClusterCollector(cluster)));
        }
    }

    /// The label of export `name`: itself while fewer than
    /// [`MAX_EXPORT_LABELS`] names are in use, else [`OTHER_EXPORT`].
    fn export_label(&self, name: &str) -> Arc<str> {
        let mut exports = self.exports.lock().expect("export labels lock");
        if let Some(known) = exports.get(name) {
            return known.clone();
        }
        if exports.len() >= MAX_EXPORT_LABELS {
            return self.other.clone();
        }
        let label: Arc<str> = name.into();
        exports.insert(label.clone());
        label
    }
}
