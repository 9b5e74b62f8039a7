//! The management server against clients that try to lock its operators
//! out: floods of connections that say a wrong `hello`, never speak, or
//! announce huge frames, and clients with the token that stall mid-frame.
//! Attackers connect from loopback addresses 127.0.0.2 and up, so the
//! server sees them as other peers than the operator on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use theater::server::protocol::Op;
use theater::server::{
    Client, ClientError, ErrorKind, Server, ServerConfig, ServerError, ServerLimits,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common;

const TOKEN: &str = "operator-secret";
/// A generous bound for anything that should happen at once.
const PROMPTLY: Duration = Duration::from_secs(10);

async fn server_with(limits: ServerLimits) -> SocketAddr {
    let config = ServerConfig {
        token: Some(TOKEN.into()),
        limits,
        ..ServerConfig::default()
    };
    common::serve(common::runtime(), config).await
}

/// A connection from 127.0.0.`from`.
async fn connect_from(from: u8, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, from], 0)))?;
    socket.connect(to).await
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

fn hello(token: &str) -> Vec<u8> {
    frame(
        json!({ "hello": { "version": 1, "token": token } })
            .to_string()
            .as_bytes(),
    )
}

/// The operator connects with the token and is answered, promptly.
async fn operator_is_served(addr: SocketAddr) {
    let served = async {
        let mut client = Client::connect(&addr.to_string(), Some(TOKEN)).await?;
        client.call(Op::Ping).await
    };
    let pong = tokio::time::timeout(PROMPTLY, served)
        .await
        .expect("the operator is answered within the bound")
        .unwrap_or_else(|e| panic!("the operator was refused: {e}"));
    assert_eq!(pong["pong"], true);
}

/// The next frame the server sends, as JSON; `None` once it closed.
async fn read_frame(stream: &mut TcpStream) -> Option<serde_json::Value> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).await.ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut body).await.ok()?;
    serde_json::from_slice(&body).ok()
}

/// How an attacker's connection misbehaves.
#[derive(Clone, Copy)]
enum Attack {
    /// Says hello with a wrong token, then holds the connection open.
    WrongToken,
    /// Never says a word.
    Silent,
    /// Announces a 16 MiB hello and sends the start of it.
    BigHello,
}

impl Attack {
    async fn open(self, from: u8, to: SocketAddr) -> Option<TcpStream> {
        let mut stream = connect_from(from, to).await.ok()?;
        let opening = match self {
            Self::WrongToken => hello("guess"),
            Self::Silent => return Some(stream),
            Self::BigHello => {
                let mut start = (16u32 << 20).to_be_bytes().to_vec();
                start.extend(std::iter::repeat_n(b' ', 64 * 1024));
                start
            }
        };
        // The server may close first; the attacker does not care.
        let _ = stream.write_all(&opening).await;
        Some(stream)
    }
}

/// Attackers on 127.0.0.`first`.. that open connections of `attack` in a
/// loop, each keeping its last `hold` open, until `stop`; counts the
/// connections opened.
fn flood(
    attack: Attack,
    peers: std::ops::Range<u8>,
    hold: usize,
    to: SocketAddr,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<()>> {
    peers
        .map(|from| {
            let (stop, opened) = (stop.clone(), opened.clone());
            tokio::spawn(async move {
                let mut held = std::collections::VecDeque::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(stream) = attack.open(from, to).await {
                        opened.fetch_add(1, Ordering::Relaxed);
                        held.push_back(stream);
                        if held.len() > hold {
                            held.pop_front();
                        }
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn floods_of_connections_do_not_lock_out_the_operator() {
    let addr = server_with(ServerLimits::default()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let hellos = Arc::new(AtomicUsize::new(0));
    let others = Arc::new(AtomicUsize::new(0));
    let mut attackers = flood(
        Attack::WrongToken,
        2..18,
        32,
        addr,
        stop.clone(),
        hellos.clone(),
    );
    attackers.extend(flood(
        Attack::Silent,
        18..34,
        32,
        addr,
        stop.clone(),
        others.clone(),
    ));
    attackers.extend(flood(
        Attack::BigHello,
        34..42,
        32,
        addr,
        stop.clone(),
        others.clone(),
    ));

    // The operator connects again and again while 10,000 wrong hellos
    // (and the silent and oversized connections around them) come in.
    let mut served = 0;
    while hellos.load(Ordering::Relaxed) < 10_000 {
        operator_is_served(addr).await;
        served += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        attacker.await.unwrap();
    }
    assert!(served > 0);
    eprintln!(
        "operator served {served} times during {} wrong hellos and {} silent or oversized connections",
        hellos.load(Ordering::Relaxed),
        others.load(Ordering::Relaxed)
    );
    operator_is_served(addr).await;
}

#[tokio::test]
async fn silent_connections_from_the_operators_own_address_give_way() {
    let addr = server_with(ServerLimits::default()).await;
    // More than the server once had seats for, from 127.0.0.1 too.
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(connect_from(1, addr).await.unwrap());
    }
    operator_is_served(addr).await;
    // The oldest of them were closed to make room, with a reason.
    let error = read_frame(&mut silent[0]).await.expect("a reason");
    assert_eq!(error["error"]["kind"], "too_many_connections", "{error}");
    assert!(read_frame(&mut silent[0]).await.is_none());
}

#[tokio::test]
async fn a_connection_that_never_says_hello_is_closed_after_the_hello_timeout() {
    let limits = ServerLimits {
        hello_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    };
    let addr = server_with(limits).await;
    let mut silent = connect_from(2, addr).await.unwrap();
    let error = tokio::time::timeout(PROMPTLY, read_frame(&mut silent))
        .await
        .expect("closed within the bound")
        .expect("with a reason");
    assert_eq!(error["error"]["kind"], "handshake_required", "{error}");
    assert!(read_frame(&mut silent).await.is_none());
}

#[tokio::test]
async fn a_big_hello_is_refused_before_its_bytes_are_read() {
    let addr = server_with(ServerLimits::default()).await;
    let mut big = Attack::BigHello.open(2, addr).await.unwrap();
    let error = tokio::time::timeout(PROMPTLY, read_frame(&mut big))
        .await
        .expect("answered at once")
        .expect("with a reason");
    assert_eq!(error["error"]["kind"], "frame_too_large", "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("8192"), "{message}");
    operator_is_served(addr).await;
}

/// Clients with the token that announce 16 MiB frames and stall hold the
/// shared budget only until the frame timeout; small requests never wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_large_frames_hold_the_budget_only_for_the_frame_timeout() {
    let limits = ServerLimits {
        frame_timeout: Duration::from_secs(2),
        ..ServerLimits::default()
    };
    let addr = server_with(limits).await;
    let announced = theater::server::MAX_FRAME_BYTES;
    let mut stalled = Vec::new();
    // Twice what the default 64 MiB budget lends at once.
    for from in 2..10 {
        let mut stream = connect_from(from, addr).await.unwrap();
        stream.write_all(&hello(TOKEN)).await.unwrap();
        assert!(read_frame(&mut stream).await.unwrap()["hello"].is_object());
        stream
            .write_all(&(announced as u32).to_be_bytes())
            .await
            .unwrap();
        stream.write_all(&vec![b' '; 1 << 20]).await.unwrap();
        stalled.push(stream);
    }
    // Small requests pass at once.
    operator_is_served(addr).await;
    // A large one waits for the budget, which the stalled frames give back.
    let mut client = Client::connect(&addr.to_string(), Some(TOKEN))
        .await
        .unwrap();
    let big = Op::Send {
        actor: "0".repeat(4 << 20),
        payload: theater::server::protocol::Payload::json(json!(1)),
    };
    let answer = tokio::time::timeout(PROMPTLY, client.call(big))
        .await
        .expect("answered once the stalled frames time out");
    assert!(
        matches!(&answer, Err(ClientError::Server(e)) if e.kind == ErrorKind::UnknownActor),
        "{answer:?}"
    );
    for mut stream in stalled {
        let error = read_frame(&mut stream).await.expect("a reason");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("did not arrive whole"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_server_on_all_interfaces_needs_a_token_or_insecure() {
    let bind = |config: ServerConfig| async move {
        Server::bind(common::runtime(), "0.0.0.0:0", config).await
    };
    let refused = bind(ServerConfig::default()).await.err().expect("refused");
    assert!(matches!(refused, ServerError::NoToken { .. }), "{refused}");
    let message = refused.to_string();
    assert!(
        message.contains("--token") && message.contains("--insecure"),
        "{message}"
    );
    let empty = ServerConfig {
        token: Some(String::new()),
        ..ServerConfig::default()
    };
    assert!(bind(empty).await.is_err(), "an empty token is no token");
    let with_token = ServerConfig {
        token: Some(TOKEN.into()),
        ..ServerConfig::default()
    };
    assert!(bind(with_token).await.is_ok());
    let insecure = ServerConfig {
        insecure: true,
        ..ServerConfig::default()
    };
    assert!(bind(insecure).await.is_ok());
    // Loopback needs neither.
    let loopback = Server::bind(common::runtime(), "127.0.0.1:0", ServerConfig::default()).await;
    assert!(loopback.is_ok());
}

#[tokio::test]
async fn nonsense_limits_are_refused_by_name() {
    let config = ServerConfig {
        limits: ServerLimits {
            max_connections: 0,
            ..ServerLimits::default()
        },
        ..ServerConfig::default()
    };
    let error = Server::bind(common::runtime(), "127.0.0.1:0", config)
        .await
        .err()
        .expect("refused");
    assert!(error.to_string().contains("`max_connections`"), "{error}");
}

#[tokio::test]
async fn a_client_cannot_use_the_operations_nodes_hand_each_other() {
    let runtime = common::runtime();
    let addr = common::serve(runtime.clone(), ServerConfig::default()).await;
    let mut client = Client::connect(&addr.to_string(), None).await.unwrap();
    // A manifest another node would have read, and its component's hash:
    // as a client's request, it starts nothing.
    let manifest = theater::Manifest::load(common::manifest_path("counter")).unwrap();
    let place = Op::Place {
        manifest: Box::new(manifest),
        component: "0".repeat(64),
    };
    let adopt = Op::Adopt {
        actor: theater::ActorId::new().to_string(),
    };
    for op in [place, adopt] {
        let name = op.name();
        let refused = client.call(op).await;
        assert!(
            matches!(&refused, Err(ClientError::Server(e))
                if e.kind == ErrorKind::BadRequest
                    && e.message.contains("passes between the nodes of a cluster")),
            "{name}: {refused:?}"
        );
    }
    assert_eq!(runtime.actor_count(), 0);
    // The connection goes on.
    let pong = client.call(Op::Ping).await.unwrap();
    assert_eq!(pong["pong"], true);
}
