//! What one call got from the host when it ran: its `host-call` results and
//! `log` lines, in order. During the replay each import the actor calls
//! takes the next entry, so the actor sees what it saw then.

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::Value;
use wasmtime::component::{Type, Val, types::ComponentFunc};

use super::value::{BytesText, redaction, to_val};
use super::{Problem, ReplayError};
use crate::chain::ChainEvent;
use crate::chain::record::{HOST_CALL, LOG};

const LOG_FUNCTION: &str = "ntwk:theater/runtime.log";
const GET_CHAIN: &str = "ntwk:theater/runtime.get-chain";
/// Not recorded and always `Ok` in the host; its effect (the actor ends)
/// shows in the chain as its `shutdown` event. `theater:simple` has it in
/// `runtime` too (imports are named canonically here).
const SHUTDOWN: &str = "ntwk:theater/runtime-control.shutdown";
const RUNTIME_SHUTDOWN: &str = "ntwk:theater/runtime.shutdown";
/// Host functions that record bytes as hex.
const HEX_BYTES: &[&str] = &["ntwk:theater/random.get-random-bytes"];

enum Recorded {
    HostCall { function: String, result: Value },
    Log(String),
}

struct Entry {
    /// The event's index in the chain.
    index: usize,
    recorded: Recorded,
}

impl Entry {
    fn describe(&self) -> String {
        match &self.recorded {
            Recorded::HostCall { function, .. } => format!("host call {function}"),
            Recorded::Log(message) => format!("log {message:?}"),
        }
    }
}

/// The feed of the call recorded at `call`.
pub struct Feed {
    entries: VecDeque<Entry>,
    call: usize,
    /// The recorded call trapped. The runtime records a host call when it
    /// returns, so one without a record is where the call trapped.
    trapped: bool,
    /// Set by the import that could not be answered; the call then traps.
    pub problem: Option<Problem>,
}

#[derive(Deserialize)]
struct HostCallData {
    function: String,
    result: Value,
}

#[derive(Deserialize)]
struct LogData {
    message: String,
}

impl Feed {
    /// Nothing recorded: between calls.
    pub fn empty() -> Self {
        Self {
            entries: VecDeque::new(),
            call: 0,
            trapped: false,
            problem: None,
        }
    }

    /// The `host-call` and `log` events of `events[first..call]`; other
    /// events there (queued by the runtime) take no part in the call.
    pub fn new(
        events: &[ChainEvent],
        first: usize,
        call: usize,
        trapped: bool,
    ) -> Result<Self, ReplayError> {
        let mut entries = VecDeque::new();
        for (index, event) in events.iter().enumerate().take(call).skip(first) {
            let recorded = match event.event_type.as_str() {
                HOST_CALL => {
                    let data: HostCallData = super::parse(events, index)?;
                    Recorded::HostCall {
                        function: data.function,
                        result: data.result,
                    }
                }
                LOG => Recorded::Log(super::parse::<LogData>(events, index)?.message),
                _ => continue,
            };
            entries.push_back(Entry { index, recorded });
        }
        Ok(Self {
            entries,
            call,
            trapped,
            problem: None,
        })
    }

    /// The first entry the replay did not use, if any.
    pub fn leftover(&self) -> Option<(usize, String)> {
        self.entries
            .front()
            .map(|entry| (entry.index, entry.describe()))
    }

    /// Answers the import `function` (`interface.name`), or traps the call
    /// after noting why in [`problem`](Self::problem).
    pub fn answer(
        &mut self,
        function: &str,
        ty: &ComponentFunc,
        params: &[Val],
        results: &mut [Val],
    ) -> wasmtime::Result<()> {
        match self.next(function, ty, params, results) {
            Ok(()) => Ok(()),
            Err(Unanswered::Problem(problem)) => {
                let reason = problem.reason().to_owned();
                self.problem = Some(problem);
                Err(wasmtime::Error::msg(reason))
            }
            Err(Unanswered::Trapped) => Err(wasmtime::Error::msg(format!(
                "{function} trapped when the call was recorded"
            ))),
        }
    }

    fn next(
        &mut self,
        function: &str,
        ty: &ComponentFunc,
        params: &[Val],
        results: &mut [Val],
    ) -> Result<(), Unanswered> {
        match function {
            LOG_FUNCTION => return self.log(params),
            SHUTDOWN | RUNTIME_SHUTDOWN => {
                if let Some(result) = results.first_mut() {
                    *result = Val::Result(Ok(None));
                }
                return Ok(());
            }
            GET_CHAIN => {
                let reason = format!("{GET_CHAIN} is not recorded, so replay cannot answer it");
                return Err(Unanswered::Problem(Problem::Stopped(self.call, reason)));
            }
            _ => {}
        }
        let result_ty = ty.results().next();
        let entry = self.entries.pop_front_if(|entry| {
            matches!(&entry.recorded, Recorded::HostCall { function: name, .. } if name == function)
        });
        let Some(Entry {
            index,
            recorded: Recorded::HostCall { result, .. },
        }) = entry
        else {
            return self.unrecorded(function, result_ty.is_none());
        };
        let cannot = |reason: String| {
            let reason = format!("the recorded result of {function} cannot be fed back: {reason}");
            Unanswered::Problem(Problem::Stopped(index, reason))
        };
        if let Some(why) = redaction(&result) {
            return Err(cannot(why.to_owned()));
        }
        if let Some(ty) = result_ty {
            let text = match HEX_BYTES.contains(&function) {
                true => BytesText::Hex,
                false => BytesText::Utf8,
            };
            results[0] = host_result(&result, &ty, text).map_err(cannot)?;
        }
        Ok(())
    }

    /// A call of `function` where the feed holds no record of it.
    fn unrecorded(&self, function: &str, returns_nothing: bool) -> Result<(), Unanswered> {
        match self.entries.front() {
            // The runtime records no call of a function that returns nothing.
            _ if returns_nothing => Ok(()),
            None if self.trapped => Err(Unanswered::Trapped),
            None => Err(Unanswered::Problem(Problem::Diverged(
                self.call,
                format!("host call {function} was not recorded here"),
            ))),
            Some(entry) => Err(Unanswered::Problem(Problem::Diverged(
                entry.index,
                format!(
                    "host call {function} was made where {} was recorded",
                    entry.describe()
                ),
            ))),
        }
    }

    fn log(&mut self, params: &[Val]) -> Result<(), Unanswered> {
        let [Val::String(message)] = params else {
            return Ok(());
        };
        let logged = self.entries.pop_front_if(
            |entry| matches!(&entry.recorded, Recorded::Log(recorded) if recorded == message),
        );
        if logged.is_some() {
            return Ok(());
        }
        let problem = match self.entries.front() {
            Some(entry) => Problem::Diverged(
                entry.index,
                format!(
                    "log {message:?} was written where {} was recorded",
                    entry.describe()
                ),
            ),
            None => Problem::Diverged(self.call, format!("log {message:?} was not recorded here")),
        };
        Err(Unanswered::Problem(problem))
    }
}

/// Why an import call was not answered.
enum Unanswered {
    Problem(Problem),
    /// Nothing was recorded because the host call trapped then: it traps again.
    Trapped,
}

/// A recorded `{"ok": value}` or `{"err": message}` as the import's result:
/// a WIT `result` takes either, any other type the `ok` value.
fn host_result(recorded: &Value, ty: &Type, text: BytesText) -> Result<Val, String> {
    if let Type::Result(_) = ty {
        return to_val(recorded, ty, text);
    }
    match recorded.get("ok") {
        Some(value) => to_val(value, ty, text),
        None => Err(format!(
            "it failed ({recorded}) but the import cannot return an error"
        )),
    }
}
