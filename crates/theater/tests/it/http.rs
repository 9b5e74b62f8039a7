//! The http-framework over real sockets on 127.0.0.1: routes, middleware,
//! errors, limits, WebSockets, overflow, the chain, and cleanup on every way
//! an actor ends. The `http-probe` actor does what its commands and handler
//! names say (see `actors/http-probe`); `http-hello` and `ws-echo` are the
//! examples.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{eventually, manifest_for, records, runtime, spawn_with};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use theater::runtime::{Restart, SpawnOptions, SupervisionPolicy};
use theater::{ActorHandle, TheaterRuntime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

const TIMEOUT: Duration = Duration::from_secs(10);

fn probe_manifest(config: &str, limits: &str) -> String {
    format!(
        "name = \"http-probe\"\ncomponent_path = \"http-probe.wasm\"\n\n[[handlers]]\ntype = \"message-server\"\nconfig = {{}}\n\n[[handlers]]\ntype = \"http-framework\"\nconfig = {config}\n\n[limits]\n{limits}\n"
    )
}

/// An `http-probe` with this http-framework config and these limits.
async fn probe(runtime: &TheaterRuntime, config: &str, limits: &str) -> ActorHandle {
    spawn_with(runtime, "http-probe", &probe_manifest(config, limits))
        .await
        .expect("http-probe spawns")
}

/// Sends a command to an `http-probe`: `Ok(value)` or the framework's `Err`.
async fn command(actor: &ActorHandle, command: Value) -> Result<Value, String> {
    let (reply,) = actor
        .call_function::<(Vec<u8>,), (Vec<u8>,)>(
            theater::host::HANDLE_REQUEST,
            (command.to_string().into_bytes(),),
        )
        .await
        .expect("the probe answers commands");
    let mut reply: Value = serde_json::from_slice(&reply).unwrap();
    match reply.get("err") {
        Some(err) => Err(err.as_str().unwrap().to_owned()),
        None => Ok(reply["ok"].take()),
    }
}

/// The probe's standard server on a free port: `(server id, port)`.
async fn serve(actor: &ActorHandle) -> (u64, u16) {
    let reply = command(actor, json!({ "serve": {} })).await.unwrap();
    (
        reply["server"].as_u64().unwrap(),
        reply["port"].as_u64().unwrap() as u16,
    )
}

async fn state(actor: &ActorHandle) -> Value {
    serde_json::from_slice(&actor.state().await.unwrap().unwrap()).unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(TIMEOUT)
        .build()
        .unwrap()
}

fn url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

async fn get(port: u16, path: &str) -> (StatusCode, String) {
    let response = client().get(url(port, path)).send().await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `port` can be bound again.
async fn port_is_released(port: u16) {
    let started = Instant::now();
    while TcpListener::bind(("127.0.0.1", port)).await.is_err() {
        assert!(
            started.elapsed() < TIMEOUT,
            "port {port} was never released"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn connect(port: u16, path: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}{path}"))
        .await
        .expect("the WebSocket connects");
    ws
}

/// The next frame that is not a pong.
async fn next(ws: &mut Ws) -> Message {
    loop {
        let message = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("a frame in time")
            .expect("the connection is open")
            .expect("a valid frame");
        if !matches!(message, Message::Pong(_)) {
            return message;
        }
    }
}

async fn next_text(ws: &mut Ws) -> String {
    match next(ws).await {
        Message::Text(text) => text.as_str().to_owned(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Reads until a close frame; its code and reason.
async fn closed(ws: &mut Ws) -> (u16, String) {
    loop {
        match next(ws).await {
            Message::Close(Some(frame)) => {
                return (u16::from(frame.code), frame.reason.as_str().to_owned());
            }
            Message::Close(None) => return (0, String::new()),
            _ => {}
        }
    }
}

async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
}

/// What the chain says of each HTTP request, oldest first: the `http`
/// field of the call that answered it, or an `http` event of its own; with
/// the type of the event that holds it.
fn exchanges(runtime: &TheaterRuntime, actor: &ActorHandle) -> Vec<(String, Value)> {
    let chain = runtime.chain(actor.id()).unwrap();
    theater::chain::verify(&chain).expect("the chain verifies");
    chain
        .iter()
        .filter_map(|e| {
            let data: Value = serde_json::from_str(e.data.get()).unwrap();
            let exchange = match e.event_type.as_str() {
                "http" => data,
                _ => data.get("http")?.clone(),
            };
            Some((e.event_type.clone(), exchange))
        })
        .collect()
}

#[tokio::test]
async fn each_request_is_one_chain_event() {
    let runtime = runtime();
    let actor = probe(&runtime, "{}", "").await;
    let (_, port) = serve(&actor).await;
    let before = runtime.chain(actor.id()).unwrap().len();
    for _ in 0..3 {
        assert_eq!(get(port, "/hello").await, (StatusCode::OK, "hello".into()));
    }
    state(&actor).await;
    let chain = runtime.chain(actor.id()).unwrap();
    let added: Vec<_> = chain[before..]
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(added, ["call", "call", "call"]);
    assert!(
        chain[before].description.ends_with(", GET /hello 200"),
        "{}",
        chain[before].description
    );
    assert_eq!(exchanges(&runtime, &actor).len(), 3);
}

#[tokio::test]
async fn routes_path_templates_and_404() {
    let runtime = runtime();
    let actor = probe(&runtime, "{}", "").await;
    let (_, port) = serve(&actor).await;

    let response = client().get(url(port, "/hello")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-probe"], "yes");
    assert_eq!(response.text().await.unwrap(), "hello");

    let (status, body) = get(port, "/items/42").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"item":"42"}"#)
    );

    for path in ["/nope", "/items", "/items/42/more", "/hello/"] {
        let (status, body) = get(port, path).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::NOT_FOUND, ""),
            "{path}"
        );
    }
    // The method must match too (or the route be `*`).
    let response = client().post(url(port, "/hello")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // The actor sees the path and query only, the headers and the body.
    let response = client()
        .put(url(port, "/echo?x=1&y=%20z"))
        .header("x-test", "42")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echo: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["uri"], "/echo?x=1&y=%20z");
    assert_eq!(echo["body"], "payload");
    let headers = echo["headers"].as_array().unwrap();
    assert!(headers.contains(&json!(["x-test", "42"])), "{headers:?}");
    // Added by the `tag` middleware on `/echo`.
    assert!(headers.contains(&json!(["x-tagged", "yes"])), "{headers:?}");
}

#[tokio::test]
async fn routes_and_middleware_change_at_run_time() {
    let runtime = runtime();
    let actor = probe(&runtime, "{}", "").await;
    let (server, port) = serve(&actor).await;
    let hello = state(&actor).await["names"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, name)| *name == "hello")
        .map(|(id, _)| id.parse::<u64>().unwrap())
        .unwrap();

    let route = json!({ "route": { "server": server, "method": "get", "path": "/new/{a}/{b}", "handler": hello } });
    let route_id = command(&actor, route.clone()).await.unwrap();
    assert_eq!(get(port, "/new/1/2").await.0, StatusCode::OK);
    let error = command(&actor, route).await.unwrap_err();
    assert!(
        error.contains("already has a route for GET /new/{a}/{b}"),
        "{error}"
    );
    command(&actor, json!({ "unroute": route_id }))
        .await
        .unwrap();
    assert_eq!(get(port, "/new/1/2").await.0, StatusCode::NOT_FOUND);

    let info = command(&actor, json!({ "info": server })).await.unwrap();
    assert_eq!(info["routes"], 9);
    assert_eq!(info["middleware"], 3);
    assert_eq!(info["websocket"], true);
    assert_eq!(info["host"], "127.0.0.1");
    assert_eq!(info["port"], port);
    assert_eq!(info["running"], true);

    // The `deny` middleware was the first added (id 1): removing it opens /admin.
    assert_eq!(
        get(port, "/admin/panel").await,
        (StatusCode::FORBIDDEN, String::new())
    );
    command(&actor, json!({ "unmiddleware": 1 })).await.unwrap();
    assert_eq!(
        get(port, "/admin/panel").await,
        (StatusCode::OK, "hello".into())
    );
}

#[tokio::test]
async fn middleware_allows_denies_and_fails_by_prefix() {
    let runtime = runtime();
    let actor = probe(&runtime, "{}", "").await;
    let (_, port) = serve(&actor).await;

    assert_eq!(
        get(port, "/admin/panel").await,
        (StatusCode::FORBIDDEN, String::new())
    );
    let (status, body) = get(port, "/broken/x").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, "Handler error: middleware failed");
    assert_eq!(get(port, "/hello").await, (StatusCode::OK, "hello".into()));
}

#[tokio::test]
async fn a_handler_error_is_a_500_and_leaves_the_state_alone() {
    let runtime = runtime();
    let actor = probe(&runtime, "{}", "").await;
    let (_, port) = serve(&actor).await;

    assert_eq!(get(port, "/count").await, (StatusCode::OK, "1".into()));
    let (status, body) = get(port, "/fail").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, "Handler error: asked to fail");
    assert_eq!(get(port, "/count").await, (StatusCode::OK, "2".into()));
    assert_eq!(state(&actor).await["count"], 2);
}

#[tokio::test]
async fn a_trapping_handler_is_a_500_and_the_actor_keeps_serving() {
    let runtime = runtime();
    let actor = probe(&runtime, "{}", "").await;
    let (_, port) = serve(&actor).await;
    let mut ws = connect(port, "/ws").await;

    assert_eq!(get(port, "/count").await, (StatusCode::OK, "1".into()));
    let (status, body) = get(port, "/trap").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, "Handler error: `handle-request` trapped");
    // A fresh instance with the same state answers on the same port, and
    // open WebSockets stay open.
    assert_eq!(get(port, "/count").await, (StatusCode::OK, "2".into()));
    send_text(&mut ws, "still there?").await;
    assert_eq!(next_text(&mut ws).await, "echo: still there?");

    // A trap in a WebSocket handler: no reply, the connection goes on.
    send_text(&mut ws, "trap").await;
    send_text(&mut ws, "after").await;
    assert_eq!(next_text(&mut ws).await, "echo: after");
    assert!(actor.is_running());
}

#[tokio::test]
async fn an_oversized_body_is_a_413() {
    let runtime = runtime();
    let actor = probe(&runtime, "{ max_body_bytes = 1024 }", "").await;
    let (_, port) = serve(&actor).await;

    let response = client()
        .post(url(port, "/echo"))
        .body(vec![b'a'; 4000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("limit of 1024 bytes")
    );

    // Chunked, with no length given up front.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut request =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        request.extend_from_slice(format!("3e8\r\n{}\r\n", "b".repeat(1000)).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut answer = [0; 12];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 413");

    let response = client()
        .post(url(port, "/echo"))
        .body(vec![b'a'; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // The same limit holds for WebSocket messages.
    let mut ws = connect(port, "/ws").await;
    send_text(&mut ws, &"c".repeat(2000)).await;
    let (code, reason) = closed(&mut ws).await;
    assert_eq!(
        (code, reason.as_str()),
        (1009, "message larger than the server's limit")
    );
}

#[tokio::test]
async fn the_default_body_limit_is_10_mib() {
    let runtime = runtime();
    let actor = probe(&runtime, "{}", "").await;
    let (_, port) = serve(&actor).await;
    let response = client()
        .post(url(port, "/echo"))
        .body(vec![b'a'; 10 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(get(port, "/hello").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_handler_past_the_request_time_limit_is_a_504() {
    let runtime = runtime();
    let actor = probe(&runtime, "{ request_timeout_ms = 150 }", "").await;
    let (_, port) = serve(&actor).await;

    let (status, body) = get(port, "/slow?ms=600").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(body.contains("150 ms"), "{body}");
    // Once the slow call is done, the actor answers again.
    eventually("the actor answers again", async || {
        (get(port, "/hello").await.0 == StatusCode::OK).then_some(())
    })
    .await;
    // The slow call's own event says what the client got.
    let (event_type, slow) = &exchanges(&runtime, &actor)[0];
    assert_eq!(event_type, "call");
    assert_eq!(
        (slow["status"].clone(), slow["outcome"].clone()),
        (json!(504), json!("timeout"))
    );
}

#[tokio::test]
async fn the_actor_gets_clear_errors_for_unknown_ids_and_bad_input() {
    let runtime = runtime();
    let actor = probe(&runtime, "{}", "").await;
    let (server, _) = serve(&actor).await;

    let cases = [
        (
            json!({ "start": 99 }),
            "no HTTP server with id 99 (create one with create-server)",
        ),
        (json!({ "info": 99 }), "no HTTP server with id 99"),
        (json!({ "stop": 99 }), "no HTTP server with id 99"),
        (json!({ "destroy": 99 }), "no HTTP server with id 99"),
        (
            json!({ "route": { "server": 99, "method": "GET", "path": "/x", "handler": 1 } }),
            "no HTTP server with id 99",
        ),
        (
            json!({ "route": { "server": server, "method": "GET", "path": "/x", "handler": 999 } }),
            "no handler with id 999 (register one with register-handler)",
        ),
        (
            json!({ "route": { "server": server, "method": "GET", "path": "x", "handler": 1 } }),
            "`x` must start with `/`",
        ),
        (
            json!({ "route": { "server": server, "method": "GE T", "path": "/x", "handler": 1 } }),
            "is not an HTTP method",
        ),
        (json!({ "unroute": 777 }), "no route with id 777"),
        (json!({ "unmiddleware": 777 }), "no middleware with id 777"),
        (
            json!({ "middleware": { "server": server, "path": "/x", "handler": 999 } }),
            "no handler with id 999",
        ),
        (
            json!({ "websocket": { "server": server, "path": "/w", "message": 999 } }),
            "no handler with id 999",
        ),
        (
            json!({ "unwebsocket": { "server": server, "path": "/nothing" } }),
            "has no WebSocket endpoint at /nothing",
        ),
        (
            json!({ "push": { "server": server, "connection": 5, "text": "hi" } }),
            &format!("no open WebSocket connection 5 on server {server}"),
        ),
        (
            json!({ "close": { "server": server, "connection": 5 } }),
            "no open WebSocket connection 5",
        ),
        (
            json!({ "create": { "host": "example.com" } }),
            "is not an IP address",
        ),
        (json!({ "handler": "" }), "a handler name must be"),
    ];
    for (request, expected) in cases {
        let error = command(&actor, request.clone()).await.unwrap_err();
        assert!(error.contains(expected), "{request}: {error}");
    }
    // Every host call is in the chain, errors included.
    let calls = records(&runtime, actor.id(), "host-call");
    assert!(calls.iter().any(|c| {
        c["function"] == "ntwk:theater/http-framework.start-server"
            && c["result"]["err"]
                .as_str()
                .is_some_and(|e| e.contains("id 99"))
    }));
}

#[tokio::test]
async fn a_server_stops_and_starts_again_on_the_same_port() {
    let runtime = runtime();
    let actor = probe(&runtime, "{}", "").await;
    let port = free_port();
    let server = command(&actor, json!({ "create": { "port": port } }))
        .await
        .unwrap();
    let hello = command(&actor, json!({ "handler": "hello" }))
        .await
        .unwrap();
    command(
        &actor,
        json!({ "route": { "server": server, "method": "GET", "path": "/hello", "handler": hello } }),
    )
    .await
    .unwrap();
    let info = command(&actor, json!({ "info": server })).await.unwrap();
    assert_eq!(
        info,
        json!({ "id": server, "port": port, "host": "127.0.0.1", "running": false,
                "routes": 1, "middleware": 0, "websocket": false })
    );

    for _ in 0..2 {
        assert_eq!(
            command(&actor, json!({ "start": server })).await.unwrap(),
            port
        );
        // Starting a running server answers its port again.
        assert_eq!(
            command(&actor, json!({ "start": server })).await.unwrap(),
            port
        );
        assert_eq!(
            command(&actor, json!({ "info": server })).await.unwrap()["running"],
            true
        );
        assert_eq!(get(port, "/hello").await.0, StatusCode::OK);

        command(&actor, json!({ "stop": server })).await.unwrap();
        assert_eq!(
            command(&actor, json!({ "info": server })).await.unwrap()["running"],
            false
        );
        // The port is free the moment stop-server returns.
        drop(
            TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("port released"),
        );
        assert!(client().get(url(port, "/hello")).send().await.is_err());
    }

    // An ephemeral server comes back on its old port if it can.
    let ephemeral = command(&actor, json!({ "create": {} })).await.unwrap();
    let first = command(&actor, json!({ "start": ephemeral }))
        .await
        .unwrap();
    assert_ne!(first, 0);
    command(&actor, json!({ "stop": ephemeral })).await.unwrap();
    assert_eq!(
        command(&actor, json!({ "start": ephemeral }))
            .await
            .unwrap(),
        first
    );

    command(&actor, json!({ "destroy": ephemeral }))
        .await
        .unwrap();
    port_is_released(first.as_u64().unwrap() as u16).await;
    let error = command(&actor, json!({ "info": ephemeral }))
        .await
        .unwrap_err();
    assert!(error.contains("no HTTP server"), "{error}");
}

#[tokio::test]
async fn websocket_messages_replies_pushes_and_closes() {
    let runtime = runtime();
    let actor = probe(&runtime, "{}", "").await;
    let (server, port) = serve(&actor).await;
    let mut ws = connect(port, "/ws?room=1").await;

    send_text(&mut ws, "hi").await;
    assert_eq!(next_text(&mut ws).await, "echo: hi");
    let connection = state(&actor).await["connections"][0].as_u64().unwrap();

    ws.send(Message::binary(vec![0u8, 159, 146, 150]))
        .await
        .unwrap();
    assert_eq!(
        next(&mut ws).await,
        Message::binary(vec![0u8, 159, 146, 150])
    );

    // Pings are answered by the server and reach the actor too.
    ws.send(Message::Ping(vec![1, 2].into())).await.unwrap();
    let pong = tokio::time::timeout(TIMEOUT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong(vec![1, 2].into()));
    assert_eq!(next_text(&mut ws).await, "ping seen");

    // Pushes made during a call go out before its reply.
    send_text(&mut ws, "push 3").await;
    for expected in ["push 0", "push 1", "push 2", "pushed 3"] {
        assert_eq!(next_text(&mut ws).await, expected);
    }
    // ... and any time, from outside a WebSocket call.
    let push =
        json!({ "push": { "server": server, "connection": connection, "text": "from outside" } });
    command(&actor, push).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "from outside");
    let push = json!({ "push": { "server": server, "connection": connection, "binary": [7, 8] } });
    command(&actor, push).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::binary(vec![7u8, 8]));

    // The client closes: the actor hears of it.
    ws.close(None).await.unwrap();
    eventually("the actor hears of the disconnect", async || {
        let state = state(&actor).await;
        (state["disconnected"] == json!([connection]) && state["connections"] == json!([]))
            .then_some(())
    })
    .await;
    let error = command(
        &actor,
        json!({ "push": { "server": server, "connection": connection, "text": "x" } }),
    )
    .await
    .unwrap_err();
    assert!(error.contains("no open WebSocket connection"), "{error}");

    // The actor closes: the client gets a close frame.
    let mut ws = connect(port, "/ws").await;
    send_text(&mut ws, "close").await;
    assert_eq!(closed(&mut ws).await, (1000, String::new()));
    let mut ws = connect(port, "/ws").await;
    send_text(&mut ws, "ready").await;
    assert_eq!(next_text(&mut ws).await, "echo: ready");
    let connections = state(&actor).await["connections"].clone();
    let second = connections
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_u64()
        .unwrap();
    command(
        &actor,
        json!({ "close": { "server": server, "connection": second } }),
    )
    .await
    .unwrap();
    assert_eq!(closed(&mut ws).await.0, 1000);

    // A connect handler that answers Err refuses the connection.
    let mut ws = connect(port, "/ws?refuse").await;
    assert_eq!(
        closed(&mut ws).await,
        (1011, "connection refused: refused by request".into())
    );

    // Middleware applies to upgrades, and disabling an endpoint closes its sockets.
    let mut ws = connect(port, "/ws").await;
    send_text(&mut ws, "ready").await;
    assert_eq!(next_text(&mut ws).await, "echo: ready");
    command(
        &actor,
        json!({ "unwebsocket": { "server": server, "path": "/ws" } }),
    )
    .await
    .unwrap();
    assert_eq!(
        closed(&mut ws).await,
        (1001, "WebSocket endpoint disabled".into())
    );
    assert!(
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn websocket_events_are_in_the_chain() {
    let runtime = runtime();
    let actor = probe(&runtime, "{ record_body_bytes = 4 }", "").await;
    let (server, port) = serve(&actor).await;
    let mut ws = connect(port, "/ws").await;
    send_text(&mut ws, "hello there").await;
    assert_eq!(next_text(&mut ws).await, "echo: hello there");
    let connection = state(&actor).await["connections"][0].as_u64().unwrap();
    let push =
        json!({ "push": { "server": server, "connection": connection, "text": "a long push" } });
    command(&actor, push).await.unwrap();
    ws.close(None).await.unwrap();
    eventually("the disconnect", async || {
        (state(&actor).await["disconnected"] == json!([connection])).then_some(())
    })
    .await;
    state(&actor).await;

    let ws_events = records(&runtime, actor.id(), "websocket");
    assert_eq!(ws_events[0]["event"], "open");
    assert_eq!(ws_events[0]["connection"], connection);
    assert_eq!(ws_events[1]["event"], "close");
    assert_eq!(ws_events[1]["initiator"], "client");
    assert_eq!(ws_events[1]["received"], 1);
    assert_eq!(ws_events[1]["sent"], 2);
    let pushes: Vec<Value> = records(&runtime, actor.id(), "host-call")
        .into_iter()
        .filter(|c| c["function"] == "ntwk:theater/http-framework.send-websocket-message")
        .collect();
    assert_eq!(
        pushes[0]["params"]["message"],
        json!({ "text": "a lo", "size": 11, "truncated": true })
    );
    let calls: Vec<Value> = records(&runtime, actor.id(), "call")
        .into_iter()
        .filter(|c| c["function"] == "ntwk:theater/http-handlers.handle-websocket-message")
        .collect();
    assert_eq!(calls[0]["params"][2]["text"], "hello there");
}

#[tokio::test]
async fn http_exchanges_are_in_the_chain_with_capped_bodies() {
    let runtime = runtime();
    let actor = probe(&runtime, "{ record_body_bytes = 4 }", "").await;
    let (server, port) = serve(&actor).await;
    let response = client()
        .post(url(port, "/echo"))
        .body("hello world")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(get(port, "/admin/panel").await.0, StatusCode::FORBIDDEN);
    assert_eq!(get(port, "/missing").await.0, StatusCode::NOT_FOUND);
    state(&actor).await;

    let exchanges = exchanges(&runtime, &actor);
    assert_eq!(exchanges.len(), 3, "{exchanges:#?}");
    let (event_type, echo) = &exchanges[0];
    assert_eq!(event_type, "call");
    assert_eq!(echo["server"], server);
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/echo");
    assert_eq!(echo["status"], 200);
    assert_eq!(echo["outcome"], "handled");
    // The middleware that refused records the 403; the 404 made no call.
    assert_eq!(
        (
            exchanges[1].1["status"].clone(),
            exchanges[1].1["outcome"].clone()
        ),
        (json!(403), json!("denied"))
    );
    assert_eq!(exchanges[1].0, "call");
    assert_eq!(
        (
            exchanges[2].1["status"].clone(),
            exchanges[2].1["outcome"].clone()
        ),
        (json!(404), json!("no-route"))
    );
    assert_eq!(exchanges[2].0, "http");

    // The handler's call event carries the request and response, bodies
    // over `record_body_bytes` by size and digest.
    let calls: Vec<Value> = records(&runtime, actor.id(), "call")
        .into_iter()
        .filter(|c| c["function"] == "ntwk:theater/http-handlers.handle-request")
        .collect();
    assert_eq!(
        calls[0]["params"][1]["body"]["size"],
        "\"hello world\"".len()
    );
    assert_eq!(calls[0]["params"][1]["uri"], "/echo");
    assert!(calls[0]["result"][0]["body"]["sha256"].is_string());
    let starts: Vec<Value> = records(&runtime, actor.id(), "host-call")
        .into_iter()
        .filter(|c| c["function"] == "ntwk:theater/http-framework.start-server")
        .collect();
    assert_eq!(starts[0]["result"], json!({ "ok": port }));
}

#[tokio::test]
async fn a_burst_bigger_than_the_queue_is_answered_503_and_counted() {
    let runtime = runtime();
    let actor = probe(&runtime, "{}", "queue_capacity = 4").await;
    let (_, port) = serve(&actor).await;
    let client = client();
    let requests = (0..40).map(|_| {
        let client = client.clone();
        async move {
            client
                .get(url(port, "/slow?ms=20"))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let statuses = futures::future::join_all(requests).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!(ok + refused, 40, "{statuses:?}");
    assert!(ok >= 1 && refused >= 1, "{ok} answered, {refused} refused");
    let counted = actor
        .counters()
        .queue_full
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(counted >= refused as u64, "{counted} < {refused}");
    // Nothing crashed, and the server answers once the burst is over.
    assert_eq!(get(port, "/hello").await, (StatusCode::OK, "hello".into()));
}

#[tokio::test]
async fn a_websocket_that_overflows_the_queue_is_closed_with_1013() {
    let runtime = runtime();
    let actor = probe(&runtime, "{}", "queue_capacity = 2").await;
    let (_, port) = serve(&actor).await;
    let mut ws = connect(port, "/ws").await;
    send_text(&mut ws, "slow 300").await;
    for i in 0..20 {
        send_text(&mut ws, &format!("m{i}")).await;
    }
    let (code, reason) = closed(&mut ws).await;
    assert_eq!(
        (code, reason.as_str()),
        (1013, "actor queue full: message refused")
    );
    // Other clients are served once the queue has room again.
    eventually("the queue drains", async || {
        (actor.queue_depth() == 0).then_some(())
    })
    .await;
    let mut ws = connect(port, "/ws").await;
    send_text(&mut ws, "hi").await;
    assert_eq!(next_text(&mut ws).await, "echo: hi");
}

#[tokio::test]
async fn drop_oldest_drops_waiting_frames_and_keeps_the_connection() {
    let runtime = runtime();
    let config = "{ overflow = \"drop-oldest\", ws_buffer = 2 }";
    let actor = probe(&runtime, config, "queue_capacity = 2").await;
    let (_, port) = serve(&actor).await;
    let mut ws = connect(port, "/ws").await;
    send_text(&mut ws, "slow 300").await;
    for i in 0..20 {
        send_text(&mut ws, &format!("m{i}")).await;
    }
    assert_eq!(next_text(&mut ws).await, "slow done");
    let mut echoed = Vec::new();
    while echoed.last().map(String::as_str) != Some("echo: m19") {
        echoed.push(next_text(&mut ws).await);
    }
    assert!(echoed.len() < 20, "nothing was dropped: {echoed:?}");
    // What got through came in order.
    let numbers: Vec<u32> = echoed
        .iter()
        .map(|e| e.trim_start_matches("echo: m").parse().unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    send_text(&mut ws, "still open").await;
    assert_eq!(next_text(&mut ws).await, "echo: still open");
}

#[tokio::test]
async fn stopping_the_actor_closes_sockets_answers_queued_requests_and_frees_the_port() {
    let runtime = runtime();
    let actor = probe(&runtime, "{}", "").await;
    let (_, port) = serve(&actor).await;
    let mut ws = connect(port, "/ws").await;
    send_text(&mut ws, "hi").await;
    assert_eq!(next_text(&mut ws).await, "echo: hi");

    // One slow call running, a stop queued behind it, requests behind that.
    let slow = tokio::spawn(get(port, "/slow?ms=400"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stop = tokio::spawn({
        let (runtime, id) = (runtime.clone(), actor.id());
        async move { runtime.stop(id).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let queued: Vec<_> = (0..3)
        .map(|_| tokio::spawn(client().get(url(port, "/count")).send()))
        .collect();

    // The running call finishes (unless the machine was too slow to start
    // it before the stop was queued).
    let (status, _) = slow.await.unwrap();
    assert!(
        matches!(status, StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE),
        "{status}"
    );
    stop.await.unwrap().unwrap();
    for request in queued {
        // Answered with an error, or refused once the server is gone; none
        // is left waiting.
        match request.await.unwrap() {
            Ok(response) => assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE),
            Err(e) => assert!(!e.is_timeout(), "{e}"),
        }
    }
    assert_eq!(closed(&mut ws).await, (1001, "actor stopped".into()));
    port_is_released(port).await;
}

#[tokio::test]
async fn a_stopped_actor_spawned_again_gets_its_fixed_port_back() {
    let runtime = runtime();
    let port = free_port();
    for round in 0..2 {
        let actor = probe(&runtime, "{}", "").await;
        let reply = command(&actor, json!({ "serve": { "port": port } })).await;
        assert_eq!(reply.unwrap()["port"], port, "round {round}");
        assert_eq!(get(port, "/hello").await.0, StatusCode::OK);
        runtime.stop(actor.id()).await.unwrap();
    }
    port_is_released(port).await;
}

#[tokio::test]
async fn a_child_that_traps_and_is_not_restarted_releases_its_port() {
    let runtime = runtime();
    let parent = common::spawn(&runtime, "supervisor").await;
    let policy = SupervisionPolicy {
        restart: Restart::Never,
        ..SupervisionPolicy::default()
    };
    let options = SpawnOptions {
        parent: Some((parent.id(), Arc::new(policy))),
        ..SpawnOptions::default()
    };
    let manifest = manifest_for("http-probe", &probe_manifest("{}", ""));
    let child = runtime.spawn_with(&manifest, options).await.unwrap();
    let (_, port) = serve(&child).await;
    let mut ws = connect(port, "/ws").await;
    send_text(&mut ws, "hi").await;
    assert_eq!(next_text(&mut ws).await, "echo: hi");

    let (status, _) = get(port, "/trap").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(closed(&mut ws).await, (1001, "actor stopped".into()));
    port_is_released(port).await;
    eventually("the child is gone", async || {
        (!child.is_running()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn malformed_http_and_huge_headers_are_refused_and_the_server_keeps_serving() {
    let runtime = runtime();
    let actor = probe(&runtime, "{}", "").await;
    let (_, port) = serve(&actor).await;

    async fn raw(port: u16, bytes: &[u8]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        // The server may answer and close before it has read everything.
        let _ = stream.write_all(bytes).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    let answer = raw(port, b"THIS IS NOT HTTP\r\n\r\n").await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    let answer = raw(
        port,
        b"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    )
    .await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    let big = format!(
        "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    let answer = raw(port, big.as_bytes()).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );

    let answer = raw(
        port,
        b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
}

#[tokio::test]
async fn connections_past_the_limit_close_the_longest_idle() {
    let runtime = runtime();
    let actor = probe(&runtime, "{ max_connections = 2 }", "").await;
    let (_, port) = serve(&actor).await;
    let mut first = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _second = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // A third client is served; the idle connection that waited longest
    // made room for it (busy ones keep their seats: see tests/hostile).
    assert_eq!(get(port, "/hello").await, (StatusCode::OK, "hello".into()));
    let mut answer = Vec::new();
    tokio::time::timeout(TIMEOUT, first.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
}

#[tokio::test]
async fn a_bad_config_is_a_clear_spawn_error() {
    let runtime = runtime();
    let manifest = probe_manifest("{ overflow = \"sometimes\" }", "");
    let error = spawn_with(&runtime, "http-probe", &manifest)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("handler `http-framework`"), "{message}");
    assert!(
        message.contains("`overflow` must be \"reject\" or \"drop-oldest\""),
        "{message}"
    );
}

#[tokio::test]
async fn http_hello_greets_and_guards_admin() {
    let runtime = runtime();
    let manifest = "name = \"http-hello\"\ncomponent_path = \"http-hello.wasm\"\ninit_state = '{\"port\": 0}'\n\n[[handlers]]\ntype = \"http-framework\"\nconfig = {}\n";
    let hello = spawn_with(&runtime, "http-hello", manifest).await.unwrap();
    let port = state(&hello).await["port"].as_u64().unwrap() as u16;

    assert_eq!(
        get(port, "/").await,
        (StatusCode::OK, "Hello from Theater!".into())
    );
    for count in 1..=2 {
        let response = client()
            .get(url(port, "/api/greet/ana"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(body, json!({ "greeting": "Hello, ana!", "count": count }));
    }
    assert_eq!(
        get(port, "/admin/stats").await,
        (StatusCode::FORBIDDEN, String::new())
    );
    assert_eq!(
        get(port, "/nothing").await,
        (StatusCode::NOT_FOUND, String::new())
    );
}

#[tokio::test]
async fn ws_echo_echoes_to_the_sender_and_pushes_to_the_others() {
    let runtime = runtime();
    let manifest = "name = \"ws-echo\"\ncomponent_path = \"ws-echo.wasm\"\ninit_state = '{\"port\": 0}'\n\n[[handlers]]\ntype = \"http-framework\"\nconfig = {}\n";
    let chat = spawn_with(&runtime, "ws-echo", manifest).await.unwrap();
    let port = state(&chat).await["port"].as_u64().unwrap() as u16;

    let mut ana = connect(port, "/ws").await;
    let welcome = next_text(&mut ana).await;
    let ana_id = welcome.strip_prefix("welcome ").unwrap().to_owned();
    let mut bo = connect(port, "/ws").await;
    let bo_id = next_text(&mut bo)
        .await
        .strip_prefix("welcome ")
        .unwrap()
        .to_owned();

    send_text(&mut ana, "hi all").await;
    assert_eq!(next_text(&mut ana).await, "echo: hi all");
    assert_eq!(next_text(&mut bo).await, format!("{ana_id}: hi all"));
    send_text(&mut bo, "/who").await;
    assert_eq!(next_text(&mut bo).await, format!("[{ana_id}, {bo_id}]"));

    send_text(&mut ana, "/bye").await;
    assert_eq!(closed(&mut ana).await.0, 1000);
    eventually("ana is gone", async || {
        let connections = state(&chat).await["connections"].clone();
        (connections == json!([bo_id.parse::<u64>().unwrap()])).then_some(())
    })
    .await;
    assert_eq!(get(port, "/").await.0, StatusCode::OK);
}

#[tokio::test]
async fn invalid_websocket_frames_close_that_connection_only() {
    let runtime = runtime();
    let actor = probe(&runtime, "{}", "").await;
    let (_, port) = serve(&actor).await;
    let mut good = connect(port, "/ws").await;

    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let upgrade = format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(upgrade.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // FIN with the reserved opcode 3, masked, empty: not a valid frame.
    stream.write_all(&[0x83, 0x80, 1, 2, 3, 4]).await.unwrap();
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the bad connection is closed");
    // A close frame, if any, says protocol error (1002).
    if rest.len() >= 4 && rest[0] == 0x88 {
        assert_eq!(u16::from_be_bytes([rest[2], rest[3]]), 1002);
    }

    // Everyone else is still served.
    send_text(&mut good, "still here").await;
    assert_eq!(next_text(&mut good).await, "echo: still here");
    assert_eq!(get(port, "/hello").await.0, StatusCode::OK);
}

#[tokio::test]
async fn secrets_and_large_bodies_stay_out_of_the_chain() {
    let runtime = runtime();
    let actor = probe(&runtime, "{}", "").await;
    let (_, port) = serve(&actor).await;
    let response = client()
        .post(url(port, "/echo"))
        .header("Authorization", "Bearer s3cret-token")
        .body("y".repeat(50_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The echo handler answers what it saw: the real header and body.
    let seen: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(seen["body"].as_str().unwrap().len(), 50_000);
    assert!(seen["headers"].to_string().contains("s3cret-token"));
    let chain = runtime.chain(actor.id()).unwrap();
    let recorded: String = chain.iter().map(|e| e.data.get()).collect();
    assert!(
        !recorded.contains("s3cret-token"),
        "a secret header reached the chain"
    );
    assert!(
        !recorded.contains(&"y".repeat(2000)),
        "a large body reached the chain"
    );
    assert!(recorded.contains("<redacted>"));
    theater::chain::verify(&chain).unwrap();
}
