//! A WebSocket chat. At init this actor starts a server on the port its
//! initial state names (`{"port": 8081}`; 0 picks a free port) with a
//! WebSocket endpoint at `/ws`:
//! - a new connection N is greeted with `welcome N`, pushed with
//!   `send-websocket-message`;
//! - a text message is answered to its sender as `echo: TEXT` and pushed to
//!   every other connection as `N: TEXT`;
//! - a binary message is echoed as it is;
//! - `/who` answers the open connection ids, `/bye` closes the connection
//!   from the server's side.
//!
//! `GET /` answers a one-line note. Its state: `{"port", "server",
//! "handlers", "connections": [ids], "messages": N}`.

wit_bindgen::generate!({
    path: "../../wit",
    world: "http-server-actor",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::http_handlers::Guest as HttpHandlers;
use ntwk::theater::http_framework as http;
use ntwk::theater::http_types::{HttpRequest, HttpResponse, MiddlewareResult, ServerConfig};
use ntwk::theater::runtime::log;
use ntwk::theater::websocket_types::{MessageType, WebsocketMessage};
use serde::{Deserialize, Serialize};

type State = Option<Vec<u8>>;

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    port: u16,
}

#[derive(Serialize, Deserialize)]
struct Handlers {
    home: u64,
    connect: u64,
    message: u64,
    disconnect: u64,
}

#[derive(Serialize, Deserialize)]
struct Chat {
    port: u16,
    server: u64,
    handlers: Handlers,
    connections: Vec<u64>,
    messages: u64,
}

fn load(state: &State) -> Result<Chat, String> {
    let bytes = state.as_deref().ok_or("ws-echo has no state")?;
    serde_json::from_slice(bytes).map_err(|e| format!("ws-echo state is not valid: {e}"))
}

fn save(chat: &Chat) -> State {
    Some(serde_json::to_vec(chat).expect("the state serializes"))
}

fn text(text: impl Into<String>) -> WebsocketMessage {
    WebsocketMessage {
        ty: MessageType::Text,
        data: None,
        text: Some(text.into()),
    }
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        let config: Config = match &state {
            Some(bytes) => serde_json::from_slice(bytes)
                .map_err(|e| format!("the initial state must be {{\"port\": N}}: {e}"))?,
            None => Config { port: 8081 },
        };
        let server = http::create_server(&ServerConfig {
            port: Some(config.port),
            host: None,
            tls_config: None,
        })?;
        let handlers = Handlers {
            home: http::register_handler("home")?,
            connect: http::register_handler("connect")?,
            message: http::register_handler("message")?,
            disconnect: http::register_handler("disconnect")?,
        };
        http::add_route(server, "/", "GET", handlers.home)?;
        http::enable_websocket(
            server,
            "/ws",
            Some(handlers.connect),
            handlers.message,
            Some(handlers.disconnect),
        )?;
        let port = http::start_server(server)?;
        log(&format!("ws-echo: connect to ws://127.0.0.1:{port}/ws"));
        let chat = Chat {
            port,
            server,
            handlers,
            connections: Vec::new(),
            messages: 0,
        };
        Ok((save(&chat),))
    }
}

impl HttpHandlers for Component {
    fn handle_request(
        state: State,
        _params: (u64, HttpRequest),
    ) -> Result<(State, (HttpResponse,)), String> {
        let reply = HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: Some(b"ws-echo: open a WebSocket on /ws".to_vec()),
        };
        Ok((state, (reply,)))
    }

    fn handle_middleware(
        state: State,
        params: (u64, HttpRequest),
    ) -> Result<(State, (MiddlewareResult,)), String> {
        let request = params.1;
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
        params: (u64, u64, String, Option<String>),
    ) -> Result<(State,), String> {
        let (_, connection, _, _) = params;
        let mut chat = load(&state)?;
        chat.connections.push(connection);
        // Pushed, not returned: a connect handler has no reply of its own.
        http::send_websocket_message(
            chat.server,
            connection,
            &text(format!("welcome {connection}")),
        )?;
        Ok((save(&chat),))
    }

    fn handle_websocket_message(
        state: State,
        params: (u64, u64, WebsocketMessage),
    ) -> Result<(State, (Vec<WebsocketMessage>,)), String> {
        let (_, from, message) = params;
        let mut chat = load(&state)?;
        chat.messages += 1;
        let replies = match (&message.ty, message.text.as_deref()) {
            (MessageType::Text, Some("/who")) => {
                vec![text(format!("{:?}", chat.connections))]
            }
            (MessageType::Text, Some("/bye")) => {
                http::close_websocket(chat.server, from)?;
                Vec::new()
            }
            (MessageType::Text, Some(said)) => {
                for &other in chat.connections.iter().filter(|&&c| c != from) {
                    // A peer that is going away is no reason to fail the sender.
                    let _ = http::send_websocket_message(
                        chat.server,
                        other,
                        &text(format!("{from}: {said}")),
                    );
                }
                vec![text(format!("echo: {said}"))]
            }
            (MessageType::Binary, _) => vec![message],
            _ => Vec::new(),
        };
        Ok((save(&chat), (replies,)))
    }

    fn handle_websocket_disconnect(state: State, params: (u64, u64)) -> Result<(State,), String> {
        let mut chat = load(&state)?;
        chat.connections.retain(|&c| c != params.1);
        Ok((save(&chat),))
    }
}

export!(Component);
