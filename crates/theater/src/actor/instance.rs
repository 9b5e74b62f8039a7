//! One live instance of an actor's component, with its exports bound.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use wasmtime::Store;
use wasmtime::component::{Func, InstancePre};

use super::ActorStore;
use crate::error::SpawnError;
use crate::manifest::Limits;
use crate::wasm::{
    CallFailure, CallOutput, CompiledComponent, ExportFunction, ExportSpec, ExportTable, Redactor,
    StateBytes,
};

/// Everything needed to (re)create an actor's instance.
pub(crate) struct ActorTemplate {
    pub name: String,
    pub compiled: Arc<CompiledComponent<ActorStore>>,
    pub exports: Arc<ExportTable<ActorStore>>,
    pub limits: Limits,
}

impl ActorTemplate {
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.call_timeout_ms)
    }
}

pub(crate) struct ActorInstance {
    pub store: Store<ActorStore>,
    exports: Arc<ExportTable<ActorStore>>,
    /// Per entry of `exports`, its function in this instance, if exported.
    bound: Vec<Option<Box<dyn ExportFunction<ActorStore>>>>,
}

impl ActorInstance {
    /// Instantiates the component and binds every export the granted
    /// handlers expect, checking each against its real type.
    pub async fn new(template: &ActorTemplate, data: ActorStore) -> Result<Self, SpawnError> {
        instantiate_with(template, template.compiled.instance_pre()?, data).await
    }

    /// Names of the bound exports as the component exports them, sorted,
    /// for error messages.
    pub fn export_names(&self) -> String {
        self.exports.exported_names().join(", ")
    }

    /// The slot of `function` (by canonical name, or as exported) among
    /// the exports the handlers expect.
    pub fn slot(&self, function: &str) -> Option<usize> {
        self.exports.slot(function)
    }

    /// `interface.function` as the component exports the one in `slot`.
    pub fn exported_name(&self, slot: usize) -> Option<&Arc<str>> {
        self.exports.exported_name(slot)
    }

    /// Calls the export in `slot` under the time limit and the cap on its
    /// result. `None` if the component does not export it.
    pub async fn call(
        &mut self,
        slot: Option<usize>,
        state: StateBytes,
        params: &RawValue,
        limits: &Limits,
    ) -> Option<Called> {
        let slot = slot?;
        let export = self.bound[slot].as_ref()?;
        arm_deadline(
            &mut self.store,
            Duration::from_millis(limits.call_timeout_ms),
        );
        let outcome = export
            .call(&mut self.store, state, params, limits.max_result_bytes)
            .await;
        Some(Called {
            outcome,
            redact: self.exports.spec(slot).redact,
            function: self.exports.exported_name(slot)?.clone(),
        })
    }
}

/// [`ActorInstance::new`] with the imports `pre` links: validation links
/// every import to a trap.
pub(crate) async fn instantiate_with(
    template: &ActorTemplate,
    pre: &InstancePre<ActorStore>,
    data: ActorStore,
) -> Result<ActorInstance, SpawnError> {
    let component = &template.compiled.component;
    let mut store = Store::new(component.engine(), data);
    store.limiter(|data| &mut data.limiter);
    let limit_ms = template.limits.call_timeout_ms;
    store.epoch_deadline_callback(move |ctx| {
        ctx.data().check_deadline(limit_ms)?;
        // Still within budget: let other actors and the I/O run, then continue.
        Ok(crate::wasm::yield_to_others())
    });
    arm_deadline(&mut store, template.call_timeout());
    let instance = pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| SpawnError::Instantiate(crate::wasm::instantiation_failure(&e)))?;

    let mut bound = Vec::with_capacity(template.exports.entries().len());
    for (spec, found) in template.exports.entries() {
        let func = found.and_then(|found| instance.get_func(&mut store, found.index));
        bound.push(match func {
            Some(func) => Some(bind(spec, func, &store)?),
            None if spec.required => {
                return Err(SpawnError::MissingExport {
                    function: spec.full_name(),
                    signature: spec.signature(),
                });
            }
            None => None,
        });
    }
    Ok(ActorInstance {
        store,
        exports: template.exports.clone(),
        bound,
    })
}

/// What a call returned, and how the chain records its values.
pub(crate) struct Called {
    pub outcome: Result<CallOutput, CallFailure>,
    pub redact: Option<Redactor>,
    /// `interface.function` as the component exports it: chains name it so.
    pub function: Arc<str>,
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

/// Binds `func` as `spec` expects, or explains how its type differs.
fn bind(
    spec: &ExportSpec<ActorStore>,
    func: Func,
    store: &Store<ActorStore>,
) -> Result<Box<dyn ExportFunction<ActorStore>>, SpawnError> {
    spec.bind(func, store)
        .map_err(|e| SpawnError::MistypedExport {
            function: spec.full_name(),
            signature: spec.signature(),
            reason: format!("{e:#}"),
        })
}
