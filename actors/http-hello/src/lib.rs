//! Hello, HTTP. At init this actor starts a server on the port its initial
//! state names (`{"port": 8080}`; 0 picks a free port) and routes:
//! - `GET /` answers `Hello from Theater!`;
//! - `GET /api/greet/{name}` answers `{"greeting": "Hello, NAME!", "count": N}`,
//!   N being the greetings so far, kept in its state;
//! - everything under `/admin` is refused (403) by its middleware.
//!
//! Its state: `{"port", "server", "handlers": {...}, "greetings"}`.

wit_bindgen::generate!({
    path: "../../wit",
    world: "http-server-actor",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::http_handlers::Guest as HttpHandlers;
use ntwk::theater::http_framework as http;
use ntwk::theater::http_types::{HttpRequest, HttpResponse, MiddlewareResult, ServerConfig};
use ntwk::theater::runtime::log;
use ntwk::theater::websocket_types::WebsocketMessage;
use serde::{Deserialize, Serialize};
use serde_json::json;

type State = Option<Vec<u8>>;

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    port: u16,
}

#[derive(Serialize, Deserialize)]
struct Handlers {
    home: u64,
    greet: u64,
    guard: u64,
}

#[derive(Serialize, Deserialize)]
struct Hello {
    port: u16,
    server: u64,
    handlers: Handlers,
    greetings: u64,
}

fn load(state: &State) -> Result<Hello, String> {
    let bytes = state.as_deref().ok_or("http-hello has no state")?;
    serde_json::from_slice(bytes).map_err(|e| format!("http-hello state is not valid: {e}"))
}

fn save(hello: &Hello) -> State {
    Some(serde_json::to_vec(hello).expect("the state serializes"))
}

fn response(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".into(), content_type.into())],
        body: Some(body.into()),
    }
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        let config: Config = match &state {
            Some(bytes) => serde_json::from_slice(bytes)
                .map_err(|e| format!("the initial state must be {{\"port\": N}}: {e}"))?,
            None => Config { port: 8080 },
        };
        let server = http::create_server(&ServerConfig {
            port: Some(config.port),
            host: None,
            tls_config: None,
        })?;
        let handlers = Handlers {
            home: http::register_handler("home")?,
            greet: http::register_handler("greet")?,
            guard: http::register_handler("guard")?,
        };
        http::add_route(server, "/", "GET", handlers.home)?;
        http::add_route(server, "/api/greet/{name}", "GET", handlers.greet)?;
        http::add_route(server, "/admin/stats", "GET", handlers.home)?;
        http::add_middleware(server, "/admin", handlers.guard)?;
        let port = http::start_server(server)?;
        log(&format!(
            "http-hello: try http://127.0.0.1:{port}/api/greet/you"
        ));
        let hello = Hello {
            port,
            server,
            handlers,
            greetings: 0,
        };
        Ok((save(&hello),))
    }
}

impl HttpHandlers for Component {
    fn handle_request(
        state: State,
        params: (u64, HttpRequest),
    ) -> Result<(State, (HttpResponse,)), String> {
        let (handler, request) = params;
        let mut hello = load(&state)?;
        if handler == hello.handlers.home {
            let reply = response(200, "text/plain; charset=utf-8", "Hello from Theater!");
            return Ok((state, (reply,)));
        }
        if handler == hello.handlers.greet {
            let path = request.uri.split('?').next().unwrap_or_default();
            let name = path.rsplit('/').next().unwrap_or_default();
            hello.greetings += 1;
            let body = json!({ "greeting": format!("Hello, {name}!"), "count": hello.greetings });
            let reply = response(200, "application/json", body.to_string());
            return Ok((save(&hello), (reply,)));
        }
        Err(format!("no handler {handler} in http-hello"))
    }

    fn handle_middleware(
        state: State,
        params: (u64, HttpRequest),
    ) -> Result<(State, (MiddlewareResult,)), String> {
        let (handler, request) = params;
        let hello = load(&state)?;
        // The guard lets nothing through; other middleware would go here.
        let proceed = handler != hello.handlers.guard;
        Ok((state, (MiddlewareResult { proceed, request },)))
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
