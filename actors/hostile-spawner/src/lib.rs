//! A hostile parent: everything it does tries to get more through a child
//! than its own manifest grants. Requests carry a JSON command:
//! `{"spawn": manifest}` (a path or manifest text), `{"spawn_with":
//! {"manifest": m, "state": v}}`, `{"spawn_loop": {"manifest": m, "times": n,
//! "stop_on_error": b}}` (answers how many children it made and the last
//! error), `{"ask": {"to": id, "msg": v}}` (a request to a child, answered
//! with its reply), `{"state_of": id}` (a child's state as text) and
//! `{"children": null}`. Started with the state `{"spin": true}`, its
//! `init` never returns: a child whose spawn takes its whole time limit.

wit_bindgen::generate!({
    path: "../../wit",
    world: "supervisor-actor",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use exports::ntwk::theater::supervisor_handlers::Guest as SupervisorHandlers;
use ntwk::theater::{message_server_host, supervisor};
use serde::Deserialize;
use serde_json::{Value, json};

type State = Option<Vec<u8>>;

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Command {
    Spawn(String),
    SpawnWith {
        manifest: String,
        state: Value,
    },
    SpawnLoop {
        manifest: String,
        times: u64,
        stop_on_error: bool,
    },
    Ask {
        to: String,
        msg: Value,
    },
    StateOf(String),
    Children(serde::de::IgnoredAny),
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value serializes")
}

fn text(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// Spawns `manifest` up to `times` times; an error ends the loop only when
/// asked, so that a loop that ignores errors shows whether time still counts.
fn spawn_loop(manifest: &str, times: u64, stop_on_error: bool) -> Value {
    let (mut spawned, mut last_error) = (0u64, Value::Null);
    for _ in 0..times {
        match supervisor::spawn(manifest, None) {
            Ok(_) => spawned += 1,
            Err(e) => {
                last_error = json!(e);
                if stop_on_error {
                    break;
                }
            }
        }
    }
    json!({ "spawned": spawned, "error": last_error })
}

fn run(command: Command) -> Result<Value, String> {
    Ok(match command {
        Command::Spawn(manifest) => json!(supervisor::spawn(&manifest, None)?),
        Command::SpawnWith { manifest, state } => {
            json!(supervisor::spawn(&manifest, Some(&bytes(&state)))?)
        }
        Command::SpawnLoop {
            manifest,
            times,
            stop_on_error,
        } => spawn_loop(&manifest, times, stop_on_error),
        Command::Ask { to, msg } => text(&message_server_host::request(&to, &bytes(&msg))?),
        Command::StateOf(id) => supervisor::get_child_state(&id)?
            .map_or(Value::Null, |state| json!(String::from_utf8_lossy(&state))),
        Command::Children(_) => json!(supervisor::list_children()),
    })
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        let spin = state
            .as_deref()
            .and_then(|s| serde_json::from_slice::<Value>(s).ok())
            .is_some_and(|s| s["spin"] == true);
        while spin {
            std::hint::black_box(());
        }
        Ok((state,))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, _params: (Vec<u8>,)) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_request(state: State, (msg,): (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let command: Command =
            serde_json::from_slice(&msg).map_err(|e| format!("unknown command: {e}"))?;
        Ok((state, (bytes(&run(command)?),)))
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

impl SupervisorHandlers for Component {
    fn handle_child_error(state: State, _params: (String, String)) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_child_exit(
        state: State,
        _params: (String, Option<Vec<u8>>),
    ) -> Result<(State,), String> {
        Ok((state,))
    }
}

export!(Component);
