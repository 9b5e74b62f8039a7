//! A test actor for the http-framework. Requests (message-server) are JSON
//! commands, each answered `{"ok": value}` or `{"err": message}` with the
//! framework's own error:
//! `{"serve": {"port": p}}` sets up a standard server (below) and starts it;
//! `{"create": {"port": p, "host": h}}`, `{"start"|"stop"|"destroy"|"info": id}`,
//! `{"handler": name}`, `{"route": {"server", "method", "path", "handler"}}`,
//! `{"unroute": id}`, `{"middleware": {"server", "path", "handler"}}`,
//! `{"unmiddleware": id}`, `{"websocket": {"server", "path", "connect",
//! "message", "disconnect"}}`, `{"unwebsocket": {"server", "path"}}`,
//! `{"push": {"server", "connection", "text" | "binary"}}`,
//! `{"close": {"server", "connection"}}` call the framework directly;
//! `{"state": null}` answers the state.
//!
//! Handlers behave by the name they were registered with: `hello`, `echo`
//! (the request as JSON), `count` (adds one to the state's count), `item`
//! (the last path segment), `fail` (`Err`), `trap` (panics), `slow` (sleeps
//! `?ms=N`, default 200); middleware `deny`, `tag` (adds `x-tagged: yes`),
//! `mw-fail` (`Err`); WebSocket `ws-connect` (refuses `?refuse`),
//! `ws-message` (see `on_message`), `ws-disconnect`.

wit_bindgen::generate!({
    path: "../../wit",
    world: "http-control-actor",
});

use std::collections::BTreeMap;
use std::time::Duration;

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::http_handlers::Guest as HttpHandlers;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use ntwk::theater::http_framework as http;
use ntwk::theater::http_types::{HttpRequest, HttpResponse, MiddlewareResult, ServerConfig};
use ntwk::theater::websocket_types::{MessageType, WebsocketMessage};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

type State = Option<Vec<u8>>;

#[derive(Serialize, Deserialize, Default)]
struct Probe {
    /// Handler id to its name.
    names: BTreeMap<u64, String>,
    server: Option<u64>,
    count: u64,
    connections: Vec<u64>,
    disconnected: Vec<u64>,
    messages: u64,
}

#[derive(Deserialize)]
struct Listen {
    port: Option<u16>,
    host: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Command {
    Serve(Listen),
    Create(Listen),
    Start(u64),
    Stop(u64),
    Destroy(u64),
    Info(u64),
    Handler(String),
    Route {
        server: u64,
        method: String,
        path: String,
        handler: u64,
    },
    Unroute(u64),
    Middleware {
        server: u64,
        path: String,
        handler: u64,
    },
    Unmiddleware(u64),
    Websocket {
        server: u64,
        path: String,
        connect: Option<u64>,
        message: u64,
        disconnect: Option<u64>,
    },
    Unwebsocket {
        server: u64,
        path: String,
    },
    Push {
        server: u64,
        connection: u64,
        text: Option<String>,
        binary: Option<Vec<u8>>,
    },
    Close {
        server: u64,
        connection: u64,
    },
    State(()),
}

fn load(state: &State) -> Probe {
    state
        .as_deref()
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .unwrap_or_default()
}

fn save(probe: &Probe) -> State {
    Some(serde_json::to_vec(probe).expect("the state serializes"))
}

fn listen(config: Listen) -> ServerConfig {
    ServerConfig {
        port: config.port,
        host: config.host,
        tls_config: None,
    }
}

fn handler(probe: &mut Probe, name: &str) -> Result<u64, String> {
    let id = http::register_handler(name)?;
    probe.names.insert(id, name.to_owned());
    Ok(id)
}

/// The standard server of the tests.
fn serve(probe: &mut Probe, config: Listen) -> Result<Value, String> {
    let server = http::create_server(&listen(config))?;
    let mut ids = BTreeMap::new();
    for name in [
        "hello",
        "echo",
        "count",
        "item",
        "fail",
        "trap",
        "slow",
        "deny",
        "tag",
        "mw-fail",
        "ws-connect",
        "ws-message",
        "ws-disconnect",
    ] {
        ids.insert(name, handler(probe, name)?);
    }
    for (method, path, name) in [
        ("GET", "/hello", "hello"),
        ("*", "/echo", "echo"),
        ("GET", "/count", "count"),
        ("GET", "/items/{id}", "item"),
        ("GET", "/fail", "fail"),
        ("GET", "/trap", "trap"),
        ("GET", "/slow", "slow"),
        ("GET", "/admin/panel", "hello"),
        ("GET", "/broken/x", "hello"),
    ] {
        http::add_route(server, path, method, ids[name])?;
    }
    http::add_middleware(server, "/admin", ids["deny"])?;
    http::add_middleware(server, "/echo", ids["tag"])?;
    http::add_middleware(server, "/broken", ids["mw-fail"])?;
    http::enable_websocket(
        server,
        "/ws",
        Some(ids["ws-connect"]),
        ids["ws-message"],
        Some(ids["ws-disconnect"]),
    )?;
    let port = http::start_server(server)?;
    probe.server = Some(server);
    Ok(json!({ "server": server, "port": port, "handlers": ids }))
}

fn run(probe: &mut Probe, command: Command) -> Result<Value, String> {
    Ok(match command {
        Command::Serve(config) => serve(probe, config)?,
        Command::Create(config) => json!(http::create_server(&listen(config))?),
        Command::Start(id) => json!(http::start_server(id)?),
        Command::Stop(id) => json!(http::stop_server(id)?),
        Command::Destroy(id) => json!(http::destroy_server(id)?),
        Command::Info(id) => {
            let info = http::get_server_info(id)?;
            json!({
                "id": info.id, "port": info.port, "host": info.host, "running": info.running,
                "routes": info.routes_count, "middleware": info.middleware_count,
                "websocket": info.websocket_enabled,
            })
        }
        Command::Handler(name) => json!(handler(probe, &name)?),
        Command::Route {
            server,
            method,
            path,
            handler,
        } => json!(http::add_route(server, &path, &method, handler)?),
        Command::Unroute(id) => json!(http::remove_route(id)?),
        Command::Middleware {
            server,
            path,
            handler,
        } => json!(http::add_middleware(server, &path, handler)?),
        Command::Unmiddleware(id) => json!(http::remove_middleware(id)?),
        Command::Websocket {
            server,
            path,
            connect,
            message,
            disconnect,
        } => json!(http::enable_websocket(
            server, &path, connect, message, disconnect
        )?),
        Command::Unwebsocket { server, path } => json!(http::disable_websocket(server, &path)?),
        Command::Push {
            server,
            connection,
            text,
            binary,
        } => {
            let message = match binary {
                Some(data) => WebsocketMessage {
                    ty: MessageType::Binary,
                    data: Some(data),
                    text: None,
                },
                None => text_message(text.unwrap_or_default()),
            };
            json!(http::send_websocket_message(server, connection, &message)?)
        }
        Command::Close { server, connection } => json!(http::close_websocket(server, connection)?),
        Command::State(()) => serde_json::to_value(&*probe).expect("the state serializes"),
    })
}

fn text_message(text: impl Into<String>) -> WebsocketMessage {
    WebsocketMessage {
        ty: MessageType::Text,
        data: None,
        text: Some(text.into()),
    }
}

fn reply(status: u16, body: impl Into<Vec<u8>>) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("x-probe".into(), "yes".into())],
        body: Some(body.into()),
    }
}

fn query_number(uri: &str, key: &str) -> Option<u64> {
    let query = uri.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
}

/// What a `ws-message` handler does with a frame: `trap` panics, `close`
/// closes the connection, `push N` pushes N messages, `slow N` sleeps N ms;
/// other text is echoed as `echo: TEXT`, binary as it is, pings and pongs
/// are acknowledged as text.
fn on_message(
    probe: &mut Probe,
    connection: u64,
    message: WebsocketMessage,
) -> Result<Vec<WebsocketMessage>, String> {
    probe.messages += 1;
    let server = probe
        .server
        .ok_or("no server: send {\"serve\": ...} first")?;
    let said = message.text.clone().unwrap_or_default();
    Ok(match message.ty {
        MessageType::Text if said == "trap" => panic!("asked to trap"),
        MessageType::Text if said == "close" => {
            http::close_websocket(server, connection)?;
            Vec::new()
        }
        MessageType::Text if said.starts_with("push ") => {
            let n: u64 = said[5..].trim().parse().map_err(|_| "push N")?;
            for i in 0..n {
                http::send_websocket_message(
                    server,
                    connection,
                    &text_message(format!("push {i}")),
                )?;
            }
            vec![text_message(format!("pushed {n}"))]
        }
        MessageType::Text if said.starts_with("slow ") => {
            let ms: u64 = said[5..].trim().parse().map_err(|_| "slow N")?;
            std::thread::sleep(Duration::from_millis(ms));
            vec![text_message("slow done")]
        }
        MessageType::Text => vec![text_message(format!("echo: {said}"))],
        MessageType::Binary => vec![message],
        MessageType::Ping => vec![text_message("ping seen")],
        MessageType::Pong => vec![text_message("pong seen")],
        _ => Vec::new(),
    })
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((save(&load(&state)),))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, _params: (Vec<u8>,)) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_request(state: State, params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let mut probe = load(&state);
        let answer = match serde_json::from_slice::<Command>(&params.0) {
            Ok(command) => match run(&mut probe, command) {
                Ok(value) => json!({ "ok": value }),
                Err(e) => json!({ "err": e }),
            },
            Err(e) => json!({ "err": format!("not a command: {e}") }),
        };
        Ok((save(&probe), (answer.to_string().into_bytes(),)))
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

    fn handle_channel_message(
        state: State,
        _params: (String, Vec<u8>),
    ) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_channel_close(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

impl HttpHandlers for Component {
    fn handle_request(
        state: State,
        params: (u64, HttpRequest),
    ) -> Result<(State, (HttpResponse,)), String> {
        let (handler, request) = params;
        let mut probe = load(&state);
        let name = probe.names.get(&handler).cloned().unwrap_or_default();
        let response = match name.as_str() {
            "hello" => reply(200, "hello"),
            "echo" => {
                let body = json!({
                    "method": request.method,
                    "uri": request.uri,
                    "headers": request.headers,
                    "body": request.body.as_deref().map(String::from_utf8_lossy),
                });
                reply(200, body.to_string())
            }
            "count" => {
                probe.count += 1;
                reply(200, probe.count.to_string())
            }
            "item" => {
                let path = request.uri.split('?').next().unwrap_or_default();
                let id = path.rsplit('/').next().unwrap_or_default();
                reply(200, json!({ "item": id }).to_string())
            }
            "fail" => return Err("asked to fail".into()),
            "trap" => panic!("asked to trap"),
            "slow" => {
                let ms = query_number(&request.uri, "ms").unwrap_or(200);
                std::thread::sleep(Duration::from_millis(ms));
                reply(200, "slept")
            }
            other => return Err(format!("no HTTP handler named `{other}` (id {handler})")),
        };
        Ok((save(&probe), (response,)))
    }

    fn handle_middleware(
        state: State,
        params: (u64, HttpRequest),
    ) -> Result<(State, (MiddlewareResult,)), String> {
        let (handler, mut request) = params;
        let probe = load(&state);
        let proceed = match probe.names.get(&handler).map(String::as_str) {
            Some("deny") => false,
            Some("tag") => {
                request.headers.push(("x-tagged".into(), "yes".into()));
                true
            }
            Some("mw-fail") => return Err("middleware failed".into()),
            _ => true,
        };
        Ok((state, (MiddlewareResult { proceed, request },)))
    }

    fn handle_websocket_connect(
        state: State,
        params: (u64, u64, String, Option<String>),
    ) -> Result<(State,), String> {
        let (_, connection, _path, query) = params;
        if query.as_deref() == Some("refuse") {
            return Err("refused by request".into());
        }
        let mut probe = load(&state);
        probe.connections.push(connection);
        Ok((save(&probe),))
    }

    fn handle_websocket_message(
        state: State,
        params: (u64, u64, WebsocketMessage),
    ) -> Result<(State, (Vec<WebsocketMessage>,)), String> {
        let (_, connection, message) = params;
        let mut probe = load(&state);
        let replies = on_message(&mut probe, connection, message)?;
        Ok((save(&probe), (replies,)))
    }

    fn handle_websocket_disconnect(state: State, params: (u64, u64)) -> Result<(State,), String> {
        let mut probe = load(&state);
        probe.connections.retain(|&c| c != params.1);
        probe.disconnected.push(params.1);
        Ok((save(&probe),))
    }
}

export!(Component);
