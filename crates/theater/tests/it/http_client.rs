//! The http-client capability through the real `fetcher` actor, against a
//! real HTTP server on 127.0.0.1: requests with bodies and headers, the
//! size limit, the timeout, the host allow-list, unreachable hosts and bad
//! requests; after each error the actor keeps serving with its state intact.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{failure, host_calls, request};
use crate::common::{runtime, spawn, spawn_with};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};
use theater::{ActorHandle, TheaterRuntime};

const SEND_HTTP: &str = "ntwk:theater/http-client.send-http";

/// A local HTTP server for the tests, counting the requests it gets.
struct TestServer {
    base: String,
    hits: Arc<AtomicUsize>,
}

impl TestServer {
    async fn start() -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/hello", get(|| async { "hello" }))
            .route("/echo", any(echo))
            .route("/big", get(|| async { vec![b'x'; 64 * 1024] }))
            .route("/endless", get(endless))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    "late"
                }),
            )
            .route(
                "/moved",
                get(|| async { (StatusCode::FOUND, [("location", "/hello")]) }),
            )
            .layer(middleware::from_fn_with_state(hits.clone(), count));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn count(State(hits): State<Arc<AtomicUsize>>, request: Request, next: Next) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    next.run(request).await
}

/// Answers what it got, as JSON.
async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), json!(value.to_str().unwrap())))
        .collect();
    let got = json!({
        "method": method.as_str(),
        "uri": uri.to_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    (
        StatusCode::CREATED,
        [("content-type", "application/json"), ("x-echo", "yes")],
        got.to_string(),
    )
}

/// A body without a length that never ends.
async fn endless() -> Body {
    let chunk = Bytes::from(vec![b'y'; 1024]);
    Body::from_stream(futures::stream::repeat_with(move || {
        Ok::<_, std::io::Error>(chunk.clone())
    }))
}

/// The fetcher component with the http-client config `config`.
async fn fetcher_with(
    runtime: &TheaterRuntime,
    config: &str,
) -> Result<ActorHandle, theater::SpawnError> {
    let manifest = format!(
        "name = \"fetcher\"\ncomponent_path = \"fetcher.wasm\"\n\n[[handlers]]\ntype = \"message-server\"\nconfig = {{}}\n\n[[handlers]]\ntype = \"http-client\"\nconfig = {config}\n"
    );
    spawn_with(runtime, "fetcher", &manifest).await
}

/// Asserts the fetcher has made `fetched` requests, and still fetches.
async fn assert_intact(fetcher: &ActorHandle, server: &TestServer, fetched: u64) {
    assert_eq!(
        request(fetcher, json!({ "state": null })).await.unwrap(),
        json!({ "fetched": fetched })
    );
    assert_eq!(
        request(fetcher, json!({ "get": server.url("/hello") }))
            .await
            .unwrap(),
        json!({ "status": 200, "body": "hello" })
    );
}

#[tokio::test]
async fn get_and_post_reach_a_local_server_with_bodies_and_headers() {
    let runtime = runtime();
    let server = TestServer::start().await;
    let fetcher = spawn(&runtime, "fetcher").await;

    assert_eq!(
        request(&fetcher, json!({ "get": server.url("/hello") }))
            .await
            .unwrap(),
        json!({ "status": 200, "body": "hello" })
    );
    let post = json!({ "send": {
        "method": "POST",
        "url": server.url("/echo?x=1"),
        "headers": [["x-token", "abc"], ["Authorization", "Bearer hush"], ["content-type", "text/plain"]],
        "body": "some text",
    } });
    let reply = request(&fetcher, post).await.unwrap();
    assert_eq!(reply["status"], 201);
    let echoed: Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["uri"], "/echo?x=1");
    assert_eq!(echoed["body"], "some text");
    assert_eq!(echoed["headers"]["x-token"], "abc");
    assert_eq!(echoed["headers"]["content-type"], "text/plain");
    assert!(
        reply["headers"]
            .as_array()
            .unwrap()
            .contains(&json!(["x-echo", "yes"])),
        "{reply}"
    );
    // Methods are spelled the HTTP way whatever the case.
    let put = json!({ "send": { "method": "put", "url": server.url("/echo") } });
    let reply = request(&fetcher, put).await.unwrap();
    let echoed: Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["method"], "PUT");
    // Redirects reach the actor, which decides whether to follow them.
    let moved = json!({ "send": { "url": server.url("/moved") } });
    let reply = request(&fetcher, moved).await.unwrap();
    assert_eq!(reply["status"], 302);
    assert!(
        reply["headers"]
            .as_array()
            .unwrap()
            .contains(&json!(["location", "/hello"]))
    );
    assert_eq!(
        request(&fetcher, json!({ "state": null })).await.unwrap(),
        json!({ "fetched": 4 })
    );

    // Each request and response is in the chain, credentials redacted.
    let calls = host_calls(&runtime, &fetcher, SEND_HTTP);
    assert_eq!(calls.len(), 4);
    assert_eq!(
        calls[0]["params"],
        json!([{ "method": "GET", "uri": server.url("/hello"), "headers": [], "body": null }])
    );
    assert_eq!(calls[0]["result"]["ok"]["status"], 200);
    assert_eq!(
        calls[0]["result"]["ok"]["body"],
        json!({ "bytes": 5, "head": "hello" })
    );
    let sent = &calls[1]["params"][0];
    assert_eq!(sent["method"], "POST");
    assert_eq!(sent["body"], json!({ "bytes": 9, "head": "some text" }));
    assert_eq!(sent["headers"][1], json!(["Authorization", "<redacted>"]));
    assert_eq!(calls[1]["result"]["ok"]["status"], 201);
}

#[tokio::test]
async fn a_response_over_the_size_limit_is_a_clear_error() {
    let runtime = runtime();
    let server = TestServer::start().await;
    let fetcher = fetcher_with(&runtime, "{ max_response_bytes = 4096 }")
        .await
        .unwrap();

    let err = failure(request(&fetcher, json!({ "get": server.url("/big") })).await);
    assert!(
        err.contains("is larger than this actor's limit of 4096 bytes"),
        "{err}"
    );
    assert!(err.contains("65536 bytes announced"), "{err}");
    assert!(err.contains("`max_response_bytes`"), "{err}");
    assert_intact(&fetcher, &server, 0).await;

    // A body without a length is read only up to the limit.
    let started = Instant::now();
    let err = failure(request(&fetcher, json!({ "get": server.url("/endless") })).await);
    assert!(
        err.contains("is larger than this actor's limit of 4096 bytes (more than that was sent"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_intact(&fetcher, &server, 1).await;

    let calls = host_calls(&runtime, &fetcher, SEND_HTTP);
    assert!(
        calls[0]["result"]["err"]
            .as_str()
            .unwrap()
            .contains("4096 bytes")
    );
}

#[tokio::test]
async fn a_slow_server_times_out_and_the_wait_does_not_count_against_the_call() {
    let runtime = runtime();
    let server = TestServer::start().await;
    let fetcher = fetcher_with(&runtime, "{ timeout_ms = 300 }")
        .await
        .unwrap();

    let started = Instant::now();
    let err = failure(request(&fetcher, json!({ "get": server.url("/slow") })).await);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited for the slow server"
    );
    assert!(err.contains("no complete response from"), "{err}");
    assert!(err.contains("within 300 ms (`timeout_ms`"), "{err}");
    assert_intact(&fetcher, &server, 0).await;

    // Time spent waiting on the server is not the actor's own.
    let manifest = "name = \"fetcher\"\ncomponent_path = \"fetcher.wasm\"\n\n[[handlers]]\ntype = \"http-client\"\nconfig = { timeout_ms = 600 }\n\n[limits]\ncall_timeout_ms = 150\n";
    let patient = spawn_with(&runtime, "fetcher", manifest).await.unwrap();
    let err = failure(request(&patient, json!({ "get": server.url("/slow") })).await);
    assert!(err.contains("within 600 ms"), "{err}");
}

#[tokio::test]
async fn a_host_off_the_allow_list_is_refused_without_a_request() {
    let runtime = runtime();
    let server = TestServer::start().await;
    let fetcher = fetcher_with(&runtime, "{ allowed_hosts = [\"example.com\"] }")
        .await
        .unwrap();

    let err = failure(request(&fetcher, json!({ "get": server.url("/hello") })).await);
    assert!(err.contains("the host `127.0.0.1` is not allowed"), "{err}");
    assert!(err.contains("`allowed_hosts`"), "{err}");
    assert!(err.contains("(allowed: example.com)"), "{err}");
    let localhost = server.url("/hello").replace("127.0.0.1", "localhost");
    let err = failure(request(&fetcher, json!({ "get": localhost })).await);
    assert!(err.contains("the host `localhost` is not allowed"), "{err}");
    assert_eq!(server.hits(), 0, "the server was reached");
    assert_eq!(
        request(&fetcher, json!({ "state": null })).await.unwrap(),
        json!({ "fetched": 0 })
    );

    let allowed = fetcher_with(&runtime, "{ allowed_hosts = [\"127.0.0.1\"] }")
        .await
        .unwrap();
    assert_intact(&allowed, &server, 0).await;
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn an_unreachable_host_is_a_clear_error() {
    let runtime = runtime();
    let server = TestServer::start().await;
    let fetcher = spawn(&runtime, "fetcher").await;

    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let err = failure(request(&fetcher, json!({ "get": url })).await);
    assert!(
        err.contains(&format!("the request to `{url}` failed")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("refused"), "{err}");
    assert_intact(&fetcher, &server, 0).await;
}

#[tokio::test]
async fn invalid_methods_uris_and_headers_are_clear_errors() {
    let runtime = runtime();
    let server = TestServer::start().await;
    let fetcher = spawn(&runtime, "fetcher").await;

    let cases = [
        (
            json!({ "send": { "method": "GE T", "url": server.url("/hello") } }),
            "invalid HTTP method `GE T`",
        ),
        (json!({ "get": "/hello" }), "invalid URI `/hello`"),
        (json!({ "get": "not a url" }), "invalid URI `not a url`"),
        (
            json!({ "get": "ftp://127.0.0.1/x" }),
            "the scheme `ftp` is not supported",
        ),
        (
            json!({ "send": { "url": server.url("/echo"), "headers": [["bad header", "x"]] } }),
            "invalid header name `bad header`",
        ),
        (
            json!({ "send": { "url": server.url("/echo"), "headers": [["x-ok", "line\nbreak"]] } }),
            "invalid value for header `x-ok`",
        ),
    ];
    for (command, expected) in cases {
        let err = failure(request(&fetcher, command.clone()).await);
        assert!(err.contains(expected), "{command}: {err}");
    }
    assert_eq!(server.hits(), 0);
    assert_intact(&fetcher, &server, 0).await;
    let calls = host_calls(&runtime, &fetcher, SEND_HTTP);
    assert_eq!(calls.len(), 7);
}

#[tokio::test]
async fn a_bad_http_client_config_does_not_spawn() {
    let runtime = runtime();
    let cases = [
        (
            "{ timeout_ms = 0 }",
            "`timeout_ms` must be a whole number from 1",
        ),
        (
            "{ max_response_bytes = -1 }",
            "`max_response_bytes` must be a whole number",
        ),
        (
            "{ allowed_hosts = [\"https://example.com/\"] }",
            "entry `https://example.com/` is not a host",
        ),
    ];
    for (config, expected) in cases {
        let err = fetcher_with(&runtime, config)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test-manifest.toml:10: handler `http-client`"),
            "{err}"
        );
        assert!(err.contains(expected), "{err}");
    }
}
