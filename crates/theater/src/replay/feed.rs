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
/// shows in the chain as the chain's end or a fresh start.
const SHUTDOWN: &str = "ntwk:theater/runtime-control.shutdown";
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
            Err(Some(problem)) => {
                let reason = problem.reason().to_owned();
                self.problem = Some(problem);
                Err(wasmtime::Error::msg(reason))
            }
            Err(None) => Err(wasmtime::Error::msg(format!(
                "{function} trapped when the call was recorded"
            ))),
        }
    }

    /// `Err(None)` traps the call as the recorded one trapped.
    fn next(
        &mut self,
        function: &str,
        ty: &ComponentFunc,
        params: &[Val],
        results: &mut [Val],
    ) -> Result<(), Option<Problem>> {
        if function == LOG_FUNCTION {
            return self.log(params);
        }
        if function == SHUTDOWN {
            results[0] = Val::Result(Ok(None));
            return Ok(());
        }
        if function == GET_CHAIN {
            return Err(Some(Problem::Stopped(
                self.call,
                format!("{GET_CHAIN} is not recorded, so replay cannot answer it"),
            )));
        }
        let result_ty = ty.results().next();
        match self.entries.front() {
            Some(Entry {
                recorded: Recorded::HostCall { function: name, .. },
                ..
            }) if name == function => {}
            // The runtime records no call of a function that returns nothing.
            _ if result_ty.is_none() => return Ok(()),
            None if self.trapped => return Err(None),
            None => {
                return Err(Some(Problem::Diverged(
                    self.call,
                    format!("host call {function} was not recorded here"),
                )));
            }
            Some(entry) => {
                return Err(Some(Problem::Diverged(
                    entry.index,
                    format!(
                        "host call {function} was made where {} was recorded",
                        entry.describe()
                    ),
                )));
            }
        }
        let entry = self.entries.pop_front().expect("matched above");
        let Recorded::HostCall { result, .. } = &entry.recorded else {
            unreachable!("matched above")
        };
        let cannot = |reason: String| {
            Some(Problem::Stopped(
                entry.index,
                format!("the recorded result of {function} cannot be fed back: {reason}"),
            ))
        };
        if let Some(why) = redaction(result) {
            return Err(cannot(why.to_owned()));
        }
        if let Some(ty) = result_ty {
            let text = match HEX_BYTES.contains(&function) {
                true => BytesText::Hex,
                false => BytesText::Utf8,
            };
            results[0] = host_result(result, &ty, text).map_err(cannot)?;
        }
        Ok(())
    }

    fn log(&mut self, params: &[Val]) -> Result<(), Option<Problem>> {
        let [Val::String(message)] = params else {
            return Ok(());
        };
        match self.entries.front() {
            Some(Entry {
                recorded: Recorded::Log(recorded),
                ..
            }) if recorded == message => {
                self.entries.pop_front();
                Ok(())
            }
            Some(entry) => Err(Some(Problem::Diverged(
                entry.index,
                format!(
                    "log {message:?} was written where {} was recorded",
                    entry.describe()
                ),
            ))),
            None => Err(Some(Problem::Diverged(
                self.call,
                format!("log {message:?} was not recorded here"),
            ))),
        }
    }
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
