//! The host view: what a capability's host function reaches of the actor
//! that calls it, whatever the store holding it looks like.

use std::sync::Arc;
use std::time::Duration;

use super::services::RuntimeServices;
use super::{ChainRecorder, Extensions};
use crate::id::ActorId;

/// An actor as its host functions see it.
pub trait HostView: Send + 'static {
    /// The calling actor.
    fn id(&self) -> ActorId;

    /// Appends the actor's chain events.
    fn recorder(&mut self) -> &mut ChainRecorder;

    /// The per-actor state of the granted capabilities.
    fn extensions(&self) -> &Extensions;

    fn extensions_mut(&mut self) -> &mut Extensions;

    /// What is left of the running call's time limit.
    fn time_left(&self) -> Duration;

    /// Pushes the running call's deadline back by `waited`: time an actor
    /// spends waiting on the host (a reply, a timer) is not its own.
    fn extend_deadline(&mut self, waited: Duration);

    /// The runtime the actor runs in, unless it is shutting down.
    fn runtime(&self) -> Option<Arc<dyn RuntimeServices>>;
}
