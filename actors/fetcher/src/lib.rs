//! An actor on the http-client interface. `{"get": url}` answers
//! `{"status": s, "body": text}`; `{"send": {"method", "url", "headers",
//! "body"}}` sends any request and answers its status, headers and body.
//! Its state counts the requests that got a response, `{"fetched": N}`; a
//! request that fails is the command's error and leaves the state alone.

wit_bindgen::generate!({
    path: "../../wit",
    world: "http-client-actor",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use ntwk::theater::http_client;
use ntwk::theater::http_types::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

type State = Option<Vec<u8>>;

#[derive(Serialize, Deserialize, Default)]
struct Fetcher {
    fetched: u64,
}

/// A command; the reply is JSON.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Request {
    /// GETs the URL.
    Get(String),
    /// Sends a request of any method, with headers and a body.
    Send {
        #[serde(default = "get")]
        method: String,
        url: String,
        #[serde(default)]
        headers: Vec<(String, String)>,
        #[serde(default)]
        body: Option<String>,
    },
    /// Replies the state.
    State(()),
}

fn get() -> String {
    "GET".to_owned()
}

fn load(state: &State) -> Result<Fetcher, String> {
    match state {
        None => Ok(Fetcher::default()),
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| format!("fetcher state is not {{\"fetched\": N}}: {e}")),
    }
}

fn body_text(response: &HttpResponse) -> String {
    String::from_utf8_lossy(response.body.as_deref().unwrap_or_default()).into_owned()
}

fn run(fetcher: &mut Fetcher, msg: &[u8]) -> Result<Value, String> {
    let request: Request = serde_json::from_slice(msg).map_err(|e| {
        format!("expected {{\"get\": url}} or {{\"send\": {{\"method\", \"url\", \"headers\", \"body\"}}}}: {e}")
    })?;
    let reply = match request {
        Request::Get(url) => {
            let response = http_client::send_http(&HttpRequest {
                method: "GET".to_owned(),
                uri: url,
                headers: Vec::new(),
                body: None,
            })?;
            fetcher.fetched += 1;
            json!({ "status": response.status, "body": body_text(&response) })
        }
        Request::Send {
            method,
            url,
            headers,
            body,
        } => {
            let response = http_client::send_http(&HttpRequest {
                method,
                uri: url,
                headers,
                body: body.map(String::into_bytes),
            })?;
            fetcher.fetched += 1;
            json!({
                "status": response.status,
                "headers": response.headers,
                "body": body_text(&response),
            })
        }
        Request::State(()) => json!(fetcher),
    };
    Ok(reply)
}

fn save(fetcher: &Fetcher) -> State {
    Some(serde_json::to_vec(fetcher).expect("the state serializes"))
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((save(&load(&state)?),))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, params: (Vec<u8>,)) -> Result<(State,), String> {
        let mut fetcher = load(&state)?;
        run(&mut fetcher, &params.0)?;
        Ok((save(&fetcher),))
    }

    fn handle_request(state: State, params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let mut fetcher = load(&state)?;
        let reply = run(&mut fetcher, &params.0)?;
        Ok((save(&fetcher), (reply.to_string().into_bytes(),)))
    }

    fn handle_channel_open(
        state: State,
        _params: (Vec<u8>,),
    ) -> Result<(State, ChannelAccept), String> {
        let refuse = ChannelAccept {
            accepted: false,
            message: Some(br#""fetcher takes no channels""#.to_vec()),
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

export!(Component);
