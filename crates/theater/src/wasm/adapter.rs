//! The typed adapter: host code speaks natural Rust types, serialized as
//! JSON on their way to the actor's task; here they are turned back into `P`
//! and handed to the typed component export as `(state, P)`, and the export's
//! `R` is serialized on the way back.
//!
//! Every export has the shape
//! `func(state: option<list<u8>>, params: tuple<...>) -> result<tuple<option<list<u8>>, R>, string>`.
//! The four `register_function*` variants cover the shapes with and without
//! parameters and a return value. Each registration is checked against the
//! component's real export type when the actor is spawned.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::{RawValue, to_raw_value};
use wasmtime::Store;
use wasmtime::component::{
    Component, ComponentExportIndex, ComponentNamedList, ComponentType, Func, Lift, Lower,
    TypedFunc,
};

use crate::packages::Package;

/// An actor's state: opaque bytes, by convention JSON.
pub type StateBytes = Option<Vec<u8>>;

/// What an export returned on `Ok`.
pub struct CallOutput {
    pub state: StateBytes,
    /// `R`, serialized.
    pub result: Box<RawValue>,
}

/// Why a call did not produce a new state.
#[derive(Debug)]
pub enum CallFailure {
    /// The params did not deserialize into the export's `P`.
    BadParams(String),
    /// The actor answered `Err(message)`.
    Actor(String),
    /// The call trapped or hit a limit; the instance must not be reused.
    Trap(wasmtime::Error),
    /// The result, as JSON, would exceed the caller's cap on it.
    ResultTooLarge,
    /// The state left behind, of this many bytes, exceeds the actor's cap
    /// (checked by the caller, which knows the cap).
    StateTooLarge(usize),
}

type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<CallOutput, CallFailure>> + Send + 'a>>;

/// One bound export, callable with serialized params, of an instance
/// whose store holds `T`.
pub trait ExportFunction<T>: Send + Sync {
    /// Calls the export; a result longer than `max_result_bytes` as JSON is
    /// refused ([`CallFailure::ResultTooLarge`]) before it is written out.
    fn call<'a>(
        &'a self,
        store: &'a mut Store<T>,
        state: StateBytes,
        params: &'a RawValue,
        max_result_bytes: usize,
    ) -> CallFuture<'a>;
}

/// How `(state, P)` is laid out as the export's parameter list.
pub trait ParamsShape<P>: ComponentNamedList + Lower + Send + Sync + 'static {
    fn new(state: StateBytes, params: P) -> Self;
    /// The parameter list, for error messages.
    fn describe() -> String;
}

impl<P: ComponentType + Lower + Send + Sync + 'static> ParamsShape<P> for (StateBytes, P) {
    fn new(state: StateBytes, params: P) -> Self {
        (state, params)
    }
    fn describe() -> String {
        format!("state: Option<Vec<u8>>, params: {}", rust_type::<P>())
    }
}

/// Exports without parameters take the state alone.
impl ParamsShape<()> for (StateBytes,) {
    fn new(state: StateBytes, (): ()) -> Self {
        (state,)
    }
    fn describe() -> String {
        "state: Option<Vec<u8>>".to_owned()
    }
}

/// How the `Ok` tuple of an export splits into the new state and `R`.
pub trait ResultShape<R>: ComponentType + Lift + Send + Sync + 'static {
    fn split(self) -> (StateBytes, R);
}

impl<R: ComponentType + Lift + Send + Sync + 'static> ResultShape<R> for (StateBytes, R) {
    fn split(self) -> (StateBytes, R) {
        self
    }
}

/// Exports without a return value answer the state alone.
impl ResultShape<()> for (StateBytes,) {
    fn split(self) -> (StateBytes, ()) {
        (self.0, ())
    }
}

/// A typed export: `P` in, `R` out, laid out as `A` and `O` on the wasm side.
struct TypedFunction<P, R, A, O> {
    func: TypedFunc<A, (Result<O, String>,)>,
    _types: PhantomData<fn(P) -> R>,
}

impl<T: Send, P, R, A, O> ExportFunction<T> for TypedFunction<P, R, A, O>
where
    P: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    A: ParamsShape<P>,
    O: ResultShape<R>,
{
    fn call<'a>(
        &'a self,
        store: &'a mut Store<T>,
        state: StateBytes,
        params: &'a RawValue,
        max_result_bytes: usize,
    ) -> CallFuture<'a> {
        Box::pin(async move {
            let params: P = serde_json::from_str(params.get())
                .map_err(|e| CallFailure::BadParams(e.to_string()))?;
            let (result,) = self
                .func
                .call_async(&mut *store, A::new(state, params))
                .await
                .map_err(CallFailure::Trap)?;
            let (state, value) = result.map_err(CallFailure::Actor)?.split();
            let result = to_bounded_json(&value, max_result_bytes)?;
            Ok(CallOutput { state, result })
        })
    }
}

/// `value` as JSON, unless that is longer than `limit` bytes: measured
/// first, so an oversized result is never written out whole.
fn to_bounded_json<T: Serialize>(value: &T, limit: usize) -> Result<Box<RawValue>, CallFailure> {
    let does_not_serialize = |e| CallFailure::Actor(format!("result does not serialize: {e}"));
    let mut counter = ByteCounter { written: 0, limit };
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => to_raw_value(value).map_err(does_not_serialize),
        Err(e) if e.is_io() => Err(CallFailure::ResultTooLarge),
        Err(e) => Err(does_not_serialize(e)),
    }
}

/// Counts the bytes written to it and fails past `limit`.
struct ByteCounter {
    written: usize,
    limit: usize,
}

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written += buf.len();
        if self.written > self.limit {
            return Err(std::io::Error::other("over the limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Type-checks `func` as `A -> result<O, string>` and wraps it.
fn bind<T: Send, P, R, A, O>(
    func: Func,
    store: &Store<T>,
) -> wasmtime::Result<Box<dyn ExportFunction<T>>>
where
    P: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    A: ParamsShape<P>,
    O: ResultShape<R>,
{
    let func = func.typed::<A, (Result<O, String>,)>(store)?;
    Ok(Box::new(TypedFunction::<P, R, A, O> {
        func,
        _types: PhantomData,
    }))
}

type Binder<T> = fn(Func, &Store<T>) -> wasmtime::Result<Box<dyn ExportFunction<T>>>;

/// Rewrites an export's serialized params or result for the chain, e.g. to
/// cap large bodies or hide secrets. The call itself sees the real values.
pub type Redactor = fn(&RawValue) -> Box<RawValue>;

/// One export a handler expects, with the shapes it may take.
pub struct ExportSpec<T: 'static> {
    pub interface: &'static str,
    pub function: &'static str,
    pub required: bool,
    /// How the chain records this export's params and result.
    pub redact: Option<Redactor>,
    describe: fn(&str) -> String,
    candidates: Vec<Binder<T>>,
}

impl<T: Send + 'static> ExportSpec<T> {
    /// `interface.function`, the canonical name `call_function` takes.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.interface, self.function)
    }

    /// The expected signature, for error messages.
    pub fn signature(&self) -> String {
        (self.describe)(self.function)
    }

    /// Binds the first shape that matches `func`'s real type; on mismatch the
    /// error of the primary shape explains what differs.
    pub fn bind(
        &self,
        func: Func,
        store: &Store<T>,
    ) -> wasmtime::Result<Box<dyn ExportFunction<T>>> {
        let mut first_error = None;
        for candidate in &self.candidates {
            match candidate(func, store) {
                Ok(bound) => return Ok(bound),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.expect("every spec has a shape"))
    }
}

/// The exports the granted handlers expect of an actor whose store holds
/// `T` (by default the crate's actors', see [`ActorData`]).
pub struct ExportRegistry<T: 'static> {
    specs: Vec<ExportSpec<T>>,
}

impl<T: 'static> Default for ExportRegistry<T> {
    fn default() -> Self {
        Self { specs: Vec::new() }
    }
}

impl<T: Send + 'static> ExportRegistry<T> {
    pub fn specs(&self) -> &[ExportSpec<T>] {
        &self.specs
    }

    /// `func(state, params: P) -> result<tuple<state, R>, string>`.
    pub fn register_function<P, R>(
        &mut self,
        interface: &'static str,
        function: &'static str,
    ) -> ExportBuilder<'_, T, P, R, (StateBytes, P)>
    where
        P: ComponentType + Lower + DeserializeOwned + Send + Sync + 'static,
        R: ComponentType + Lift + Serialize + Send + Sync + 'static,
    {
        self.push::<P, R, (StateBytes, P), (StateBytes, R)>(interface, function)
    }

    /// `func(state, params: P) -> result<tuple<state>, string>`.
    pub fn register_function_no_result<P>(
        &mut self,
        interface: &'static str,
        function: &'static str,
    ) -> ExportBuilder<'_, T, P, (), (StateBytes, P)>
    where
        P: ComponentType + Lower + DeserializeOwned + Send + Sync + 'static,
    {
        self.push::<P, (), (StateBytes, P), (StateBytes,)>(interface, function)
    }

    /// `func(state) -> result<tuple<state, R>, string>`.
    pub fn register_function_no_params<R>(
        &mut self,
        interface: &'static str,
        function: &'static str,
    ) -> ExportBuilder<'_, T, (), R, (StateBytes,)>
    where
        R: ComponentType + Lift + Serialize + Send + Sync + 'static,
    {
        self.push::<(), R, (StateBytes,), (StateBytes, R)>(interface, function)
    }

    /// `func(state) -> result<tuple<state>, string>`.
    pub fn register_function_no_params_no_result(
        &mut self,
        interface: &'static str,
        function: &'static str,
    ) -> ExportBuilder<'_, T, (), (), (StateBytes,)> {
        self.push::<(), (), (StateBytes,), (StateBytes,)>(interface, function)
    }

    fn push<P, R, A, O>(
        &mut self,
        interface: &'static str,
        function: &'static str,
    ) -> ExportBuilder<'_, T, P, R, A>
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        A: ParamsShape<P>,
        O: ResultShape<R>,
    {
        // A later registration of the same export replaces the earlier one.
        self.specs
            .retain(|s| !(s.interface == interface && s.function == function));
        self.specs.push(ExportSpec {
            interface,
            function,
            required: true,
            redact: None,
            describe: describe::<P, A, O>,
            candidates: vec![bind::<T, P, R, A, O>],
        });
        ExportBuilder {
            spec: self.specs.last_mut().expect("just pushed"),
            _types: PhantomData,
        }
    }
}

/// A registry's exports looked up in one component. Built once per
/// component and registry, so that an instance finds its exports by index
/// instead of by name.
///
/// Specs name exports by their canonical name (`ntwk:theater/actor.init`);
/// the component may export them under any name of [`Package::ALL`].
pub(crate) struct ExportTable<T: 'static> {
    specs: Vec<ExportSpec<T>>,
    /// Per spec, where the component exports it; `None` if it does not.
    found: Vec<Option<Found>>,
    /// Position in `specs` of each `interface.function`, by canonical name
    /// and by the name the component exports it under.
    slots: HashMap<String, usize>,
    /// An interface the component exports under two package names, if any.
    twice: Option<[String; 2]>,
}

/// Where a component exports one spec's function.
pub(crate) struct Found {
    pub index: ComponentExportIndex,
    /// `interface.function` as the component exports it.
    pub name: Arc<str>,
}

impl<T: Send + 'static> ExportTable<T> {
    pub fn new(component: &Component, registry: ExportRegistry<T>) -> Self {
        let specs = registry.specs;
        let mut twice = None;
        let found: Vec<Option<Found>> = specs
            .iter()
            .map(|spec| {
                let mut hits = Package::ALL
                    .into_iter()
                    .filter_map(|package| find(component, spec, package));
                let first = hits.next();
                if let (Some(first), Some(second)) = (&first, hits.next()) {
                    twice.get_or_insert([first.name.to_string(), second.name.to_string()]);
                }
                first
            })
            .collect();
        let mut slots = HashMap::with_capacity(specs.len());
        for (slot, (spec, found)) in specs.iter().zip(&found).enumerate() {
            slots.insert(spec.full_name(), slot);
            if let Some(found) = found {
                slots.insert(found.name.to_string(), slot);
            }
        }
        Self {
            specs,
            found,
            slots,
            twice,
        }
    }

    /// Each spec with where the component exports it, if it does.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (&ExportSpec<T>, Option<&Found>)> {
        self.specs.iter().zip(self.found.iter().map(Option::as_ref))
    }

    /// Position of `interface.function` (canonical, or as exported) in
    /// [`entries`](Self::entries).
    pub fn slot(&self, function: &str) -> Option<usize> {
        self.slots.get(function).copied()
    }

    pub fn spec(&self, slot: usize) -> &ExportSpec<T> {
        &self.specs[slot]
    }

    /// Whether the component exports `interface.function` (by either
    /// package name) as a handler expects it.
    pub fn exports(&self, function: &str) -> bool {
        self.slot(function)
            .is_some_and(|slot| self.found[slot].is_some())
    }

    /// The `interface.function` names the component exports, as it exports
    /// them, sorted.
    pub fn exported_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .found
            .iter()
            .flatten()
            .map(|found| found.name.to_string())
            .collect();
        names.sort_unstable();
        names
    }

    /// The name the component exports the function of `slot` under.
    pub fn exported_name(&self, slot: usize) -> Option<&Arc<str>> {
        self.found[slot].as_ref().map(|found| &found.name)
    }

    /// One function the component exports under both package names, by
    /// both names: which of the two the runtime should call is unclear.
    pub fn exported_twice(&self) -> Option<&[String; 2]> {
        self.twice.as_ref()
    }
}

fn find<T: Send + 'static>(
    component: &Component,
    spec: &ExportSpec<T>,
    package: Package,
) -> Option<Found> {
    let interface = package.name_of(spec.interface);
    let instance = component.get_export_index(None, interface.as_ref())?;
    let index = component.get_export_index(Some(&instance), spec.function)?;
    Some(Found {
        index,
        name: format!("{interface}.{}", spec.function).into(),
    })
}

/// Refines a registration.
pub struct ExportBuilder<'a, T: 'static, P, R, A> {
    spec: &'a mut ExportSpec<T>,
    _types: PhantomData<fn(P, A) -> R>,
}

impl<T: Send + 'static, P, R, A> ExportBuilder<'_, T, P, R, A>
where
    P: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    A: ParamsShape<P>,
{
    /// Sets whether the export must exist; when it may be missing, calling
    /// it on an actor without it is a clear error.
    pub fn required(self, required: bool) -> Self {
        self.spec.required = required;
        self
    }

    /// Records this export's params and result in the chain as `redact`
    /// rewrites them.
    pub fn recorded_as(self, redact: Redactor) -> Self {
        self.spec.redact = Some(redact);
        self
    }

    /// Also accepts an export whose `Ok` tuple has the layout `O`, converted
    /// to the same `R` (for interfaces whose result shape changed over time).
    pub fn or_result_shape<O: ResultShape<R>>(self) -> Self {
        self.spec.candidates.push(bind::<T, P, R, A, O>);
        self
    }
}

fn describe<P, A: ParamsShape<P>, O>(function: &str) -> String {
    format!(
        "{function}: func({}) -> Result<{}, String>",
        A::describe(),
        rust_type::<O>()
    )
}

/// A Rust type name without module paths, for signatures in error messages.
/// [`Bytes`](super::Bytes) is `list<u8>` to the component, and shown as
/// the `Vec<u8>` a guest writes.
fn rust_type<T>() -> String {
    let full = std::any::type_name::<T>().replace(std::any::type_name::<super::Bytes>(), "Vec<u8>");
    let mut out = String::with_capacity(full.len());
    let mut segment = String::new();
    for c in full.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            segment.push(c);
        } else {
            out.push_str(segment.rsplit("::").next().unwrap_or(""));
            segment.clear();
            out.push(c);
        }
    }
    out.push_str(segment.rsplit("::").next().unwrap_or(""));
    out
}

#[cfg(test)]
mod tests {
    use super::{CallFailure, rust_type, to_bounded_json};

    #[test]
    fn results_are_refused_past_their_cap() {
        let bytes = (vec![255u8; 3],);
        let json = to_bounded_json(&bytes, 15).unwrap();
        assert_eq!(json.get(), "[[255,255,255]]");
        assert!(matches!(
            to_bounded_json(&bytes, 14),
            Err(CallFailure::ResultTooLarge)
        ));
    }

    #[test]
    fn type_names_are_short() {
        assert_eq!(
            rust_type::<(Option<Vec<u8>>, (Vec<u8>,))>(),
            "(Option<Vec<u8>>, (Vec<u8>,))"
        );
        assert_eq!(rust_type::<(String,)>(), "(String,)");
    }
}
