//! How one HTTP request is recorded: in one chain event, that of the call
//! which answers it.
//!
//! Every call a request makes (its middleware, its handler) carries a
//! [`CallNote`]: the params as the chain records them, made here on the
//! network task with secrets hidden and bodies longer than
//! `record_body_bytes` reduced to size and digest, and, for the call that
//! ends the request, an `http` field with the status the client got. A
//! request answered without a call that could carry it (no route, a body
//! too large, an export missing) gets an `http` event of its own.
//!
//! Which event carries the end is settled once, between the actor's task
//! (a call ending) and the network task (the time limit running out): the
//! first to claim it records it. A request that times out while a call is
//! queued or running is answered 504 at once, and that call's event says
//! so.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::{RawValue, to_raw_value};

use super::HTTP_EVENT;
use super::answer::{Failure, answered};
use crate::actor::{ActorHandle, CallNote, Noted};
use crate::error::ActorError;
use crate::host::http_record::redact_raw;

/// No event records the request's end yet.
const OPEN: u8 = 0;
/// An event records it (or is being written with it).
const RECORDED: u8 = 1;
/// The client was answered 504; the call in flight records that.
const TIMED_OUT: u8 = 2;

/// The field of a call's record that holds the exchange.
const FIELD: &str = "http";

/// Which call of a request a note is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A middleware call: it ends the request only by refusing or failing.
    Middleware,
    /// The handler's call, which always ends it.
    Handler,
}

/// One request on its way through the actor.
pub struct Exchange {
    server: u64,
    method: String,
    uri: String,
    started: Instant,
    /// `record_body_bytes`.
    cap: usize,
    state: AtomicU8,
}

/// What a call's answer tells of the exchange: a handler's status, or
/// whether a middleware let the request on.
#[derive(Deserialize, Default)]
struct Answer {
    status: Option<u64>,
    proceed: Option<bool>,
}

/// What the chain says of the exchange.
#[derive(Serialize)]
struct HttpRecord<'a> {
    server: u64,
    method: &'a str,
    uri: &'a str,
    status: u16,
    outcome: &'a str,
    duration_ms: u64,
}

impl Exchange {
    pub fn new(server: u64, method: &str, uri: &str, started: Instant, cap: usize) -> Arc<Self> {
        Arc::new(Self {
            server,
            method: method.to_owned(),
            uri: uri.to_owned(),
            started,
            cap,
            state: AtomicU8::new(OPEN),
        })
    }

    /// The note for a call of `step` with `params`.
    pub fn note<P: Serialize>(self: &Arc<Self>, step: Step, params: &P) -> CallNote {
        let params = to_raw_value(params).expect("HTTP params serialize");
        let exchange = self.clone();
        CallNote {
            params: redact_raw(&params, self.cap),
            finish: Box::new(move |outcome| exchange.finish(step, outcome)),
        }
    }

    /// Run by the actor's task when a noted call has ended.
    fn finish(&self, step: Step, outcome: Result<&RawValue, &ActorError>) -> Noted {
        let (result, end) = match outcome {
            Ok(raw) => {
                let (answer,) = serde_json::from_str(raw.get()).unwrap_or_default();
                let Answer { status, proceed } = answer;
                let end = match step {
                    Step::Handler => Some(answered(status.map_or(0, |s| s as u16))),
                    Step::Middleware => (proceed == Some(false)).then(|| Failure::Denied.status()),
                };
                (Some(redact_raw(raw, self.cap)), end)
            }
            Err(error) => (None, Some(Failure::from(error).status())),
        };
        let Some((status, outcome)) = self.settle(end) else {
            return Noted {
                result,
                ..Noted::default()
            };
        };
        Noted {
            result,
            field: Some((FIELD, self.record(status, outcome))),
            summary: Some(self.summary(status)),
        }
    }

    /// Claims the record of the request's end for the call that just
    /// ended, with `end` if it ends it, or with the 504 the client got.
    fn settle(
        &self,
        end: Option<(StatusCode, &'static str)>,
    ) -> Option<(StatusCode, &'static str)> {
        let timed_out = (StatusCode::GATEWAY_TIMEOUT, "timeout");
        if self.claim(TIMED_OUT) {
            return Some(timed_out);
        }
        let end = end?;
        if self.claim(OPEN) {
            return Some(end);
        }
        // The time limit ran out just now.
        self.claim(TIMED_OUT).then_some(timed_out)
    }

    fn claim(&self, from: u8) -> bool {
        self.state
            .compare_exchange(from, RECORDED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The time limit ran out: `true` if the client is to get a 504 now
    /// (the call in flight records it), `false` if a call has just ended
    /// the request and is being recorded.
    pub fn time_out(&self) -> bool {
        self.state
            .compare_exchange(OPEN, TIMED_OUT, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Records an answer that no call recorded as an `http` event of its
    /// own, ordered with the actor's calls.
    pub fn record_alone(&self, handle: &ActorHandle, status: StatusCode, outcome: &'static str) {
        if self.claim(OPEN) {
            handle.record_later(
                HTTP_EVENT,
                self.record(status, outcome),
                self.summary(status),
            );
        }
    }

    fn record(&self, status: StatusCode, outcome: &str) -> Box<RawValue> {
        let record = HttpRecord {
            server: self.server,
            method: &self.method,
            uri: &self.uri,
            status: status.as_u16(),
            outcome,
            duration_ms: self.started.elapsed().as_millis() as u64,
        };
        to_raw_value(&record).expect("an HTTP record serializes")
    }

    /// E.g. `GET /hello 200`.
    fn summary(&self, status: StatusCode) -> String {
        format!("{} {} {}", self.method, self.uri, status.as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn exchange() -> Arc<Exchange> {
        Exchange::new(1, "GET", "/x", Instant::now(), 8)
    }

    fn ok(value: Value) -> Box<RawValue> {
        to_raw_value(&value).unwrap()
    }

    fn field(noted: &Noted) -> Option<Value> {
        let (_, value) = noted.field.as_ref()?;
        serde_json::from_str(value.get()).ok()
    }

    #[test]
    fn the_handlers_call_records_the_status_and_capped_bodies() {
        let exchange = exchange();
        let request = json!({"headers": [["Cookie", "c"]], "body": "a long body"});
        let note = exchange.note(Step::Handler, &(7, request));
        let params: Value = serde_json::from_str(note.params.get()).unwrap();
        assert_eq!(params[1]["headers"], json!([["Cookie", "<redacted>"]]));
        assert_eq!(params[1]["body"]["size"], 13);
        let response = ok(json!([{"status": 201, "headers": [], "body": "hi"}]));
        let noted = (note.finish)(Ok(&*response));
        let http = field(&noted).unwrap();
        assert_eq!(
            (http["status"].clone(), http["outcome"].clone()),
            (json!(201), json!("handled"))
        );
        assert_eq!(noted.summary.as_deref(), Some("GET /x 201"));
        let result: Value = serde_json::from_str(noted.result.unwrap().get()).unwrap();
        assert_eq!(result[0]["body"], "hi");
        // Recorded once: the time limit cannot claim it any more.
        assert!(!exchange.time_out());
    }

    #[test]
    fn middleware_ends_the_request_only_by_refusing_or_failing() {
        let exchange = exchange();
        let proceed = ok(json!([{"proceed": true, "request": {}}]));
        let noted = (exchange.note(Step::Middleware, &()).finish)(Ok(&*proceed));
        assert!(noted.field.is_none() && noted.summary.is_none());
        let refuse = ok(json!([{"proceed": false, "request": {}}]));
        let noted = (exchange.note(Step::Middleware, &()).finish)(Ok(&*refuse));
        assert_eq!(field(&noted).unwrap()["status"], 403);

        let exchange = Exchange::new(1, "GET", "/x", Instant::now(), 8);
        let error = ActorError::Failed {
            function: "f".into(),
            message: "no".into(),
        };
        let noted = (exchange.note(Step::Middleware, &()).finish)(Err(&error));
        assert_eq!(field(&noted).unwrap()["outcome"], "handler-error");
    }

    #[test]
    fn a_timed_out_request_is_recorded_by_the_call_in_flight() {
        let exchange = exchange();
        assert!(exchange.time_out());
        assert!(!exchange.time_out());
        let proceed = ok(json!([{"proceed": true, "request": {}}]));
        let noted = (exchange.note(Step::Middleware, &()).finish)(Ok(&*proceed));
        let http = field(&noted).unwrap();
        assert_eq!(
            (http["status"].clone(), http["outcome"].clone()),
            (json!(504), json!("timeout"))
        );
    }

    #[test]
    fn an_invalid_status_is_recorded_as_the_500_it_is_answered_with() {
        let response = ok(json!([{"status": 1000, "headers": [], "body": null}]));
        let noted = (exchange().note(Step::Handler, &()).finish)(Ok(&*response));
        assert_eq!(field(&noted).unwrap()["status"], 500);
    }
}
