//! A counter actor: its state is `{"count": N}`, `{"add": n}` messages add to it,
//! an `{"add": n}` request adds and answers the new count, and any other
//! request reads it.

wit_bindgen::generate!({
    path: "../../wit",
    world: "actor-world",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Counter {
    count: i64,
}

#[derive(Deserialize)]
struct Add {
    add: i64,
}

type State = Option<Vec<u8>>;

fn load(state: &State) -> Result<Counter, String> {
    match state {
        None => Ok(Counter { count: 0 }),
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| format!("counter state is not {{\"count\": <integer>}}: {e}")),
    }
}

fn store(counter: &Counter) -> Vec<u8> {
    serde_json::to_vec(counter).expect("a counter always serializes")
}

/// Applies an `{"add": n}` message; on any error the caller keeps the old state.
fn add(state: State, msg: &[u8]) -> Result<(State,), String> {
    let Add { add } = serde_json::from_slice(msg)
        .map_err(|e| format!("expected a message like {{\"add\": <integer>}}: {e}"))?;
    let mut counter = load(&state)?;
    counter.count = counter
        .count
        .checked_add(add)
        .ok_or_else(|| format!("adding {add} to {} overflows", counter.count))?;
    Ok((Some(store(&counter)),))
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        let state = match state {
            Some(bytes) => bytes,
            None => store(&Counter { count: 0 }),
        };
        Ok((Some(state),))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, params: (Vec<u8>,)) -> Result<(State,), String> {
        add(state, &params.0)
    }

    fn handle_request(state: State, params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let state = match serde_json::from_slice::<Add>(&params.0) {
            Ok(_) => add(state, &params.0)?.0,
            Err(_) => state,
        };
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
        add(state, &params.1)
    }

    fn handle_channel_close(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

export!(Component);
