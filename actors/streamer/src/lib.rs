//! A channel streamer: run two of these. Ask the producer to
//! `{"stream_to": id, "count": n}`: it opens a channel to the consumer,
//! sends `{"item": 0..n}` in order and closes it. The consumer collects the
//! items of each channel and marks the stream complete when it closes.

wit_bindgen::generate!({
    path: "../../wit",
    world: "messenger",
});

use std::collections::BTreeMap;

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use ntwk::theater::message_server_host::{close_channel, open_channel, send_on_channel};
use serde::{Deserialize, Serialize};
use serde_json::json;

type State = Option<Vec<u8>>;

#[derive(Serialize, Deserialize, Default)]
struct Streams {
    /// Items received per channel, in arrival order.
    received: BTreeMap<String, Vec<u64>>,
    complete: Vec<String>,
}

#[derive(Deserialize)]
struct StreamTo {
    stream_to: String,
    count: u64,
}

#[derive(Deserialize)]
struct Item {
    item: u64,
}

fn load(state: &State) -> Streams {
    state
        .as_deref()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default()
}

fn save(streams: &Streams) -> State {
    Some(serde_json::to_vec(streams).expect("streams serialize"))
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

    /// The producer side: stream `count` items to the consumer.
    fn handle_request(state: State, (msg,): (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let StreamTo { stream_to, count } = serde_json::from_slice(&msg)
            .map_err(|e| format!("expected {{\"stream_to\": id, \"count\": n}}: {e}"))?;
        let channel = open_channel(&stream_to, br#""stream""#)?;
        for item in 0..count {
            send_on_channel(
                &channel,
                &serde_json::to_vec(&json!({ "item": item })).unwrap(),
            )?;
        }
        close_channel(&channel)?;
        Ok((
            state,
            (serde_json::to_vec(&json!({ "channel": channel, "sent": count })).unwrap(),),
        ))
    }

    /// The consumer side: take every stream.
    fn handle_channel_open(
        state: State,
        _params: (Vec<u8>,),
    ) -> Result<(State, ChannelAccept), String> {
        Ok((
            state,
            ChannelAccept {
                accepted: true,
                message: None,
            },
        ))
    }

    fn handle_channel_message(
        state: State,
        (channel, msg): (String, Vec<u8>),
    ) -> Result<(State,), String> {
        let Item { item } =
            serde_json::from_slice(&msg).map_err(|e| format!("expected {{\"item\": n}}: {e}"))?;
        let mut streams = load(&state);
        streams.received.entry(channel).or_default().push(item);
        Ok((save(&streams),))
    }

    fn handle_channel_close(state: State, (channel,): (String,)) -> Result<(State,), String> {
        let mut streams = load(&state);
        streams.complete.push(channel);
        Ok((save(&streams),))
    }
}

export!(Component);
