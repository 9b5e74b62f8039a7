//! WebSocket connections. Each is one task and a small state machine:
//! connecting (the actor's connect handler has not answered) → connected →
//! closing (a close frame is on its way) → closed (forgotten, the actor told).
//!
//! Every frame from the client is a call of `handle-websocket-message` on
//! the actor's bounded queue; the messages it returns go back in order. A
//! connection keeps at most [`MAX_IN_FLIGHT`] calls queued and stops reading
//! from its client beyond that. When the actor's queue is full, the server's
//! overflow policy decides: `reject` closes the connection with 1013 (try
//! again later), `drop-oldest` keeps up to `ws_buffer` frames waiting and
//! drops the oldest of them when more come. Either is counted and logged.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use serde_json::value::to_raw_value;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::answer::Failure;
use super::connections::ConnState;
use super::frames::{
    Cause, GOING_AWAY, INTERNAL_ERROR, MAX_CLOSE_REASON, Outgoing, TRY_AGAIN_LATER, from_frame,
    read_error, to_frame, truncate,
};
use super::listener::ServerCtx;
use super::state::{ServerStats, WsEndpoint};
use super::types::{HttpRequest, WebsocketMessage};
use super::{Overflow, WEBSOCKET_EVENT, WS_CONNECT, WS_DISCONNECT, WS_MESSAGE};
use crate::actor::ActorHandle;
use crate::admission::{Busy, Seat};
use crate::error::ActorError;

/// Calls one connection may have queued on the actor at once; past that it
/// reads no more frames until one is answered (TCP pushes back on the
/// client). Keeps one client from filling the actor's queue by itself.
pub const MAX_IN_FLIGHT: usize = 32;
/// How long sending one frame may take. Guards against clients that do
/// not read.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the closing handshake may take before the connection is cut.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often frames waiting for a full actor queue are offered again.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(10);

type Reply = Pin<Box<dyn Future<Output = Result<(Vec<WebsocketMessage>,), ActorError>> + Send>>;

/// What the request side knows of an upgrade.
pub struct Upgrade {
    pub path: String,
    pub endpoint: WsEndpoint,
    pub middleware: Vec<u64>,
    /// The connection's seat, kept busy for as long as the WebSocket is open.
    pub seat: Seat,
    pub deadline: Instant,
}

/// Answers an upgrade request: runs the middleware, registers the
/// connection and hands the socket to its task.
pub async fn upgrade(
    ctx: Arc<ServerCtx>,
    mut parts: Parts,
    request: HttpRequest,
    upgrade: Upgrade,
) -> Response<Body> {
    // The actor works on it from here on (middleware, then the socket).
    let busy = upgrade.seat.busy();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(handle) = ctx
        .shared
        .link
        .wait(upgrade.deadline, &ctx.shared.ended)
        .await
    else {
        return ctx.failure_answer(Failure::Unavailable).into_response();
    };
    if !upgrade.middleware.is_empty() {
        let run = ctx.run_middleware(&handle, &upgrade.middleware, request, None);
        match tokio::time::timeout_at(upgrade.deadline.into(), run).await {
            Ok(Ok(_)) => {}
            Ok(Err(failure)) => return ctx.failure_answer(failure).into_response(),
            Err(_) => return StatusCode::GATEWAY_TIMEOUT.into_response(),
        }
    }
    let query = parts.uri.query().map(str::to_owned);
    let new = ctx
        .shared
        .open_connection(ctx.server, &upgrade.path, &ctx.cancel);
    let limit = ctx.shared.config.max_body_bytes;
    let (shared, id) = (ctx.shared.clone(), new.id);
    let conn = Connection {
        ctx,
        id: new.id,
        path: upgrade.path,
        endpoint: upgrade.endpoint,
        outbound: new.outbound,
        close: new.close,
        in_flight: FuturesOrdered::new(),
        pending: VecDeque::new(),
        received: 0,
        sent: 0,
        dropped: 0,
        _seat: busy,
    };
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_failed_upgrade(move |e| {
            tracing::debug!(actor = %shared.actor, connection = id, "WebSocket upgrade failed: {e}");
            shared.remove_connection(id);
        })
        .on_upgrade(move |socket| conn.run(socket, query))
}

struct Connection {
    ctx: Arc<ServerCtx>,
    id: u64,
    path: String,
    endpoint: WsEndpoint,
    outbound: mpsc::Receiver<WebsocketMessage>,
    close: CancellationToken,
    /// Calls queued on the actor, answered in order.
    in_flight: FuturesOrdered<Reply>,
    /// Frames the full queue refused (`drop-oldest` only).
    pending: VecDeque<WebsocketMessage>,
    received: u64,
    sent: u64,
    dropped: u64,
    _seat: Busy,
}

/// Whether the actor's queue took a call.
enum Enqueued {
    Yes,
    Full(Option<WebsocketMessage>),
    Gone,
}

impl Connection {
    /// The actor's handle while it runs.
    fn handle(&self) -> Option<ActorHandle> {
        self.ctx.shared.link.current()
    }

    async fn run(mut self, mut socket: WebSocket, query: Option<String>) {
        let _open = self.ctx.shared.metrics.websocket();
        let connected = match self.connect(query.clone()).await {
            Ok(()) => {
                self.ctx
                    .shared
                    .set_connection_state(self.id, ConnState::Connected);
                self.record(json!({ "event": "open", "path": self.path, "query": query }));
                tracing::debug!(actor = %self.ctx.shared.actor, connection = self.id, path = %self.path, "WebSocket connected");
                true
            }
            Err(cause) => {
                self.finish(&mut socket, cause, false).await;
                return;
            }
        };
        let cause = self.serve(&mut socket).await;
        self.finish(&mut socket, cause, connected).await;
    }

    /// Connecting: the actor's connect handler hears of the connection
    /// before any of its frames.
    async fn connect(&mut self, query: Option<String>) -> Result<(), Cause> {
        let Some(handler) = self.endpoint.connect else {
            return Ok(());
        };
        let Some(handle) = self.handle() else {
            return Err(Cause::Close(GOING_AWAY, "actor stopped".into()));
        };
        let params = (handler, self.id, self.path.clone(), query);
        let call = handle.call_function::<_, ()>(WS_CONNECT, params);
        match tokio::time::timeout(self.ctx.shared.config.request_timeout, call).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(ActorError::QueueFull { .. })) => Err(self.overflow_close()),
            Ok(Err(ActorError::Stopped(_))) => {
                Err(Cause::Close(GOING_AWAY, "actor stopped".into()))
            }
            Ok(Err(ActorError::Failed { message, .. })) => Err(Cause::Close(
                INTERNAL_ERROR,
                format!("connection refused: {message}"),
            )),
            Ok(Err(e)) => {
                self.log_failure("connect", &e);
                Err(Cause::Close(
                    INTERNAL_ERROR,
                    "connect handler failed".into(),
                ))
            }
            Err(_) => Err(Cause::Close(
                INTERNAL_ERROR,
                "the actor did not accept the connection in time".into(),
            )),
        }
    }

    /// Connected: frames in, replies and pushes out, until one side closes.
    async fn serve(&mut self, socket: &mut WebSocket) -> Cause {
        let mut retry = tokio::time::interval(RETRY_INTERVAL);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let reading = self.in_flight.len() < MAX_IN_FLIGHT;
            tokio::select! {
                biased;
                _ = self.close.cancelled() => return self.requested_close(),
                Some(message) = self.outbound.recv() => {
                    if let Err(cause) = self.send(socket, message).await {
                        return cause;
                    }
                }
                Some(reply) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    match reply {
                        Ok((messages,)) => {
                            for message in messages {
                                if let Err(cause) = self.send(socket, message).await {
                                    return cause;
                                }
                            }
                        }
                        Err(ActorError::Stopped(_)) => {
                            return Cause::Close(GOING_AWAY, "actor stopped".into());
                        }
                        Err(e) => self.log_failure("message", &e),
                    }
                }
                _ = retry.tick(), if !self.pending.is_empty() => {
                    if let Some(cause) = self.flush_pending() {
                        return cause;
                    }
                }
                frame = socket.recv(), if reading => match frame {
                    None => return Cause::Lost("the client went away".into()),
                    Some(Err(e)) => return read_error(&e.to_string()),
                    Some(Ok(Message::Close(frame))) => {
                        return Cause::Client(frame.map(|f| (f.code, f.reason.as_str().to_owned())));
                    }
                    Some(Ok(frame)) => {
                        self.received += 1;
                        if let Some(message) = from_frame(frame)
                            && let Some(cause) = self.dispatch(message)
                        {
                            return cause;
                        }
                    }
                },
            }
        }
    }

    /// A failed handler call: the actor's chain has it; the log has it too
    /// when it is a mistake in the actor's exports rather than its `Err`.
    fn log_failure(&self, handler: &str, error: &ActorError) {
        let actor = self.ctx.shared.actor;
        match error {
            ActorError::UnknownFunction { .. }
            | ActorError::BadParams { .. }
            | ActorError::BadResult { .. } => {
                tracing::warn!(target: "actor", %actor, connection = self.id, "WebSocket {handler} handler: {error}");
            }
            _ => {
                tracing::debug!(%actor, connection = self.id, "WebSocket {handler} handler failed: {error}");
            }
        }
    }

    /// Why the close token was cancelled.
    fn requested_close(&self) -> Cause {
        if self.ctx.shared.ended.is_cancelled() {
            return Cause::Close(GOING_AWAY, "actor stopped".into());
        }
        match self.ctx.shared.close_reason(self.id) {
            Some((code, reason)) => Cause::Close(code, reason),
            None => Cause::Close(GOING_AWAY, "server stopped".into()),
        }
    }

    /// Offers a frame to the actor, behind any that are already waiting.
    fn dispatch(&mut self, message: WebsocketMessage) -> Option<Cause> {
        if !self.pending.is_empty() {
            self.hold(message);
            return None;
        }
        match self.enqueue(message) {
            Enqueued::Yes => None,
            Enqueued::Gone => Some(Cause::Close(GOING_AWAY, "actor stopped".into())),
            Enqueued::Full(message) => match (self.ctx.shared.config.overflow, message) {
                (Overflow::DropOldest, Some(message)) => {
                    self.hold(message);
                    None
                }
                _ => Some(self.overflow_close()),
            },
        }
    }

    /// Queues a `handle-websocket-message` call; it is answered through
    /// `in_flight`.
    fn enqueue(&mut self, message: WebsocketMessage) -> Enqueued {
        let keep =
            (self.ctx.shared.config.overflow == Overflow::DropOldest).then(|| message.clone());
        let Some(handle) = self.handle() else {
            return Enqueued::Gone;
        };
        let (handler, id) = (self.endpoint.message, self.id);
        let mut call: Reply = Box::pin(async move {
            handle
                .call_function_queued(WS_MESSAGE, (handler, id, message))
                .await
        });
        // The first poll puts the call on the queue (or finds it full); the
        // answer comes later through `in_flight`, polled with a real waker.
        match call.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Pending => {
                self.in_flight.push_back(call);
                Enqueued::Yes
            }
            Poll::Ready(Err(ActorError::QueueFull { .. })) => Enqueued::Full(keep),
            Poll::Ready(Err(ActorError::Stopped(_))) => Enqueued::Gone,
            Poll::Ready(done) => {
                self.in_flight.push_back(Box::pin(std::future::ready(done)));
                Enqueued::Yes
            }
        }
    }

    /// Keeps a refused frame for later, dropping the oldest beyond
    /// `ws_buffer`.
    fn hold(&mut self, message: WebsocketMessage) {
        if self.pending.len() >= self.ctx.shared.config.ws_buffer {
            self.pending.pop_front();
            self.dropped += 1;
            self.ctx.shared.metrics.overflow("drop-oldest");
            let total = ServerStats::bump(&self.ctx.stats.ws_frames_dropped);
            if total == 1 || total.is_multiple_of(100) {
                tracing::warn!(target: "actor", actor = %self.ctx.shared.actor, server = self.ctx.server, connection = self.id, total, "actor queue full: oldest waiting WebSocket frame dropped");
            }
        }
        self.pending.push_back(message);
    }

    /// Offers the waiting frames again, oldest first.
    fn flush_pending(&mut self) -> Option<Cause> {
        while let Some(message) = self.pending.pop_front() {
            match self.enqueue(message) {
                Enqueued::Yes => {}
                Enqueued::Gone => return Some(Cause::Close(GOING_AWAY, "actor stopped".into())),
                Enqueued::Full(message) => {
                    if let Some(message) = message {
                        self.pending.push_front(message);
                    }
                    break;
                }
            }
        }
        None
    }

    fn overflow_close(&self) -> Cause {
        let total = ServerStats::bump(&self.ctx.stats.ws_overflow_closed);
        tracing::warn!(target: "actor", actor = %self.ctx.shared.actor, server = self.ctx.server, connection = self.id, total, "actor queue full: WebSocket connection closed (overflow = \"reject\")");
        Cause::Close(TRY_AGAIN_LATER, "actor queue full: message refused".into())
    }

    /// Sends one message from the actor; a `close` message starts closing.
    async fn send(
        &mut self,
        socket: &mut WebSocket,
        message: WebsocketMessage,
    ) -> Result<(), Cause> {
        let frame = match to_frame(message) {
            Outgoing::Frame(frame) => frame,
            Outgoing::Close(code, reason) => return Err(Cause::Close(code, reason)),
            Outgoing::Skip(kind) => {
                tracing::debug!(actor = %self.ctx.shared.actor, connection = self.id, "a `{kind}` message is not sent to clients");
                return Ok(());
            }
        };
        match tokio::time::timeout(SEND_TIMEOUT, socket.send(frame)).await {
            Ok(Ok(())) => {
                self.sent += 1;
                Ok(())
            }
            Ok(Err(e)) => Err(Cause::Lost(e.to_string())),
            Err(_) => Err(Cause::Lost("the client does not read".into())),
        }
    }

    /// Closing, then closed: the handshake, then the registry forgets the
    /// connection and the actor hears of it (unless the actor is gone).
    async fn finish(&mut self, socket: &mut WebSocket, cause: Cause, connected: bool) {
        self.ctx
            .shared
            .set_connection_state(self.id, ConnState::Closing);
        let (initiator, code, reason) = match &cause {
            Cause::Client(frame) => (
                "client",
                frame.as_ref().map(|f| f.0),
                frame.as_ref().map(|f| f.1.clone()).unwrap_or_default(),
            ),
            Cause::Lost(why) => ("lost", None, why.clone()),
            Cause::Close(code, reason) => ("server", Some(*code), reason.clone()),
        };
        if let Cause::Close(code, reason) = &cause {
            let frame = CloseFrame {
                code: *code,
                reason: truncate(reason, MAX_CLOSE_REASON).into(),
            };
            let _ =
                tokio::time::timeout(CLOSE_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
        }
        if !matches!(cause, Cause::Lost(_)) {
            // Let the protocol layer finish the handshake: read until the
            // client's close (or its answer to ours) and the end.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                while let Some(Ok(_)) = socket.recv().await {}
            })
            .await;
        }
        self.ctx.shared.remove_connection(self.id);
        self.dropped += self.pending.len() as u64;
        self.pending.clear();
        let actor_gone = self.ctx.shared.ended.is_cancelled()
            || self.handle().is_none_or(|handle| !handle.is_running());
        if connected && !actor_gone {
            self.disconnected().await;
        }
        if !actor_gone {
            self.record(json!({
                "event": "close",
                "path": self.path,
                "initiator": initiator,
                "code": code,
                "reason": reason,
                "received": self.received,
                "sent": self.sent,
                "dropped": self.dropped,
            }));
        }
        tracing::debug!(actor = %self.ctx.shared.actor, connection = self.id, initiator, ?code, "WebSocket closed");
    }

    /// Tells the actor the connection is gone. Queued behind its frames;
    /// waits for room in a full queue (up to the request time limit) rather
    /// than leave the actor believing the connection is still open.
    async fn disconnected(&mut self) {
        let Some(handler) = self.endpoint.disconnect else {
            return;
        };
        let deadline = Instant::now() + self.ctx.shared.config.request_timeout;
        loop {
            let Some(handle) = self.handle() else {
                return;
            };
            match handle.cast_function(None, WS_DISCONNECT, (handler, self.id)) {
                Ok(()) => return,
                Err(ActorError::QueueFull { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(RETRY_INTERVAL).await;
                }
                Err(e) => {
                    tracing::warn!(target: "actor", actor = %self.ctx.shared.actor, connection = self.id, "cannot tell the actor that WebSocket connection {} closed: {e}", self.id);
                    return;
                }
            }
        }
    }

    fn record(&self, mut data: Value) {
        data["server"] = json!(self.ctx.server);
        data["connection"] = json!(self.id);
        let description = format!(
            "WebSocket {} {} {}",
            self.id,
            data["event"].as_str().unwrap_or_default(),
            self.path
        );
        if let (Some(handle), Ok(data)) = (self.handle(), to_raw_value(&data)) {
            handle.record_later(WEBSOCKET_EVENT, data, description);
        }
    }
}
