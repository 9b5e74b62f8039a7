//! An actor's HTTP server against clients that hold connections: idle
//! ones by the thousand, request heads or bodies sent a little at a time,
//! from one peer or from many. Attackers connect from loopback addresses
//! 127.0.0.2 and up; the real client comes from 127.0.0.1 and must get its
//! 200 promptly.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use theater::{ActorHandle, TheaterRuntime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{self, spawn_with};

/// A generous bound for anything that should happen at once.
const PROMPTLY: Duration = Duration::from_secs(10);
const GET_HELLO: &[u8] = b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// An `http-probe` serving its standard routes with this http-framework
/// `config`, and its port.
async fn probe(config: &str) -> (TheaterRuntime, ActorHandle, u16) {
    let runtime = common::runtime();
    let manifest = format!(
        "name = \"http-probe\"\ncomponent_path = \"http-probe.wasm\"\n\n[[handlers]]\ntype = \"message-server\"\nconfig = {{}}\n\n[[handlers]]\ntype = \"http-framework\"\nconfig = {config}\n"
    );
    let actor = spawn_with(&runtime, "http-probe", &manifest)
        .await
        .expect("http-probe spawns");
    let reply = common::request(&actor, json!({ "serve": {} }))
        .await
        .unwrap();
    let port = reply["ok"]["port"].as_u64().expect("a port") as u16;
    (runtime, actor, port)
}

/// A connection from 127.0.0.`from`.
async fn connect_from(from: u8, port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket
        .bind(SocketAddr::from(([127, 0, 0, from], 0)))
        .unwrap();
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap()
}

/// Sends `request` from 127.0.0.`from` and reads the answer's head.
async fn ask(from: u8, port: u16, request: &[u8]) -> String {
    let mut stream = connect_from(from, port).await;
    stream.write_all(request).await.unwrap();
    read_head(&mut stream).await
}

/// Reads until the end of a response head, or of the stream.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(PROMPTLY, read)
        .await
        .expect("an answer (or a close) within the bound");
    String::from_utf8_lossy(&answer).into_owned()
}

/// The real client, from 127.0.0.1, is answered 200.
async fn client_is_served(port: u16) {
    let answer = ask(1, port, GET_HELLO).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

/// Whether the server closed `stream` (without answering) within the bound.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(PROMPTLY, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_one_peer_leave_room_for_others() {
    let (_runtime, _actor, port) = probe("{}").await;
    let mut idle = Vec::new();
    for _ in 0..1100 {
        idle.push(connect_from(2, port).await);
    }
    client_is_served(port).await;
    // The flood's oldest connections were closed to make room for its
    // newest: one peer holds at most 64.
    assert!(closed(&mut idle[0]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_heads_from_one_peer_leave_room_for_others() {
    let (_runtime, _actor, port) = probe("{}").await;
    let mut slow = Vec::new();
    for _ in 0..1100 {
        let mut stream = connect_from(2, port).await;
        stream
            .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    client_is_served(port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_many_peers_give_way_to_a_new_client() {
    let (_runtime, _actor, port) = probe("{}").await;
    // 1,200 idle connections, under the per-peer limit of each of 20
    // peers but over the server's 1,024.
    let mut idle = Vec::new();
    for from in 2..22 {
        for _ in 0..60 {
            idle.push(connect_from(from, port).await);
        }
    }
    client_is_served(port).await;
    client_is_served(port).await;
}

#[tokio::test]
async fn idle_and_keep_alive_connections_close_after_the_header_timeout() {
    let (_runtime, _actor, port) = probe("{ header_timeout_ms = 300 }").await;
    let mut silent = connect_from(2, port).await;
    let mut kept = connect_from(3, port).await;
    kept.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_head(&mut kept).await.starts_with("HTTP/1.1 200"));
    assert!(closed(&mut silent).await, "a connection that never spoke");
    assert!(closed(&mut kept).await, "a keep-alive connection left idle");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_is_answered_408_after_the_request_timeout() {
    let (_runtime, _actor, port) = probe("{ request_timeout_ms = 300 }").await;
    let answer = ask(
        2,
        port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a little",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    client_is_served(port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_actor_works_on_keep_their_seats() {
    let (_runtime, actor, port) = probe("{ max_connections = 2 }").await;
    let slow = b"GET /slow?ms=1500 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let busy = [
        tokio::spawn(ask(2, port, slow)),
        tokio::spawn(ask(3, port, slow)),
    ];
    // One request runs and the other waits in the actor's queue: both
    // are the actor's work now.
    let waited = tokio::time::timeout(PROMPTLY, async {
        while actor.queue_depth() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    waited.await.expect("both requests reach the actor");
    let refused = ask(4, port, GET_HELLO).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused:?}");
    for answer in busy {
        let answer = answer.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    }
    client_is_served(port).await;
}
