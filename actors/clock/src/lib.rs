//! A clock actor on the timing interface. Requests: `{"now": null}` answers
//! the time in ms since the epoch, `{"sleep": ms}` sleeps then answers
//! `{"slept": ms}`, `{"deadline": ts}` waits until then and answers
//! `{"reached": ts}`. It keeps no state.

wit_bindgen::generate!({
    path: "../../wit",
    world: "timing-actor",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use ntwk::theater::timing;
use serde::Deserialize;
use serde_json::{Value, json};

type State = Option<Vec<u8>>;

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Request {
    Now(()),
    Sleep(u64),
    Deadline(u64),
}

fn run(msg: &[u8]) -> Result<Value, String> {
    let request: Request = serde_json::from_slice(msg).map_err(|e| {
        format!("expected {{\"now\": null}}, {{\"sleep\": <ms>}} or {{\"deadline\": <ms since epoch>}}: {e}")
    })?;
    let reply = match request {
        Request::Now(()) => json!({ "now": timing::now() }),
        Request::Sleep(ms) => {
            timing::sleep(ms)?;
            json!({ "slept": ms })
        }
        Request::Deadline(at) => {
            timing::deadline(at)?;
            json!({ "reached": at })
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
            message: Some(br#""clock takes no channels""#.to_vec()),
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
