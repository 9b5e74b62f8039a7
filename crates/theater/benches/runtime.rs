//! What Theater costs on top of raw wasmtime. Run with `cargo xtask bench`.
//!
//! Every figure is measured twice in the same run, through Theater and with
//! plain wasmtime on the same component and the same engine configuration,
//! and printed as `ratio <name> = <ours / raw>`: 1.0 means as cheap as raw
//! wasmtime. Lines ending in `pieces` time parts of Theater's work alone.
//! `docs/benchmarks.md` explains each figure.

#[path = "support/mod.rs"]
mod support;

use std::future::{Future, poll_fn};
use std::process::Command;
use std::task::Poll;
use std::time::{Duration, Instant};
use support::raw::{RawComponent, RawHost};
use support::{actor_manifest, counter_manifest, rss_bytes};

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use theater::actor::now_ms;
use theater::chain::ChainEvent;
use theater::chain::record::{self, CallRecord, StateDigest};
use theater::host::{HANDLE_REQUEST, HANDLE_SEND, HandlerSet};
use theater::metrics::MetricsConfig;
use theater::telemetry::Traces;
use theater::wasm::{Bytes, ComponentCache};
use theater::{ActorHandle, ActorId, Manifest, RuntimeConfig, TheaterRuntime};
use tokio::runtime::Runtime;
use wasmtime::Store;
use wasmtime::component::{Instance, TypedFunc};

/// Rounds per figure; the median is reported.
const ROUNDS: usize = 7;
/// Pairs of rounds (off, then on) of the observed-call figure, whose
/// difference is small beside the noise of a shared machine.
const OBSERVED_ROUNDS: usize = 21;
/// How long one round should take.
const ROUND_TIME: Duration = Duration::from_millis(150);
/// Calls in flight in the pipelined variant.
const PIPELINE_DEPTH: u64 = 64;
/// Most actors (or raw instances) alive at once while spawning.
const SPAWN_BATCH: u64 = 200;
/// Untimed pause after a batch is stopped: actors are torn down after
/// `stop` answers, and that must not overlap the next timed batch.
const SETTLE: Duration = Duration::from_millis(20);
/// Actors (or raw instances) whose memory is measured.
const IDLE_ACTORS: usize = 1000;
const MESSAGE: &[u8] = br#"{"add":1}"#;
const MESSAGE_SERVER: &str = "ntwk:theater/message-server-client";

type State = Option<Vec<u8>>;
type HandleSend = TypedFunc<(State, (Vec<u8>,)), (Result<(State,), String>,)>;
type Init = TypedFunc<(State, (String,)), (Result<(State,), String>,)>;

fn main() {
    // `cargo bench` passes `--bench`; unknown arguments are ignored.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let manifest = counter_manifest();
    if let [flag, kind, ..] = args.as_slice()
        && flag == "__rss"
    {
        println!("{}", idle_rss_per_actor(kind, &manifest));
        return;
    }

    let rt = Runtime::new().expect("tokio runtime");
    if args.iter().any(|a| a == "observed") {
        observed_call(&rt, &manifest);
        return;
    }
    let runtime = rt
        .block_on(async { TheaterRuntime::new(RuntimeConfig::ephemeral()) })
        .expect("theater runtime");
    let raw = Raw::new(&manifest);
    println!("theater runtime bench: medians of {ROUNDS} rounds of ~{ROUND_TIME:?}");
    let raw_call = recorded_call(&rt, &runtime, &raw, &manifest);
    spawn(&rt, &runtime, &raw, &manifest);
    messaging(&rt, &runtime, raw_call);
    idle_actor_rss();
    observed_call(&rt, &manifest);
}

/// 1. A recorded call against a raw typed call of the same export.
///
/// Returns the raw call's cost, the baseline of the messaging figures.
fn recorded_call(
    rt: &Runtime,
    runtime: &TheaterRuntime,
    raw: &Raw,
    manifest: &Manifest,
) -> Duration {
    let actor = rt.block_on(runtime.spawn(manifest)).expect("spawn");
    let (mut store, instance, mut state) = rt.block_on(raw.spawn());
    let handle_send: HandleSend =
        raw.component
            .func(&instance, &mut store, MESSAGE_SERVER, "handle-send");
    let (ours, baseline) = measure_pair(
        |n| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    send(&actor).await;
                }
                start.elapsed()
            })
        },
        |n| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    let params = (state.take(), (MESSAGE.to_vec(),));
                    let (result,) = handle_send
                        .call_async(&mut store, params)
                        .await
                        .expect("raw handle-send");
                    state = result.expect("raw handle-send returns Ok").0;
                }
                start.elapsed()
            })
        },
    );
    let pipelined = measure(PIPELINE_DEPTH, |n| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                join_in_order((0..PIPELINE_DEPTH).map(|_| send(&actor))).await;
            }
            start.elapsed()
        })
    });
    let from_task = measure(1, |n| {
        let actor = actor.clone();
        rt.block_on(async {
            let caller = tokio::spawn(async move {
                let start = Instant::now();
                for _ in 0..n {
                    send(&actor).await;
                }
                start.elapsed()
            });
            caller.await.expect("caller task")
        })
    });
    rt.block_on(runtime.stop(actor.id())).expect("stop");
    report("recorded_call", "call", ours, baseline);
    report("recorded_call_pipelined", "call", pipelined, baseline);

    // What the call adds, piece by piece.
    let json = measure(1, |n| {
        let start = Instant::now();
        for _ in 0..n {
            let params = serde_json::value::to_raw_value(&(Bytes(MESSAGE.to_vec()),)).unwrap();
            let params: (Bytes,) = serde_json::from_str(params.get()).unwrap();
            let result = serde_json::value::to_raw_value(&()).unwrap();
            let (): () = serde_json::from_str(result.get()).unwrap();
            std::hint::black_box(params);
        }
        start.elapsed()
    });
    let params = serde_json::value::to_raw_value(&(Bytes(MESSAGE.to_vec()),)).unwrap();
    let result = serde_json::value::to_raw_value(&()).unwrap();
    let mut head = None;
    let commit = measure(1, |n| {
        let start = Instant::now();
        for _ in 0..n {
            let data = record::encode(&CallRecord {
                function: HANDLE_SEND,
                from: None,
                params: &params,
                result: &result,
                state: StateDigest::of(&state),
                added: None,
            });
            let event =
                ChainEvent::new(head, record::CALL, data, now_ms(), "handle-send ok".into());
            head = Some(event.hash);
        }
        start.elapsed()
    });
    let rest = ours.saturating_sub(baseline + json + commit);
    println!(
        "recorded_call pieces: wasm call {} µs, JSON params and result {} µs, call record \
         and 2 SHA-256 {} µs, rest (the actor's lock, span, metrics, state copy) {} µs; \
         whole call from a tokio task instead of block_on {} µs",
        micros(baseline),
        micros(json),
        micros(commit),
        micros(rest),
        micros(from_task)
    );
    baseline
}

/// 4. A recorded call with metrics and tracing on, against both off.
///
/// On, every call is counted and timed and its span exported, in batches,
/// to an exporter that discards them. Rounds of the two alternate.
fn observed_call(rt: &Runtime, manifest: &Manifest) {
    let plain = TheaterRuntime::new(RuntimeConfig::ephemeral()).expect("theater runtime");
    let mut config = RuntimeConfig::ephemeral();
    config.metrics = Some(MetricsConfig::default());
    config.traces = Some(Traces::export_to(DiscardSpans));
    let observed = TheaterRuntime::new(config).expect("theater runtime");
    let plain_actor = rt.block_on(plain.spawn(manifest)).expect("spawn");
    let observed_actor = rt.block_on(observed.spawn(manifest)).expect("spawn");
    let calls = |actor: &ActorHandle, n: u64| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                send(actor).await;
            }
            start.elapsed()
        })
    };
    // As many calls per round as fill a round with both off.
    let n = {
        let once = measure(1, |n| calls(&plain_actor, n));
        (ROUND_TIME.as_secs_f64() / once.as_secs_f64()).ceil() as u64
    };
    // Each round of calls with both off is followed by one with both on;
    // the figure is the median of the pairs' ratios, so that a machine
    // slowing down for a while weighs on both sides of a pair alike.
    let mut pairs: Vec<(Duration, Duration)> = (0..OBSERVED_ROUNDS)
        .map(|_| {
            let off = calls(&plain_actor, n) / n as u32;
            (off, calls(&observed_actor, n) / n as u32)
        })
        .collect();
    let ratio = |(off, on): &(Duration, Duration)| on.as_secs_f64() / off.as_secs_f64();
    pairs.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
    let (off, on) = pairs[OBSERVED_ROUNDS / 2];
    println!(
        "observed_call: metrics and tracing on {} µs/call, off {} µs/call (the median pair of {OBSERVED_ROUNDS})",
        micros(on),
        micros(off)
    );
    println!("ratio observed_call = {:.2}", ratio(&(off, on)));
}

/// Takes every span and keeps none: the cost measured is the spans' own.
#[derive(Debug)]
struct DiscardSpans;

impl SpanExporter for DiscardSpans {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        std::hint::black_box(batch);
        Ok(())
    }
}

/// 3. Actor-to-actor messages, per message, against one raw typed call.
///
/// `send`: a messenger sends `{"add":1}` to a counter, `MESSAGE_BURST` per
/// call, timed until the counter has handled them all. `request`: round
/// trips, a ping-pong actor asks another `MESSAGE_BURST` times per call.
fn messaging(rt: &Runtime, runtime: &TheaterRuntime, raw_call: Duration) {
    const MESSAGE_BURST: u64 = 1000;
    let mut receiver = counter_manifest();
    // Room for a whole burst: the sender outpaces the receiver.
    receiver.limits.queue_capacity = MESSAGE_BURST as usize * 2;
    let (counter, messenger, ping, pong) = rt.block_on(async {
        (
            runtime.spawn(&receiver).await.expect("counter"),
            runtime
                .spawn(&actor_manifest("messenger"))
                .await
                .expect("messenger"),
            runtime
                .spawn(&actor_manifest("ping-pong"))
                .await
                .expect("ping"),
            runtime
                .spawn(&actor_manifest("ping-pong"))
                .await
                .expect("pong"),
        )
    });
    let command = |actor: &ActorHandle, command: serde_json::Value| {
        let actor = actor.clone();
        async move {
            actor
                .call_function::<(Vec<u8>,), (Vec<u8>,)>(
                    HANDLE_REQUEST,
                    (command.to_string().into_bytes(),),
                )
                .await
                .expect("command")
        }
    };
    let burst = serde_json::json!({"send_many": {"to": counter.id().to_string(), "msg": {"add": 1}, "count": MESSAGE_BURST}});
    let send = measure(MESSAGE_BURST, |n| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                command(&messenger, burst.clone()).await;
                // Queued behind every message of the burst.
                counter.state().await.expect("counter state");
            }
            start.elapsed()
        })
    });
    let play =
        serde_json::json!({"play": {"with": pong.id().to_string(), "rounds": MESSAGE_BURST}});
    let request = measure(MESSAGE_BURST, |n| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                command(&ping, play.clone()).await;
            }
            start.elapsed()
        })
    });
    report("actor_send", "message", send, raw_call);
    report("actor_request", "round trip", request, raw_call);
    let rate = |cost: Duration| 1.0 / cost.as_secs_f64();
    println!(
        "actor messaging: send {:.0} messages/s ({:.0}% of the raw call rate), request {:.0} round trips/s ({:.0}%)",
        rate(send),
        100.0 * raw_call.as_secs_f64() / send.as_secs_f64(),
        rate(request),
        100.0 * raw_call.as_secs_f64() / request.as_secs_f64()
    );
    rt.block_on(async {
        for actor in [&counter, &messenger, &ping, &pong] {
            runtime.stop(actor.id()).await.expect("stop");
        }
    });
}

/// 2. A spawn of a cached component against instantiate + `init`.
fn spawn(rt: &Runtime, runtime: &TheaterRuntime, raw: &Raw, manifest: &Manifest) {
    let theater_spawns = |n| {
        rt.block_on(async {
            let mut elapsed = Duration::ZERO;
            for batch in batches(n) {
                let start = Instant::now();
                let mut ids = Vec::with_capacity(batch as usize);
                for _ in 0..batch {
                    ids.push(runtime.spawn(manifest).await.expect("spawn").id());
                }
                elapsed += start.elapsed();
                for id in ids {
                    runtime.stop(id).await.expect("stop");
                }
                tokio::time::sleep(SETTLE).await;
            }
            elapsed
        })
    };
    let raw_spawns = |n| {
        rt.block_on(async {
            let mut elapsed = Duration::ZERO;
            for batch in batches(n) {
                let start = Instant::now();
                let mut instances = Vec::with_capacity(batch as usize);
                for _ in 0..batch {
                    instances.push(raw.spawn().await);
                }
                elapsed += start.elapsed();
                drop(instances);
            }
            elapsed
        })
    };
    let (ours, baseline) = measure_pair(theater_spawns, raw_spawns);
    report("spawn", "actor", ours, baseline);

    // Finding the cached component, which raw wasmtime does not need to do.
    let engine = theater::wasm::new_engine().expect("engine");
    let linker = HandlerSet::builtin().linker(&engine).expect("linker");
    let cache = ComponentCache::new(engine, linker, None);
    let path = &manifest.component_path;
    let load = measure(1, |n| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                cache.load(path).await.expect("load");
            }
            start.elapsed()
        })
    });
    println!(
        "spawn pieces: instantiate + init {} µs, cached component lookup {} µs, rest \
         (grants, exports, genesis event, registry) about {} µs",
        micros(baseline),
        micros(load),
        micros(ours.saturating_sub(baseline + load))
    );
}

/// 3. Memory of idle actors against raw instances, each in a fresh process.
fn idle_actor_rss() {
    let ours = rss_in_child("theater");
    let baseline = rss_in_child("raw");
    println!(
        "idle_actor_rss: theater {:.1} KiB/actor, raw wasmtime {:.1} KiB/instance \
         ({IDLE_ACTORS} of each)",
        ours / 1024.0,
        baseline / 1024.0
    );
    println!("ratio idle_actor_rss = {:.2}", ours / baseline);
}

/// One `{"add":1}` message through the actor's queue, adapter and chain.
async fn send(actor: &ActorHandle) {
    actor
        .call_function::<(Bytes,), ()>(HANDLE_SEND, (Bytes(MESSAGE.to_vec()),))
        .await
        .expect("handle-send");
}

/// Median time per operation. `run(n)` performs `n * unit` operations and
/// returns how long they took. A discarded first run absorbs first-use
/// costs; the next runs find an `n` that fills [`ROUND_TIME`].
fn measure(unit: u64, mut run: impl FnMut(u64) -> Duration) -> Duration {
    let n = round_size(&mut run);
    let mut per_op: Vec<Duration> = (0..ROUNDS).map(|_| run(n) / (n * unit) as u32).collect();
    per_op.sort();
    per_op[ROUNDS / 2]
}

/// [`measure`] of Theater and of its baseline, their rounds taken in
/// turn, so that a machine slowing down for a while (other work, a
/// throttled core) weighs on both figures alike.
fn measure_pair(
    mut ours: impl FnMut(u64) -> Duration,
    mut baseline: impl FnMut(u64) -> Duration,
) -> (Duration, Duration) {
    let (n, m) = (round_size(&mut ours), round_size(&mut baseline));
    let (mut ours_per_op, mut baseline_per_op) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        ours_per_op.push(ours(n) / n as u32);
        baseline_per_op.push(baseline(m) / m as u32);
    }
    ours_per_op.sort();
    baseline_per_op.sort();
    (ours_per_op[ROUNDS / 2], baseline_per_op[ROUNDS / 2])
}

/// How many operations fill a round of about [`ROUND_TIME`].
fn round_size(run: &mut impl FnMut(u64) -> Duration) -> u64 {
    run(1);
    let mut n = 1;
    let mut took = run(n);
    while took < ROUND_TIME / 8 {
        n *= 2;
        took = run(n);
    }
    (n as f64 * ROUND_TIME.as_secs_f64() / took.as_secs_f64()).ceil() as u64
}

/// `n` split into batches of at most [`SPAWN_BATCH`].
fn batches(n: u64) -> impl Iterator<Item = u64> {
    (0..n.div_ceil(SPAWN_BATCH)).map(move |i| (n - i * SPAWN_BATCH).min(SPAWN_BATCH))
}

fn report(name: &str, per: &str, ours: Duration, baseline: Duration) {
    println!(
        "{name}: theater {} µs/{per}, raw wasmtime {} µs/{per}",
        micros(ours),
        micros(baseline)
    );
    println!(
        "ratio {name} = {:.2}",
        ours.as_secs_f64() / baseline.as_secs_f64()
    );
}

fn micros(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e6)
}

/// Awaits every future. Each is polled once before any is waited for, so
/// all of them start (here: are queued) at once.
async fn join_in_order<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut slots: Vec<_> = futures.into_iter().map(|f| (Box::pin(f), None)).collect();
    poll_fn(|cx| {
        for (future, output) in &mut slots {
            if let Poll::Ready(value) = future.as_mut().poll(cx) {
                *output = Some(value);
            }
        }
        Poll::Ready(())
    })
    .await;
    let mut outputs = Vec::with_capacity(slots.len());
    for (future, output) in slots {
        outputs.push(match output {
            Some(value) => value,
            None => future.await,
        });
    }
    outputs
}

/// The counter component on plain wasmtime, with Theater's engine settings.
struct Raw {
    component: RawComponent,
    init_state: State,
}

impl Raw {
    fn new(manifest: &Manifest) -> Self {
        let component = RawComponent::load(&manifest.component_path, |linker, _| {
            linker.instance("ntwk:theater/types").expect("types");
        });
        Self {
            component,
            init_state: manifest.init_state.clone(),
        }
    }

    /// A new store and instance, after `actor.init`.
    async fn spawn(&self) -> (Store<RawHost>, Instance, State) {
        let (mut store, instance) = self.component.instantiate().await;
        let init: Init = self
            .component
            .func(&instance, &mut store, "ntwk:theater/actor", "init");
        let params = (self.init_state.clone(), (ActorId::new().to_string(),));
        let (result,) = init.call_async(&mut store, params).await.expect("init");
        let (state,) = result.expect("init returns Ok");
        (store, instance, state)
    }
}

/// Runs this bench again as `__rss <kind>` and reads the figure it prints.
fn rss_in_child(kind: &str) -> f64 {
    let exe = std::env::current_exe().expect("path of the bench binary");
    let output = Command::new(exe)
        .args(["__rss", kind])
        .output()
        .expect("run the rss child");
    assert!(
        output.status.success(),
        "the `{kind}` rss child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim().parse().expect("the rss child prints a number")
}

/// In a fresh process: bytes of RSS added per idle actor (`theater`) or per
/// raw store and instance (`raw`), after one of each as a warm-up.
fn idle_rss_per_actor(kind: &str, manifest: &Manifest) -> f64 {
    let rt = Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        match kind {
            "theater" => {
                let runtime = TheaterRuntime::new(RuntimeConfig::ephemeral()).expect("runtime");
                let mut actors = vec![runtime.spawn(manifest).await.expect("spawn")];
                let before = rss_bytes();
                for _ in 0..IDLE_ACTORS {
                    actors.push(runtime.spawn(manifest).await.expect("spawn"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                (rss_bytes() - before) / IDLE_ACTORS as f64
            }
            "raw" => {
                let raw = Raw::new(manifest);
                let mut instances = vec![raw.spawn().await];
                let before = rss_bytes();
                for _ in 0..IDLE_ACTORS {
                    instances.push(raw.spawn().await);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                (rss_bytes() - before) / IDLE_ACTORS as f64
            }
            other => panic!("unknown rss kind `{other}`"),
        }
    })
}
