//! Built against `theater:simple`, started from a manifest in the 2025
//! format whose `timing` handler sets its limits inline. Requests:
//! `{"nap": ms}` sleeps, counts the nap in its state and answers
//! `{"napped": ms, "naps": N}`; `{"naps": null}` answers `{"naps": N}`. A
//! nap the manifest does not allow is the request's error.

wit_bindgen::generate!({
    inline: "
        package example:simple-timer;

        world timer {
            import theater:simple/runtime;
            import theater:simple/timing;
            export theater:simple/actor;
            export theater:simple/message-server-client;
        }
    ",
    path: ["../target/wit/theater-simple"],
    world: "timer",
    generate_all,
});

use exports::theater::simple::actor::Guest as Actor;
use exports::theater::simple::message_server_client::{ChannelAccept, Guest as MessageServer};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use theater::simple::timing;

type State = Option<Vec<u8>>;

#[derive(Default, Serialize, Deserialize)]
struct Timer {
    naps: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Request {
    Nap(u64),
    Naps(()),
}

fn load(state: &State) -> Result<Timer, String> {
    match state {
        None => Ok(Timer::default()),
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| format!("simple-timer state is not {{\"naps\": N}}: {e}")),
    }
}

fn save(timer: &Timer) -> State {
    Some(serde_json::to_vec(timer).expect("the state serializes"))
}

fn run(state: &State, msg: &[u8]) -> Result<(Timer, Value), String> {
    let request: Request = serde_json::from_slice(msg)
        .map_err(|e| format!("expected {{\"nap\": <ms>}} or {{\"naps\": null}}: {e}"))?;
    let mut timer = load(state)?;
    let reply = match request {
        Request::Nap(ms) => {
            timing::sleep(ms)?;
            timer.naps += 1;
            json!({ "napped": ms, "naps": timer.naps })
        }
        Request::Naps(()) => json!({ "naps": timer.naps }),
    };
    Ok((timer, reply))
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((save(&load(&state)?),))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, params: (Vec<u8>,)) -> Result<(State,), String> {
        let (timer, _) = run(&state, &params.0)?;
        Ok((save(&timer),))
    }

    fn handle_request(state: State, params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let (timer, reply) = run(&state, &params.0)?;
        Ok((save(&timer), (reply.to_string().into_bytes(),)))
    }

    fn handle_channel_open(
        state: State,
        _params: (Vec<u8>,),
    ) -> Result<(State, ChannelAccept), String> {
        let refuse = ChannelAccept {
            accepted: false,
            message: Some(br#""simple-timer takes no channels""#.to_vec()),
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
