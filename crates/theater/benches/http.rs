//! HTTP hello through the http-framework, against a plain axum server that
//! calls the same export. Run with `cargo xtask bench`.
//!
//! Both servers answer `GET /` with the `http-hello` actor's
//! `handle-request` export. Theater's goes through the actor's queue and
//! records the request in its chain; the baseline is axum calling the
//! export on an instance taken from a pool of ready ones (no queue, no
//! chain). [`CONNECTIONS`] keep-alive clients send requests one after the
//! other on the same tokio runtime. Prints requests/s, p50/p99 latency and
//! CPU time per request of each, and `ratio http_hello = <ours / baseline
//! requests/s>` (1.0 means as fast as the baseline). `docs/benchmarks.md`
//! explains it.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use support::actor_manifest;
use support::raw::{RawComponent, RawHost};
use theater::{Manifest, RuntimeConfig, TheaterRuntime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wasmtime::Store;
use wasmtime::component::{ComponentType, Lift, Lower, TypedFunc};

/// Keep-alive connections sending requests at once.
const CONNECTIONS: usize = 16;
/// Rounds per server; the median throughput is reported.
const ROUNDS: usize = 5;
/// How long one round sends requests.
const ROUND_TIME: Duration = Duration::from_millis(1500);
/// Sent before the timed rounds, to warm caches and pools.
const WARM_UP: Duration = Duration::from_millis(500);
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: bench\r\n\r\n";
const GREETING: &[u8] = b"Hello from Theater!";
/// The state `http-hello`'s `init` leaves (server 1; handler 1 answers `/`).
const HELLO_STATE: &str =
    r#"{"port":0,"server":1,"handlers":{"home":1,"greet":2,"guard":3},"greetings":0}"#;
const HOME_HANDLER: u64 = 1;

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let manifest = hello_manifest();
    println!(
        "http bench: GET / on http-hello, {CONNECTIONS} keep-alive connections, medians of {ROUNDS} rounds of {ROUND_TIME:?}"
    );
    let ours = rt.block_on(async {
        let runtime = TheaterRuntime::new(RuntimeConfig::ephemeral()).expect("theater runtime");
        let actor = runtime.spawn(&manifest).await.expect("http-hello spawns");
        let state = actor
            .state()
            .await
            .expect("state")
            .expect("http-hello has a state");
        let state: serde_json::Value = serde_json::from_slice(&state).expect("JSON state");
        let port = state["port"].as_u64().expect("a port") as u16;
        load(SocketAddr::from(([127, 0, 0, 1], port))).await
    });
    ours.print("theater (queue + chain)");
    let baseline = rt.block_on(async {
        let addr = pooled_server(&manifest).await;
        load(addr).await
    });
    baseline.print("axum + pooled instance");
    println!(
        "ratio http_hello = {:.2}",
        ours.per_second / baseline.per_second
    );
    println!(
        "http_hello CPU per request, theater over baseline: {:.2}",
        ours.cpu_per_request.as_secs_f64() / baseline.cpu_per_request.as_secs_f64()
    );
}

/// What the clients saw.
struct Figures {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    /// CPU time per request, the load's clients included.
    cpu_per_request: Duration,
}

impl Figures {
    fn print(&self, name: &str) {
        println!(
            "http_hello {name}: {:.0} requests/s, p50 {:.0} µs, p99 {:.0} µs, CPU {:.1} µs/request",
            self.per_second,
            self.p50.as_secs_f64() * 1e6,
            self.p99.as_secs_f64() * 1e6,
            self.cpu_per_request.as_secs_f64() * 1e6
        );
    }
}

/// Runs the warm-up and the rounds against `addr`.
async fn load(addr: SocketAddr) -> Figures {
    round(addr, WARM_UP).await;
    let mut rates = Vec::new();
    let mut latencies = Vec::new();
    let cpu_before = cpu_time();
    for _ in 0..ROUNDS {
        let (requests, took, mut times) = round(addr, ROUND_TIME).await;
        rates.push(requests as f64 / took.as_secs_f64());
        latencies.append(&mut times);
    }
    let cpu_per_request = (cpu_time() - cpu_before) / latencies.len() as u32;
    rates.sort_by(f64::total_cmp);
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    Figures {
        per_second: rates[ROUNDS / 2],
        p50: at(0.50),
        p99: at(0.99),
        cpu_per_request,
    }
}

/// CPU time this process has used, servers and clients together, from
/// `/proc/self/stat` (in clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name, which ends with the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat format") + 2..]
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> u64 { fields[i].parse().expect("a tick count") };
    // utime and stime, fields 14 and 15 of the line.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// [`CONNECTIONS`] clients sending for `time`: requests answered, the
/// time taken and each request's latency.
async fn round(addr: SocketAddr, time: Duration) -> (usize, Duration, Vec<Duration>) {
    let started = Instant::now();
    let until = started + time;
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| tokio::spawn(client(addr, until)))
        .collect();
    let mut latencies = Vec::new();
    for client in clients {
        latencies.append(&mut client.await.expect("client task"));
    }
    (latencies.len(), started.elapsed(), latencies)
}

/// One keep-alive connection sending `GET /` until `until`.
async fn client(addr: SocketAddr, until: Instant) -> Vec<Duration> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut buffer = Vec::with_capacity(1024);
    let mut latencies = Vec::new();
    while Instant::now() < until {
        let sent = Instant::now();
        stream.write_all(REQUEST).await.expect("send");
        let body = read_response(&mut stream, &mut buffer).await;
        assert_eq!(body, GREETING, "unexpected answer");
        latencies.push(sent.elapsed());
    }
    latencies
}

/// Reads one response with a `content-length`; returns its body.
async fn read_response<'a>(stream: &mut TcpStream, buffer: &'a mut Vec<u8>) -> &'a [u8] {
    buffer.clear();
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        read_more(stream, buffer).await;
    };
    let head = std::str::from_utf8(&buffer[..head_end]).expect("ASCII head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().expect("a length"))
        })
        .expect("a content-length");
    while buffer.len() < head_end + length {
        read_more(stream, buffer).await;
    }
    &buffer[head_end..head_end + length]
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) {
    let mut chunk = [0u8; 1024];
    let n = stream.read(&mut chunk).await.expect("read");
    assert!(n > 0, "the server closed the connection");
    buffer.extend_from_slice(&chunk[..n]);
}

/// `actors/http-hello`, on a free port.
fn hello_manifest() -> Manifest {
    let mut manifest = actor_manifest("http-hello");
    manifest.init_state = Some(br#"{"port": 0}"#.to_vec());
    manifest
}

// The baseline: axum and a pool of ready instances.

#[derive(ComponentType, Lower)]
#[component(record)]
struct HttpRequest {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

#[derive(ComponentType, Lift)]
#[component(record)]
struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

type HelloState = Option<Vec<u8>>;
type HandleRequest =
    TypedFunc<(HelloState, (u64, HttpRequest)), (Result<(HelloState, (HttpResponse,)), String>,)>;

/// An instance ready to answer, with its store.
struct Ready {
    store: Store<RawHost>,
    handle: HandleRequest,
}

struct Pool {
    component: RawComponent,
    ready: Mutex<Vec<Ready>>,
}

impl Pool {
    async fn take(&self) -> Ready {
        if let Some(ready) = self.ready.lock().expect("pool").pop() {
            return ready;
        }
        let (mut store, instance) = self.component.instantiate().await;
        let handle = self.component.func(
            &instance,
            &mut store,
            "ntwk:theater/http-handlers",
            "handle-request",
        );
        Ready { store, handle }
    }

    fn give_back(&self, ready: Ready) {
        self.ready.lock().expect("pool").push(ready);
    }
}

/// Starts the baseline server; returns its address.
async fn pooled_server(manifest: &Manifest) -> SocketAddr {
    // The handler calls no host function; `init` (not run here) would.
    let component = RawComponent::load(&manifest.component_path, |linker, component| {
        linker
            .define_unknown_imports_as_traps(component)
            .expect("stub imports");
    });
    let pool = Arc::new(Pool {
        component,
        ready: Mutex::new(Vec::new()),
    });
    let app = axum::Router::new()
        .route("/", axum::routing::get(pooled_hello))
        .with_state(pool);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// What the framework does for a request, minus queue and chain: the
/// request as the export takes it, the call, the response from its answer.
async fn pooled_hello(State(pool): State<Arc<Pool>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.expect("body");
    let request = HttpRequest {
        method: parts.method.as_str().to_owned(),
        uri: parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: (!body.is_empty()).then(|| body.to_vec()),
    };
    let mut ready = pool.take().await;
    let state = Some(HELLO_STATE.as_bytes().to_vec());
    let (result,) = ready
        .handle
        .call_async(&mut ready.store, (state, (HOME_HANDLER, request)))
        .await
        .expect("handle-request");
    pool.give_back(ready);
    let (_, (answer,)) = result.expect("handle-request answers Ok");
    let mut response = Response::new(Body::from(answer.body.unwrap_or_default()));
    *response.status_mut() = StatusCode::from_u16(answer.status).expect("a status");
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
