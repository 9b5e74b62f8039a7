//! One actor's call metrics, resolved when it starts so that a call costs
//! an index and a few atomic adds.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::Families;
use super::labels::{CallLabels, ExportLabels, Label};
use crate::id::ActorId;

/// One actor's handles into its runtime's metrics; does nothing when they
/// are disabled.
#[derive(Clone, Default)]
pub struct ActorMetrics {
    inner: Option<Arc<Resolved>>,
}

impl std::fmt::Debug for ActorMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorMetrics")
            .field("enabled", &self.inner.is_some())
            .finish()
    }
}

struct Resolved {
    families: Arc<Families>,
    /// The actor's id, labelled in per-actor mode.
    actor: Option<Arc<str>>,
    /// By the export's slot in the actor's export table, for those the
    /// component exports; labelled as exported.
    exports: Vec<Option<Export>>,
    /// For calls of functions the actor does not export.
    other: Export,
}

/// The series of one export that every call touches.
struct Export {
    label: Arc<str>,
    ok: Counter,
    latency: Histogram,
}

impl ActorMetrics {
    pub(super) fn new<'a>(
        families: Arc<Families>,
        actor: ActorId,
        exports: impl IntoIterator<Item = Option<&'a str>>,
    ) -> Self {
        let actor = families.per_actor.then(|| actor.to_string().into());
        let resolve = |label: Arc<str>| Export {
            ok: families.calls.get_or_create_owned(&CallLabels {
                export: label.clone(),
                outcome: "ok",
                actor: actor.clone(),
            }),
            latency: families.latency.get_or_create_owned(&ExportLabels {
                export: label.clone(),
                actor: actor.clone(),
            }),
            label,
        };
        let exports = exports
            .into_iter()
            .map(|name| name.map(|name| resolve(families.export_label(name))))
            .collect();
        let other = resolve(families.other.clone());
        Self {
            inner: Some(Arc::new(Resolved {
                actor,
                exports,
                other,
                families,
            })),
        }
    }

    /// A call of the export in `slot` (`None`: a function the actor does
    /// not export) ended with `outcome` (`ok` or the kind of failure)
    /// after `elapsed`.
    pub(crate) fn call(&self, slot: Option<usize>, outcome: &'static str, elapsed: Duration) {
        let Some(resolved) = &self.inner else {
            return;
        };
        let export = slot
            .and_then(|slot| resolved.exports.get(slot)?.as_ref())
            .unwrap_or(&resolved.other);
        export.latency.observe(elapsed.as_secs_f64());
        if outcome == "ok" {
            export.ok.inc();
        } else {
            resolved
                .families
                .calls
                .get_or_create(&CallLabels {
                    export: export.label.clone(),
                    outcome,
                    actor: resolved.actor.clone(),
                })
                .inc();
        }
    }

    /// A call was refused because the actor's queue was full.
    pub(crate) fn refused(&self) {
        if let Some(resolved) = &self.inner {
            let label = Label("policy", "reject");
            resolved.families.overflow.get_or_create(&label).inc();
        }
    }
}

/// In per-actor mode an actor's series end with it, so that actors coming
/// and going do not grow the scrape.
impl Drop for Resolved {
    fn drop(&mut self) {
        let Some(actor) = &self.actor else {
            return;
        };
        let families = &self.families;
        for export in self.exports.iter().flatten().chain([&self.other]) {
            let latency = ExportLabels {
                export: export.label.clone(),
                actor: Some(actor.clone()),
            };
            families.latency.remove(&latency);
            for outcome in super::OUTCOMES {
                families.calls.remove(&CallLabels {
                    export: export.label.clone(),
                    outcome,
                    actor: Some(actor.clone()),
                });
            }
        }
    }
}
