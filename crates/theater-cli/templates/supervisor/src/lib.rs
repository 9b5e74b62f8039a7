//! A supervisor with one child, the worker in `child/`. The first message
//! or request spawns the worker from `child/manifest.toml` (an actor is
//! registered, and so can have children, once its `init` has returned);
//! messages and requests are forwarded to it (`{"ping": 1}`, or `"crash"`
//! to make it trap), and the request `{"status": null}` answers what the
//! supervisor knows. When the worker crashes the runtime restarts it, as
//! the manifest's policy says, and tells the supervisor through
//! `handle-child-error`.
//!
//! Its state: `{"child": id, "errors": [[id, error]], "exits": [[id, data]]}`.

wit_bindgen::generate!({
    path: "wit",
    world: "supervisor",
    // The interfaces come from `wit/deps/theater`, another package.
    generate_all,
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use exports::ntwk::theater::supervisor_handlers::Guest as SupervisorHandlers;
use ntwk::theater::runtime::log;
use ntwk::theater::{message_server_host, supervisor};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The child's manifest, relative to this actor's manifest.
const CHILD_MANIFEST: &str = "child/manifest.toml";

type State = Option<Vec<u8>>;

#[derive(Serialize, Deserialize, Default)]
struct Memory {
    child: Option<String>,
    errors: Vec<(String, String)>,
    exits: Vec<(String, Value)>,
}

fn load(state: &State) -> Result<Memory, String> {
    match state {
        None => Ok(Memory::default()),
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| format!("state is not valid: {e}")),
    }
}

fn save(memory: &Memory) -> State {
    Some(serde_json::to_vec(memory).expect("the state serializes"))
}

/// The running child, started again if it is gone (after the supervisor
/// was stopped with it, say).
fn child(memory: &mut Memory) -> Result<String, String> {
    if let Some(child) = &memory.child
        && supervisor::list_children().contains(child)
    {
        return Ok(child.clone());
    }
    let child = supervisor::spawn(CHILD_MANIFEST, None)?;
    log(&format!("started worker {child}"));
    memory.child = Some(child.clone());
    Ok(child)
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        let memory = load(&state)?;
        Ok((save(&memory),))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, params: (Vec<u8>,)) -> Result<(State,), String> {
        let mut memory = load(&state)?;
        message_server_host::send(&child(&mut memory)?, &params.0)?;
        Ok((save(&memory),))
    }

    fn handle_request(state: State, params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let mut memory = load(&state)?;
        let asked: Value = serde_json::from_slice(&params.0).unwrap_or(Value::Null);
        let reply = if asked.get("status").is_some() {
            child(&mut memory)?;
            let status = json!({
                "child": memory.child,
                "children": supervisor::list_children(),
                "errors": memory.errors,
                "exits": memory.exits,
            });
            status.to_string().into_bytes()
        } else {
            message_server_host::request(&child(&mut memory)?, &params.0)?
        };
        Ok((save(&memory), (reply,)))
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

impl SupervisorHandlers for Component {
    fn handle_child_error(state: State, params: (String, String)) -> Result<(State,), String> {
        let mut memory = load(&state)?;
        let (child, error) = params;
        // The first line; a trap's wasm backtrace follows it.
        let error = error.lines().next().unwrap_or_default().to_owned();
        log(&format!("worker {child} failed: {error}"));
        memory.errors.push((child, error));
        Ok((save(&memory),))
    }

    fn handle_child_exit(state: State, params: (String, Option<Vec<u8>>)) -> Result<(State,), String> {
        let mut memory = load(&state)?;
        let data = params
            .1
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null);
        memory.exits.push((params.0, data));
        Ok((save(&memory),))
    }
}

export!(Component);
