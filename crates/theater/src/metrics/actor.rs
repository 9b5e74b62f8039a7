//! One actor's call metrics, resolved when it starts so that a call costs
//! a map lookup and a few atomic adds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::Families;
use super::labels::{CallLabels, ExportLabels, Label};
use crate::id::ActorId;
use crate::packages;

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
    /// By canonical name ([`packages::canonical`]), so that a call asked
    /// under either package name finds the export; labelled as exported.
    exports: HashMap<Box<str>, Export>,
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
        exports: impl IntoIterator<Item = &'a str>,
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
            .map(|name| {
                let key = packages::canonical(name).into();
                (key, resolve(families.export_label(name)))
            })
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

    /// A call of `function` ended with `outcome` (`ok` or the kind of
    /// failure) after `elapsed`.
    pub(crate) fn call(&self, function: &str, outcome: &'static str, elapsed: Duration) {
        let Some(resolved) = &self.inner else {
            return;
        };
        let export = resolved
            .exports
            .get(&*packages::canonical(function))
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
        for export in self.exports.values().chain([&self.other]) {
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
