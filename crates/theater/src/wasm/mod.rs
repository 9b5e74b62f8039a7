//! The WebAssembly layer: one shared engine, compiled components cached by
//! content hash, and the typed adapter between serialized calls and typed
//! component exports. It knows no capability by name.

mod adapter;
mod cache;
mod disk_cache;

pub(crate) use adapter::ExportTable;
pub use adapter::{
    CallFailure, CallOutput, ExportBuilder, ExportFunction, ExportRegistry, ExportSpec,
    ParamsShape, Redactor, ResultShape, StateBytes,
};
pub use cache::{CompiledComponent, ComponentCache, ComponentError, ExportKey};

use std::time::Duration;

use wasmtime::{Config, Engine};

/// How often the epoch advances. Bounds how late a time limit fires and how
/// long a busy actor runs before it yields its thread to others.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine every actor of a process shares. Calls take the synchronous
/// component-model path (`concurrency_support(false)`): one call per actor at
/// a time is Theater's model, and that path costs a third of the concurrent one.
pub fn new_engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .concurrency_support(false)
        .epoch_interruption(true);
    let engine = Engine::new(&config)?;
    start_epoch_ticker(&engine);
    Ok(engine)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("theater-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}
