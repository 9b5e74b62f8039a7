//! The one way a host function records itself: its call and what it gave
//! the actor become a `host-call` event in the caller's chain, which a
//! replay feeds back in place of the host.

use std::future::Future;
use std::time::Instant;

use serde::Serialize;
use wasmtime::StoreContextMut;

use crate::actor::HostView;

/// Records that `function` (`interface.name`) was called with `params` and
/// gave `result`, then hands `result` to the actor. `shown` is how the
/// result appears in the chain (`Ok` value or `Err` message), where a value
/// may be cut down or summed up.
pub(crate) async fn recorded<V: HostView, R, T, E>(
    store: &mut StoreContextMut<'_, V>,
    function: &str,
    params: impl Serialize,
    result: R,
    shown: impl FnOnce(&R) -> Result<T, E>,
) -> wasmtime::Result<(R,)>
where
    T: Serialize,
    E: Serialize,
{
    let shown = shown(&result);
    store
        .data_mut()
        .recorder()
        .record_host_call(function, params, &shown)
        .await?;
    Ok((result,))
}

/// How a host function's `Result` whose `Ok` value is shown by `show`
/// appears in the chain: errors as they are.
pub(crate) fn shown_by<T, S, E: Clone>(
    show: impl FnOnce(&T) -> S,
) -> impl FnOnce(&Result<T, E>) -> Result<S, E> {
    |result| result.as_ref().map(show).map_err(Clone::clone)
}

/// A value the actor is given whole, with nothing that can fail.
pub(crate) fn whole<T: Clone>(value: &T) -> Result<T, ()> {
    Ok(value.clone())
}

/// Runs `work` (waiting on files, the network, a timer or other actors)
/// off the caller's clock: the time it takes is added back to the running
/// call's time limit.
pub(crate) async fn off_clock<V: HostView, F: Future>(
    store: &mut StoreContextMut<'_, V>,
    work: F,
) -> F::Output {
    let started = Instant::now();
    let output = work.await;
    store.data_mut().extend_deadline(started.elapsed());
    output
}
