//! A misbehaving actor for tests. `handle-send` traps on the message `"trap"`
//! and returns an error on `"err"` (each as a JSON string or as the raw word);
//! any other message adds one to the `{"count": N}` state, which requests read.

wit_bindgen::generate!({
    path: "../../wit",
    world: "actor-world",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Counter {
    count: u64,
}

type State = Option<Vec<u8>>;

fn load(state: &State) -> Result<Counter, String> {
    match state {
        None => Ok(Counter { count: 0 }),
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| format!("trap state is not {{\"count\": <integer>}}: {e}")),
    }
}

fn store(counter: &Counter) -> Vec<u8> {
    serde_json::to_vec(counter).expect("a counter always serializes")
}

/// True when `msg` is `word`, either raw or as a JSON string.
fn is(msg: &[u8], word: &str) -> bool {
    let quoted = format!("\"{word}\"");
    msg == word.as_bytes() || msg == quoted.as_bytes()
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        let counter = load(&state)?;
        Ok((Some(store(&counter)),))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, params: (Vec<u8>,)) -> Result<(State,), String> {
        let msg = params.0;
        if is(&msg, "trap") {
            panic!("asked to trap");
        }
        if is(&msg, "err") {
            return Err("asked to fail".to_string());
        }
        let mut counter = load(&state)?;
        counter.count += 1;
        Ok((Some(store(&counter)),))
    }

    fn handle_request(state: State, _params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let reply = store(&load(&state)?);
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
        Self::handle_send(state, (params.1,))
    }

    fn handle_channel_close(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

export!(Component);
