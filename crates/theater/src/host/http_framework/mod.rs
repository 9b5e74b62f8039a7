//! `ntwk:theater/http-framework`: HTTP servers and WebSockets that an actor
//! creates, routes and stops at run time; `ntwk:theater/http-handlers` is
//! how it answers their requests. See `docs/http.md`.
//!
//! - [`config`]: the handler's settings and limits.
//! - [`imports`]: the functions the actor calls.
//! - [`state`]: the actor's servers, handlers, routes and middleware;
//!   [`connections`]: its WebSocket connections.
//! - [`link`]: the actor's handle and the runtime's settings, the one
//!   place the framework reaches the runtime.
//! - [`listener`]: listeners, connection admission and shutdown.
//! - [`request`]: one HTTP request, from its head to the actor and back;
//!   [`answer`]: the responses it ends with; [`exchange`]: how it is
//!   recorded, in the event of the call that answers it.
//! - [`websocket`]: one task and state machine per WebSocket connection;
//!   [`frames`]: WebSocket frames and close codes.
//! - [`routing`]: route templates and middleware prefixes.
//! - [`types`]: the WIT records as Rust types.
//!
//! Configured with `[[handlers]] type = "http-framework"`; every key of its
//! `config` is optional (see [`FrameworkConfig`]).

mod answer;
mod config;
mod connections;
mod exchange;
mod frames;
mod imports;
mod link;
mod listener;
mod request;
mod routing;
mod state;
mod types;
mod websocket;

use std::sync::Arc;

use wasmtime::component::Linker;

use super::http_record::redact_http;
use super::{ConfigError, Granted, Handler, HostFunctions};
use crate::actor::{ActorStore, Extensions};
use crate::host::Exports;
use crate::packages::Package;
pub use config::{DEFAULT_RECORD_BODY_BYTES, EPHEMERAL_PORTS, FrameworkConfig, Overflow};
use state::HttpFramework;
use types::{HttpRequest, HttpResponse, MiddlewareResult, WebsocketMessage};

const INTERFACE: &str = "ntwk:theater/http-framework";
const HANDLERS: &str = "ntwk:theater/http-handlers";

const HANDLE_REQUEST: &str = "ntwk:theater/http-handlers.handle-request";
const HANDLE_MIDDLEWARE: &str = "ntwk:theater/http-handlers.handle-middleware";
const WS_CONNECT: &str = "ntwk:theater/http-handlers.handle-websocket-connect";
const WS_MESSAGE: &str = "ntwk:theater/http-handlers.handle-websocket-message";
const WS_DISCONNECT: &str = "ntwk:theater/http-handlers.handle-websocket-disconnect";

/// Chain event of an HTTP exchange answered without a call of the actor
/// (no route, a body too large, ...): method, uri, status, outcome, time.
/// An exchange the actor answered is recorded in the event of that call.
pub const HTTP_EVENT: &str = "http";
/// Chain event of a WebSocket connection opening or closing.
pub const WEBSOCKET_EVENT: &str = "websocket";

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
        imports::add_to_linker(linker, package)
    }

    fn exports(&self, exports: &mut Exports, listed: bool) {
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
