//! The WebAssembly layer: one shared engine, compiled components cached by
//! content hash, and the typed adapter between serialized calls and typed
//! component exports. It knows no capability by name, and is generic over
//! the data an instance's store holds, which the layer above defines.

mod adapter;
mod bytes;
mod cache;
mod disk_cache;
mod exhausted;
mod unchanged;

pub(crate) use adapter::ExportTable;
pub use adapter::{
    CallFailure, CallOutput, ExportBuilder, ExportFunction, ExportRegistry, ExportSpec,
    ParamsShape, Redactor, ResultShape, StateBytes,
};
pub use bytes::Bytes;
pub use cache::{CompiledComponent, ComponentCache, ComponentError, ExportKey};
pub use exhausted::instantiation_failure;

use std::time::Duration;

use wasmtime::{Config, Engine, UpdateDeadline};

/// How often the epoch advances: how long a busy call runs before it yields
/// its thread to other actors and to the I/O (see [`yield_to_others`]), and
/// how late a time limit may fire. Guards neighbours against an actor that
/// computes without end: each of them waits at most a tick or two per
/// spinning actor on its thread (docs/security.md). A millisecond costs the
/// spinning call a yield per millisecond and the process an idle thread's
/// wake-up per millisecond.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

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

/// What the epoch callback of a call still within its budget answers: go
/// on for one more tick, after yielding through tokio's own `yield_now`.
///
/// Wasmtime's plain `Yield` wakes the task at once, which tokio treats as
/// ready work: a worker kept busy by such tasks looks at its I/O driver and
/// its shared queue only every few dozen polls, so sockets and tasks woken
/// from other threads wait behind every spinning call. `yield_now` defers
/// the wake until the worker has looked at both.
pub(crate) fn yield_to_others() -> UpdateDeadline {
    UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
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
