//! The baseline the benches measure against: a component on plain
//! wasmtime, with Theater's engine settings and only what WASI needs.

use std::path::Path;

use wasmtime::Store;
use wasmtime::component::{
    Component, ComponentNamedList, Instance, InstancePre, Lift, Linker, Lower, ResourceTable,
    TypedFunc,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Store data of the baseline: a WASI context, created on first use as
/// Theater does.
pub struct RawHost {
    table: ResourceTable,
    wasi: Option<WasiCtx>,
}

impl WasiView for RawHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| WasiCtx::builder().build()),
            table: &mut self.table,
        }
    }
}

/// A component linked on plain wasmtime.
pub struct RawComponent {
    component: Component,
    pre: InstancePre<RawHost>,
}

impl RawComponent {
    /// The component at `path`, linked with WASI and whatever `link` adds.
    pub fn load(path: &Path, link: impl FnOnce(&mut Linker<RawHost>, &Component)) -> Self {
        let engine = theater::wasm::new_engine().expect("engine");
        let component = Component::from_file(&engine, path).expect("compile");
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
        link(&mut linker, &component);
        let pre = linker.instantiate_pre(&component).expect("link");
        Self { component, pre }
    }

    /// A new store, never interrupted (the baseline pays nothing for time
    /// limits), and an instance in it.
    pub async fn instantiate(&self) -> (Store<RawHost>, Instance) {
        let host = RawHost {
            table: ResourceTable::new(),
            wasi: None,
        };
        let mut store = Store::new(self.pre.engine(), host);
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .expect("instantiate");
        (store, instance)
    }

    /// The export `function` of `interface`, typed.
    pub fn func<P, R>(
        &self,
        instance: &Instance,
        store: &mut Store<RawHost>,
        interface: &str,
        function: &str,
    ) -> TypedFunc<P, R>
    where
        P: ComponentNamedList + Lower + Send + Sync,
        R: ComponentNamedList + Lift + Send + Sync,
    {
        let interface = self
            .component
            .get_export_index(None, interface)
            .expect("interface export");
        let function = self
            .component
            .get_export_index(Some(&interface), function)
            .expect("function export");
        instance
            .get_typed_func(store, function)
            .expect("export type")
    }
}
