//! A Theater actor. Its state is JSON: `{"messages": N, "last": <message>}`.
//! Every message sent to it is counted and kept; every request is answered
//! with the state.

wit_bindgen::generate!({
    path: "wit",
    world: "app",
    // The interfaces come from `wit/deps/theater`, another package.
    generate_all,
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use ntwk::theater::runtime::log;
use serde_json::{Value, json};

type State = Option<Vec<u8>>;

fn load(state: &State) -> Result<Value, String> {
    match state {
        None => Ok(json!({ "messages": 0, "last": null })),
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| format!("state is not JSON: {e}")),
    }
}

fn save(value: &Value) -> State {
    Some(serde_json::to_vec(value).expect("JSON values serialize"))
}

/// Counts a message and keeps it; a message that is not JSON is refused
/// and leaves the state as it was.
fn receive(state: State, message: &[u8]) -> Result<(State,), String> {
    let message: Value =
        serde_json::from_slice(message).map_err(|e| format!("message is not JSON: {e}"))?;
    let mut value = load(&state)?;
    let count = value["messages"].as_u64().unwrap_or(0) + 1;
    value["messages"] = count.into();
    value["last"] = message;
    Ok((save(&value),))
}

struct Component;

impl Actor for Component {
    fn init(state: State, params: (String,)) -> Result<(State,), String> {
        log(&format!("starting as {}", params.0));
        let value = load(&state)?;
        Ok((save(&value),))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, params: (Vec<u8>,)) -> Result<(State,), String> {
        receive(state, &params.0)
    }

    fn handle_request(state: State, _params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let reply = serde_json::to_vec(&load(&state)?).expect("JSON values serialize");
        Ok((state, (reply,)))
    }

    fn handle_channel_open(
        state: State,
        _params: (Vec<u8>,),
    ) -> Result<(State, ChannelAccept), String> {
        let accept = ChannelAccept {
            accepted: true,
            message: None,
        };
        Ok((state, accept))
    }

    fn handle_channel_message(state: State, params: (String, Vec<u8>)) -> Result<(State,), String> {
        receive(state, &params.1)
    }

    fn handle_channel_close(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

export!(Component);
