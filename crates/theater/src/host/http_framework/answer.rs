//! The responses a request ends with: the actor's own, turned into HTTP,
//! or the one the server gives when the actor did not answer (403, 500,
//! 503, 504), each with the status and outcome its record shows.

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, TRANSFER_ENCODING};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use super::listener::ServerCtx;
use super::state::ServerStats;
use super::types::HttpResponse;
use crate::error::ActorError;

/// Why the actor did not produce a response.
#[derive(Debug)]
pub enum Failure {
    /// A middleware answered `proceed = false`.
    Denied,
    /// The actor's queue was full.
    Overflow,
    /// The actor is not running (any more).
    Unavailable,
    /// The handler answered `Err`, trapped or failed otherwise.
    Handler(String),
    /// No answer within the time limit.
    TimedOut(String),
}

impl From<ActorError> for Failure {
    fn from(error: ActorError) -> Self {
        Self::from(&error)
    }
}

impl From<&ActorError> for Failure {
    fn from(error: &ActorError) -> Self {
        match error {
            ActorError::QueueFull { .. } => Self::Overflow,
            ActorError::Stopped(_) | ActorError::UnknownActor(_) => Self::Unavailable,
            ActorError::Failed { message, .. } => Self::Handler(message.clone()),
            ActorError::TimeLimit { function, limit_ms } => Self::TimedOut(format!(
                "`{}` ran past the actor's time limit of {limit_ms} ms",
                short_name(function)
            )),
            ActorError::Trapped { function, .. } => {
                Self::Handler(format!("`{}` trapped", short_name(function)))
            }
            ActorError::MemoryLimit { function, limit_mb } => Self::Handler(format!(
                "`{}` hit the actor's memory limit of {limit_mb} MiB",
                short_name(function)
            )),
            ActorError::UnknownFunction {
                actor, function, ..
            } => {
                tracing::warn!(target: "actor", %actor, "cannot answer a request: the actor does not export `{function}`");
                Self::Handler(format!(
                    "the actor does not export `{}`",
                    short_name(function)
                ))
            }
            other => Self::Handler(other.to_string()),
        }
    }
}

impl Failure {
    /// The status it is answered with, and the outcome recorded.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Denied => (StatusCode::FORBIDDEN, "denied"),
            Self::Overflow => (StatusCode::SERVICE_UNAVAILABLE, "overflow"),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Handler(_) => (StatusCode::INTERNAL_SERVER_ERROR, "handler-error"),
            Self::TimedOut(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
        }
    }

    /// Whether the record of the request has room in the actor's queue:
    /// not when the queue is full or gone.
    pub fn recordable(&self) -> bool {
        !matches!(self, Self::Overflow | Self::Unavailable)
    }
}

fn short_name(function: &str) -> &str {
    function.rsplit('.').next().unwrap_or(function)
}

/// The status the actor's response is answered with, and the outcome
/// recorded: its own, or a 500 when it is not a valid status code.
pub fn answered(status: u16) -> (StatusCode, &'static str) {
    match StatusCode::from_u16(status) {
        Ok(status) => (status, "handled"),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "handler-error"),
    }
}

/// A response about to be sent, with the outcome its record shows.
pub struct Answer {
    pub status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    pub outcome: &'static str,
    retry_after: bool,
}

impl Answer {
    pub fn empty(status: StatusCode, outcome: &'static str) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: Vec::new(),
            outcome,
            retry_after: false,
        }
    }

    pub fn text(status: StatusCode, text: String, outcome: &'static str) -> Self {
        let mut answer = Self::empty(status, outcome);
        answer.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        answer.body = text.into_bytes();
        answer
    }

    pub fn into_response(self) -> Response<Body> {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        if self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A response the server makes up without asking the actor.
pub fn plain(status: StatusCode, text: &str) -> Response<Body> {
    Answer::text(status, text.to_owned(), "").into_response()
}

impl ServerCtx {
    /// The response for a failure, counted and logged when it is an overflow.
    pub fn failure_answer(&self, failure: Failure) -> Answer {
        let (status, outcome) = failure.status();
        match failure {
            Failure::Denied => Answer::empty(status, outcome),
            Failure::Overflow => {
                let total = ServerStats::bump(&self.stats.overflow_rejected);
                if total == 1 || total.is_multiple_of(100) {
                    tracing::warn!(target: "actor", actor = %self.shared.actor, server = self.server, total, "actor queue full: request answered 503");
                }
                let mut answer = Answer::text(
                    status,
                    "the actor is busy (its queue is full); retry later".into(),
                    outcome,
                );
                answer.retry_after = true;
                answer
            }
            Failure::Unavailable => {
                Answer::text(status, "the actor is not running".into(), outcome)
            }
            Failure::Handler(message) => {
                Answer::text(status, format!("Handler error: {message}"), outcome)
            }
            Failure::TimedOut(message) => Answer::text(status, message, outcome),
        }
    }

    /// The actor's response as HTTP, or a failure if it is not valid.
    pub fn response_answer(&self, response: HttpResponse) -> Result<Answer, Failure> {
        let (status, outcome) = answered(response.status);
        if outcome != "handled" {
            return Err(Failure::Handler(format!(
                "invalid status code {}",
                response.status
            )));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &response.headers {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) else {
                tracing::warn!(target: "actor", actor = %self.shared.actor, server = self.server, "response header `{name}` dropped: not a valid header");
                continue;
            };
            // The server frames the body itself.
            if name != CONTENT_LENGTH && name != TRANSFER_ENCODING {
                headers.append(name, value);
            }
        }
        Ok(Answer {
            status,
            headers,
            body: response.body.unwrap_or_default(),
            outcome,
            retry_after: false,
        })
    }
}
