//! Supervision trees: parents hear about their children's failures and
//! exits, and decide — by the policy in the parent's manifest — whether a
//! failed child is restarted, in the spirit of OTP supervisors. These are
//! the supervisor capability's hooks; the runtime only keeps the tree.
//!
//! A child *fails* when a call traps or hits a limit. Its state lives in the
//! host, so a restart is a fresh instance with the state it had. A child
//! *exits* when it is stopped or asks to shut down.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use super::supervisor::SupervisorHandler;
use super::supervisor_policy::{Restart, Strategy, SupervisionPolicy};
use super::{Handler, HandlerConfig};
use crate::actor::{ChildEvent, ChildLink, Decision, Exit, RuntimeServices, Terms};
use crate::chain::record;
use crate::id::ActorId;
use crate::manifest::Manifest;

/// Export a parent may provide to hear of a child's failure.
pub const CHILD_ERROR: &str = "ntwk:theater/supervisor-handlers.handle-child-error";
/// Export a parent may provide to hear of a child's exit.
pub const CHILD_EXIT: &str = "ntwk:theater/supervisor-handlers.handle-child-exit";

/// The terms the children of an actor started from `manifest` are
/// supervised under: the policy of its `supervisor` grant, else the
/// default. For children linked again when the runtime resumes them.
pub fn children_terms(manifest: &Manifest) -> Terms {
    let policy = manifest
        .handlers
        .iter()
        .find(|entry| entry.kind == SupervisorHandler::NAME)
        .and_then(|entry| SupervisionPolicy::from_table(&entry.config).ok())
        .unwrap_or_default();
    std::sync::Arc::new(policy)
}

/// Each parent's recent restarts, for the whole runtime.
#[derive(Default)]
struct Restarts(Mutex<HashMap<ActorId, VecDeque<Instant>>>);

/// Decides what a child's task does after `event`, tells the parent, and
/// records the decision in the parent's chain.
pub(crate) fn child_event(
    runtime: &dyn RuntimeServices,
    link: &ChildLink,
    event: &ChildEvent,
) -> Option<Decision> {
    let policy = link.terms.downcast_ref::<SupervisionPolicy>()?;
    let (parent, child) = (link.parent, link.child);
    let mode = policy.restart_for(&link.name);
    let restart = matches!(event, ChildEvent::Failed(_)) && mode != Restart::Never;
    if let ChildEvent::Failed(error) = event {
        notify(
            runtime,
            parent,
            CHILD_ERROR,
            (child.to_string(), error.clone()),
        );
    }
    if !restart {
        runtime.metrics().decision("stop");
        record_decision(runtime, parent, child, "stop", event, None);
        return Some(Decision::Stop);
    }

    let restarts = runtime.shared().get::<Restarts>();
    let mut restarts = restarts.0.lock().expect("restarts lock");
    let now = Instant::now();
    let history = restarts.entry(parent).or_default();
    history.retain(|at| now.duration_since(*at) <= policy.window);
    history.push_back(now);
    let recent = history.len();
    drop(restarts);
    if recent > policy.max_restarts {
        runtime.metrics().decision("escalate");
        record_decision(runtime, parent, child, "escalate", event, None);
        let reason = format!(
            "restart intensity exceeded: {recent} restarts within {} s (max_restarts = {})",
            policy.window.as_secs(),
            policy.max_restarts
        );
        let runtime = runtime.downgrade();
        tokio::spawn(async move {
            if let Some(runtime) = runtime.upgrade() {
                fail(&*runtime, parent, reason).await;
            }
        });
        return Some(Decision::Stop);
    }

    let delay = policy.backoff_for(recent);
    let siblings = runtime.children(parent);
    let position = siblings.iter().position(|c| *c == child).unwrap_or(0);
    let also: Vec<ActorId> = match policy.strategy {
        Strategy::OneForOne => Vec::new(),
        Strategy::OneForAll => siblings.iter().copied().filter(|c| *c != child).collect(),
        Strategy::RestForOne => siblings[(position + 1).min(siblings.len())..].to_vec(),
    };
    for sibling in &also {
        if let Ok(handle) = runtime.actor(*sibling) {
            handle.restart_later(delay);
        }
    }
    runtime.metrics().decision("restart");
    record_decision(
        runtime,
        parent,
        child,
        "restart",
        event,
        Some((delay, &also)),
    );
    Some(Decision::Restart(delay))
}

/// A parent whose children fail too often fails itself: its subtree is
/// stopped and its own parent hears of the failure.
async fn fail(runtime: &dyn RuntimeServices, actor: ActorId, reason: String) {
    tracing::warn!(actor = %actor, "{reason}");
    if let Some(parent) = runtime.parent(actor) {
        notify(
            runtime,
            parent,
            CHILD_ERROR,
            (actor.to_string(), reason.clone()),
        );
    }
    if let Err(e) = runtime.stop(actor).await {
        tracing::debug!(actor = %actor, "already gone while failing: {e}");
    }
}

/// Forgets an actor's restarts and tells its parent, if any, that it ended
/// (stopped or shut down).
pub(crate) fn actor_ended(runtime: &dyn RuntimeServices, exit: &Exit) {
    let restarts = runtime.shared().get::<Restarts>();
    restarts
        .0
        .lock()
        .expect("restarts lock")
        .remove(&exit.actor);
    let Some(parent) = exit.parent else {
        return;
    };
    let child = exit.actor;
    let record = json!({ "child": child.to_string(), "decision": "exited" });
    record_in(
        runtime,
        parent,
        record,
        format!("child {} exited", child.short()),
    );
    notify(
        runtime,
        parent,
        CHILD_EXIT,
        (child.to_string(), exit.data.clone()),
    );
}

fn record_decision(
    runtime: &dyn RuntimeServices,
    parent: ActorId,
    child: ActorId,
    decision: &str,
    event: &ChildEvent,
    restart: Option<(Duration, &[ActorId])>,
) {
    let cause = match event {
        ChildEvent::Failed(error) => json!({ "failed": error }),
        ChildEvent::ShutdownRequested => json!("shutdown"),
    };
    let mut record = json!({ "child": child.to_string(), "cause": cause, "decision": decision });
    if let Some((delay, also)) = restart {
        record["delay_ms"] = json!(delay.as_millis() as u64);
        record["also_restarted"] = json!(also.iter().map(ActorId::to_string).collect::<Vec<_>>());
    }
    let description = format!("child {} {decision}", child.short());
    record_in(runtime, parent, record, description);
}

/// Appends a `supervision` event to `actor`'s chain, in order with its calls.
fn record_in(
    runtime: &dyn RuntimeServices,
    actor: ActorId,
    data: serde_json::Value,
    description: String,
) {
    if let Ok(handle) = runtime.actor(actor) {
        handle.record_later(record::SUPERVISION, record::encode(&data), description);
    }
}

/// Queues a call to a supervisor export, if the parent has it.
fn notify<P: serde::Serialize>(
    runtime: &dyn RuntimeServices,
    parent: ActorId,
    function: &str,
    params: P,
) {
    if let Ok(handle) = runtime.actor(parent)
        && let Err(e) = handle.cast_function(None, function, params)
    {
        tracing::warn!(actor = %parent, "cannot notify supervisor: {e}");
    }
}
