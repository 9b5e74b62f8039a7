//! An echo actor: requests are answered with their own bytes, and the state is
//! the last message sent to it.

wit_bindgen::generate!({
    path: "../../wit",
    world: "actor-world",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use ntwk::theater::runtime::{get_chain, log};

type State = Option<Vec<u8>>;

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

impl MessageServer for Component {
    fn handle_send(_state: State, params: (Vec<u8>,)) -> Result<(State,), String> {
        Ok((Some(params.0),))
    }

    /// Answers the bytes it got; the request `"chain"` is answered with the
    /// number of events in its own chain instead.
    fn handle_request(state: State, params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        log(&format!("echo: {} bytes", params.0.len()));
        if params.0 == b"\"chain\"" {
            let events = get_chain().events.len();
            return Ok((state, (events.to_string().into_bytes(),)));
        }
        Ok((state, params))
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
        _state: State,
        params: (String, Vec<u8>),
    ) -> Result<(State,), String> {
        Ok((Some(params.1),))
    }

    fn handle_channel_close(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

export!(Component);
