//! A caller's part in the chain event of its call.
//!
//! A capability that calls an export on behalf of the outside world (an
//! HTTP request, say) may know more than the call itself: what the world
//! was answered. Rather than append a second event for that, it hands a
//! [`CallNote`] along with the call, and the call's own `call` or
//! `call-error` event carries it. The note also gives the params as the
//! chain records them, made by the caller before the call is queued, so
//! the actor's task does not spend its time on that.

use serde_json::value::RawValue;

use crate::error::ActorError;

/// Makes the rest of a noted call's record once the call has ended: the
/// export's result (on `Ok`) or the error it ended with.
pub type FinishNote = Box<dyn FnOnce(Result<&RawValue, &ActorError>) -> Noted + Send>;

/// What a caller adds to the record of one call.
pub struct CallNote {
    /// The params as the chain records them (the export's redactor is not
    /// applied to them again).
    pub params: Box<RawValue>,
    pub finish: FinishNote,
}

/// The parts of a call's record a [`CallNote`] decided.
#[derive(Default)]
pub struct Noted {
    /// The result as the chain records it; `None` leaves that to the
    /// export's redactor.
    pub result: Option<Box<RawValue>>,
    /// A field added to the event's data, e.g. `http`.
    pub field: Option<(&'static str, Box<RawValue>)>,
    /// Added to the event's description, e.g. `GET /hello 200`.
    pub summary: Option<String>,
}
