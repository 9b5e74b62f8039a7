//! Built against `theater:simple`: serves documents kept in a content store
//! over HTTP. At init it starts a server on the `host` and `port` its
//! initial state names (`{"host": "0.0.0.0", "port": 8082, "store": "docs"}`
//! by default; port 0 picks a free one) and routes:
//! - `GET /docs` lists the document names (exact route);
//! - `GET /docs/{*name}` answers the document `name`, slashes and all
//!   (catch-all route), or 404;
//! - `PUT /docs/{*name}` stores the body as document `name` and answers
//!   `{"name", "hash", "writes"}`.
//!
//! The store is named by the `store` of its initial state: a name, never
//! made with `store.new`. Its state: `{"server", "port", "store",
//! "handlers", "writes"}`.

wit_bindgen::generate!({
    inline: "
        package example:simple-docs;

        world docs {
            import theater:simple/runtime;
            import theater:simple/http-framework;
            import theater:simple/store;
            export theater:simple/actor;
            export theater:simple/http-handlers;
        }
    ",
    path: ["../target/wit/theater-simple"],
    world: "docs",
    generate_all,
});

use exports::theater::simple::actor::Guest as Actor;
use exports::theater::simple::http_handlers::Guest as HttpHandlers;
use serde::{Deserialize, Serialize};
use serde_json::json;
use theater::simple::http_framework as http;
use theater::simple::http_types::{HttpRequest, HttpResponse, MiddlewareResult, ServerConfig};
use theater::simple::runtime::log;
use theater::simple::store;
use theater::simple::websocket_types::WebsocketMessage;

type State = Option<Vec<u8>>;

/// Where the documents live under the server.
const PREFIX: &str = "/docs";

#[derive(Deserialize)]
struct Config {
    #[serde(default = "any_host")]
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default = "default_store")]
    store: String,
}

fn any_host() -> String {
    "0.0.0.0".into()
}

fn default_port() -> u16 {
    8082
}

fn default_store() -> String {
    "docs".into()
}

#[derive(Serialize, Deserialize)]
struct Handlers {
    list: u64,
    read: u64,
    write: u64,
}

#[derive(Serialize, Deserialize)]
struct Docs {
    server: u64,
    port: u16,
    store: String,
    handlers: Handlers,
    writes: u64,
}

fn load(state: &State) -> Result<Docs, String> {
    let bytes = state.as_deref().ok_or("simple-docs has no state")?;
    serde_json::from_slice(bytes).map_err(|e| format!("simple-docs state is not valid: {e}"))
}

fn save(docs: &Docs) -> State {
    Some(serde_json::to_vec(docs).expect("the state serializes"))
}

fn response(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".into(), content_type.into())],
        body: Some(body.into()),
    }
}

/// The document name in a request for `/docs/{*name}`.
fn name_of(request: &HttpRequest) -> String {
    let path = request.uri.split('?').next().unwrap_or_default();
    let rest = path.strip_prefix(PREFIX).unwrap_or(path);
    rest.trim_start_matches('/').to_owned()
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        let config: Config =
            serde_json::from_slice(state.as_deref().unwrap_or(b"{}")).map_err(|e| {
                format!("the initial state must be {{\"host\", \"port\", \"store\"}}: {e}")
            })?;
        let server = http::create_server(&ServerConfig {
            port: Some(config.port),
            host: Some(config.host),
            tls_config: None,
        })?;
        let handlers = Handlers {
            list: http::register_handler("list")?,
            read: http::register_handler("read")?,
            write: http::register_handler("write")?,
        };
        http::add_route(server, PREFIX, "GET", handlers.list)?;
        let everything = format!("{PREFIX}/{{*name}}");
        http::add_route(server, &everything, "GET", handlers.read)?;
        http::add_route(server, &everything, "PUT", handlers.write)?;
        let port = http::start_server(server)?;
        let host = http::get_server_info(server)?.host;
        log(&format!(
            "simple-docs: serving http://{host}:{port}{PREFIX}"
        ));
        let docs = Docs {
            server,
            port,
            store: config.store,
            handlers,
            writes: 0,
        };
        Ok((save(&docs),))
    }
}

impl HttpHandlers for Component {
    fn handle_request(
        state: State,
        params: (u64, HttpRequest),
    ) -> Result<(State, (HttpResponse,)), String> {
        let (handler, request) = params;
        let mut docs = load(&state)?;
        if handler == docs.handlers.list {
            let names = store::list_labels(&docs.store)?;
            let reply = response(200, "application/json", json!(names).to_string());
            return Ok((state, (reply,)));
        }
        let name = name_of(&request);
        if handler == docs.handlers.read {
            let reply = match store::get_by_label(&docs.store, &name)? {
                Some(content) => response(200, "text/plain", store::get(&docs.store, &content)?),
                None => response(404, "text/plain", format!("no document `{name}`")),
            };
            return Ok((state, (reply,)));
        }
        if handler == docs.handlers.write {
            let body = request.body.unwrap_or_default();
            let content = store::replace_content_at_label(&docs.store, &name, &body)?;
            docs.writes += 1;
            let body = json!({ "name": name, "hash": content.hash, "writes": docs.writes });
            let reply = response(200, "application/json", body.to_string());
            return Ok((save(&docs), (reply,)));
        }
        Err(format!("no handler {handler} in simple-docs"))
    }

    fn handle_middleware(
        state: State,
        params: (u64, HttpRequest),
    ) -> Result<(State, (MiddlewareResult,)), String> {
        let (_, request) = params;
        Ok((
            state,
            (MiddlewareResult {
                proceed: true,
                request,
            },),
        ))
    }

    fn handle_websocket_connect(
        state: State,
        _params: (u64, u64, String, Option<String>),
    ) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_websocket_message(
        state: State,
        _params: (u64, u64, WebsocketMessage),
    ) -> Result<(State, (Vec<WebsocketMessage>,)), String> {
        Ok((state, (Vec::new(),)))
    }

    fn handle_websocket_disconnect(state: State, _params: (u64, u64)) -> Result<(State,), String> {
        Ok((state,))
    }
}

export!(Component);
