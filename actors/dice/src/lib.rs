//! A dice actor on the random and environment interfaces. Requests:
//! `{"roll": sides}` answers `{"rolled": n}` with n in 1..=sides,
//! `{"bytes": n}` answers n random bytes as hex, `{"u64": null}` a random
//! u64, `{"range": [min, max]}` a value in [min, max), `{"env": "NAME"}` the
//! variable's value or null, `{"vars": null}` every variable it may read.
//! It keeps no state.

wit_bindgen::generate!({
    path: "../../wit",
    world: "random-actor",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use ntwk::theater::{environment, random};
use serde::Deserialize;
use serde_json::{Value, json};

type State = Option<Vec<u8>>;

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Request {
    Roll(u64),
    Bytes(u32),
    U64(()),
    Range(u64, u64),
    Env(String),
    Vars(()),
}

fn run(msg: &[u8]) -> Result<Value, String> {
    let request: Request = serde_json::from_slice(msg)
        .map_err(|e| format!("not a dice command (see actors/README.md): {e}"))?;
    let reply = match request {
        Request::Roll(sides) => {
            let top = sides
                .checked_add(1)
                .ok_or_else(|| format!("a die with {sides} sides is too big"))?;
            json!({ "rolled": random::get_random_range(1, top)? })
        }
        Request::Bytes(len) => {
            let bytes = random::get_random_bytes(len)?;
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            json!({ "bytes": hex })
        }
        Request::U64(()) => json!({ "u64": random::get_random_u64()? }),
        Request::Range(min, max) => json!({ "value": random::get_random_range(min, max)? }),
        Request::Env(name) => json!({ "value": environment::get_var(&name) }),
        Request::Vars(()) => {
            let vars: serde_json::Map<String, Value> = environment::list_vars()
                .into_iter()
                .map(|(name, value)| (name, Value::String(value)))
                .collect();
            json!({ "vars": vars })
        }
    };
    Ok(reply)
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, params: (Vec<u8>,)) -> Result<(State,), String> {
        run(&params.0)?;
        Ok((state,))
    }

    fn handle_request(state: State, params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let reply = run(&params.0)?;
        Ok((state, (reply.to_string().into_bytes(),)))
    }

    fn handle_channel_open(
        state: State,
        _params: (Vec<u8>,),
    ) -> Result<(State, ChannelAccept), String> {
        let refuse = ChannelAccept {
            accepted: false,
            message: Some(br#""dice takes no channels""#.to_vec()),
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
