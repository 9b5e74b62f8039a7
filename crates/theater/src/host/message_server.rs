//! Messaging: `message-server-host` lets an actor send, request and use
//! channels; `message-server-client` is how it receives them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentType, Lift, Linker, Lower};

use super::Exports;
use super::config::{self, ConfigError, MAX_DURATION_MS};
use super::messaging;
use super::recorded::{off_clock, recorded, shown_by};
use super::{Granted, Handler, HandlerConfig, HostFunctions};
use crate::actor::{ActorStore, Exit, HostView, RuntimeServices};
use crate::chain::record::readable;
use crate::error::ActorError;
use crate::id::ActorId;
use crate::packages::Package;
use crate::wasm::{Bytes, ResultShape, StateBytes};

const CLIENT: &str = "ntwk:theater/message-server-client";
const HOST: &str = "ntwk:theater/message-server-host";

pub const HANDLE_SEND: &str = "ntwk:theater/message-server-client.handle-send";
pub const HANDLE_REQUEST: &str = "ntwk:theater/message-server-client.handle-request";
pub const CHANNEL_OPEN: &str = "ntwk:theater/message-server-client.handle-channel-open";
pub const CHANNEL_MESSAGE: &str = "ntwk:theater/message-server-client.handle-channel-message";
pub const CHANNEL_CLOSE: &str = "ntwk:theater/message-server-client.handle-channel-close";

/// How long `request` and `open-channel` wait for the other actor unless
/// the manifest says otherwise (`config.request_timeout_ms`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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

const REQUEST_TIMEOUT_KEY: &str = "request_timeout_ms";

/// Per-actor messaging settings.
#[derive(Clone)]
pub struct MessagingConfig {
    request_timeout: Duration,
}

impl HandlerConfig for MessagingConfig {
    fn from_table(config: &toml::Table) -> Result<Self, ConfigError> {
        config::known_keys(config, &[REQUEST_TIMEOUT_KEY])?;
        Ok(Self {
            request_timeout: config::duration(
                config,
                REQUEST_TIMEOUT_KEY,
                1..=MAX_DURATION_MS,
                DEFAULT_REQUEST_TIMEOUT,
            )?,
        })
    }
}

/// Always granted. `handle-send` and `handle-request` are required when the
/// manifest lists `type = "message-server"`; channel exports never are, so
/// an actor without them simply takes no channels.
pub struct MessageServerHandler;

impl Handler for MessageServerHandler {
    const NAME: &'static str = "message-server";
    const IMPORTS: &'static [&'static str] = &[HOST];
    const ALWAYS_GRANTED: bool = true;
    type Config = MessagingConfig;

    /// A child waits for other actors no longer than its parent.
    fn within(
        &self,
        child: &Granted<'_, MessagingConfig>,
        parent: &Granted<'_, MessagingConfig>,
    ) -> Result<(), ConfigError> {
        let (child, parent) = (child.config, parent.config);
        config::no_longer(
            REQUEST_TIMEOUT_KEY,
            child.request_timeout,
            parent.request_timeout,
        )
    }

    /// An actor that ends closes its channels, telling the other ends.
    fn actor_ended(&self, runtime: &dyn RuntimeServices, exit: &Exit) {
        messaging::close_channels_of(runtime, exit.actor);
    }
}

/// The runtime, as a messaging operation reaches it.
type Runtime = std::sync::Arc<dyn RuntimeServices>;

impl HostFunctions for MessageServerHandler {
    fn add_to_linker(
        &self,
        linker: &mut Linker<ActorStore>,
        package: Package,
    ) -> wasmtime::Result<()> {
        let mut host = linker.instance(&package.name_of(HOST))?;
        host.func_wrap_async("send", |mut store, (to, message): (String, Vec<u8>)| {
            Box::new(async move {
                let params = json!({ "to": to, "message": readable(&message) });
                let op = |runtime: Runtime, from, _| async move {
                    messaging::send(&*runtime, Some(from), parse_id(&to)?, message).await
                };
                messaging_op(&mut store, "send", params, op, |_| Value::Null).await
            })
        })?;
        host.func_wrap_async("request", |mut store, (to, message): (String, Vec<u8>)| {
            Box::new(async move {
                let params = json!({ "to": to, "message": readable(&message) });
                let op = |runtime: Runtime, from, timeout| async move {
                    messaging::request(&*runtime, Some(from), parse_id(&to)?, message, timeout)
                        .await
                };
                messaging_op(&mut store, "request", params, op, |reply| readable(reply)).await
            })
        })?;
        host.func_wrap_async(
            "open-channel",
            |mut store, (to, initial): (String, Vec<u8>)| {
                Box::new(async move {
                    let params = json!({ "to": to, "message": readable(&initial) });
                    let op = |runtime: Runtime, from, timeout| async move {
                        messaging::open_channel(&*runtime, from, parse_id(&to)?, initial, timeout)
                            .await
                    };
                    messaging_op(&mut store, "open-channel", params, op, |id: &String| {
                        json!(id)
                    })
                    .await
                })
            },
        )?;
        host.func_wrap_async(
            "send-on-channel",
            |mut store, (channel, message): (String, Vec<u8>)| {
                Box::new(async move {
                    let params = json!({ "channel": channel, "message": readable(&message) });
                    let op = |runtime: Runtime, from, _| async move {
                        messaging::send_on_channel(&*runtime, Some(from), &channel, message).await
                    };
                    messaging_op(&mut store, "send-on-channel", params, op, |_| Value::Null).await
                })
            },
        )?;
        host.func_wrap_async("close-channel", |mut store, (channel,): (String,)| {
            Box::new(async move {
                let params = json!({ "channel": channel });
                let op = |runtime: Runtime, from, _| async move {
                    messaging::close_channel(&*runtime, Some(from), &channel).await
                };
                messaging_op(&mut store, "close-channel", params, op, |_| Value::Null).await
            })
        })?;
        Ok(())
    }

    fn exports(&self, exports: &mut Exports, listed: bool) {
        exports
            .register_function_no_result::<(Bytes,)>(CLIENT, "handle-send")
            .required(listed);
        exports
            .register_function::<(Bytes,), (Vec<u8>,)>(CLIENT, "handle-request")
            .required(listed);
        exports
            .register_function::<(Bytes,), ChannelAccept>(CLIENT, "handle-channel-open")
            .required(false)
            .or_result_shape::<(StateBytes, (ChannelAccept,))>();
        exports
            .register_function_no_result::<(String, Bytes)>(CLIENT, "handle-channel-message")
            .required(false);
        exports
            .register_function_no_result::<(String,)>(CLIENT, "handle-channel-close")
            .required(false);
    }
}

/// Runs one messaging operation for the calling actor, then records it
/// (with the result as `show` renders it) in the actor's chain. Time spent
/// waiting for other actors does not count against the caller's time limit.
async fn messaging_op<V: HostView, T, Fut>(
    store: &mut StoreContextMut<'_, V>,
    function: &'static str,
    params: Value,
    op: impl FnOnce(Runtime, ActorId, Duration) -> Fut,
    show: fn(&T) -> Value,
) -> wasmtime::Result<(Result<T, String>,)>
where
    Fut: Future<Output = Result<T, ActorError>>,
{
    let call = async move {
        let data = store.data();
        let from = data.id();
        let timeout = data
            .extensions()
            .get::<MessagingConfig>()
            .map_or(DEFAULT_REQUEST_TIMEOUT, |c| c.request_timeout);
        let runtime = data.runtime();
        let work = async {
            match runtime {
                Some(runtime) => op(runtime, from, timeout).await,
                None => Err(ActorError::Stopped(from)),
            }
        };
        let result = off_clock(store, work).await.map_err(|e| e.to_string());
        let function = format!("{HOST}.{function}");
        recorded(store, &function, params, result, shown_by(show)).await
    };
    crate::telemetry::host_call(HOST, function, call).await
}

fn parse_id(text: &str) -> Result<ActorId, ActorError> {
    text.parse()
        .map_err(|e: crate::id::ParseActorIdError| ActorError::BadActorId(e.to_string()))
}
