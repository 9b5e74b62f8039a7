//! The dashboard's JSON API: the node (and its cluster's live nodes), its
//! actors with their counters, the
//! supervision tree, a page of an actor's chain with its verification, and
//! an actor's current state. Every answer is bounded in size.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Dash;
use crate::actor::{ActorHandle, now_ms};
use crate::chain::ChainEvent;
use crate::id::ActorId;
use crate::runtime::TheaterRuntime;

/// Actors listed (and tree nodes shown) at most; the rest are counted.
/// Bounds an answer on a runtime with very many actors.
pub const MAX_LISTED_ACTORS: usize = 1000;
/// Deepest level of the supervision tree shown.
pub const MAX_TREE_DEPTH: usize = 32;
/// Most chain events in one page.
pub const MAX_CHAIN_PAGE: usize = 200;
/// Chain events in a page unless the page asks for another number.
pub const DEFAULT_CHAIN_PAGE: usize = 50;
/// Bytes of an event's data, or of a state, shown at most; beyond, a
/// preview. Bounds an answer when actors keep or record large values.
pub const MAX_VALUE_SHOWN: usize = 16 * 1024;
/// Longest wait for a busy actor's state.
pub const STATE_TIMEOUT: Duration = Duration::from_secs(5);

type Answer = Result<Json<Value>, (StatusCode, Json<Value>)>;

fn problem(status: StatusCode, message: String) -> (StatusCode, Json<Value>) {
    (status, Json(json!({ "error": message })))
}

fn actor_id(text: &str) -> Result<ActorId, (StatusCode, Json<Value>)> {
    text.parse().map_err(|e| {
        problem(
            StatusCode::BAD_REQUEST,
            format!("`{text}` is not an actor id: {e}"),
        )
    })
}

pub async fn node(State(dash): State<Dash>) -> Json<Value> {
    let runtime = &dash.runtime;
    let cluster = match runtime.cluster() {
        None => Value::Null,
        Some(cluster) => match cluster.recent_nodes().await {
            Ok(nodes) => json!({ "node": cluster.node(), "nodes": nodes }),
            Err(e) => json!({ "node": cluster.node(), "error": e.to_string() }),
        },
    };
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "home": runtime.home().map(|home| home.display().to_string()),
        "actors": runtime.actor_count(),
        "metrics": runtime.metrics().is_enabled(),
        "cluster": cluster,
        "time_ms": now_ms(),
    }))
}

pub async fn actors(State(dash): State<Dash>) -> Json<Value> {
    let runtime = &dash.runtime;
    let mut handles = runtime.actors();
    handles.sort_by(|a, b| (a.name(), a.id()).cmp(&(b.name(), b.id())));
    let total = handles.len();
    let listed: Vec<Value> = handles
        .iter()
        .take(MAX_LISTED_ACTORS)
        .map(|handle| actor_json(runtime, handle))
        .collect();
    Json(json!({ "actors": listed, "total": total, "time_ms": now_ms() }))
}

fn actor_json(runtime: &TheaterRuntime, handle: &ActorHandle) -> Value {
    let counters = handle.counters();
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    json!({
        "id": handle.id().to_string(),
        "short": handle.id().short(),
        "name": handle.name(),
        "status": if handle.is_running() { "running" } else { "stopping" },
        "parent": runtime.parent(handle.id()).map(|parent| parent.to_string()),
        "queue_depth": handle.queue_depth(),
        "queue_capacity": handle.limits().queue_capacity,
        "calls_ok": load(&counters.calls_ok),
        "calls_failed": load(&counters.calls_failed),
        "queue_full": load(&counters.queue_full),
        "busy_micros": load(&counters.busy_micros),
    })
}

pub async fn tree(State(dash): State<Dash>) -> Json<Value> {
    let runtime = &dash.runtime;
    let mut roots: Vec<ActorHandle> = runtime
        .actors()
        .into_iter()
        .filter(|handle| runtime.parent(handle.id()).is_none())
        .collect();
    roots.sort_by(|a, b| (a.name(), a.id()).cmp(&(b.name(), b.id())));
    let mut budget = MAX_LISTED_ACTORS;
    let nodes: Vec<Value> = roots
        .iter()
        .map_while(|root| tree_node(runtime, root.id(), 0, &mut budget))
        .collect();
    Json(json!({ "roots": nodes, "complete": budget > 0 }))
}

/// An actor and the children it supervises, while `budget` lasts.
fn tree_node(
    runtime: &TheaterRuntime,
    id: ActorId,
    depth: usize,
    budget: &mut usize,
) -> Option<Value> {
    *budget = budget.checked_sub(1)?;
    let name = runtime.actor(id).map(|h| h.name().to_owned()).ok();
    let children: Vec<Value> = match depth < MAX_TREE_DEPTH {
        true => runtime
            .children(id)
            .into_iter()
            .map_while(|child| tree_node(runtime, child, depth + 1, budget))
            .collect(),
        false => Vec::new(),
    };
    Some(json!({
        "id": id.to_string(),
        "short": id.short(),
        "name": name,
        "children": children,
    }))
}

/// Which events of a chain a page shows: `limit` events from `start`, or
/// the newest `limit` without `start`.
#[derive(Deserialize)]
pub struct Page {
    start: Option<u64>,
    limit: Option<usize>,
}

pub async fn chain(
    State(dash): State<Dash>,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> Answer {
    let id = actor_id(&id)?;
    let runtime = dash.runtime.clone();
    let limit = page
        .limit
        .unwrap_or(DEFAULT_CHAIN_PAGE)
        .clamp(1, MAX_CHAIN_PAGE);
    let unreadable =
        |e: crate::storage::LogError| problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    let start = match page.start {
        Some(start) => start,
        // The newest page.
        None => runtime
            .chain_head(id)
            .await
            .map_err(unreadable)?
            .map_or(0, |(events, _)| events.saturating_sub(limit as u64)),
    };
    let (events, total) = runtime
        .chain_page(id, start, limit)
        .await
        .map_err(unreadable)?;
    if total == 0 {
        return Err(problem(
            StatusCode::NOT_FOUND,
            format!("no chain for actor {id}"),
        ));
    }
    // Verification reads the whole chain (off the runtime's threads): one
    // at a time.
    let verified = {
        let _turn = dash.verifying.acquire().await;
        runtime.verify(id).await
    };
    let (ok, first_bad, message) = match &verified {
        Ok(()) => (true, None, None),
        Err(failure) => (
            false,
            failure.first_bad_event,
            Some(failure.message.clone()),
        ),
    };
    let listed: Vec<Value> = events
        .iter()
        .zip(start..)
        .map(|(event, index)| {
            let mut shown = event_json(event);
            shown["index"] = index.into();
            shown["verified"] = (ok || first_bad.is_some_and(|bad| index < bad)).into();
            shown
        })
        .collect();
    Ok(Json(json!({
        "actor": id.to_string(),
        "total": total,
        "start": start,
        "events": listed,
        "verified": ok,
        "first_bad_event": first_bad,
        "problem": message,
    })))
}

/// An event with its data decoded.
pub(super) fn event_json(event: &ChainEvent) -> Value {
    json!({
        "hash": hex::encode(event.hash),
        "parent_hash": event.parent_hash.map(hex::encode),
        "event_type": event.event_type,
        "timestamp": event.timestamp,
        "description": event.description,
        "data": shown(event.data.get().as_bytes()),
    })
}

/// Bytes as the page shows them: JSON decoded, other text as a string,
/// anything else as hex, each cut to [`MAX_VALUE_SHOWN`].
fn shown(bytes: &[u8]) -> Value {
    if bytes.len() > MAX_VALUE_SHOWN {
        let preview = String::from_utf8_lossy(&bytes[..MAX_VALUE_SHOWN]);
        return json!({ "truncated": true, "bytes": bytes.len(), "preview": preview });
    }
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        return value;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => json!({ "hex": hex::encode(bytes) }),
    }
}

pub async fn state(State(dash): State<Dash>, Path(id): Path<String>) -> Answer {
    let id = actor_id(&id)?;
    let handle = dash
        .runtime
        .actor(id)
        .map_err(|e| problem(StatusCode::NOT_FOUND, e.to_string()))?;
    let state = tokio::time::timeout(STATE_TIMEOUT, handle.state())
        .await
        .map_err(|_| {
            problem(
                StatusCode::GATEWAY_TIMEOUT,
                format!("actor {id} did not reach its state within {STATE_TIMEOUT:?}"),
            )
        })?
        .map_err(|e| problem(StatusCode::NOT_FOUND, e.to_string()))?;
    Ok(Json(json!({
        "actor": id.to_string(),
        "bytes": state.as_ref().map(|s| s.len()),
        "state": state.as_deref().map(shown),
    })))
}
