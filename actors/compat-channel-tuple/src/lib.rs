//! Like `compat-basic`, plus channels in the older shape where
//! `handle-channel-open` returns `tuple<channel-accept>`. A channel is accepted
//! when its initial message is `"yes"`; any other is refused with `"no thanks"`.

wit_bindgen::generate!({
    path: "wit",
    world: "compat-channel-tuple",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
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

fn count(state: State) -> Result<(State,), String> {
    let mut tally = load(&state)?;
    tally.messages += 1;
    Ok((Some(store(&tally)),))
}

struct Component;

impl Actor for Component {
    fn init(state: State, params: (String,)) -> Result<(State,), String> {
        let tally = load(&state)?;
        log(&format!("compat-channel-tuple {} ready", params.0));
        Ok((Some(store(&tally)),))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, _params: (Vec<u8>,)) -> Result<(State,), String> {
        count(state)
    }

    fn handle_request(state: State, _params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let reply = store(&load(&state)?);
        Ok((state, (reply,)))
    }

    fn handle_channel_open(
        state: State,
        params: (Vec<u8>,),
    ) -> Result<(State, (ChannelAccept,)), String> {
        let accept = if params.0 == b"\"yes\"" {
            ChannelAccept {
                accepted: true,
                message: None,
            }
        } else {
            ChannelAccept {
                accepted: false,
                message: Some(b"\"no thanks\"".to_vec()),
            }
        };
        Ok((state, (accept,)))
    }

    fn handle_channel_message(
        state: State,
        _params: (String, Vec<u8>),
    ) -> Result<(State,), String> {
        count(state)
    }

    fn handle_channel_close(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

export!(Component);
