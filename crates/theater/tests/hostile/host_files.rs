//! Unbounded or blocking reads: a manifest, `init_state` or component that
//! is a FIFO (an open that never returns), a device (`/dev/zero`: bytes
//! without end) or a file larger than its limit. Each is refused by name
//! before it is read, whether an operator starts it through the management
//! server or an actor spawns it, and the server answers other clients
//! meanwhile.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{actors_dir, request};
use crate::escalation::{spawner, try_spawn};
use serde_json::json;
use tempfile::TempDir;
use theater::server::protocol::Op;
use theater::server::{Client, ClientError, Server, ServerConfig};
use theater::{RuntimeConfig, TheaterRuntime};

/// Longest wait for an answer that must come: far more than any of them
/// takes, so only a server that stopped answering misses it.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(ANSWER_WITHIN, future)
        .await
        .unwrap_or_else(|_| panic!("no answer within {ANSWER_WITHIN:?}: {what}"))
}

/// A management server on a runtime of its own with two worker threads, as
/// on a small machine: one worker stuck in a read shows as a slow server.
fn serve(config: RuntimeConfig) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let threads = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        threads.block_on(async move {
            let theater = TheaterRuntime::new(config).unwrap();
            let server = Server::bind(theater, "127.0.0.1:0", ServerConfig::default())
                .await
                .unwrap();
            tx.send(server.local_addr().unwrap().to_string()).unwrap();
            server.serve().await;
        });
    });
    rx.recv().unwrap()
}

fn test_config() -> RuntimeConfig {
    let mut config = RuntimeConfig::ephemeral();
    config.home = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("theater-home"));
    config
}

/// A directory with a FIFO in it, whose blocked readers are let go when
/// it is dropped (a FIFO opened for reading waits for a writer).
struct Fifo {
    dir: TempDir,
}

impl Fifo {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let made = Command::new("mkfifo")
            .arg(dir.path().join("fifo"))
            .status()
            .unwrap();
        assert!(made.success());
        Self { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("fifo")
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        // Opening for writing without blocking succeeds only if someone is
        // stuck reading; closing it then gives them end-of-file.
        use std::os::unix::fs::OpenOptionsExt;
        for _ in 0..8 {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(0o4000) // O_NONBLOCK
                .open(self.path());
        }
    }
}

/// Manifests in `dir` that name `special` as the manifest itself, as the
/// `init_state` file, and as the component; each with what it names.
fn roles(dir: &Path, special: &Path) -> Vec<(&'static str, PathBuf)> {
    let echo = actors_dir().join("echo/echo.wasm");
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let special = special.display();
    vec![
        ("manifest", special.to_string().into()),
        (
            "init_state",
            write(
                "init-state.toml",
                format!(
                    "name = \"s\"\ncomponent_path = \"{}\"\ninit_state = \"{special}\"\n",
                    echo.display()
                ),
            ),
        ),
        (
            "component",
            write(
                "component.toml",
                format!("name = \"c\"\ncomponent_path = \"{special}\"\n"),
            ),
        ),
    ]
}

async fn start(addr: &str, manifest: &Path) -> Result<serde_json::Value, ClientError> {
    let mut client = Client::connect(addr, None).await?;
    client
        .call(Op::Start {
            manifest_path: Some(manifest.display().to_string()),
            manifest: None,
            base_dir: None,
            state: None,
            node: None,
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifos_and_devices_named_to_the_server_are_refused_while_it_keeps_answering() {
    let addr = serve(test_config());
    let fifo = Fifo::new();
    let scratch = tempfile::tempdir().unwrap();
    let mut attempts = Vec::new();
    for (special, kind) in [(fifo.path(), "FIFO"), ("/dev/zero".into(), "device")] {
        let dir = scratch.path().join(kind);
        std::fs::create_dir(&dir).unwrap();
        for (role, manifest) in roles(&dir, &special) {
            // Twice each: more stuck reads than the server has workers.
            for _ in 0..2 {
                let (addr, manifest) = (addr.clone(), manifest.clone());
                let task = tokio::spawn(async move { start(&addr, &manifest).await });
                attempts.push((role, kind, special.clone(), task));
            }
        }
    }
    // Another client is answered meanwhile.
    let mut neighbour = within("connecting", Client::connect(&addr, None))
        .await
        .unwrap();
    let counter = actors_dir().join("counter/manifest.toml");
    within(
        "a neighbour's start",
        neighbour.call(Op::List { all: false }),
    )
    .await
    .unwrap();
    within("a neighbour's start", async {
        start(&addr, &counter).await.unwrap()
    })
    .await;
    for (role, kind, special, task) in attempts {
        let answer = within(&format!("the {role} as a {kind}"), task)
            .await
            .unwrap();
        let error = match answer {
            Err(ClientError::Server(error)) => error.message,
            other => panic!("the {role} as a {kind} was not refused: {other:?}"),
        };
        assert!(
            error.contains(&special.display().to_string()) && error.contains("not a regular file"),
            "the {role} as a {kind}: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_larger_than_their_limit_are_refused_before_they_are_read() {
    let mut config = test_config();
    config.files.manifest_bytes = 4096;
    config.files.init_state_bytes = 4096;
    config.files.component_bytes = 1024 * 1024;
    let addr = serve(config);
    let scratch = tempfile::tempdir().unwrap();
    // Sparse: large to the reader, nothing on disk.
    let big = scratch.path().join("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(64 * 1024 * 1024)
        .unwrap();
    for (role, manifest) in roles(scratch.path(), &big) {
        let error = match within(role, start(&addr, &manifest)).await {
            Err(ClientError::Server(error)) => error.message,
            other => panic!("a {role} over its limit was not refused: {other:?}"),
        };
        assert!(
            error.contains("larger than the limit") && error.contains(&big.display().to_string()),
            "{role}: {error}"
        );
    }
    // Within the limits, the same server starts the actor.
    within(
        "a start",
        start(&addr, &actors_dir().join("echo/manifest.toml")),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_spawning_from_a_fifo_gets_an_error_and_keeps_serving() {
    let runtime = crate::common::runtime();
    let fifo = Fifo::new();
    let dir = fifo.dir.path();
    let parent = spawner(
        &runtime,
        &format!(
            "{{ spawn_from = [\"{}\", \"{}\"] }}",
            dir.display(),
            actors_dir().display()
        ),
        "",
    )
    .await;
    for (role, manifest) in roles(dir, &fifo.path()) {
        let error = within(role, try_spawn(&parent, &manifest.display().to_string()))
            .await
            .unwrap_err();
        assert!(
            error.contains("not a regular file") && error.contains("fifo"),
            "{role}: {error}"
        );
    }
    let children = within("the parent", request(&parent, json!({ "children": null })))
        .await
        .unwrap();
    assert_eq!(children, json!([]));
}
