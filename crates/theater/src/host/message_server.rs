//! `ntwk:theater/message-server-client`: the exports through which an actor
//! receives messages and channels.

use serde::{Deserialize, Serialize};
use wasmtime::component::{ComponentType, Lift, Linker, Lower};

use super::Handler;
use crate::actor::ActorStore;
use crate::wasm::{ExportRegistry, ResultShape, StateBytes};

const CLIENT: &str = "ntwk:theater/message-server-client";

pub const HANDLE_SEND: &str = "ntwk:theater/message-server-client.handle-send";
pub const HANDLE_REQUEST: &str = "ntwk:theater/message-server-client.handle-request";
pub const CHANNEL_OPEN: &str = "ntwk:theater/message-server-client.handle-channel-open";
pub const CHANNEL_MESSAGE: &str = "ntwk:theater/message-server-client.handle-channel-message";
pub const CHANNEL_CLOSE: &str = "ntwk:theater/message-server-client.handle-channel-close";

/// An actor's answer to a channel it is asked to open.
#[derive(Debug, Clone, PartialEq, Eq, ComponentType, Lift, Lower, Serialize, Deserialize)]
#[component(record)]
pub struct ChannelAccept {
    pub accepted: bool,
    pub message: Option<Vec<u8>>,
}

/// The first shape `handle-channel-open` had: the record in a 1-tuple.
impl ResultShape<ChannelAccept> for (StateBytes, (ChannelAccept,)) {
    fn split(self) -> (StateBytes, ChannelAccept) {
        let (state, (accept,)) = self;
        (state, accept)
    }
}

/// Always granted. `handle-send` and `handle-request` are required when the
/// manifest lists `type = "message-server"`; channel exports never are, so
/// an actor without them simply takes no channels.
pub struct MessageServerHandler;

impl Handler for MessageServerHandler {
    fn name(&self) -> &'static str {
        "message-server"
    }

    fn imports(&self) -> &'static [&'static str] {
        &[]
    }

    fn always_granted(&self) -> bool {
        true
    }

    fn add_to_linker(&self, _linker: &mut Linker<ActorStore>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn exports(&self, exports: &mut ExportRegistry, listed: bool) {
        exports
            .register_function_no_result::<(Vec<u8>,)>(CLIENT, "handle-send")
            .required(listed);
        exports
            .register_function::<(Vec<u8>,), (Vec<u8>,)>(CLIENT, "handle-request")
            .required(listed);
        exports
            .register_function::<(Vec<u8>,), ChannelAccept>(CLIENT, "handle-channel-open")
            .required(false)
            .or_result_shape::<(StateBytes, (ChannelAccept,))>();
        exports
            .register_function_no_result::<(String, Vec<u8>)>(CLIENT, "handle-channel-message")
            .required(false);
        exports
            .register_function_no_result::<(String,)>(CLIENT, "handle-channel-close")
            .required(false);
    }
}
