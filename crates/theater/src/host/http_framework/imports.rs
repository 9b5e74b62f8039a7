//! The `ntwk:theater/http-framework` functions an actor imports: each one
//! changes or reads the actor's [`Shared`] registry, or starts and stops a
//! server, and is recorded as a `host-call` event.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};
use wasmtime::StoreContextMut;
use wasmtime::component::Linker;

use super::link::ActorLink;
use super::listener;
use super::state::{HttpFramework, Running, Shared, WsEndpoint};
use super::types::{ServerConfig, ServerInfo, WebsocketMessage, capped};
use super::{DEFAULT_RECORD_BODY_BYTES, INTERFACE};
use crate::actor::ActorStore;
use crate::host::recorded::recorded;
use crate::packages::Package;

/// Links every function of the interface, under `package`'s name.
pub fn add_to_linker(linker: &mut Linker<ActorStore>, package: Package) -> wasmtime::Result<()> {
    let mut host = linker.instance(&package.name_of(INTERFACE))?;
    host.func_wrap_async("create-server", |mut store, (config,): (ServerConfig,)| {
        Box::new(async move {
            let params = json!({ "config": config });
            let result = shared(&mut store).and_then(|s| s.create_server(config));
            answer(&mut store, "create-server", params, result).await
        })
    })?;
    host.func_wrap_async("get-server-info", |mut store, (id,): (u64,)| {
        Box::new(async move {
            let result: Result<ServerInfo, String> = shared(&mut store).and_then(|s| s.info(id));
            answer(
                &mut store,
                "get-server-info",
                json!({ "server": id }),
                result,
            )
            .await
        })
    })?;
    host.func_wrap_async("start-server", |store, (id,): (u64,)| {
        Box::new(on_server(
            store,
            "start-server",
            id,
            move |shared| async move { listener::start(&shared, id).await },
        ))
    })?;
    host.func_wrap_async("stop-server", |store, (id,): (u64,)| {
        Box::new(on_server(
            store,
            "stop-server",
            id,
            move |shared| async move { stop_taken(&shared, id, shared.take_running(id)).await },
        ))
    })?;
    host.func_wrap_async("destroy-server", |store, (id,): (u64,)| {
        Box::new(on_server(
            store,
            "destroy-server",
            id,
            move |shared| async move { stop_taken(&shared, id, shared.destroy(id)).await },
        ))
    })?;
    host.func_wrap_async("register-handler", |mut store, (name,): (String,)| {
        Box::new(async move {
            let params = json!({ "name": name });
            let result = shared(&mut store).and_then(|s| s.register_handler(name));
            answer(&mut store, "register-handler", params, result).await
        })
    })?;
    host.func_wrap_async(
        "add-route",
        |mut store, (server, path, method, handler): (u64, String, String, u64)| {
            Box::new(async move {
                let params =
                    json!({ "server": server, "path": path, "method": method, "handler": handler });
                let result =
                    shared(&mut store).and_then(|s| s.add_route(server, &path, &method, handler));
                answer(&mut store, "add-route", params, result).await
            })
        },
    )?;
    host.func_wrap_async("remove-route", |mut store, (id,): (u64,)| {
        Box::new(async move {
            let result = shared(&mut store).and_then(|s| s.remove_route(id));
            answer(&mut store, "remove-route", json!({ "route": id }), result).await
        })
    })?;
    host.func_wrap_async(
        "add-middleware",
        |mut store, (server, path, handler): (u64, String, u64)| {
            Box::new(async move {
                let params = json!({ "server": server, "path": path, "handler": handler });
                let result =
                    shared(&mut store).and_then(|s| s.add_middleware(server, &path, handler));
                answer(&mut store, "add-middleware", params, result).await
            })
        },
    )?;
    host.func_wrap_async("remove-middleware", |mut store, (id,): (u64,)| {
        Box::new(async move {
            let result = shared(&mut store).and_then(|s| s.remove_middleware(id));
            answer(
                &mut store,
                "remove-middleware",
                json!({ "middleware": id }),
                result,
            )
            .await
        })
    })?;
    host.func_wrap_async(
        "enable-websocket",
        |mut store,
         (server, path, connect, message, disconnect): (
            u64,
            String,
            Option<u64>,
            u64,
            Option<u64>,
        )| {
            Box::new(async move {
                let params = json!({
                    "server": server, "path": path,
                    "connect": connect, "message": message, "disconnect": disconnect,
                });
                let endpoint = WsEndpoint {
                    connect,
                    message,
                    disconnect,
                };
                let result =
                    shared(&mut store).and_then(|s| s.enable_websocket(server, &path, endpoint));
                answer(&mut store, "enable-websocket", params, result).await
            })
        },
    )?;
    host.func_wrap_async(
        "disable-websocket",
        |mut store, (server, path): (u64, String)| {
            Box::new(async move {
                let params = json!({ "server": server, "path": path });
                let result = shared(&mut store).and_then(|s| s.disable_websocket(server, &path));
                answer(&mut store, "disable-websocket", params, result).await
            })
        },
    )?;
    host.func_wrap_async(
        "send-websocket-message",
        |mut store, (server, connection, message): (u64, u64, WebsocketMessage)| {
            Box::new(async move {
                let result = shared(&mut store);
                let cap = result
                    .as_ref()
                    .map_or(DEFAULT_RECORD_BODY_BYTES, |s| s.config.record_body_bytes);
                let payload = message
                    .text
                    .as_ref()
                    .map(|t| t.as_bytes().to_vec())
                    .or_else(|| message.data.clone())
                    .unwrap_or_default();
                let params = json!({
                    "server": server,
                    "connection": connection,
                    "type": message.ty,
                    "message": capped(&payload, cap),
                });
                let result = result.and_then(|s| s.send_websocket(server, connection, message));
                answer(&mut store, "send-websocket-message", params, result).await
            })
        },
    )?;
    host.func_wrap_async(
        "close-websocket",
        |mut store, (server, connection): (u64, u64)| {
            Box::new(async move {
                let params = json!({ "server": server, "connection": connection });
                let result = shared(&mut store).and_then(|s| s.close_websocket(server, connection));
                answer(&mut store, "close-websocket", params, result).await
            })
        },
    )?;
    Ok(())
}

/// The calling actor's framework state, made on its first use.
fn shared(store: &mut StoreContextMut<'_, ActorStore>) -> Result<Arc<Shared>, String> {
    let data = store.data_mut();
    let link = ActorLink::of(data);
    let framework = data
        .extensions
        .get_mut::<HttpFramework>()
        .ok_or("the http-framework handler is not configured for this actor")?;
    let config = framework.config.clone();
    Ok(framework
        .shared
        .get_or_insert_with(|| Arc::new(Shared::new(link, config)))
        .clone())
}

/// Runs `work`, which starts or stops server `id`, and records it; the
/// time it waits for sockets is not counted against the actor's call.
async fn on_server<T: Serialize + Clone, F: Future<Output = Result<T, String>>>(
    mut store: StoreContextMut<'_, ActorStore>,
    function: &str,
    id: u64,
    work: impl FnOnce(Arc<Shared>) -> F,
) -> wasmtime::Result<(Result<T, String>,)> {
    let started = Instant::now();
    let result = match shared(&mut store) {
        Ok(shared) => work(shared).await,
        Err(e) => Err(e),
    };
    store.data_mut().extend_deadline(started.elapsed());
    answer(&mut store, function, json!({ "server": id }), result).await
}

/// Stops the server just taken out of the registry, if it was running.
async fn stop_taken(
    shared: &Arc<Shared>,
    id: u64,
    taken: Result<Option<Running>, String>,
) -> Result<(), String> {
    if let Some(running) = taken? {
        listener::stop(shared, running, id).await;
    }
    Ok(())
}

/// Records a call to `function` of the framework and hands the actor
/// `result`.
async fn answer<T: Serialize + Clone>(
    store: &mut StoreContextMut<'_, ActorStore>,
    function: &str,
    params: Value,
    result: Result<T, String>,
) -> wasmtime::Result<(Result<T, String>,)> {
    let function = format!("{INTERFACE}.{function}");
    recorded(store, &function, params, result, Clone::clone).await
}
