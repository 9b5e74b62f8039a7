//! `ntwk:theater/supervisor`: a parent spawns and manages its children;
//! `supervisor-handlers` is how it hears of their failures and exits.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentType, Linker, Lower};

use super::Exports;
use super::config::ConfigError;
use super::recorded::{off_clock, recorded, shown_by, whole};
use super::supervision;
use super::supervisor_policy::SupervisionPolicy;
use super::{Granted, Handler, HostFunctions};
use crate::actor::{
    ActorStore, ChildEvent, ChildLink, ChildOp, Decision, Exit, HostView, RuntimeServices,
    SpawnOptions,
};
use crate::chain::ChainEvent;
use crate::chain::record::StateDigest;
use crate::error::SpawnError;
use crate::files::{self, FileRules};
use crate::id::ActorId;
use crate::manifest::{Manifest, ManifestError};
use crate::packages::Package;
use crate::storage::Replicated;
use crate::wasm::StateBytes;

const INTERFACE: &str = "ntwk:theater/supervisor";
const HANDLERS: &str = "ntwk:theater/supervisor-handlers";

/// `type = "supervisor"`; its config is the [`SupervisionPolicy`].
pub struct SupervisorHandler;

impl Handler for SupervisorHandler {
    const NAME: &'static str = "supervisor";
    const IMPORTS: &'static [&'static str] = &[INTERFACE];
    type Config = Arc<SupervisionPolicy>;

    /// See [`SupervisionPolicy::within`].
    fn within(
        &self,
        child: &Granted<'_, Arc<SupervisionPolicy>>,
        parent: &Granted<'_, Arc<SupervisionPolicy>>,
    ) -> Result<(), ConfigError> {
        child.config.within(child.dir, parent.config, parent.dir)
    }

    fn child_event(
        &self,
        runtime: &dyn RuntimeServices,
        link: &ChildLink,
        event: &ChildEvent,
    ) -> Option<Decision> {
        supervision::child_event(runtime, link, event)
    }

    fn actor_ended(&self, runtime: &dyn RuntimeServices, exit: &Exit) {
        supervision::actor_ended(runtime, exit);
    }
}

/// The runtime, as a supervisor reaches it.
type Runtime = Arc<dyn RuntimeServices>;

impl HostFunctions for SupervisorHandler {
    fn add_to_linker(
        &self,
        linker: &mut Linker<ActorStore>,
        package: Package,
    ) -> wasmtime::Result<()> {
        let mut host = linker.instance(&package.name_of(INTERFACE))?;
        // Time spent spawning is the caller's own: it counts against its
        // call's time limit, and a spawn gets only what is left of it.
        host.func_wrap_async("spawn", |mut store, (manifest, state): (String, Option<Vec<u8>>)| {
            Box::new(async move {
                let params = json!({ "manifest": manifest, "state_bytes": state.as_ref().map(Vec::len) });
                let (caller, time_left) = (caller(&store), store.data().time_left());
                let result = spawn_child(caller, manifest, state.map(Some), time_left).await;
                answer(&mut store, "spawn", params, result, Clone::clone).await
            })
        })?;
        host.func_wrap_async("resume", |mut store, (manifest, state): (String, Option<Vec<u8>>)| {
            Box::new(async move {
                let params = json!({ "manifest": manifest, "state_bytes": state.as_ref().map(Vec::len) });
                let (caller, time_left) = (caller(&store), store.data().time_left());
                let result = spawn_child(caller, manifest, Some(state), time_left).await;
                answer(&mut store, "resume", params, result, Clone::clone).await
            })
        })?;
        host.func_wrap_async("list-children", |mut store, (): ()| {
            Box::new(async move {
                let data = store.data();
                let children = data
                    .runtime()
                    .map(|rt| rt.children(data.id))
                    .unwrap_or_default();
                let children: Vec<String> = children.iter().map(ActorId::to_string).collect();
                answer(&mut store, "list-children", json!({}), children, whole).await
            })
        })?;
        host.func_wrap_async("stop-child", |mut store, (child,): (String,)| {
            Box::new(async move {
                let result = child_call(&mut store, &child, ChildOp::Stop).await;
                answer(
                    &mut store,
                    "stop-child",
                    json!({ "child": child }),
                    result.map(drop),
                    whole,
                )
                .await
            })
        })?;
        host.func_wrap_async("restart-child", |mut store, (child,): (String,)| {
            Box::new(async move {
                let result = child_call(&mut store, &child, ChildOp::Restart).await;
                answer(
                    &mut store,
                    "restart-child",
                    json!({ "child": child }),
                    result.map(drop),
                    whole,
                )
                .await
            })
        })?;
        host.func_wrap_async("get-child-state", |mut store, (child,): (String,)| {
            Box::new(async move {
                let result = child_call(&mut store, &child, ChildOp::State).await;
                // The state by digest, as call events record states.
                let shown = shown_by(|state: &StateBytes| json!(StateDigest::of(state)));
                answer(
                    &mut store,
                    "get-child-state",
                    json!({ "child": child }),
                    result,
                    shown,
                )
                .await
            })
        })?;
        host.func_wrap_async("get-child-events", |mut store, (child,): (String,)| {
            Box::new(async move {
                let events = match own_child(&store, &child) {
                    Ok((runtime, child)) => child_events(&*runtime, child).await,
                    Err(e) => Err(e),
                };
                let events =
                    events.map(|events| events.iter().map(WitChainEvent::from).collect::<Vec<_>>());
                let shown = shown_by(|e: &Vec<_>| json!({ "events": e.len() }));
                answer(
                    &mut store,
                    "get-child-events",
                    json!({ "child": child }),
                    events,
                    shown,
                )
                .await
            })
        })?;
        Ok(())
    }

    fn exports(&self, exports: &mut Exports, _listed: bool) {
        exports
            .register_function_no_result::<(String, String)>(HANDLERS, "handle-child-error")
            .required(false);
        exports
            .register_function_no_result::<(String, Option<Vec<u8>>)>(HANDLERS, "handle-child-exit")
            .required(false);
    }
}

/// The calling actor: its runtime, id and supervision policy.
type Caller = Result<(Runtime, ActorId, Arc<SupervisionPolicy>), String>;

fn caller(store: &StoreContextMut<'_, impl HostView>) -> Caller {
    let data = store.data();
    let runtime = data.runtime().ok_or("the runtime is shutting down")?;
    let policy = data
        .extensions()
        .get::<Arc<SupervisionPolicy>>()
        .cloned()
        .unwrap_or_default();
    Ok((runtime, data.id(), policy))
}

/// Spawns a child of the calling actor within `time_left`. `manifest` is
/// a path relative to the parent's manifest directory, or manifest text (it
/// contains `=`); either way its files are read only from where the parent
/// may spawn. The spawn runs as its own task: if time runs out first, the
/// caller gets an error and the child is stopped as soon as it has started.
async fn spawn_child(
    caller: Caller,
    manifest: String,
    state: Option<Option<Vec<u8>>>,
    time_left: Duration,
) -> Result<String, String> {
    let (runtime, parent, policy) = caller?;
    if time_left.is_zero() {
        return Err("this call has no time left to spawn a child".to_owned());
    }
    let parent_manifest = runtime.manifest(parent).map_err(|e| e.to_string())?;
    // Only beneath the directories its policy lets it spawn from.
    let rules = FileRules {
        limits: runtime.file_rules().limits,
        beneath: Some(policy.spawn_area(parent_manifest.base_dir()).into()),
    };
    let base_dir = parent_manifest.base_dir().to_owned();
    let spawner = runtime.clone();
    let mut spawning = tokio::spawn(async move {
        let read_rules = rules.clone();
        let child = files::off_thread(move || load_manifest(&manifest, &base_dir, &read_rules))
            .await
            .map_err(|e| e.to_string())?;
        if spawner.children(parent).len() >= policy.max_children {
            let limit = policy.max_children;
            return Err(SpawnError::TooManyChildren { parent, limit }.to_string());
        }
        let options = SpawnOptions {
            parent: Some((parent, policy)),
            by_parent: Some(rules),
            state,
            ..SpawnOptions::default()
        };
        spawner
            .spawn(child, options)
            .await
            .map_err(|e| e.to_string())
    });
    match tokio::time::timeout(time_left, &mut spawning).await {
        Ok(spawned) => Ok(spawned
            .map_err(|e| format!("the spawn failed in the host: {e}"))??
            .id()
            .to_string()),
        Err(_) => {
            tokio::spawn(async move {
                if let Ok(Ok(child)) = spawning.await {
                    let _ = runtime.stop(child.id()).await;
                }
            });
            Err(format!(
                "the spawn did not finish within the {} ms this call had left",
                time_left.as_millis()
            ))
        }
    }
}

/// Reads the manifest a parent names (blocking): relative paths resolve
/// against the parent's manifest directory, made absolute and free of
/// symbolic links so that it compares with the directories in `rules`.
fn load_manifest(
    manifest: &str,
    base_dir: &Path,
    rules: &FileRules,
) -> Result<Manifest, ManifestError> {
    let base_dir = base_dir.canonicalize().map_err(|e| ManifestError {
        file: base_dir.to_owned(),
        line: None,
        message: format!("the parent's manifest directory cannot be resolved: {e}"),
    })?;
    if manifest.contains('=') {
        Manifest::parse_with(
            manifest,
            &base_dir.join("<inline manifest>"),
            &base_dir,
            rules,
        )
    } else {
        Manifest::load_with(&base_dir.join(manifest), rules)
    }
}

/// The runtime and `child`'s id, if it is a child of the calling actor.
fn own_child(
    store: &StoreContextMut<'_, impl HostView>,
    child: &str,
) -> Result<(Runtime, ActorId), String> {
    let data = store.data();
    let runtime = data.runtime().ok_or("the runtime is shutting down")?;
    let child_id: ActorId = child
        .parse()
        .map_err(|e: crate::id::ParseActorIdError| e.to_string())?;
    if runtime.parent(child_id) != Some(data.id()) {
        return Err(format!("{child} is not a child of this actor"));
    }
    Ok((runtime, child_id))
}

/// Does `op` to `child`, which must be a child of the calling actor, on
/// whichever node runs it: its state for [`ChildOp::State`].
async fn child_call<V: HostView>(
    store: &mut StoreContextMut<'_, V>,
    child: &str,
    op: ChildOp,
) -> Result<StateBytes, String> {
    let parent = store.data().id();
    let target = own_child(store, child);
    // Waiting for a child's queue does not count against the parent's call
    // time limit.
    let work = async {
        let (runtime, child) = target?;
        let done = runtime.child_op(parent, child, op);
        done.await.map_err(|e| e.to_string())
    };
    off_clock(store, work).await
}

/// `child`'s chain: this node's copy, or in a cluster, for a child that
/// runs on another node, the replicated one.
async fn child_events(
    runtime: &dyn RuntimeServices,
    child: ActorId,
) -> Result<Vec<ChainEvent>, String> {
    let Some(cluster) = runtime.cluster().filter(|_| runtime.actor(child).is_err()) else {
        return runtime.chain(child).map_err(|e| e.to_string());
    };
    let (entries, _) = cluster
        .chains()
        .read(&child.to_string())
        .await
        .map_err(|e| e.to_string())?;
    entries
        .iter()
        .map(|bytes| Replicated::decode(bytes).map(|entry| entry.event))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the child's replicated chain is unreadable: {e}"))
}

/// Records a call to `function` of the supervisor interface in the parent's
/// chain and hands the parent `result`, shown as `shown` renders it.
async fn answer<V: HostView, R, T: Serialize, E: Serialize>(
    store: &mut StoreContextMut<'_, V>,
    function: &str,
    params: Value,
    result: R,
    shown: impl FnOnce(&R) -> Result<T, E>,
) -> wasmtime::Result<(R,)> {
    recorded(
        store,
        &format!("{INTERFACE}.{function}"),
        params,
        result,
        shown,
    )
    .await
}

#[derive(ComponentType, Lower)]
#[component(record)]
struct WitChainEvent {
    hash: Vec<u8>,
    #[component(name = "parent-hash")]
    parent_hash: Option<Vec<u8>>,
    #[component(name = "event-type")]
    event_type: String,
    data: Vec<u8>,
    timestamp: u64,
}

impl From<&ChainEvent> for WitChainEvent {
    fn from(event: &ChainEvent) -> Self {
        Self {
            hash: event.hash.to_vec(),
            parent_hash: event.parent_hash.map(|h| h.to_vec()),
            event_type: event.event_type.clone(),
            data: event.data.get().as_bytes().to_vec(),
            timestamp: event.timestamp,
        }
    }
}
