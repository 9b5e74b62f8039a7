//! How a call's outcome becomes its chain record: the state cap, the error
//! a caller sees, the `kind` recorded, and what a call's note adds.

use super::executor::MAX_ERROR_BYTES;
use super::instance::ActorTemplate;
use super::{MemoryLimitExceeded, Noted, TimeLimitExceeded};
use crate::chain::record::{self, Added};
use crate::error::ActorError;
use crate::manifest::Limits;
use crate::wasm::{CallFailure, CallOutput};

/// Refuses an output whose state is over the actor's `max_state_bytes`.
pub(super) fn within_state_cap(
    output: CallOutput,
    limits: &Limits,
) -> Result<CallOutput, CallFailure> {
    match output.state.as_ref().map(Vec::len) {
        Some(size) if size > limits.max_state_bytes => Err(CallFailure::StateTooLarge(size)),
        _ => Ok(output),
    }
}

pub(super) fn failure_to_error(
    function: &str,
    failure: CallFailure,
    template: &ActorTemplate,
) -> ActorError {
    let function = function.to_owned();
    let limits = &template.limits;
    match failure {
        CallFailure::BadParams(reason) => ActorError::BadParams { function, reason },
        CallFailure::Actor(message) => ActorError::Failed {
            function,
            message: record::cut(message, MAX_ERROR_BYTES),
        },
        CallFailure::StateTooLarge(size) => ActorError::StateTooLarge {
            function,
            size,
            limit: limits.max_state_bytes,
        },
        CallFailure::ResultTooLarge => ActorError::ResultTooLarge {
            function,
            limit: limits.max_result_bytes,
        },
        CallFailure::Trap(error) => {
            if error.downcast_ref::<TimeLimitExceeded>().is_some() {
                ActorError::TimeLimit {
                    function,
                    limit_ms: template.limits.call_timeout_ms,
                }
            } else if error.downcast_ref::<MemoryLimitExceeded>().is_some() {
                ActorError::MemoryLimit {
                    function,
                    limit_mb: template.limits.memory_mb,
                }
            } else {
                ActorError::Trapped {
                    function,
                    reason: format!("{error:#}"),
                }
            }
        }
    }
}

/// The `kind` recorded in a `call-error` event.
pub(super) fn error_kind(error: &ActorError) -> &'static str {
    match error {
        ActorError::BadParams { .. } => "bad-params",
        ActorError::Failed { .. } => "actor-error",
        ActorError::TimeLimit { .. } => "time-limit",
        ActorError::MemoryLimit { .. } => "memory-limit",
        ActorError::StateTooLarge { .. } => "state-too-large",
        ActorError::ResultTooLarge { .. } => "result-too-large",
        _ => "trap",
    }
}

/// The field a call's note adds to its record.
pub(super) fn added(noted: &Noted) -> Option<Added<'_>> {
    let (key, value) = noted.field.as_ref()?;
    Some(Added { key, value })
}

/// A call's description, with what its note adds.
pub(super) fn described(mut description: String, noted: &Noted) -> String {
    if let Some(summary) = &noted.summary {
        description.push_str(", ");
        description.push_str(summary);
    }
    description
}

/// `handle-send` of `ntwk:theater/message-server-client.handle-send`.
pub(super) fn short_name(function: &str) -> &str {
    function.rsplit('.').next().unwrap_or(function)
}
