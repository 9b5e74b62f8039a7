//! A misbehaving actor for tests: `handle-send` never returns, so only the
//! runtime's call timeout can stop it. Requests answer `"pong"`.

wit_bindgen::generate!({
    path: "../../wit",
    world: "actor-world",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use std::hint::black_box;

type State = Option<Vec<u8>>;

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

impl MessageServer for Component {
    fn handle_send(_state: State, _params: (Vec<u8>,)) -> Result<(State,), String> {
        // `black_box` keeps the optimizer from reasoning about the loop.
        let mut spins: u64 = 0;
        loop {
            spins = black_box(spins.wrapping_add(1));
        }
    }

    fn handle_request(state: State, _params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        Ok((state, (b"\"pong\"".to_vec(),)))
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
