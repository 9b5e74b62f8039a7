//! Mixes both package names in one component: it exports
//! `ntwk:theater/actor` and `theater:simple/message-server-client`, and
//! imports `theater:simple/runtime` and `ntwk:theater/timing`. Sends count
//! in its state `{"messages": N}`; a request answers
//! `{"messages": N, "now": <ms since the epoch>}`.

wit_bindgen::generate!({
    inline: "
        package test:compat-mixed;

        world mixed {
            import theater:simple/runtime;
            import ntwk:theater/timing;
            export ntwk:theater/actor;
            export theater:simple/message-server-client;
        }
    ",
    path: ["../../wit", "../target/wit/theater-simple"],
    world: "mixed",
    generate_all,
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::theater::simple::message_server_client::{ChannelAccept, Guest as MessageServer};
use ntwk::theater::timing;
use serde::{Deserialize, Serialize};
use serde_json::json;
use theater::simple::runtime::log;

type State = Option<Vec<u8>>;

#[derive(Default, Serialize, Deserialize)]
struct Tally {
    messages: u64,
}

fn load(state: &State) -> Result<Tally, String> {
    match state {
        None => Ok(Tally::default()),
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| format!("state is not {{\"messages\": N}}: {e}")),
    }
}

fn save(tally: &Tally) -> State {
    Some(serde_json::to_vec(tally).expect("the state serializes"))
}

struct Component;

impl Actor for Component {
    fn init(state: State, params: (String,)) -> Result<(State,), String> {
        log(&format!("compat-mixed {} ready", params.0));
        Ok((save(&load(&state)?),))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, _params: (Vec<u8>,)) -> Result<(State,), String> {
        let mut tally = load(&state)?;
        tally.messages += 1;
        Ok((save(&tally),))
    }

    fn handle_request(state: State, _params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let tally = load(&state)?;
        let reply = json!({ "messages": tally.messages, "now": timing::now() });
        Ok((state, (reply.to_string().into_bytes(),)))
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

export!(Component);
