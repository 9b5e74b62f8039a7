//! Re-running one recorded `call` or `call-error` and comparing what it did
//! with what the chain says it did.

use serde::Deserialize;
use serde_json::{Value, json};
use wasmtime::component::{Type, Val};

use super::feed::Feed;
use super::session::Session;
use super::value::{BytesText, redaction, short, state_from_val, state_to_val, to_val};
use super::{Problem, RecordedState, ReplayError, show_digest, state_digest};
use crate::actor::INIT_FUNCTION;
use crate::wasm::StateBytes;

/// The data of a `call` or `call-error` event.
#[derive(Deserialize)]
pub struct RecordedCall {
    pub function: String,
    #[serde(default)]
    params: Value,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    state: RecordedState,
    /// Present on `call-error` events only.
    pub kind: Option<String>,
}

impl RecordedCall {
    /// `actor.init` as the runtime ran it when the actor started or resumed;
    /// the event that followed recorded the state it left.
    pub fn init(actor_id: &str, state: RecordedState) -> Self {
        Self {
            function: INIT_FUNCTION.to_owned(),
            params: json!([actor_id]),
            result: Value::Null,
            state,
            kind: None,
        }
    }

    /// Whether the recorded call trapped (its feed may end early).
    pub fn trapped(&self) -> bool {
        self.kind.as_deref() == Some("trap")
    }
}

/// How the replayed call ended.
enum Ended {
    Ok(Option<Box<Val>>),
    Err(String),
    Trap(String),
}

impl Ended {
    fn describe(&self) -> String {
        match self {
            Self::Ok(_) => "answered Ok".to_owned(),
            Self::Err(message) => format!("answered Err({message:?})"),
            Self::Trap(reason) => format!("trapped ({reason})"),
        }
    }
}

/// What became of one call.
pub enum Replayed {
    /// A `call` ran again and did what the chain says; the state after it.
    Committed(StateBytes),
    /// A `call-error` failed again as recorded: the state stays.
    Failed,
    /// It was not re-run: the state stays.
    NotRun,
    Problem(Problem),
}

/// Re-runs the call recorded at `index` from `state`.
pub async fn run(
    session: &mut Session,
    call: &RecordedCall,
    index: usize,
    state: &StateBytes,
    feed: Feed,
) -> Result<Replayed, ReplayError> {
    let diverged = |reason: String| Ok(Replayed::Problem(Problem::Diverged(index, reason)));
    match call.kind.as_deref() {
        None | Some("actor-error" | "trap") => {}
        // The actor was not entered.
        Some("bad-params") => return Ok(Replayed::NotRun),
        // A limit of the live runtime (`time-limit`, `memory-limit`) ended
        // it and the runtime replaced the instance; replay has no such
        // limits, so it cannot run it again.
        Some(_) => {
            session.refresh().await?;
            return Ok(Replayed::NotRun);
        }
    }
    if let Some(why) = redaction(&call.params) {
        return Ok(Replayed::Problem(Problem::Stopped(
            index,
            format!(
                "the params of {} were redacted for the chain: {why}",
                call.function
            ),
        )));
    }
    let Some(func) = session.export(&call.function) else {
        return diverged(format!("the component has no export {}", call.function));
    };
    let ty = session.func_type(func);
    let mut args = vec![state_to_val(state)];
    match ty.params().map(|(_, ty)| ty).collect::<Vec<_>>().as_slice() {
        [_] => {}
        [_, params] => match to_val(&call.params, params, BytesText::Utf8) {
            Ok(params) => args.push(params),
            Err(e) => return diverged(format!("the recorded params do not fit the export: {e}")),
        },
        _ => return diverged("the export does not take (state, params)".to_owned()),
    }

    let (outcome, feed) = session.call(func, &args, feed).await;
    let ended = match outcome {
        Ok(Val::Result(Ok(value))) => Ended::Ok(value),
        Ok(Val::Result(Err(message))) => Ended::Err(match message.as_deref() {
            Some(Val::String(message)) => message.clone(),
            _ => String::new(),
        }),
        Ok(_) => return diverged("the export does not return a result".to_owned()),
        Err(trap) => Ended::Trap(format!("{trap:#}")),
    };
    // A trapped instance cannot be entered again; the runtime replaced the
    // one that trapped when the call was recorded.
    if matches!(ended, Ended::Trap(_)) || call.trapped() {
        session.refresh().await?;
    }
    if let Some(problem) = feed.problem {
        return Ok(Replayed::Problem(problem));
    }
    if let Some((at, what)) = feed.leftover() {
        return Ok(Replayed::Problem(Problem::Diverged(
            at,
            format!("{what} was recorded, but the replayed call did not make it"),
        )));
    }

    match (call.kind.as_deref(), ended) {
        (None, Ended::Ok(value)) => {
            let Some(Val::Tuple(items)) = value.as_deref() else {
                return diverged("the export's Ok value is not a tuple".to_owned());
            };
            let new_state = match items.first().map(state_from_val) {
                Some(Ok(new_state)) => new_state,
                Some(Err(e)) => return diverged(e),
                None => return diverged("the export's Ok tuple is empty".to_owned()),
            };
            let replayed = state_digest(&new_state);
            if call.state.sha256() != replayed.as_deref() {
                return diverged(format!(
                    "state {} recorded, {} replayed",
                    show_digest(call.state.sha256()),
                    show_digest(replayed.as_deref())
                ));
            }
            if let (Some(result), Some(result_ty)) = (items.get(1), result_type(&ty))
                && let Some(reason) = compare_result(&call.result, result, &result_ty)
            {
                return diverged(reason);
            }
            Ok(Replayed::Committed(new_state))
        }
        (Some("actor-error"), Ended::Err(_)) | (Some("trap"), Ended::Trap(_)) => {
            Ok(Replayed::Failed)
        }
        (recorded, ended) => diverged(format!(
            "recorded {}, the replay {}",
            recorded.unwrap_or("ok"),
            ended.describe()
        )),
    }
}

/// `R` of an export returning `result<tuple<state, R>, string>`.
fn result_type(ty: &wasmtime::component::types::ComponentFunc) -> Option<Type> {
    let Some(Type::Result(result)) = ty.results().next() else {
        return None;
    };
    let Some(Type::Tuple(tuple)) = result.ok() else {
        return None;
    };
    tuple.types().nth(1)
}

/// Why the replayed result differs from the recorded one, if it does. A
/// result the chain keeps redacted cannot be compared.
fn compare_result(recorded: &Value, replayed: &Val, ty: &Type) -> Option<String> {
    if redaction(recorded).is_some() {
        return None;
    }
    match to_val(recorded, ty, BytesText::Utf8) {
        Ok(recorded_val) if recorded_val == *replayed => None,
        Ok(_) => Some(format!(
            "the replay returned another result than the recorded {}",
            short(recorded)
        )),
        Err(e) => Some(format!(
            "the recorded result does not fit the export's result type: {e}"
        )),
    }
}
