//! Live chain events for the page, as server-sent events. Each stream
//! reads the runtime's bounded broadcast of events and is written only as
//! fast as the browser reads: a slow page falls behind and is told how
//! many events it missed (`lagged`); it never makes the server buffer more.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::broadcast::{self, error::RecvError};

use super::Dash;
use super::api::event_json;
use crate::actor::ActorEvent;

/// Live streams served at once; more are refused with 503. Guards the
/// runtime against pages opened without end.
pub const MAX_LIVE_STREAMS: usize = 16;

/// How often an idle stream sends a comment, so that a page that went
/// away is noticed and its seat freed.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub async fn stream(State(dash): State<Dash>) -> impl IntoResponse {
    let Ok(seat) = dash.live_seats.clone().try_acquire_owned() else {
        let message = format!("{MAX_LIVE_STREAMS} live streams are open already; close one");
        return Err((StatusCode::SERVICE_UNAVAILABLE, message));
    };
    let events = live_events(dash.runtime.subscribe(), seat);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// Each chain event as an SSE `event`, and `lagged` when some were missed.
/// The seat is held as long as the stream lives.
fn live_events(
    receiver: broadcast::Receiver<ActorEvent>,
    seat: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((receiver, seat), |(mut receiver, seat)| async move {
        let event = match receiver.recv().await {
            Ok(ActorEvent { actor, event }) => {
                let mut data = event_json(&event);
                data["actor"] = actor.to_string().into();
                data["short"] = actor.short().into();
                Event::default().event("chain").data(data.to_string())
            }
            Err(RecvError::Lagged(missed)) => Event::default()
                .event("lagged")
                .data(json!({ "missed": missed }).to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), (receiver, seat)))
    })
}
