//! A supervisor: it starts and manages children on command and keeps what
//! it hears of them. Requests carry a JSON command:
//! `{"spawn": manifest}`, `{"spawn_with": {"manifest": m, "state": v}}`,
//! `{"resume": {"manifest": m, "state": v}}`, `{"children": null}`,
//! `{"stop": id}`, `{"restart": id}`, `{"state_of": id}`, `{"events_of": id}`,
//! `{"send": {"to": id, "msg": v}}`, `{"shutdown": v}`.
//! Its state records child errors and exits in the order they arrived.

wit_bindgen::generate!({
    path: "../../wit",
    world: "supervisor-actor",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use exports::ntwk::theater::supervisor_handlers::Guest as SupervisorHandlers;
use ntwk::theater::{message_server_host, runtime_control, supervisor};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

type State = Option<Vec<u8>>;

#[derive(Serialize, Deserialize, Default)]
struct Memory {
    errors: Vec<(String, String)>,
    exits: Vec<(String, Value)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Command {
    Spawn(String),
    SpawnWith { manifest: String, state: Value },
    Resume { manifest: String, state: Value },
    Children(serde::de::IgnoredAny),
    Stop(String),
    Restart(String),
    StateOf(String),
    EventsOf(String),
    Send { to: String, msg: Value },
    Shutdown(Value),
}

fn load(state: &State) -> Memory {
    state
        .as_deref()
        .and_then(|b| serde_json::from_slice(b).ok())
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

fn run(command: Command) -> Result<Value, String> {
    Ok(match command {
        Command::Spawn(manifest) => json!(supervisor::spawn(&manifest, None)?),
        Command::SpawnWith { manifest, state } => {
            json!(supervisor::spawn(&manifest, Some(&bytes(&state)))?)
        }
        Command::Resume { manifest, state } => {
            json!(supervisor::resume(&manifest, Some(&bytes(&state)))?)
        }
        Command::Children(_) => json!(supervisor::list_children()),
        Command::Stop(id) => json!(supervisor::stop_child(&id)?),
        Command::Restart(id) => json!(supervisor::restart_child(&id)?),
        Command::StateOf(id) => {
            supervisor::get_child_state(&id)?.map_or(Value::Null, |s| value(&s))
        }
        Command::EventsOf(id) => json!(supervisor::get_child_events(&id)?.len()),
        Command::Send { to, msg } => json!(message_server_host::send(&to, &bytes(&msg))?),
        Command::Shutdown(data) => json!(runtime_control::shutdown(Some(&bytes(&data)))?),
    })
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
    fn handle_send(state: State, _params: (Vec<u8>,)) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_request(state: State, (msg,): (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let command: Command =
            serde_json::from_slice(&msg).map_err(|e| format!("unknown command: {e}"))?;
        let answer = run(command)?;
        Ok((state, (bytes(&answer),)))
    }

    fn handle_channel_open(
        state: State,
        _params: (Vec<u8>,),
    ) -> Result<(State, ChannelAccept), String> {
        Ok((
            state,
            ChannelAccept {
                accepted: false,
                message: None,
            },
        ))
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

impl SupervisorHandlers for Component {
    fn handle_child_error(
        state: State,
        (child, error): (String, String),
    ) -> Result<(State,), String> {
        let mut memory = load(&state);
        memory.errors.push((child, error));
        Ok((save(&memory),))
    }

    fn handle_child_exit(
        state: State,
        (child, data): (String, Option<Vec<u8>>),
    ) -> Result<(State,), String> {
        let mut memory = load(&state);
        memory
            .exits
            .push((child, data.as_deref().map_or(Value::Null, value)));
        Ok((save(&memory),))
    }
}

export!(Component);
