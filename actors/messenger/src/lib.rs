//! A messenger: it talks to other actors on command and remembers what
//! reaches it. Requests carry a JSON command:
//! `{"send": {"to": id, "msg": v}}`, `{"send_many": {"to": id, "msg": v, "count": n}}`,
//! `{"request": {"to": id, "msg": v}}`,
//! `{"open": {"to": id, "msg": v}}`, `{"channel_send": {"channel": c, "msg": v}}`,
//! `{"close": c}`, or `"ping"` (answered with `"pong"`).
//! Its state records messages received, channels open and channels closed.

wit_bindgen::generate!({
    path: "../../wit",
    world: "messenger",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use ntwk::theater::message_server_host as host;
use serde::{Deserialize, Serialize};
use serde_json::Value;

type State = Option<Vec<u8>>;

#[derive(Serialize, Deserialize, Default)]
struct Memory {
    /// Messages received: `{"via": "send" | channel id, "msg": value}`.
    received: Vec<Value>,
    channels: Vec<String>,
    closed: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Command {
    Send {
        to: String,
        msg: Value,
    },
    /// `count` sends of the same message, for throughput measurements.
    SendMany {
        to: String,
        msg: Value,
        count: u64,
    },
    Request {
        to: String,
        msg: Value,
    },
    Open {
        to: String,
        msg: Value,
    },
    ChannelSend {
        channel: String,
        msg: Value,
    },
    Close(String),
}

fn load(state: &State) -> Memory {
    state
        .as_deref()
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .unwrap_or_default()
}

fn save(memory: &Memory) -> State {
    Some(serde_json::to_vec(memory).expect("memory serializes"))
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value serializes")
}

fn value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((Some(
            state.unwrap_or_else(|| save(&Memory::default()).unwrap()),
        ),))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, (msg,): (Vec<u8>,)) -> Result<(State,), String> {
        let mut memory = load(&state);
        memory
            .received
            .push(serde_json::json!({ "via": "send", "msg": value(&msg) }));
        Ok((save(&memory),))
    }

    fn handle_request(state: State, (msg,): (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        if msg == br#""ping""# {
            return Ok((state, (br#""pong""#.to_vec(),)));
        }
        let command: Command =
            serde_json::from_slice(&msg).map_err(|e| format!("unknown command: {e}"))?;
        let mut memory = load(&state);
        let answer = match command {
            Command::Send { to, msg } => {
                host::send(&to, &bytes(&msg))?;
                Value::Null
            }
            Command::Request { to, msg } => value(&host::request(&to, &bytes(&msg))?),
            Command::Open { to, msg } => {
                let channel = host::open_channel(&to, &bytes(&msg))?;
                memory.channels.push(channel.clone());
                Value::String(channel)
            }
            Command::ChannelSend { channel, msg } => {
                host::send_on_channel(&channel, &bytes(&msg))?;
                Value::Null
            }
            Command::SendMany { to, msg, count } => {
                let msg = bytes(&msg);
                for _ in 0..count {
                    host::send(&to, &msg)?;
                }
                Value::Null
            }
            Command::Close(channel) => {
                host::close_channel(&channel)?;
                memory.channels.retain(|c| *c != channel);
                memory.closed.push(channel);
                Value::Null
            }
        };
        Ok((save(&memory), (bytes(&answer),)))
    }

    /// Accepts every channel but one whose first message is `"reject"`;
    /// `"greet"` is accepted with a greeting back.
    fn handle_channel_open(
        state: State,
        (msg,): (Vec<u8>,),
    ) -> Result<(State, ChannelAccept), String> {
        let accept = match value(&msg) {
            Value::String(s) if s == "reject" => ChannelAccept {
                accepted: false,
                message: Some(b"not today".to_vec()),
            },
            Value::String(s) if s == "greet" => ChannelAccept {
                accepted: true,
                message: Some(br#""hello""#.to_vec()),
            },
            _ => ChannelAccept {
                accepted: true,
                message: None,
            },
        };
        Ok((state, accept))
    }

    fn handle_channel_message(
        state: State,
        (channel, msg): (String, Vec<u8>),
    ) -> Result<(State,), String> {
        let mut memory = load(&state);
        if !memory.channels.contains(&channel) {
            memory.channels.push(channel.clone());
        }
        memory
            .received
            .push(serde_json::json!({ "via": channel, "msg": value(&msg) }));
        Ok((save(&memory),))
    }

    fn handle_channel_close(state: State, (channel,): (String,)) -> Result<(State,), String> {
        let mut memory = load(&state);
        memory.channels.retain(|c| *c != channel);
        memory.closed.push(channel);
        Ok((save(&memory),))
    }
}

export!(Component);
