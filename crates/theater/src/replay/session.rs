//! The component under replay: linked with real, sandboxed WASI and, for
//! every other import, a function that answers from the recorded feed.

use std::sync::Arc;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Func, Instance, InstancePre, Linker, ResourceTable, Val};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::ReplayError;
use super::feed::Feed;
use crate::packages::{self, Package};

/// The data of the replay's store.
pub struct ReplayStore {
    /// No environment, arguments, directories or network; output discarded.
    wasi: WasiCtx,
    table: ResourceTable,
    feed: Feed,
}

impl WasiView for ReplayStore {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

pub struct Session {
    component: Component,
    pre: InstancePre<ReplayStore>,
    store: Store<ReplayStore>,
    instance: Instance,
}

impl Session {
    pub async fn new(engine: &Engine, component: &Component) -> Result<Self, ReplayError> {
        let linker = linker(engine, component).map_err(|e| ReplayError::Link(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(component)
            .map_err(|e| ReplayError::Link(format!("{e:#}")))?;
        let (store, instance) = instantiate(&pre).await?;
        Ok(Self {
            component: component.clone(),
            pre,
            store,
            instance,
        })
    }

    /// A fresh instance, as the runtime makes after a trap or a restart.
    pub async fn refresh(&mut self) -> Result<(), ReplayError> {
        (self.store, self.instance) = instantiate(&self.pre).await?;
        Ok(())
    }

    /// The export `interface.function`, if the component has it, under
    /// any of the package names (chains name it as it was exported, the
    /// runtime canonically).
    pub fn export(&mut self, name: &str) -> Option<Func> {
        let (interface, function) = name.rsplit_once('.')?;
        let function = Package::ALL.into_iter().find_map(|package| {
            let interface = package.name_of(interface);
            let interface = self.component.get_export_index(None, interface.as_ref())?;
            self.component.get_export_index(Some(&interface), function)
        })?;
        self.instance.get_func(&mut self.store, function)
    }

    pub fn func_type(&self, func: Func) -> wasmtime::component::types::ComponentFunc {
        func.ty(&self.store)
    }

    /// Calls `func` with the imports answered from `feed`; gives the feed
    /// back with what is left of it.
    pub async fn call(
        &mut self,
        func: Func,
        args: &[Val],
        feed: Feed,
    ) -> (wasmtime::Result<Val>, Feed) {
        self.store.data_mut().feed = feed;
        let mut results = vec![Val::Bool(false); func.ty(&self.store).results().len()];
        let outcome = func
            .call_async(&mut self.store, args, &mut results)
            .await
            .and_then(|()| {
                results
                    .pop()
                    .ok_or_else(|| wasmtime::Error::msg("the export returns nothing"))
            });
        let feed = std::mem::replace(&mut self.store.data_mut().feed, Feed::empty());
        (outcome, feed)
    }
}

async fn instantiate(
    pre: &InstancePre<ReplayStore>,
) -> Result<(Store<ReplayStore>, Instance), ReplayError> {
    let data = ReplayStore {
        wasi: WasiCtx::builder().build(),
        table: ResourceTable::new(),
        feed: Feed::empty(),
    };
    let mut store = Store::new(pre.engine(), data);
    // The engine interrupts on epochs; a replay has no time limit, but
    // yields so it does not hold a thread the runtime's actors need.
    store.epoch_deadline_callback(|_| Ok(crate::wasm::yield_to_others()));
    store.set_epoch_deadline(1);
    let instance = pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| ReplayError::Instantiate(format!("{e:#}")))?;
    Ok((store, instance))
}

/// WASI for real; every other imported function from the feed.
fn linker(engine: &Engine, component: &Component) -> wasmtime::Result<Linker<ReplayStore>> {
    let mut linker = Linker::<ReplayStore>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    for (name, import) in component.component_type().imports(engine) {
        if name.starts_with("wasi:") {
            continue;
        }
        let ComponentItem::ComponentInstance(interface) = import.ty else {
            wasmtime::bail!("import `{name}` is not an interface; replay supports interfaces only");
        };
        // Chains name host functions canonically, without a version.
        let recorded_interface = packages::canonical(name.split('@').next().unwrap_or(name));
        let mut instance = linker.instance(name)?;
        for (function, item) in interface.exports(engine) {
            match item.ty {
                ComponentItem::ComponentFunc(_) => {
                    let recorded: Arc<str> = format!("{recorded_interface}.{function}").into();
                    instance.func_new(function, move |mut store, ty, params, results| {
                        store
                            .data_mut()
                            .feed
                            .answer(&recorded, &ty, params, results)
                    })?;
                }
                ComponentItem::Type(_) => {}
                _ => wasmtime::bail!(
                    "`{name}` exports `{function}`, which is not a function; replay cannot provide it"
                ),
            }
        }
    }
    Ok(linker)
}
