//! The supervisor's worker. Its state is `{"pings": N}`: a request
//! `{"ping": v}` answers `{"pong": v, "pings": N}`; the message `"crash"`
//! makes it trap, and its supervisor restarts it with the state it had.

wit_bindgen::generate!({
    path: "../wit",
    world: "child",
    // The interfaces come from `wit/deps/theater`, another package.
    generate_all,
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use serde_json::{Value, json};

type State = Option<Vec<u8>>;

fn pings(state: &State) -> u64 {
    state
        .as_deref()
        .and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok())
        .and_then(|value| value["pings"].as_u64())
        .unwrap_or(0)
}

fn save(pings: u64) -> State {
    Some(json!({ "pings": pings }).to_string().into_bytes())
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((save(pings(&state)),))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, params: (Vec<u8>,)) -> Result<(State,), String> {
        if params.0 == br#""crash""# {
            panic!("asked to crash");
        }
        Ok((save(pings(&state) + 1),))
    }

    fn handle_request(state: State, params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let asked: Value =
            serde_json::from_slice(&params.0).map_err(|e| format!("not JSON: {e}"))?;
        let Some(ping) = asked.get("ping") else {
            return Err(format!("expected {{\"ping\": v}}, got {asked}"));
        };
        let count = pings(&state) + 1;
        let reply = json!({ "pong": ping, "pings": count });
        Ok((save(count), (reply.to_string().into_bytes(),)))
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

export!(Component);
