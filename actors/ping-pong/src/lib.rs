//! Ping-pong: run two of these. Ask one to `{"play": {"with": id, "rounds": n}}`
//! and it requests `"ping"` from the other n times; each answers `"pong"`
//! and counts the pings it served.

wit_bindgen::generate!({
    path: "../../wit",
    world: "messenger",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use ntwk::theater::message_server_host::request;
use serde::{Deserialize, Serialize};

type State = Option<Vec<u8>>;

#[derive(Serialize, Deserialize, Default)]
struct Score {
    pings_served: u64,
    pongs_received: u64,
}

#[derive(Deserialize)]
struct Play {
    with: String,
    rounds: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Message {
    Ping,
    Play(Play),
}

fn load(state: &State) -> Score {
    state
        .as_deref()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default()
}

fn save(score: &Score) -> State {
    Some(serde_json::to_vec(score).expect("a score serializes"))
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((save(&load(&state)),))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, _params: (Vec<u8>,)) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_request(state: State, (msg,): (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let mut score = load(&state);
        match serde_json::from_slice(&msg)
            .map_err(|e| format!("expected \"ping\" or {{\"play\": ...}}: {e}"))?
        {
            Message::Ping => {
                score.pings_served += 1;
                Ok((save(&score), (br#""pong""#.to_vec(),)))
            }
            Message::Play(Play { with, rounds }) => {
                for _ in 0..rounds {
                    let reply = request(&with, br#""ping""#)?;
                    if reply != br#""pong""# {
                        return Err(format!(
                            "expected \"pong\", got {}",
                            String::from_utf8_lossy(&reply)
                        ));
                    }
                    score.pongs_received += 1;
                }
                let answer = serde_json::to_vec(&score).expect("a score serializes");
                Ok((save(&score), (answer,)))
            }
        }
    }

    fn handle_channel_open(
        state: State,
        _params: (Vec<u8>,),
    ) -> Result<(State, ChannelAccept), String> {
        Ok((
            state,
            ChannelAccept {
                accepted: false,
                message: Some(b"ping-pong takes no channels".to_vec()),
            },
        ))
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
