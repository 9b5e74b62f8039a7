//! An actor built without WASI that exports only `init`, `handle-send` and
//! `handle-request`, and imports only `runtime.log`. Its state counts the
//! messages it was sent: `{"messages": N}`.

wit_bindgen::generate!({
    path: "wit",
    world: "compat-basic",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::Guest as MessageServer;
use ntwk::theater::runtime::log;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Tally {
    messages: u64,
}

type State = Option<Vec<u8>>;

fn load(state: &State) -> Result<Tally, String> {
    match state {
        None => Ok(Tally { messages: 0 }),
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| format!("state is not {{\"messages\": <integer>}}: {e}")),
    }
}

fn store(tally: &Tally) -> Vec<u8> {
    serde_json::to_vec(tally).expect("a tally always serializes")
}

struct Component;

impl Actor for Component {
    fn init(state: State, params: (String,)) -> Result<(State,), String> {
        let tally = load(&state)?;
        log(&format!("compat-basic {} ready", params.0));
        Ok((Some(store(&tally)),))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, _params: (Vec<u8>,)) -> Result<(State,), String> {
        let mut tally = load(&state)?;
        tally.messages += 1;
        Ok((Some(store(&tally)),))
    }

    fn handle_request(state: State, _params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let reply = store(&load(&state)?);
        Ok((state, (reply,)))
    }
}

export!(Component);
