//! `ntwk:theater/runtime`: logging and the actor's own chain; and
//! `runtime-control.shutdown`, with which an actor stops itself
//! (`theater:simple/runtime` has `shutdown` too).

use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentType, Linker, Lower};

use super::{Handler, HostFunctions};
use crate::actor::{ActorStore, EndRequest};
use crate::chain::ChainEvent;
use crate::chain::record::{self, LogRecord};
use crate::packages::Package;

const INTERFACE: &str = "ntwk:theater/runtime";

/// Longest `log` message the chain records whole; the rest is cut. Guards
/// the chain database against an actor that logs without bound.
pub const MAX_LOG_BYTES: usize = 64 * 1024;
const CONTROL: &str = "ntwk:theater/runtime-control";

/// Always granted; `type = "runtime"` in a manifest is accepted.
pub struct RuntimeHandler;

impl Handler for RuntimeHandler {
    const NAME: &'static str = "runtime";
    const IMPORTS: &'static [&'static str] = &[INTERFACE, CONTROL];
    const ALWAYS_GRANTED: bool = true;
    type Config = ();
}

impl HostFunctions for RuntimeHandler {
    fn add_to_linker(
        &self,
        linker: &mut Linker<ActorStore>,
        package: Package,
    ) -> wasmtime::Result<()> {
        let mut runtime = linker.instance(&package.name_of(INTERFACE))?;
        runtime.func_wrap_async("log", |mut store, (message,): (String,)| {
            Box::new(async move {
                let data = store.data_mut();
                let message = record::cut(message, MAX_LOG_BYTES);
                tracing::info!(target: "actor", actor = %data.id, "{message}");
                let event = record::encode(&LogRecord { message: &message });
                data.recorder
                    .record(record::LOG, event, log_description(&message))
                    .await?;
                Ok(())
            })
        })?;
        runtime.func_wrap_async("get-chain", |store, (): ()| {
            // A long chain is read off the runtime's threads.
            let recorder = store.data().recorder.clone();
            Box::new(async move {
                let events = tokio::task::spawn_blocking(move || recorder.events()).await??;
                Ok((WitChain::from_events(&events),))
            })
        })?;
        // `theater:simple` carries `shutdown` in `runtime` itself.
        if package == Package::SIMPLE {
            runtime.func_wrap("shutdown", shutdown)?;
        }
        linker
            .instance(&package.name_of(CONTROL))?
            .func_wrap("shutdown", shutdown)?;
        Ok(())
    }
}

/// Largest data an actor may pass to `shutdown`. Guards the chain, whose
/// `shutdown` event records it, and the supervisor it is handed to.
pub const MAX_SHUTDOWN_DATA_BYTES: usize = 64 * 1024;

/// `shutdown(data)`: the actor ends once the running call returns (see
/// the executor); its supervisor gets the data with `handle-child-exit`.
fn shutdown(
    mut store: StoreContextMut<'_, ActorStore>,
    (data,): (Option<Vec<u8>>,),
) -> wasmtime::Result<(Result<(), String>,)> {
    let size = data.as_ref().map_or(0, Vec::len);
    if size > MAX_SHUTDOWN_DATA_BYTES {
        return Ok((Err(format!(
            "shutdown data of {size} bytes is over the limit of {MAX_SHUTDOWN_DATA_BYTES}; pass less, or keep it in the state"
        )),));
    }
    store.data_mut().extensions.insert(EndRequest(data));
    Ok((Ok(()),))
}

/// Longest log line kept in an event's description (the data has it all).
const DESCRIPTION_CHARS: usize = 80;

fn log_description(message: &str) -> String {
    let mut description: String = message.chars().take(DESCRIPTION_CHARS).collect();
    if description.len() < message.len() {
        description.push('…');
    }
    format!("log: {description}")
}

#[derive(ComponentType, Lower)]
#[component(record)]
struct WitEvent {
    #[component(name = "event-type")]
    event_type: String,
    parent: Option<u64>,
    data: Vec<u8>,
}

#[derive(ComponentType, Lower)]
#[component(record)]
struct WitMetaEvent {
    hash: u64,
    event: WitEvent,
}

#[derive(ComponentType, Lower)]
#[component(record)]
struct WitChain {
    events: Vec<WitMetaEvent>,
}

impl WitChain {
    fn from_events(events: &[ChainEvent]) -> Self {
        Self {
            events: events
                .iter()
                .map(|e| WitMetaEvent {
                    hash: ChainEvent::short_hash(&e.hash),
                    event: WitEvent {
                        event_type: e.event_type.clone(),
                        parent: e.parent_hash.as_ref().map(ChainEvent::short_hash),
                        data: e.data.get().as_bytes().to_vec(),
                    },
                })
                .collect(),
        }
    }
}
