//! What every command prints, and how it fails.
//!
//! Output goes through [`outln!`] and [`errln!`], never `println!`: when
//! the reader of standard output goes away (`theater events ID | head -1`)
//! the rest of the output is dropped and the command ends as it would
//! have, with no panic and no message; streaming commands stop at their
//! next line. Any other write error is reported once, at the end.
//!
//! A failed command prints `error: ...` on stderr; with `--json` it also
//! prints `{"error": {"kind", "message"}}` on stdout, `kind` being one of
//! the stable names of [`Failure::kind`].

use std::io::{ErrorKind, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde_json::{Value, json};
use theater::manifest::ManifestError;
use theater::server::ClientError;

/// Set once standard output cannot be written: nothing more goes there.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
/// The first write error that was not a closed pipe.
static STDOUT_ERROR: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// Writes a line to standard output.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(&format!($($arg)*))
    };
}

/// Writes a line to standard error; a closed stderr is ignored.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::error_line(&format!($($arg)*))
    };
}

/// Writes `text` and a newline to standard output, unless it is gone.
pub fn line(text: &str) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        STDOUT_GONE.store(true, Ordering::Relaxed);
        if e.kind() != ErrorKind::BrokenPipe {
            STDOUT_ERROR
                .lock()
                .expect("stdout error lock")
                .get_or_insert(e);
        }
    }
}

pub fn error_line(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err
        .write_all(text.as_bytes())
        .and_then(|()| err.write_all(b"\n"));
}

/// Whether standard output is gone: a streaming command has no reader left.
pub fn closed() -> bool {
    STDOUT_GONE.load(Ordering::Relaxed)
}

/// A write error of standard output other than a closed pipe, if any.
pub fn write_error() -> Option<std::io::Error> {
    STDOUT_ERROR.lock().expect("stdout error lock").take()
}

/// Prints a value as pretty JSON, its keys sorted.
pub fn print_json(value: &impl Serialize) {
    line(&serde_json::to_string_pretty(&sorted(value)).expect("JSON values serialize"));
}

/// Prints a value as one line of JSON, its keys sorted, for streams.
pub fn print_json_line(value: &impl Serialize) {
    line(&serde_json::to_string(&sorted(value)).expect("JSON values serialize"));
}

/// `value` as JSON with its keys sorted, as the server sends them: what a
/// command prints does not depend on the order fields are declared in.
fn sorted(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("printed values serialize")
}

/// An error with a stable kind, for `--json` output and scripts.
#[derive(Debug)]
pub struct Failure {
    pub kind: &'static str,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Bad input on the command line: a message that is not JSON, say.
    pub fn input(message: impl Into<String>) -> Self {
        Self::new("bad_input", message)
    }

    /// The kind of any error a command returns. A server's error keeps the
    /// kind the server gave it (`unknown_actor`, `bad_request`, ...; see
    /// docs/protocol.md); otherwise one of `bad_input`, `bad_manifest`,
    /// `spawn_failed`, `no_server`, `unauthorized`, `connection`, `io` or
    /// `failed`.
    pub fn kind(error: &anyhow::Error) -> &'static str {
        for cause in error.chain() {
            if let Some(failure) = cause.downcast_ref::<Failure>() {
                return failure.kind;
            }
            if let Some(client) = cause.downcast_ref::<ClientError>() {
                return match client {
                    ClientError::Server(body) => body.kind.as_str(),
                    _ => "connection",
                };
            }
            if cause.is::<ManifestError>() {
                return "bad_manifest";
            }
            if cause.is::<theater::SpawnError>() {
                return "spawn_failed";
            }
            if cause.is::<std::io::Error>() {
                return "io";
            }
        }
        "failed"
    }
}

/// The error as one line: each cause once, even where an error repeats
/// its source in its own message.
pub fn message(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if part.is_empty() || text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Reports a failed command: on stderr, and as JSON on stdout with `--json`.
pub fn report(error: &anyhow::Error, json_output: bool) {
    let message = message(error);
    errln!("error: {message}");
    if json_output {
        print_json(&json!({ "error": { "kind": Failure::kind(error), "message": message } }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_repeated_in_its_error_is_printed_once() {
        let error = anyhow::anyhow!("Database already open")
            .context("cannot open the chain database x: Database already open (hint)");
        assert_eq!(
            message(&error),
            "cannot open the chain database x: Database already open (hint)"
        );
        let error = anyhow::anyhow!("no such file").context("reading x");
        assert_eq!(message(&error), "reading x: no such file");
    }

    #[test]
    fn kinds_follow_the_cause() {
        let error = anyhow::Error::new(Failure::input("not JSON")).context("--send");
        assert_eq!(Failure::kind(&error), "bad_input");
        assert_eq!(Failure::kind(&anyhow::anyhow!("x")), "failed");
    }
}
