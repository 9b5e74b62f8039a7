//! Where logs and trace spans go: log lines to stderr as text or JSON, and
//! with `--otlp-endpoint` the runtime's spans (see `theater::telemetry`) to
//! an OpenTelemetry collector over OTLP/HTTP.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanExporter as _;
use theater::telemetry::Traces;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// For people: one line each, in colour on a terminal.
    #[default]
    Text,
    /// For machines: one JSON object a line.
    Json,
}

/// Longest an export of spans to the collector may take. Guards the
/// runtime's exporter thread against a collector that does not answer.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes of a collector's answer that are read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Where the runtimes this process starts send their spans (set by
/// [`init`] when given an endpoint).
static TRACES: OnceLock<Traces> = OnceLock::new();

/// The spans' destination for a runtime's config, if `--otlp-endpoint` set one.
pub fn traces() -> Option<Traces> {
    TRACES.get().cloned()
}

/// Keeps the span exporter running; flushes what is left when dropped.
pub struct Telemetry {
    /// Sends the exports; outlives the last flush.
    _exporter: Option<tokio::runtime::Runtime>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(traces) = TRACES.get() {
            traces.flush();
            if traces.dropped() > 0 {
                eprintln!(
                    "warning: {} trace spans were dropped: the collector was too slow",
                    traces.dropped()
                );
            }
        }
    }
}

/// Sets up logging: actor output (`runtime.log`, stdout, stderr) at info,
/// everything else at warn, `RUST_LOG` overriding; to stderr so stdout
/// stays parseable, in colour only on a terminal (never with `NO_COLOR`).
/// A closed stderr loses the logs, not the process: reporting the failed
/// write on stderr again would panic, and so end every actor it runs.
/// With `otlp_endpoint`, Theater's spans are exported there as well.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,actor=info"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let logs = match format {
        LogFormat::Text => fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(colour)
            .with_target(false)
            .log_internal_errors(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_current_span(true)
            .log_internal_errors(false)
            .with_filter(filter)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(logs)
        .try_init()
        .context("setting up logging")?;
    let Some(endpoint) = otlp_endpoint else {
        return Ok(Telemetry { _exporter: None });
    };
    let (traces, runtime) = exporter(endpoint)?;
    let _ = TRACES.set(traces);
    Ok(Telemetry {
        _exporter: Some(runtime),
    })
}

/// Spans sent in batches to the collector at `endpoint` (its base URL,
/// e.g. `http://127.0.0.1:4318`, or the full `/v1/traces` URL), and the
/// runtime its requests run on.
fn exporter(endpoint: &str) -> anyhow::Result<(Traces, tokio::runtime::Runtime)> {
    let url = traces_url(endpoint)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("theater-otlp")
        .enable_all()
        .build()
        .context("starting the trace exporter")?;
    let client = OtlpClient {
        client: reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .context("creating the trace exporter's HTTP client")?,
        runtime: runtime.handle().clone(),
    };
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url.as_str())
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(client)
        .build()
        .with_context(|| format!("--otlp-endpoint {endpoint}"))?;
    exporter.set_resource(&Resource::builder().with_service_name("theater").build());
    Ok((Traces::export_to(exporter), runtime))
}

/// The collector's traces URL: `/v1/traces` is added to a bare base URL.
fn traces_url(endpoint: &str) -> anyhow::Result<reqwest::Url> {
    let mut url = reqwest::Url::parse(endpoint).with_context(|| {
        format!("--otlp-endpoint {endpoint} is not a URL; give one like http://127.0.0.1:4318")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("--otlp-endpoint {endpoint} must be an http:// or https:// URL");
    }
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/v1/traces");
    }
    Ok(url)
}

/// Sends the exporter's requests on the exporter's own runtime, whatever
/// thread asks (spans are exported from a thread of their own).
#[derive(Debug)]
struct OtlpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OtlpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let mut response = client.execute(request).await?;
            let mut answer = Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = response.headers().clone();
            }
            let mut body = Vec::new();
            while body.len() < MAX_ANSWER_BYTES
                && let Some(chunk) = response.chunk().await?
            {
                let room = MAX_ANSWER_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok::<_, HttpError>(answer.body(Bytes::from(body))?)
        });
        sent.await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gets_the_traces_path() {
        let url = |e| traces_url(e).unwrap().to_string();
        assert_eq!(
            url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            url("http://c:4318/custom/traces"),
            "http://c:4318/custom/traces"
        );
        assert!(traces_url("127.0.0.1:4318").is_err());
        assert!(traces_url("ftp://host/").is_err());
    }
}
