//! One live instance of an actor's component, with its exports bound.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use wasmtime::component::{Func, Instance};
use wasmtime::{Store, UpdateDeadline};

use super::ActorStore;
use crate::error::SpawnError;
use crate::manifest::Limits;
use crate::wasm::{
    CallFailure, CallOutput, CompiledComponent, ExportFunction, ExportRegistry, ExportSpec,
    Redactor, StateBytes,
};

/// Everything needed to (re)create an actor's instance.
pub(crate) struct ActorTemplate {
    pub name: String,
    pub compiled: Arc<CompiledComponent>,
    pub exports: ExportRegistry,
    pub limits: Limits,
}

impl ActorTemplate {
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.call_timeout_ms)
    }
}

/// An export bound to this instance, with how the chain records it.
struct BoundExport {
    function: Box<dyn ExportFunction>,
    redact: Option<Redactor>,
}

pub(crate) struct ActorInstance {
    pub store: Store<ActorStore>,
    exports: HashMap<String, BoundExport>,
}

impl ActorInstance {
    /// Instantiates the component and binds every export the granted
    /// handlers expect, checking each against its real type.
    pub async fn new(template: &ActorTemplate, data: ActorStore) -> Result<Self, SpawnError> {
        let component = &template.compiled.component;
        let mut store = Store::new(component.engine(), data);
        store.limiter(|data| &mut data.limiter);
        let limit_ms = template.limits.call_timeout_ms;
        store.epoch_deadline_callback(move |ctx| {
            ctx.data().check_deadline(limit_ms)?;
            // Still within budget: let other actors run, then continue.
            Ok(UpdateDeadline::Yield(1))
        });
        arm_deadline(&mut store, template.call_timeout());
        let instance = template
            .compiled
            .instance_pre()?
            .instantiate_async(&mut store)
            .await
            .map_err(|e| SpawnError::Instantiate(format!("{e:#}")))?;

        let mut exports = HashMap::new();
        for spec in template.exports.specs() {
            match lookup(template, &instance, &mut store, spec) {
                Some(func) => {
                    let bound =
                        spec.bind(func, &store)
                            .map_err(|e| SpawnError::MistypedExport {
                                function: spec.full_name(),
                                signature: spec.signature(),
                                reason: format!("{e:#}"),
                            })?;
                    let bound = BoundExport {
                        function: bound,
                        redact: spec.redact,
                    };
                    exports.insert(spec.full_name(), bound);
                }
                None if spec.required => {
                    return Err(SpawnError::MissingExport {
                        function: spec.full_name(),
                        signature: spec.signature(),
                    });
                }
                None => {}
            }
        }
        Ok(Self { store, exports })
    }

    /// Names of the bound exports, sorted, for error messages.
    pub fn export_names(&self) -> String {
        let mut names: Vec<&str> = self.exports.keys().map(String::as_str).collect();
        names.sort_unstable();
        names.join(", ")
    }

    /// Calls a bound export under the time limit. `None` if not exported.
    pub async fn call(
        &mut self,
        function: &str,
        state: StateBytes,
        params: &RawValue,
        timeout: Duration,
    ) -> Option<Called> {
        let export = self.exports.get(function)?;
        arm_deadline(&mut self.store, timeout);
        let outcome = export.function.call(&mut self.store, state, params).await;
        Some(Called {
            outcome,
            redact: export.redact,
        })
    }
}

/// What a call returned, and how the chain records its values.
pub(crate) struct Called {
    pub outcome: Result<CallOutput, CallFailure>,
    pub redact: Option<Redactor>,
}

/// `value` (a call's params or result) as the chain records it.
pub(crate) fn recorded(redact: Option<Redactor>, value: &RawValue) -> Cow<'_, RawValue> {
    match redact {
        Some(redact) => Cow::Owned(redact(value)),
        None => Cow::Borrowed(value),
    }
}

/// Starts the clock of the next call: the epoch callback checks it each tick.
fn arm_deadline(store: &mut Store<ActorStore>, timeout: Duration) {
    store.data_mut().deadline = Instant::now() + timeout;
    store.set_epoch_deadline(1);
}

fn lookup(
    template: &ActorTemplate,
    instance: &Instance,
    store: &mut Store<ActorStore>,
    spec: &ExportSpec,
) -> Option<Func> {
    let component = &template.compiled.component;
    let interface = component.get_export_index(None, spec.interface)?;
    let function = component.get_export_index(Some(&interface), spec.function)?;
    instance.get_func(store, function)
}
