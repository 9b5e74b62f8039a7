//! Talking to a management server: where it is, connecting with a useful
//! error, and the output conventions every client command shares.

use std::future::Future;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use theater::server::protocol::Op;
use theater::server::{Client, ClientError, DEFAULT_LISTEN, ErrorKind};

use crate::output::{Failure, print_json};

/// Where the management server is.
#[derive(Args, Clone, Debug)]
pub struct Remote {
    /// Address of the management server.
    #[arg(long, value_name = "ADDR", env = "THEATER_SERVER", default_value = DEFAULT_LISTEN)]
    pub server: String,
    /// Token the server requires (its `--token`).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "THEATER_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

impl Remote {
    pub async fn connect(&self) -> anyhow::Result<Client> {
        Client::connect(&self.server, self.token.as_deref())
            .await
            .map_err(|e| self.explain(e))
    }

    /// A client error, saying what to do about it, with a stable kind.
    pub fn explain(&self, error: ClientError) -> anyhow::Error {
        let failure = match error {
            ClientError::Connect { addr, source }
                if source.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                Failure::new(
                    "no_server",
                    format!(
                        "no server at {addr} — start one with `theater server`, or point --server (THEATER_SERVER) at a running one"
                    ),
                )
            }
            ClientError::Server(body) if body.kind == ErrorKind::Unauthorized => Failure::new(
                "unauthorized",
                format!(
                    "the server at {} refused this client: {}",
                    self.server, body.message
                ),
            ),
            ClientError::Server(body) => Failure::new(body.kind.as_str(), body.message),
            other => Failure::new("connection", other.to_string()),
        };
        failure.into()
    }
}

/// Runs a client command on a small async runtime.
pub fn block_on<F: Future<Output = anyhow::Result<ExitCode>>>(
    future: F,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(future)
}

/// Sends `op` and prints its answer `A`: as JSON with `json`, else as
/// `text` writes it.
pub fn show<A: DeserializeOwned + Serialize>(
    remote: &Remote,
    json: bool,
    op: Op,
    text: impl FnOnce(&A),
) -> anyhow::Result<ExitCode> {
    block_on(async move {
        let answer: A = ask(remote, op).await?;
        match json {
            true => print_json(&answer),
            false => text(&answer),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Connects, sends one request, and returns its answer as `A`, the type
/// the protocol answers `op` with.
pub async fn ask<A: DeserializeOwned>(remote: &Remote, op: Op) -> anyhow::Result<A> {
    let mut client = remote.connect().await?;
    client.ask(op).await.map_err(|e| remote.explain(e))
}

/// Parses a message given on the command line as JSON: every command
/// that delivers one refuses text that is not.
pub fn parse_message(text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text).map_err(|e| {
        Failure::input(format!(
            "the message `{text}` is not JSON ({e}); quote it for the shell, e.g. '{{\"add\": 1}}' or '\"hello\"'"
        ))
    })
}

/// Columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        text.trim_end().to_owned()
    };
    let mut out = vec![line(headers.to_vec())];
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

/// The first twelve hex digits of an event hash, as tables show it; enough
/// to name the event in `fork --at` and `revert --to`.
pub fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// `YYYY-MM-DD HH:MM:SS.mmm` (UTC) for milliseconds since the Unix epoch.
pub fn timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00.000");
        assert_eq!(timestamp(1_700_000_000_123), "2023-11-14 22:13:20.123");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29 00:00:00.000");
    }

    #[test]
    fn tables_align() {
        let text = table(
            &["ID", "NAME"],
            &[
                vec!["1".into(), "counter".into()],
                vec!["22".into(), "x".into()],
            ],
        );
        assert_eq!(text, "ID  NAME\n1   counter\n22  x");
    }
}
