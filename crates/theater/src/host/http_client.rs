//! `ntwk:theater/http-client`: outgoing HTTP requests. The actor waits for
//! the answer, the runtime does not. Requests are bounded in time and in
//! response size, may be limited to an allow-list of hosts, and each one is
//! recorded in the actor's chain. See `docs/http-client.md`.

use std::error::Error as _;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, Url};
use serde_json::{Value, json};
use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentType, Lift, Linker, Lower};

use super::config::{self, ConfigError, MAX_BYTES, MAX_DURATION_MS};
use super::recorded::{off_clock, recorded, shown_by};
use super::{Granted, Handler, HandlerConfig, HostFunctions};
use crate::actor::ActorStore;
use crate::packages::Package;

const INTERFACE: &str = "ntwk:theater/http-client";
const SEND_HTTP: &str = "ntwk:theater/http-client.send-http";

const TIMEOUT_KEY: &str = "timeout_ms";
const MAX_RESPONSE_KEY: &str = "max_response_bytes";
const ALLOWED_HOSTS_KEY: &str = "allowed_hosts";

/// How long a request may take, from sending it to the last byte of the
/// response, unless the manifest says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body an actor gets unless the manifest says otherwise.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 10 * 1024 * 1024;
/// How much of a request or response body its chain event keeps.
pub const RECORDED_BODY_BYTES: usize = 1024;

/// `type = "http-client"`, config `{ timeout_ms, max_response_bytes,
/// allowed_hosts }`. Holds the one HTTP client (and so the one connection
/// pool) of its runtime, made on first use.
#[derive(Default)]
pub struct HttpClientHandler {
    client: Arc<OnceLock<Result<Client, String>>>,
}

impl Handler for HttpClientHandler {
    const NAME: &'static str = "http-client";
    const IMPORTS: &'static [&'static str] = &[INTERFACE];
    type Config = ClientSettings;

    /// A child reaches only hosts its parent may reach, waits no longer and
    /// takes no larger responses.
    fn within(
        &self,
        child: &Granted<'_, ClientSettings>,
        parent: &Granted<'_, ClientSettings>,
    ) -> Result<(), ConfigError> {
        let (child, parent) = (child.config, parent.config);
        if let Some(parent_hosts) = &parent.allowed_hosts {
            let Some(child_hosts) = &child.allowed_hosts else {
                return Err(ConfigError::at(
                    ALLOWED_HOSTS_KEY,
                    format!(
                        "without `{ALLOWED_HOSTS_KEY}` the child could reach any host; the parent may reach only: {}",
                        parent_hosts.join(", ")
                    ),
                ));
            };
            config::subset(ALLOWED_HOSTS_KEY, child_hosts, parent_hosts)?;
        }
        config::no_longer(TIMEOUT_KEY, child.timeout, parent.timeout)?;
        config::at_most(
            MAX_RESPONSE_KEY,
            child.max_response_bytes,
            parent.max_response_bytes,
        )
    }
}

impl HostFunctions for HttpClientHandler {
    fn add_to_linker(
        &self,
        linker: &mut Linker<ActorStore>,
        package: Package,
    ) -> wasmtime::Result<()> {
        let client = self.client.clone();
        linker
            .instance(&package.name_of(INTERFACE))?
            .func_wrap_async(
                "send-http",
                move |mut store: StoreContextMut<'_, ActorStore>, (request,): (HttpRequest,)| {
                    let client = client.clone();
                    Box::new(async move {
                        let settings = settings(&store)?;
                        let params = (recorded_request(&request),);
                        let work = async {
                            match client.get_or_init(new_client) {
                                Ok(client) => send(client, &settings, request).await,
                                Err(e) => Err(e.clone()),
                            }
                        };
                        let result = off_clock(&mut store, work).await;
                        let shown = shown_by(recorded_response);
                        recorded(&mut store, SEND_HTTP, params, result, shown).await
                    })
                },
            )?;
        Ok(())
    }
}

/// `record http-request` of `ntwk:theater/http-types`.
#[derive(Debug, Clone, ComponentType, Lift, Lower)]
#[component(record)]
pub struct HttpRequest {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// `record http-response` of `ntwk:theater/http-types`.
#[derive(Debug, Clone, ComponentType, Lift, Lower)]
#[component(record)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// One actor's limits, from its manifest.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    timeout: Duration,
    max_response_bytes: u64,
    /// Hosts it may reach, normalized; `None` for any.
    allowed_hosts: Option<Arc<[String]>>,
}

impl HandlerConfig for ClientSettings {
    fn from_table(config: &toml::Table) -> Result<Self, ConfigError> {
        config::known_keys(config, &[TIMEOUT_KEY, MAX_RESPONSE_KEY, ALLOWED_HOSTS_KEY])?;
        let allowed_hosts = config::strings(
            config,
            ALLOWED_HOSTS_KEY,
            "of host names, like [\"example.com\", \"127.0.0.1\"]",
        )?
        .map(|hosts| {
            hosts
                .iter()
                .map(|host| allowed_host(host))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .map(Into::into);
        Ok(Self {
            timeout: config::duration(config, TIMEOUT_KEY, 1..=MAX_DURATION_MS, DEFAULT_TIMEOUT)?,
            max_response_bytes: config::integer(
                config,
                MAX_RESPONSE_KEY,
                0..=MAX_BYTES,
                DEFAULT_MAX_RESPONSE_BYTES,
            )?,
            allowed_hosts,
        })
    }
}

impl ClientSettings {
    /// Fails unless the allow-list, if any, names the host of `url`.
    fn check_host(&self, url: &Url) -> Result<(), String> {
        let Some(allowed) = &self.allowed_hosts else {
            return Ok(());
        };
        let host = url.host_str().map(normalize_host).unwrap_or_default();
        if allowed.contains(&host) {
            return Ok(());
        }
        Err(format!(
            "the host `{host}` is not allowed: it is not in `{ALLOWED_HOSTS_KEY}` of this actor's http-client handler (allowed: {}); add it there to let the actor reach it",
            if allowed.is_empty() {
                "none".to_owned()
            } else {
                allowed.join(", ")
            }
        ))
    }
}

/// One entry of `allowed_hosts`: a host name or IP address, nothing more.
fn allowed_host(entry: &str) -> Result<String, ConfigError> {
    let host = normalize_host(entry);
    let is_ip = host.parse::<IpAddr>().is_ok();
    if host.is_empty()
        || host.contains(['/', '@', '?', '#'])
        || host.chars().any(char::is_whitespace)
        || (host.contains(':') && !is_ip)
    {
        return Err(ConfigError::at(
            ALLOWED_HOSTS_KEY,
            format!(
                "`{ALLOWED_HOSTS_KEY}` entry `{entry}` is not a host: give a name or IP address alone, like \"example.com\" or \"127.0.0.1\", without scheme, port or path"
            ),
        ));
    }
    Ok(host)
}

/// A host as allow-lists compare it: lower case, IPv6 without brackets and
/// in its shortest form, names without a trailing dot.
fn normalize_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(&host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => bare.to_owned(),
    }
}

fn settings(store: &StoreContextMut<'_, ActorStore>) -> wasmtime::Result<ClientSettings> {
    store
        .data()
        .extensions
        .get::<ClientSettings>()
        .cloned()
        .ok_or_else(|| wasmtime::Error::msg("http-client was not configured for this actor"))
}

/// The runtime's client. It follows no redirects (each hop must pass the
/// actor's allow-list, so the actor follows them itself) and uses no proxy
/// from the environment.
fn new_client() -> Result<Client, String> {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| format!("the runtime's HTTP client could not start: {}", causes(&e)))
}

/// Sends `request` within the actor's limits.
async fn send(
    client: &Client,
    settings: &ClientSettings,
    request: HttpRequest,
) -> Result<HttpResponse, String> {
    let method = method(&request.method)?;
    let url = Url::parse(&request.uri).map_err(|e| {
        format!(
            "invalid URI `{}`: {e}; send-http needs an absolute http:// or https:// URL",
            request.uri
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "invalid URI `{}`: the scheme `{}` is not supported; use http:// or https://",
            request.uri,
            url.scheme()
        ));
    }
    settings.check_host(&url)?;
    let mut headers = HeaderMap::new();
    for (name, value) in &request.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name `{name}`"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for header `{name}`"))?;
        headers.append(name, value);
    }
    let mut builder = client.request(method, url).headers(headers);
    if let Some(body) = request.body {
        builder = builder.body(body);
    }
    let uri = &request.uri;
    let exchange = async {
        let response = builder
            .send()
            .await
            .map_err(|e| format!("the request to `{uri}` failed: {}", causes(&e)))?;
        read_response(response, uri, settings.max_response_bytes).await
    };
    match tokio::time::timeout(settings.timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no complete response from `{uri}` within {} ms (`{TIMEOUT_KEY}` of this actor's http-client handler)",
            settings.timeout.as_millis()
        )),
    }
}

/// A method the way HTTP spells it; the standard ones in any case.
fn method(method: &str) -> Result<Method, String> {
    let upper = method.to_ascii_uppercase();
    let standard = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT",
    ];
    let spelled = if standard.contains(&upper.as_str()) {
        upper.as_str()
    } else {
        method
    };
    Method::from_bytes(spelled.as_bytes()).map_err(|_| {
        format!("invalid HTTP method `{method}`: use GET, POST, PUT, DELETE, HEAD, PATCH, ...")
    })
}

/// Reads the body chunk by chunk, and stops as soon as it passes `max`.
async fn read_response(
    mut response: reqwest::Response,
    uri: &str,
    max: u64,
) -> Result<HttpResponse, String> {
    let too_large = |size: String| {
        format!(
            "the response from `{uri}` is larger than this actor's limit of {max} bytes ({size}; `{MAX_RESPONSE_KEY}` of its http-client handler)"
        )
    };
    if let Some(length) = response.content_length()
        && length > max
    {
        return Err(too_large(format!("{length} bytes announced")));
    }
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the response from `{uri}` failed: {}", causes(&e)))?
    {
        if (body.len() + chunk.len()) as u64 > max {
            return Err(too_large("more than that was sent".to_owned()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpResponse {
        status,
        headers,
        body: Some(body),
    })
}

/// An error and its causes, outermost first: reqwest puts the useful part
/// ("Connection refused") in the causes.
fn causes(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A body as the chain keeps it: its size and its first bytes as text.
fn recorded_body(body: &Option<Vec<u8>>) -> Value {
    let Some(body) = body else {
        return Value::Null;
    };
    let head = &body[..body.len().min(RECORDED_BODY_BYTES)];
    let mut recorded = json!({
        "bytes": body.len(),
        "head": String::from_utf8_lossy(head),
    });
    if head.len() < body.len() {
        recorded["truncated"] = json!(true);
    }
    recorded
}

/// Headers as the chain keeps them: secrets (credentials, cookies) redacted.
fn recorded_headers(headers: &[(String, String)]) -> Value {
    headers
        .iter()
        .map(|(name, value)| {
            let secret = super::http_record::is_secret(name);
            json!([name, if secret { "<redacted>" } else { value }])
        })
        .collect()
}

fn recorded_request(request: &HttpRequest) -> Value {
    json!({
        "method": request.method,
        "uri": request.uri,
        "headers": recorded_headers(&request.headers),
        "body": recorded_body(&request.body),
    })
}

fn recorded_response(response: &HttpResponse) -> Value {
    json!({
        "status": response.status,
        "headers": recorded_headers(&response.headers),
        "body": recorded_body(&response.body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(config: &str) -> Result<ClientSettings, String> {
        ClientSettings::from_table(&toml::from_str(config).unwrap()).map_err(|e| e.message)
    }

    #[test]
    fn settings_default_and_validate() {
        let settings = configured("").unwrap();
        assert_eq!(settings.timeout, DEFAULT_TIMEOUT);
        assert_eq!(settings.max_response_bytes, DEFAULT_MAX_RESPONSE_BYTES);
        assert!(settings.allowed_hosts.is_none());

        let settings = configured(
            "timeout_ms = 250\nmax_response_bytes = 10\nallowed_hosts = [\"Example.COM.\", \"[::1]\", \"127.0.0.1\"]",
        )
        .unwrap();
        assert_eq!(settings.timeout, Duration::from_millis(250));
        assert_eq!(settings.max_response_bytes, 10);
        assert_eq!(
            &*settings.allowed_hosts.unwrap(),
            ["example.com", "::1", "127.0.0.1"]
        );

        let err = configured("timeout_ms = 0").unwrap_err();
        assert!(
            err.contains("`timeout_ms` must be a whole number from 1"),
            "{err}"
        );
        let err = configured("max_response_bytes = \"1MB\"").unwrap_err();
        assert!(
            err.contains("`max_response_bytes` must be a whole number"),
            "{err}"
        );
        let err = configured("allowed_hosts = \"example.com\"").unwrap_err();
        assert!(err.contains("must be a list of host names"), "{err}");
        for bad in ["https://example.com", "example.com:8080", "a/b", "."] {
            let err = configured(&format!("allowed_hosts = [\"{bad}\"]")).unwrap_err();
            assert!(err.contains("is not a host"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_allow_list_matches_hosts_exactly() {
        let settings = configured("allowed_hosts = [\"example.com\", \"::1\"]").unwrap();
        let check = |url: &str| settings.check_host(&Url::parse(url).unwrap());
        assert!(check("https://EXAMPLE.com/x?y=1").is_ok());
        assert!(check("http://example.com:8080/").is_ok());
        assert!(check("http://[::1]:80/").is_ok());
        let err = check("http://api.example.com/").unwrap_err();
        assert!(
            err.contains("the host `api.example.com` is not allowed"),
            "{err}"
        );
        assert!(err.contains("`allowed_hosts`"), "{err}");
        assert!(check("http://127.0.0.1/").is_err());

        let nothing = configured("allowed_hosts = []").unwrap();
        let err = nothing
            .check_host(&Url::parse("http://example.com/").unwrap())
            .unwrap_err();
        assert!(err.contains("(allowed: none)"), "{err}");
    }

    #[test]
    fn methods_are_checked_and_spelled_as_http_does() {
        assert_eq!(method("get").unwrap(), Method::GET);
        assert_eq!(method("Post").unwrap(), Method::POST);
        assert_eq!(method("PROPFIND").unwrap().as_str(), "PROPFIND");
        assert!(method("").unwrap_err().contains("invalid HTTP method ``"));
        assert!(
            method("GE T")
                .unwrap_err()
                .contains("invalid HTTP method `GE T`")
        );
    }

    #[test]
    fn bodies_and_secrets_are_capped_and_redacted_in_the_record() {
        assert_eq!(recorded_body(&None), Value::Null);
        assert_eq!(
            recorded_body(&Some(b"hi".to_vec())),
            json!({ "bytes": 2, "head": "hi" })
        );
        let big = recorded_body(&Some(vec![b'a'; RECORDED_BODY_BYTES + 1]));
        assert_eq!(big["bytes"], RECORDED_BODY_BYTES + 1);
        assert_eq!(big["head"].as_str().unwrap().len(), RECORDED_BODY_BYTES);
        assert_eq!(big["truncated"], true);
        let headers = recorded_headers(&[
            ("Authorization".into(), "Bearer secret".into()),
            ("accept".into(), "*/*".into()),
        ]);
        assert_eq!(
            headers,
            json!([["Authorization", "<redacted>"], ["accept", "*/*"]])
        );
    }
}
