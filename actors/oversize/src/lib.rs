//! A hostile actor for tests: it answers replies, keeps states and fails
//! with messages as large as it is told to, so the runtime's caps on them
//! can be tried. Its state is raw bytes, not JSON.
//!
//! Requests (and sends, which answer nothing) are JSON commands:
//! `{"reply": n}` answers n bytes; `{"state": n}` keeps a state of n bytes
//! (the same bytes each time); `{"bump": n}` keeps a state of n bytes that
//! differs from the one before; `{"fail": n}` fails with an n-byte message;
//! anything else answers the size of the state.

wit_bindgen::generate!({
    path: "../../wit",
    world: "actor-world",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use serde::Deserialize;

type State = Option<Vec<u8>>;

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Command {
    Reply(usize),
    State(usize),
    Bump(usize),
    Fail(usize),
}

/// Runs `msg`: the new state and the reply.
fn run(state: State, msg: &[u8]) -> Result<(State, Vec<u8>), String> {
    let size = state.as_ref().map_or(0, Vec::len);
    match serde_json::from_slice::<Command>(msg) {
        Ok(Command::Reply(n)) => Ok((state, vec![b'r'; n])),
        Ok(Command::State(n)) => Ok((Some(vec![b's'; n]), b"null".to_vec())),
        Ok(Command::Bump(n)) => {
            // The first eight bytes count the bumps, so each state is new.
            let count = state
                .as_ref()
                .and_then(|s| s.get(..8))
                .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
                + 1;
            let mut next = vec![b'b'; n.max(8)];
            next[..8].copy_from_slice(&count.to_le_bytes());
            Ok((Some(next), b"null".to_vec()))
        }
        Ok(Command::Fail(n)) => Err("e".repeat(n)),
        Err(_) => Ok((state, size.to_string().into_bytes())),
    }
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, (msg,): (Vec<u8>,)) -> Result<(State,), String> {
        run(state, &msg).map(|(state, _)| (state,))
    }

    fn handle_request(state: State, (msg,): (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        run(state, &msg).map(|(state, reply)| (state, (reply,)))
    }

    fn handle_channel_open(
        state: State,
        _params: (Vec<u8>,),
    ) -> Result<(State, ChannelAccept), String> {
        let accept = ChannelAccept {
            accepted: false,
            message: None,
        };
        Ok((state, accept))
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
