//! `ntwk:theater/http-framework`: HTTP servers and WebSockets that an actor
//! creates, routes and stops at run time; `ntwk:theater/http-handlers` is
//! how it answers their requests. See `docs/http.md`.
//!
//! - [`state`]: the actor's servers, handlers, routes and connections.
//! - [`server`]: listeners and HTTP connections; every request becomes calls
//!   on the actor's bounded queue.
//! - [`websocket`]: one task and state machine per WebSocket connection.
//! - [`routing`]: route templates and middleware prefixes.
//! - [`types`]: the WIT records as Rust types.
//!
//! Configured with `[[handlers]] type = "http-framework"`; every key of its
//! `config` is optional (see [`FrameworkConfig`]).

mod routing;
mod server;
mod state;
mod types;
mod websocket;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use wasmtime::StoreContextMut;
use wasmtime::component::Linker;

use super::config::{self, ConfigError};
use super::http_record::redact_http;
use super::recorded::recorded;
use super::{Granted, Handler, HandlerConfig, HostFunctions};
use crate::actor::{ActorStore, Extensions};
use crate::packages::Package;
use crate::wasm::ExportRegistry;
use state::{HttpFramework, Running, Shared, WsEndpoint};
use types::{
    HttpRequest, HttpResponse, MiddlewareResult, ServerConfig, ServerInfo, WebsocketMessage, capped,
};

const INTERFACE: &str = "ntwk:theater/http-framework";
const HANDLERS: &str = "ntwk:theater/http-handlers";

const HANDLE_REQUEST: &str = "ntwk:theater/http-handlers.handle-request";
const HANDLE_MIDDLEWARE: &str = "ntwk:theater/http-handlers.handle-middleware";
const WS_CONNECT: &str = "ntwk:theater/http-handlers.handle-websocket-connect";
const WS_MESSAGE: &str = "ntwk:theater/http-handlers.handle-websocket-message";
const WS_DISCONNECT: &str = "ntwk:theater/http-handlers.handle-websocket-disconnect";

/// Chain event of one HTTP exchange: method, uri, status, outcome, time and
/// both bodies up to `record_body_bytes`.
pub const HTTP_EVENT: &str = "http";
/// Chain event of a WebSocket connection opening or closing.
pub const WEBSOCKET_EVENT: &str = "websocket";

/// Largest request body unless `max_body_bytes` says otherwise (also the
/// largest WebSocket message). Guards the host's memory against a client
/// that sends without end; a larger body is answered 413.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Largest request head (request line and headers) unless
/// `max_header_bytes` says otherwise. Guards against clients that send
/// headers without end; a larger head is answered 431.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// The HTTP parser needs this much for a request head at least.
pub const MIN_MAX_HEADER_BYTES: usize = 8192;
/// How long a request may wait for the actor (queue, middleware and
/// handler) unless `request_timeout_ms` says otherwise; then it is answered
/// 504. Guards clients against an actor that is stuck or far behind.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Open connections per server unless `max_connections` says otherwise.
/// Guards the host's sockets and memory. When they are all open, a new
/// connection closes the one idle longest (from the peer with the most);
/// only when every one is busy (the actor working on its request, or a
/// WebSocket) is the newcomer answered 503.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Open connections per server from one peer (an IPv4 address or an IPv6
/// /64) unless `max_connections_per_peer` says otherwise; a further one
/// closes that peer's longest-idle connection, or is answered 503 if all
/// of them are busy. Guards other clients against one peer that opens
/// connections by the thousand.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 64;
/// How long a connection may wait for a request head to arrive whole
/// unless `header_timeout_ms` says otherwise; the wait starts when the
/// connection opens and again after each response, so it also closes
/// keep-alive connections left idle. Guards against clients that hold
/// connections open, idle or trickling a head a byte at a time.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames per WebSocket connection kept waiting for a full queue under
/// `overflow = "drop-oldest"`, unless `ws_buffer` says otherwise.
pub const DEFAULT_WS_BUFFER: usize = 16;
/// Bytes of each body recorded in an `http` chain event unless
/// `record_body_bytes` says otherwise. Guards the chain against growing
/// with every large upload.
pub const DEFAULT_RECORD_BODY_BYTES: usize = 1024;

/// What happens to an event that finds the actor's queue full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// HTTP requests are answered 503, WebSocket connections are closed
    /// with 1013 (try again later).
    Reject,
    /// HTTP requests are answered 503; WebSocket frames wait in a small
    /// per-connection buffer whose oldest frame is dropped when it is full.
    DropOldest,
}

/// The `config` of an `http-framework` handler entry.
#[derive(Debug, Clone)]
pub struct FrameworkConfig {
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_peer: usize,
    pub header_timeout: Duration,
    pub overflow: Overflow,
    pub ws_buffer: usize,
    pub record_body_bytes: usize,
    /// Listen on a free port whatever port the actor asks for: for a fork
    /// of an actor whose original holds the port it asks for.
    pub ephemeral_ports: bool,
}

impl Default for FrameworkConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            overflow: Overflow::Reject,
            ws_buffer: DEFAULT_WS_BUFFER,
            record_body_bytes: DEFAULT_RECORD_BODY_BYTES,
            ephemeral_ports: false,
        }
    }
}

const KNOWN_KEYS: &[&str] = &[
    "max_body_bytes",
    "max_header_bytes",
    "request_timeout_ms",
    "header_timeout_ms",
    "max_connections",
    "max_connections_per_peer",
    "overflow",
    "ws_buffer",
    "record_body_bytes",
    EPHEMERAL_PORTS,
];

/// Longest request or header timeout a server may be given: an hour.
const MAX_TIMEOUT_MS: u64 = 60 * 60 * 1000;

/// The setting that makes every server of an actor listen on a free port.
pub const EPHEMERAL_PORTS: &str = "ephemeral_ports";

impl HandlerConfig for FrameworkConfig {
    fn from_table(table: &toml::Table) -> Result<Self, ConfigError> {
        config::known_keys(table, KNOWN_KEYS)?;
        let defaults = Self::default();
        let int = |key: &str, range: std::ops::RangeInclusive<u64>, default: usize| {
            config::integer(table, key, range, default as u64).map(|n| n as usize)
        };
        let overflow = match config::string(table, "overflow", "\"reject\" or \"drop-oldest\"")? {
            None | Some("reject") => Overflow::Reject,
            Some("drop-oldest") => Overflow::DropOldest,
            Some(_) => {
                return Err(ConfigError::at(
                    "overflow",
                    "`overflow` must be \"reject\" or \"drop-oldest\"",
                ));
            }
        };
        let millis = |key: &str, default| config::duration(table, key, 1..=MAX_TIMEOUT_MS, default);
        Ok(Self {
            max_body_bytes: int("max_body_bytes", 1..=1 << 30, defaults.max_body_bytes)?,
            max_header_bytes: int(
                "max_header_bytes",
                MIN_MAX_HEADER_BYTES as u64..=1 << 20,
                defaults.max_header_bytes,
            )?,
            request_timeout: millis("request_timeout_ms", defaults.request_timeout)?,
            header_timeout: millis("header_timeout_ms", defaults.header_timeout)?,
            max_connections: int("max_connections", 1..=65_536, defaults.max_connections)?,
            max_connections_per_peer: int(
                "max_connections_per_peer",
                1..=65_536,
                defaults.max_connections_per_peer,
            )?,
            overflow,
            ws_buffer: int("ws_buffer", 1..=4096, defaults.ws_buffer)?,
            record_body_bytes: int("record_body_bytes", 0..=1 << 20, defaults.record_body_bytes)?,
            ephemeral_ports: config::boolean(table, EPHEMERAL_PORTS, false)?,
        })
    }
}

impl FrameworkConfig {
    /// Fails on the first bound of `self` (a child's) above `parent`'s.
    fn within(&self, parent: &Self) -> Result<(), ConfigError> {
        let bounds = |c: &Self| {
            [
                ("max_body_bytes", c.max_body_bytes as u64),
                ("max_header_bytes", c.max_header_bytes as u64),
                ("request_timeout_ms", c.request_timeout.as_millis() as u64),
                ("header_timeout_ms", c.header_timeout.as_millis() as u64),
                ("max_connections", c.max_connections as u64),
                (
                    "max_connections_per_peer",
                    c.max_connections_per_peer as u64,
                ),
                ("ws_buffer", c.ws_buffer as u64),
                ("record_body_bytes", c.record_body_bytes as u64),
            ]
        };
        for ((key, child), (_, parent)) in bounds(self).into_iter().zip(bounds(parent)) {
            config::at_most(key, child, parent)?;
        }
        Ok(())
    }
}

/// `type = "http-framework"`.
pub struct HttpFrameworkHandler;

impl Handler for HttpFrameworkHandler {
    const NAME: &'static str = "http-framework";
    const IMPORTS: &'static [&'static str] = &[INTERFACE];
    type Config = Arc<FrameworkConfig>;

    fn configure(
        &self,
        config: &Arc<FrameworkConfig>,
        extensions: &mut Extensions,
    ) -> Result<(), ConfigError> {
        extensions.insert(HttpFramework {
            config: config.clone(),
            shared: None,
        });
        Ok(())
    }

    /// Each bound of a child's servers is at most its parent's; `overflow`
    /// is the child's own choice.
    fn within(
        &self,
        child: &Granted<'_, Arc<FrameworkConfig>>,
        parent: &Granted<'_, Arc<FrameworkConfig>>,
    ) -> Result<(), ConfigError> {
        child.config.within(parent.config)
    }
}

impl HostFunctions for HttpFrameworkHandler {
    fn add_to_linker(
        &self,
        linker: &mut Linker<ActorStore>,
        package: Package,
    ) -> wasmtime::Result<()> {
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
                let result: Result<ServerInfo, String> =
                    shared(&mut store).and_then(|s| s.info(id));
                answer(
                    &mut store,
                    "get-server-info",
                    json!({ "server": id }),
                    result,
                )
                .await
            })
        })?;
        host.func_wrap_async("start-server", |mut store, (id,): (u64,)| {
            Box::new(async move {
                let started = Instant::now();
                let result = match shared(&mut store) {
                    Ok(shared) => server::start(&shared, id).await,
                    Err(e) => Err(e),
                };
                store.data_mut().extend_deadline(started.elapsed());
                answer(&mut store, "start-server", json!({ "server": id }), result).await
            })
        })?;
        host.func_wrap_async("stop-server", |mut store, (id,): (u64,)| {
            Box::new(async move {
                let started = Instant::now();
                let result = match shared(&mut store) {
                    Ok(shared) => stop_taken(&shared, id, shared.take_running(id)).await,
                    Err(e) => Err(e),
                };
                store.data_mut().extend_deadline(started.elapsed());
                answer(&mut store, "stop-server", json!({ "server": id }), result).await
            })
        })?;
        host.func_wrap_async("destroy-server", |mut store, (id,): (u64,)| {
            Box::new(async move {
                let started = Instant::now();
                let result = match shared(&mut store) {
                    Ok(shared) => stop_taken(&shared, id, shared.destroy(id)).await,
                    Err(e) => Err(e),
                };
                store.data_mut().extend_deadline(started.elapsed());
                answer(
                    &mut store,
                    "destroy-server",
                    json!({ "server": id }),
                    result,
                )
                .await
            })
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
                    let params = json!({ "server": server, "path": path, "method": method, "handler": handler });
                    let result = shared(&mut store)
                        .and_then(|s| s.add_route(server, &path, &method, handler));
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
                    let result = shared(&mut store)
                        .and_then(|s| s.enable_websocket(server, &path, endpoint));
                    answer(&mut store, "enable-websocket", params, result).await
                })
            },
        )?;
        host.func_wrap_async(
            "disable-websocket",
            |mut store, (server, path): (u64, String)| {
                Box::new(async move {
                    let params = json!({ "server": server, "path": path });
                    let result =
                        shared(&mut store).and_then(|s| s.disable_websocket(server, &path));
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
                    let result =
                        shared(&mut store).and_then(|s| s.close_websocket(server, connection));
                    answer(&mut store, "close-websocket", params, result).await
                })
            },
        )?;
        Ok(())
    }

    fn exports(&self, exports: &mut ExportRegistry, listed: bool) {
        exports
            .register_function::<(u64, HttpRequest), (HttpResponse,)>(HANDLERS, "handle-request")
            .required(listed)
            .recorded_as(redact_http);
        exports
            .register_function::<(u64, HttpRequest), (MiddlewareResult,)>(
                HANDLERS,
                "handle-middleware",
            )
            .recorded_as(redact_http)
            .required(false);
        exports
            .register_function_no_result::<(u64, u64, String, Option<String>)>(
                HANDLERS,
                "handle-websocket-connect",
            )
            .required(false);
        exports
            .register_function::<(u64, u64, WebsocketMessage), (Vec<WebsocketMessage>,)>(
                HANDLERS,
                "handle-websocket-message",
            )
            .required(false);
        exports
            .register_function_no_result::<(u64, u64)>(HANDLERS, "handle-websocket-disconnect")
            .required(false);
    }
}

/// The calling actor's framework state, made on its first use.
fn shared(store: &mut StoreContextMut<'_, ActorStore>) -> Result<Arc<Shared>, String> {
    let data = store.data_mut();
    let (actor, runtime) = (data.id, data.weak_runtime());
    let framework = data
        .extensions
        .get_mut::<HttpFramework>()
        .ok_or("the http-framework handler is not configured for this actor")?;
    let config = framework.config.clone();
    Ok(framework
        .shared
        .get_or_insert_with(|| Arc::new(Shared::new(actor, runtime, config)))
        .clone())
}

/// Records the call in the actor's chain and hands the result back.
/// Stops the server just taken out of the registry, if it was running.
async fn stop_taken(
    shared: &Arc<Shared>,
    id: u64,
    taken: Result<Option<Running>, String>,
) -> Result<(), String> {
    if let Some(running) = taken? {
        server::stop(shared, running, id).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<FrameworkConfig, String> {
        FrameworkConfig::from_table(&toml::from_str(text).unwrap()).map_err(|e| e.message)
    }

    #[test]
    fn an_empty_config_has_the_documented_defaults() {
        let config = config("").unwrap();
        assert_eq!(config.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(config.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(config.overflow, Overflow::Reject);
    }

    #[test]
    fn settings_are_read_and_bad_ones_explained() {
        let config = config(
            "max_body_bytes = 5\nrequest_timeout_ms = 200\noverflow = \"drop-oldest\"\nws_buffer = 2",
        )
        .unwrap();
        assert_eq!(config.max_body_bytes, 5);
        assert_eq!(config.request_timeout, Duration::from_millis(200));
        assert_eq!(config.overflow, Overflow::DropOldest);
        assert_eq!(config.ws_buffer, 2);

        let error = super::tests::config("overflow = \"drop-newest\"").unwrap_err();
        assert!(error.contains("\"reject\" or \"drop-oldest\""), "{error}");
        let error = super::tests::config("max_header_bytes = 100").unwrap_err();
        assert!(error.contains("from 8192"), "{error}");
        let error = super::tests::config("max_body = 1").unwrap_err();
        assert!(error.contains("unknown setting `max_body`"), "{error}");
    }
}
