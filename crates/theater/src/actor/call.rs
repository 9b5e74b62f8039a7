//! One call of an actor's export: run in its span, counted and timed, its
//! outcome committed to the actor's state and chain before it is answered.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::value::RawValue;

use super::executor::Executor;
use super::instance::{Called, recorded};
use super::outcome::{
    added, described, error_kind, failure_to_error, short_name, within_state_cap,
};
use super::shared::InlineCall;
use super::{CallNote, Noted};
use crate::chain::record::{self, CallErrorRecord, CallRecord};
use crate::error::ActorError;
use crate::id::ActorId;
use crate::storage::KeptState;
use crate::wasm::CallFailure;

impl Executor {
    /// Runs a call a caller waits for.
    pub(super) async fn serve(&mut self, call: InlineCall) -> Result<Box<RawValue>, ActorError> {
        self.serve_delivery(call, None).await
    }

    /// Runs a call in its own span, counted and timed.
    pub(super) async fn serve_delivery(
        &mut self,
        call: InlineCall,
        delivery: Option<u64>,
    ) -> Result<Box<RawValue>, ActorError> {
        let InlineCall {
            function,
            params,
            origin,
            caller,
            note,
            ..
        } = call;
        let started = Instant::now();
        let span = self.traces.as_ref().map(|t| t.start(caller, started));
        // Looked up once: the call, its metrics and its span use the slot.
        let slot = self.instance.slot(&function);
        let (outcome, event) = {
            // Pinned here: the span takes it by reference, not by moving
            // a future the size of a wasm call.
            let call = std::pin::pin!(self.call(&function, slot, params, origin, delivery, note));
            match &span {
                Some(span) => span.run(call).await,
                None => (call.await, None),
            }
        };
        let ended = Instant::now();
        let label = crate::metrics::outcome(&outcome);
        self.counters.called(slot, label, ended - started);
        // The span ends before the answer is sent, so that a caller who
        // got the answer finds it recorded.
        if let Some(span) = span {
            let exported = slot.and_then(|slot| self.instance.exported_name(slot));
            let export = exported.cloned().unwrap_or_else(|| function.into());
            span.end(self.id, export, label, event, ended);
        }
        outcome
    }

    /// Runs one call of `function`, the export in `slot`: on `Ok` commits
    /// state and a `call` event; otherwise keeps the state and records a
    /// `call-error` event. A call that
    /// delivers an accepted message (`delivery`, its inbox number) settles
    /// it with that event, so it runs once. A `note` completes the event.
    async fn call(
        &mut self,
        function: &str,
        slot: Option<usize>,
        params: Box<RawValue>,
        origin: Option<ActorId>,
        delivery: Option<u64>,
        note: Option<CallNote>,
    ) -> Result<Box<RawValue>, ActorError> {
        let limits = self.template.limits;
        let Some(Called {
            outcome,
            redact,
            function,
        }) = self
            .instance
            .call(slot, self.state.clone(), &params, &limits)
            .await
        else {
            let error = ActorError::UnknownFunction {
                actor: self.id,
                function: function.to_owned(),
                available: self.instance.export_names(),
            };
            // An accepted message is in the chain once, even when refused.
            if delivery.is_some() {
                let noted = Noted::default();
                self.record_error(
                    function,
                    &params,
                    "unknown-function",
                    &error,
                    delivery,
                    noted,
                )
                .await?;
            }
            return Err(error);
        };
        // From here on, the function as the actor exports it.
        let function = &*function;
        let (recorded_params, finish) = match note {
            Some(note) => (Cow::Owned(note.params), Some(note.finish)),
            None => (recorded(redact, &params), None),
        };
        match outcome.and_then(|output| within_state_cap(output, &limits)) {
            Ok(output) => {
                let kept = KeptState::new(output.state);
                let noted = finish.map_or_else(Noted::default, |f| f(Ok(&*output.result)));
                let result = match &noted.result {
                    Some(result) => Cow::Borrowed(&**result),
                    None => recorded(redact, &output.result),
                };
                let data = record::encode(&CallRecord {
                    function,
                    from: origin.map(|id| id.to_string()),
                    params: &recorded_params,
                    result: &result,
                    state: kept.digest(),
                    added: added(&noted),
                });
                let description = described(format!("{} ok", short_name(function)), &noted);
                self.recorder()
                    .commit(record::CALL, data, description, Some(&kept), delivery)
                    .await?;
                self.state = kept.into_state();
                self.counters.calls_ok.fetch_add(1, Ordering::Relaxed);
                Ok(output.result)
            }
            Err(failure) => {
                let trapped = matches!(failure, CallFailure::Trap(_));
                let error = failure_to_error(function, failure, &self.template);
                if trapped {
                    // Before anything else can fail: this instance must not be reused.
                    self.failure = Some(error.to_string());
                }
                let kind = error_kind(&error);
                let noted = finish.map_or_else(Noted::default, |f| f(Err(&error)));
                self.record_error(function, &recorded_params, kind, &error, delivery, noted)
                    .await?;
                self.counters.calls_failed.fetch_add(1, Ordering::Relaxed);
                Err(error)
            }
        }
    }

    /// Records a `call-error` event for a call that changed nothing.
    async fn record_error(
        &mut self,
        function: &str,
        params: &RawValue,
        kind: &str,
        error: &ActorError,
        delivery: Option<u64>,
        noted: Noted,
    ) -> Result<(), ActorError> {
        let data = record::encode(&CallErrorRecord {
            function,
            params,
            kind,
            message: &error.to_string(),
            added: added(&noted),
        });
        let description = described(format!("{} failed: {kind}", short_name(function)), &noted);
        self.recorder()
            .commit(record::CALL_ERROR, data, description, None, delivery)
            .await?;
        Ok(())
    }
}
