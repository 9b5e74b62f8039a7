//! Notes over HTTP, kept in a content store, announced over a WebSocket.
//!
//! At `init` the actor starts an HTTP server on the port its initial state
//! names (`{"port": 8080}`; 0 picks a free one) and opens a content store:
//! - `POST /notes` stores the request body and answers `{"id", "hash"}`;
//!   every WebSocket client on `/ws` is told `{"note": id, "size": n}`;
//! - `GET /notes` lists the notes (`[{"id", "hash", "size"}]`);
//! - `GET /notes/{id}` answers a note's text, read from the store;
//! - a WebSocket message `ping` is answered `pong`.
//!
//! Its state keeps the server, its handlers, the store and the notes' ids
//! and hashes; the notes' text lives in the store. A request (`theater
//! message request ID '{}'`) answers `{"port", "notes", "connections"}`.

wit_bindgen::generate!({
    path: "wit",
    world: "app",
    // The interfaces come from `wit/deps/theater`, another package.
    generate_all,
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::http_handlers::Guest as HttpHandlers;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use ntwk::theater::http_framework as http;
use ntwk::theater::http_types::{HttpRequest, HttpResponse, MiddlewareResult, ServerConfig};
use ntwk::theater::runtime::log;
use ntwk::theater::store::{self, ContentRef};
use ntwk::theater::websocket_types::{MessageType, WebsocketMessage};
use serde::{Deserialize, Serialize};
use serde_json::json;

type State = Option<Vec<u8>>;

#[derive(Serialize, Deserialize)]
struct Handlers {
    notes: u64,
    note: u64,
    socket: u64,
}

#[derive(Serialize, Deserialize)]
struct Note {
    id: u64,
    hash: String,
    size: usize,
}

#[derive(Serialize, Deserialize)]
struct App {
    /// The port asked for (0: any free one) and the one bound.
    asked: u16,
    port: u16,
    server: u64,
    handlers: Handlers,
    store: String,
    notes: Vec<Note>,
    connections: Vec<u64>,
}

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    port: u16,
}

fn load(state: &State) -> Result<App, String> {
    let bytes = state.as_deref().ok_or("the actor has no state")?;
    serde_json::from_slice(bytes).map_err(|e| format!("the state is not valid: {e}"))
}

fn save(app: &App) -> State {
    Some(serde_json::to_vec(app).expect("the state serializes"))
}

fn response(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".into(), content_type.into())],
        body: Some(body.into()),
    }
}

fn text(text: String) -> WebsocketMessage {
    WebsocketMessage {
        ty: MessageType::Text,
        data: None,
        text: Some(text),
    }
}

/// Sets up the server and the store, or takes them up again: `init` runs
/// again on the state the actor had when it is resumed or forked.
fn start(state: &State) -> Result<App, String> {
    if let Ok(mut app) = load(state) {
        // Resumed: the server is gone with the old instance; the store stays.
        app.connections.clear();
        let (server, handlers, port) = serve(app.asked)?;
        (app.server, app.handlers, app.port) = (server, handlers, port);
        return Ok(app);
    }
    let config: Config = match state {
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| format!("the initial state must be {{\"port\": N}}: {e}"))?,
        None => Config { port: 0 },
    };
    let (server, handlers, port) = serve(config.port)?;
    Ok(App {
        asked: config.port,
        port,
        server,
        handlers,
        store: store::new()?,
        notes: Vec::new(),
        connections: Vec::new(),
    })
}

fn serve(port: u16) -> Result<(u64, Handlers, u16), String> {
    let server = http::create_server(&ServerConfig {
        port: Some(port),
        host: None,
        tls_config: None,
    })?;
    let handlers = Handlers {
        notes: http::register_handler("notes")?,
        note: http::register_handler("note")?,
        socket: http::register_handler("socket")?,
    };
    http::add_route(server, "/notes", "GET", handlers.notes)?;
    http::add_route(server, "/notes", "POST", handlers.notes)?;
    http::add_route(server, "/notes/{id}", "GET", handlers.note)?;
    http::enable_websocket(
        server,
        "/ws",
        Some(handlers.socket),
        handlers.socket,
        Some(handlers.socket),
    )?;
    let port = http::start_server(server)?;
    log(&format!("notes on http://127.0.0.1:{port}/notes"));
    Ok((server, handlers, port))
}

fn add_note(app: &mut App, body: Vec<u8>) -> Result<HttpResponse, String> {
    let id = app.notes.last().map_or(1, |note| note.id + 1);
    let size = body.len();
    let ContentRef { hash } = store::store_at_label(&app.store, &format!("note/{id}"), &body)?;
    for &connection in &app.connections {
        let news = json!({ "note": id, "size": size }).to_string();
        // A client that is going away is no reason to refuse the note.
        let _ = http::send_websocket_message(app.server, connection, &text(news));
    }
    let reply = json!({ "id": id, "hash": hash });
    app.notes.push(Note { id, hash, size });
    Ok(response(201, "application/json", reply.to_string()))
}

fn read_note(app: &App, path: &str) -> Result<HttpResponse, String> {
    let id = path.rsplit('/').next().unwrap_or_default();
    let Some(note) = app.notes.iter().find(|note| note.id.to_string() == id) else {
        return Ok(response(404, "text/plain", format!("no note {id}")));
    };
    let content = ContentRef {
        hash: note.hash.clone(),
    };
    let body = store::get(&app.store, &content)?;
    Ok(response(200, "text/plain; charset=utf-8", body))
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((save(&start(&state)?),))
    }
}

impl HttpHandlers for Component {
    fn handle_request(
        state: State,
        params: (u64, HttpRequest),
    ) -> Result<(State, (HttpResponse,)), String> {
        let (_, request) = params;
        let mut app = load(&state)?;
        let path = request.uri.split('?').next().unwrap_or_default().to_owned();
        let reply = match (request.method.as_str(), path.as_str()) {
            ("POST", "/notes") => add_note(&mut app, request.body.unwrap_or_default())?,
            ("GET", "/notes") => {
                let notes = serde_json::to_vec(&app.notes).expect("notes serialize");
                response(200, "application/json", notes)
            }
            ("GET", _) => read_note(&app, &path)?,
            _ => response(405, "text/plain", "method not allowed"),
        };
        Ok((save(&app), (reply,)))
    }

    fn handle_middleware(
        state: State,
        params: (u64, HttpRequest),
    ) -> Result<(State, (MiddlewareResult,)), String> {
        let request = params.1;
        let proceed = MiddlewareResult {
            proceed: true,
            request,
        };
        Ok((state, (proceed,)))
    }

    fn handle_websocket_connect(
        state: State,
        params: (u64, u64, String, Option<String>),
    ) -> Result<(State,), String> {
        let mut app = load(&state)?;
        app.connections.push(params.1);
        Ok((save(&app),))
    }

    fn handle_websocket_message(
        state: State,
        params: (u64, u64, WebsocketMessage),
    ) -> Result<(State, (Vec<WebsocketMessage>,)), String> {
        let (_, _, message) = params;
        let replies = match message.text.as_deref() {
            Some("ping") => vec![text("pong".into())],
            _ => Vec::new(),
        };
        Ok((state, (replies,)))
    }

    fn handle_websocket_disconnect(state: State, params: (u64, u64)) -> Result<(State,), String> {
        let mut app = load(&state)?;
        app.connections.retain(|&c| c != params.1);
        Ok((save(&app),))
    }
}

impl MessageServer for Component {
    fn handle_send(_state: State, _params: (Vec<u8>,)) -> Result<(State,), String> {
        Err("send a note with POST /notes".into())
    }

    fn handle_request(state: State, _params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let app = load(&state)?;
        let summary = json!({
            "port": app.port,
            "notes": app.notes.len(),
            "connections": app.connections.len(),
        });
        Ok((state, (summary.to_string().into_bytes(),)))
    }

    fn handle_channel_open(
        state: State,
        _params: (Vec<u8>,),
    ) -> Result<(State, ChannelAccept), String> {
        let refuse = ChannelAccept {
            accepted: false,
            message: None,
        };
        Ok((state, refuse))
    }

    fn handle_channel_message(state: State, _params: (String, Vec<u8>)) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_channel_close(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

export!(Component);
