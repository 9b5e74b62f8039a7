//! The metrics endpoint and the dashboard against clients without the
//! token, clients that ask for too much, and peers that hold connections
//! open: no data leaks, every answer stays bounded, and a scrape still
//! gets through. Attackers connect from 127.0.0.2 and up.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use theater::TheaterRuntime;
use theater::dashboard::Dashboard;
use theater::metrics::{MetricsConfig, MetricsServer};
use theater::web::{MAX_WEB_CONNECTIONS, WebAccess};
use tokio::net::{TcpSocket, TcpStream};

use crate::common;

const TOKEN: &str = "watcher-secret";
/// A generous bound for anything that should happen at once.
const PROMPTLY: Duration = Duration::from_secs(10);

fn access() -> WebAccess {
    WebAccess {
        token: Some(TOKEN.into()),
        insecure: false,
    }
}

fn counted_runtime() -> TheaterRuntime {
    let mut config = theater::RuntimeConfig::ephemeral();
    config.home = Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("theater-home"));
    config.metrics = Some(MetricsConfig::default());
    TheaterRuntime::new(config).unwrap()
}

async fn dashboard(runtime: &TheaterRuntime) -> String {
    let dashboard = Dashboard::bind(runtime.clone(), "127.0.0.1:0", access())
        .await
        .unwrap();
    let url = format!("http://{}", dashboard.local_addr().unwrap());
    tokio::spawn(dashboard.serve());
    url
}

async fn connect_from(from: u8, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, from], 0)))?;
    socket.connect(to).await
}

#[tokio::test]
async fn the_dashboard_shows_nothing_without_the_token() {
    let runtime = common::runtime();
    let actor = common::spawn(&runtime, "counter").await;
    let url = dashboard(&runtime).await;
    let client = reqwest::Client::new();
    let id = actor.id();
    for path in [
        "/api/node".to_owned(),
        "/api/actors".to_owned(),
        "/api/tree".to_owned(),
        "/api/live".to_owned(),
        format!("/api/actors/{id}/chain"),
        format!("/api/actors/{id}/state"),
    ] {
        let anonymous = client.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
        let guessed = client
            .get(format!("{url}{path}"))
            .bearer_auth("guess")
            .send()
            .await
            .unwrap();
        assert_eq!(guessed.status(), 401, "{path}");
        let body = guessed.text().await.unwrap();
        assert!(!body.contains(&id.to_string()), "{path}: {body}");
    }
    // The page itself holds no data, only the code that asks for it.
    let page = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<title>Theater</title>"));
    assert!(!page.contains(&id.to_string()));
}

#[tokio::test]
async fn chain_pages_stay_bounded_whatever_they_ask_for() {
    let runtime = common::runtime();
    let actor = common::spawn(&runtime, "counter").await;
    for _ in 0..250 {
        common::request(&actor, serde_json::json!({}))
            .await
            .unwrap();
    }
    let url = dashboard(&runtime).await;
    let client = reqwest::Client::new();
    let get = |path: String| {
        let request = client.get(format!("{url}{path}")).bearer_auth(TOKEN);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            (status, serde_json::from_str::<Value>(&body).unwrap())
        }
    };
    let id = actor.id();
    let (status, page) = get(format!("/api/actors/{id}/chain?limit=1000000")).await;
    assert_eq!(status, 200);
    assert_eq!(
        page["events"].as_array().unwrap().len(),
        200,
        "at most a page"
    );
    assert_eq!(page["total"], 251);
    assert_eq!(page["start"], 51, "the newest page");
    assert_eq!(page["verified"], true);
    let (_, beyond) = get(format!("/api/actors/{id}/chain?start=99999999999")).await;
    assert_eq!(beyond["events"].as_array().unwrap().len(), 0);
    let (status, _) = get("/api/actors/not-an-id/chain".to_owned()).await;
    assert_eq!(status, 400);
    let unknown = theater::ActorId::new();
    let (status, _) = get(format!("/api/actors/{unknown}/chain")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn live_streams_are_limited_and_their_seats_come_back() {
    let runtime = common::runtime();
    let url = dashboard(&runtime).await;
    let client = reqwest::Client::new();
    let open = || {
        client
            .get(format!("{url}/api/live"))
            .bearer_auth(TOKEN)
            .send()
    };
    let mut streams = Vec::new();
    for _ in 0..16 {
        let stream = open().await.unwrap();
        assert_eq!(stream.status(), 200);
        streams.push(stream);
    }
    assert_eq!(open().await.unwrap().status(), 503);
    drop(streams.pop());
    let deadline = Instant::now() + PROMPTLY;
    loop {
        let stream = open().await.unwrap();
        if stream.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream's seat never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn idle_connections_do_not_lock_out_a_scrape() {
    let runtime = counted_runtime();
    let server = MetricsServer::bind(runtime, "127.0.0.1:0", access())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve());
    // More silent connections than there are seats, from several peers.
    let mut idle = Vec::new();
    for i in 0..MAX_WEB_CONNECTIONS + 8 {
        let from = 2 + (i % 6) as u8;
        idle.push(connect_from(from, addr).await.unwrap());
    }
    let scrape = tokio::time::timeout(
        PROMPTLY,
        reqwest::Client::new()
            .get(format!("http://{addr}/metrics"))
            .bearer_auth(TOKEN)
            .send(),
    )
    .await
    .expect("the scrape is answered promptly")
    .unwrap();
    assert_eq!(scrape.status(), 200);
    assert!(scrape.text().await.unwrap().contains("theater_actors"));
}
