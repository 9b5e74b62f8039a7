//! The filesystem capability through the real `file-notes` actor: every
//! function, confinement to the granted directory (each way out tried and
//! denied), allow-listed commands with their limits, spawn errors, and the
//! chain.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{failure, host_calls, request};
use crate::common::{runtime, spawn_with};
use serde_json::{Value, json};
use tempfile::TempDir;
use theater::{ActorHandle, TheaterRuntime};

/// A directory holding `secret` (which actors must never reach) and
/// `granted/`, the directory the actor gets.
struct Sandbox {
    outer: TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let outer = tempfile::tempdir().unwrap();
        std::fs::write(outer.path().join("secret"), "top secret").unwrap();
        std::fs::create_dir(outer.path().join("granted")).unwrap();
        Self { outer }
    }

    fn outer(&self) -> &Path {
        self.outer.path()
    }

    fn granted(&self) -> PathBuf {
        self.outer.path().join("granted")
    }
}

/// The file-notes component with the filesystem config `config`.
async fn notes_with(
    runtime: &TheaterRuntime,
    config: &str,
) -> Result<ActorHandle, theater::SpawnError> {
    let manifest = format!(
        "name = \"file-notes\"\ncomponent_path = \"file-notes.wasm\"\n\n[[handlers]]\ntype = \"message-server\"\nconfig = {{}}\n\n[[handlers]]\ntype = \"filesystem\"\nconfig = {config}\n"
    );
    spawn_with(runtime, "file-notes", &manifest).await
}

/// file-notes on the sandbox's granted directory, allowed `echo`, `pwd`
/// and `sleep`, with commands cut off after 300 ms.
async fn notes_in(runtime: &TheaterRuntime, sandbox: &Sandbox) -> ActorHandle {
    let config = format!(
        "{{ path = \"{}\", allowed_commands = [\"echo\", \"pwd\", \"sleep\"], command_timeout_ms = 300 }}",
        sandbox.granted().display()
    );
    notes_with(runtime, &config)
        .await
        .expect("file-notes spawns")
}

/// A runtime, a sandbox, and `file-notes` granted the sandbox's directory.
async fn granted_notes() -> (TheaterRuntime, Sandbox, ActorHandle) {
    let runtime = runtime();
    let sandbox = Sandbox::new();
    let notes = notes_in(&runtime, &sandbox).await;
    (runtime, sandbox, notes)
}

/// Asserts `command` is refused as a way out, and that the actor keeps
/// serving with its state untouched.
async fn assert_denied(notes: &ActorHandle, command: Value, expected: &str) {
    let before = request(notes, json!({ "state": null })).await.unwrap();
    let err = failure(request(notes, command.clone()).await);
    assert!(err.contains("access denied"), "{command}: {err}");
    assert!(err.contains(expected), "{command}: {err}");
    assert_eq!(
        request(notes, json!({ "state": null })).await.unwrap(),
        before,
        "the state changed after {command}"
    );
    assert_eq!(
        request(notes, json!({ "exists": "notes" })).await.unwrap(),
        json!({ "exists": true }),
        "the actor stopped serving after {command}"
    );
}

#[tokio::test]
async fn notes_are_written_read_listed_and_deleted() {
    let (runtime, sandbox, notes) = granted_notes().await;

    for (name, text) in [("shopping", "milk, eggs"), ("todo", "write tests")] {
        let reply = request(&notes, json!({ "write": { "name": name, "text": text } }))
            .await
            .unwrap();
        assert_eq!(reply, json!({ "written": name }));
    }
    assert_eq!(
        std::fs::read_to_string(sandbox.granted().join("notes/shopping")).unwrap(),
        "milk, eggs"
    );
    assert_eq!(
        request(&notes, json!({ "read": "todo" })).await.unwrap(),
        json!({ "name": "todo", "text": "write tests" })
    );
    assert_eq!(
        request(&notes, json!({ "list": null })).await.unwrap(),
        json!({ "notes": ["shopping", "todo"] })
    );
    assert_eq!(
        request(&notes, json!({ "delete": "shopping" }))
            .await
            .unwrap(),
        json!({ "deleted": "shopping" })
    );
    assert_eq!(
        request(&notes, json!({ "list": null })).await.unwrap(),
        json!({ "notes": ["todo"] })
    );
    let err = failure(request(&notes, json!({ "read": "shopping" })).await);
    assert!(err.contains("cannot read `notes/shopping`"), "{err}");
    assert_eq!(
        request(&notes, json!({ "state": null })).await.unwrap(),
        json!({ "writes": 2 })
    );

    // The chain has each call: paths, sizes and the start of the content.
    let writes = host_calls(&runtime, &notes, "ntwk:theater/filesystem.write-file");
    assert_eq!(writes.len(), 2);
    assert_eq!(
        writes[0]["params"],
        json!(["notes/shopping", { "bytes": 10, "head": "milk, eggs" }])
    );
    assert_eq!(writes[0]["result"], json!({ "ok": null }));
    let reads = host_calls(&runtime, &notes, "ntwk:theater/filesystem.read-file");
    assert_eq!(
        reads[0]["result"]["ok"],
        json!({ "bytes": 11, "head": "write tests" })
    );
    assert!(reads[1]["result"]["err"].is_string());
    let lists = host_calls(&runtime, &notes, "ntwk:theater/filesystem.list-files");
    assert_eq!(lists[1]["result"]["ok"], json!(["todo"]));
}

#[tokio::test]
async fn every_filesystem_function_works_inside_the_granted_directory() {
    let (runtime, sandbox, notes) = granted_notes().await;
    let exists = |path: &str| json!({ "exists": path });

    assert_eq!(
        request(&notes, json!({ "mkdir": "d/e" })).await.unwrap(),
        json!({ "created": "d/e" })
    );
    assert!(sandbox.granted().join("d/e").is_dir());
    // Creating it again is fine.
    request(&notes, json!({ "mkdir": "d/e" })).await.unwrap();
    let write = json!({ "write_path": { "path": "d/e/f.txt", "text": "hello" } });
    request(&notes, write).await.unwrap();
    assert_eq!(
        request(&notes, json!({ "list_path": "d/e" }))
            .await
            .unwrap(),
        json!({ "files": ["f.txt"] })
    );
    assert_eq!(
        request(&notes, json!({ "read_path": "./d/x/../e/f.txt" }))
            .await
            .unwrap(),
        json!({ "path": "./d/x/../e/f.txt", "bytes": 5, "text": "hello" })
    );
    assert_eq!(
        request(&notes, exists("d/e/f.txt")).await.unwrap(),
        json!({ "exists": true })
    );
    assert_eq!(
        request(&notes, exists("d/nope")).await.unwrap(),
        json!({ "exists": false })
    );
    assert_eq!(
        request(&notes, exists("no/such/dir")).await.unwrap(),
        json!({ "exists": false })
    );
    // A file the host put there is found by its relative path.
    std::fs::write(sandbox.granted().join("from-host"), [0xff, b'a']).unwrap();
    assert_eq!(
        request(&notes, json!({ "read_path": "from-host" }))
            .await
            .unwrap()["bytes"],
        2
    );
    assert_eq!(
        request(&notes, json!({ "list_path": "" })).await.unwrap(),
        json!({ "files": ["d", "from-host", "notes"] })
    );

    let err = failure(request(&notes, json!({ "delete_path": "d" })).await);
    assert!(err.contains("it is a directory; use delete-dir"), "{err}");
    let err = failure(request(&notes, json!({ "rmdir": "d/e/f.txt" })).await);
    assert!(
        err.contains("it is not a directory; use delete-file"),
        "{err}"
    );
    let err = failure(request(&notes, json!({ "rmdir": "." })).await);
    assert!(
        err.contains("it is the directory this actor was granted"),
        "{err}"
    );

    assert_eq!(
        request(&notes, json!({ "delete_path": "d/e/f.txt" }))
            .await
            .unwrap(),
        json!({ "deleted": "d/e/f.txt" })
    );
    assert_eq!(
        request(&notes, exists("d/e/f.txt")).await.unwrap(),
        json!({ "exists": false })
    );
    request(&notes, write_of("d/e/g.txt")).await.unwrap();
    assert_eq!(
        request(&notes, json!({ "rmdir": "d" })).await.unwrap(),
        json!({ "removed": "d" })
    );
    assert!(!sandbox.granted().join("d").exists());
    assert!(sandbox.granted().is_dir());

    let calls = host_calls(&runtime, &notes, "ntwk:theater/filesystem.path-exists");
    assert_eq!(
        calls[0],
        json!({
            "function": "ntwk:theater/filesystem.path-exists",
            "params": ["d/e/f.txt"],
            "result": { "ok": true },
        })
    );
    let calls = host_calls(&runtime, &notes, "ntwk:theater/filesystem.delete-dir");
    assert_eq!(calls.last().unwrap()["params"], json!(["d"]));
}

fn write_of(path: &str) -> Value {
    json!({ "write_path": { "path": path, "text": "x" } })
}

#[tokio::test]
async fn a_parent_dir_path_is_denied() {
    let (runtime, sandbox, notes) = granted_notes().await;
    request(&notes, json!({ "write": { "name": "n", "text": "t" } }))
        .await
        .unwrap();

    let outside = "leads outside the directory this actor was granted";
    assert_denied(&notes, json!({ "read_path": "../secret" }), outside).await;
    assert_denied(&notes, write_of("../planted"), outside).await;
    assert_denied(&notes, json!({ "list_path": ".." }), outside).await;
    assert_denied(&notes, json!({ "delete_path": "../secret" }), outside).await;
    assert_denied(&notes, json!({ "rmdir": "../granted" }), outside).await;
    assert_denied(&notes, json!({ "exists": "../secret" }), outside).await;
    assert_denied(&notes, json!({ "mkdir": "../made" }), outside).await;
    assert!(!sandbox.outer().join("planted").exists());
    assert!(!sandbox.outer().join("made").exists());
    assert!(sandbox.outer().join("secret").exists());

    let reads = host_calls(&runtime, &notes, "ntwk:theater/filesystem.read-file");
    assert_eq!(reads[0]["params"], json!(["../secret"]));
    assert!(
        reads[0]["result"]["err"]
            .as_str()
            .unwrap()
            .contains("access denied")
    );
}

#[tokio::test]
async fn an_absolute_path_is_denied() {
    let (_runtime, sandbox, notes) = granted_notes().await;

    let absolute = "is an absolute path";
    assert_denied(&notes, json!({ "read_path": "/etc/passwd" }), absolute).await;
    let secret = sandbox.outer().join("secret").display().to_string();
    assert_denied(&notes, json!({ "read_path": secret }), absolute).await;
    // Even one that names a file inside the granted directory.
    let inside = sandbox.granted().join("notes").display().to_string();
    assert_denied(&notes, json!({ "list_path": inside }), absolute).await;
    let planted = sandbox.outer().join("planted").display().to_string();
    assert_denied(&notes, write_of(&planted), absolute).await;
    assert!(!sandbox.outer().join("planted").exists());
}

#[tokio::test]
async fn a_symlink_inside_pointing_outside_is_denied() {
    let runtime = runtime();
    let sandbox = Sandbox::new();
    let granted = sandbox.granted();
    std::os::unix::fs::symlink(sandbox.outer(), granted.join("way-out")).unwrap();
    std::os::unix::fs::symlink(sandbox.outer().join("secret"), granted.join("secret-link"))
        .unwrap();
    std::os::unix::fs::symlink(sandbox.outer().join("ghost"), granted.join("dangling")).unwrap();
    let notes = notes_in(&runtime, &sandbox).await;

    let link = "through a symbolic link";
    assert_denied(&notes, json!({ "read_path": "secret-link" }), link).await;
    assert_denied(&notes, json!({ "read_path": "way-out/secret" }), link).await;
    assert_denied(&notes, json!({ "list_path": "way-out" }), link).await;
    assert_denied(&notes, write_of("way-out/planted"), link).await;
    assert_denied(&notes, write_of("secret-link"), link).await;
    assert_denied(&notes, json!({ "mkdir": "way-out/made" }), link).await;
    assert_denied(&notes, json!({ "rmdir": "way-out/granted" }), link).await;
    assert_denied(
        &notes,
        json!({ "run": { "dir": "way-out", "command": "pwd" } }),
        link,
    )
    .await;
    // A link to nowhere could create a file outside: refused too.
    let err = failure(request(&notes, write_of("dangling")).await);
    assert!(err.contains("cannot resolve `dangling`"), "{err}");
    assert!(!sandbox.outer().join("ghost").exists());
    assert!(!sandbox.outer().join("planted").exists());
    assert!(!sandbox.outer().join("made").exists());
    assert_eq!(
        std::fs::read_to_string(sandbox.outer().join("secret")).unwrap(),
        "top secret"
    );

    // Deleting a link removes the link, never what it points to.
    request(&notes, json!({ "delete_path": "secret-link" }))
        .await
        .unwrap();
    assert!(granted.join("secret-link").symlink_metadata().is_err());
    assert!(sandbox.outer().join("secret").exists());
    // A link that stays inside works.
    std::os::unix::fs::symlink(granted.join("notes"), granted.join("shortcut")).unwrap();
    request(
        &notes,
        json!({ "write": { "name": "n", "text": "via link" } }),
    )
    .await
    .unwrap();
    assert_eq!(
        request(&notes, json!({ "read_path": "shortcut/n" }))
            .await
            .unwrap()["text"],
        "via link"
    );
}

#[tokio::test]
async fn a_path_climbing_out_through_a_subdirectory_is_denied() {
    let (_runtime, sandbox, notes) = granted_notes().await;

    let outside = "leads outside the directory this actor was granted";
    assert_denied(
        &notes,
        json!({ "read_path": "notes/../../secret" }),
        outside,
    )
    .await;
    assert_denied(&notes, json!({ "read_path": "a/../../secret" }), outside).await;
    assert_denied(&notes, write_of("notes/./../../planted"), outside).await;
    // The notes commands build paths from names; a name cannot climb out either.
    assert_denied(&notes, json!({ "read": "../../secret" }), outside).await;
    assert!(!sandbox.outer().join("planted").exists());
    // Climbing down and back up, staying inside, is fine.
    request(&notes, write_of("notes/../inside")).await.unwrap();
    assert!(sandbox.granted().join("inside").exists());
}

#[tokio::test]
async fn allowed_commands_run_in_the_granted_directory_and_others_are_refused() {
    let (runtime, sandbox, notes) = granted_notes().await;
    request(&notes, json!({ "write": { "name": "n", "text": "t" } }))
        .await
        .unwrap();

    let echo = json!({ "run": { "command": "echo", "args": ["hello", "world"] } });
    assert_eq!(
        request(&notes, echo).await.unwrap(),
        json!({ "output": "hello world\n" })
    );
    let pwd = json!({ "run": { "dir": "notes", "command": "pwd" } });
    let reply = request(&notes, pwd).await.unwrap();
    let granted = sandbox.granted().canonicalize().unwrap();
    assert_eq!(
        reply["output"].as_str().unwrap().trim_end(),
        granted.join("notes").display().to_string()
    );
    // No shell: arguments are passed as they are.
    let literal = json!({ "run": { "command": "echo", "args": ["$HOME; ls"] } });
    assert_eq!(
        request(&notes, literal).await.unwrap(),
        json!({ "output": "$HOME; ls\n" })
    );

    for refused in ["ls", "/bin/echo", "sh", "echo "] {
        let run = json!({ "run": { "command": refused, "args": ["/"] } });
        let err = failure(request(&notes, run).await);
        assert!(
            err.contains(&format!("the command `{refused}` is not allowed")),
            "{err}"
        );
        assert!(err.contains("`allowed_commands`"), "{err}");
        assert!(err.contains("(allowed: echo, pwd, sleep)"), "{err}");
    }
    let err = failure(
        request(
            &notes,
            json!({ "run": { "dir": "nope", "command": "pwd" } }),
        )
        .await,
    );
    assert!(err.contains("`nope`"), "{err}");

    let err = failure(request(&notes, json!({ "nix": { "command": "build" } })).await);
    assert!(
        err.contains("execute-nix-command is not supported for this actor"),
        "{err}"
    );
    assert_eq!(
        request(&notes, json!({ "state": null })).await.unwrap(),
        json!({ "writes": 1 })
    );

    let runs = host_calls(&runtime, &notes, "ntwk:theater/filesystem.execute-command");
    assert_eq!(runs[0]["params"], json!(["", "echo", ["hello", "world"]]));
    assert_eq!(
        runs[0]["result"]["ok"],
        json!({ "bytes": 12, "head": "hello world\n" })
    );
}

#[tokio::test]
async fn a_command_that_runs_too_long_is_stopped() {
    let (_runtime, _sandbox, notes) = granted_notes().await;

    let started = Instant::now();
    let sleep = json!({ "run": { "command": "sleep", "args": ["5"] } });
    let err = failure(request(&notes, sleep).await);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "waited for the whole command"
    );
    assert!(
        err.contains("`sleep` did not finish within 300 ms and was stopped"),
        "{err}"
    );
    assert!(err.contains("`command_timeout_ms`"), "{err}");
    let quick = json!({ "run": { "command": "sleep", "args": ["0.01"] } });
    assert_eq!(
        request(&notes, quick).await.unwrap(),
        json!({ "output": "" })
    );
}

#[tokio::test]
async fn a_filesystem_config_without_a_directory_does_not_spawn() {
    let runtime = runtime();
    for config in ["{}", "{ new_dir = false, allowed_commands = [\"ls\"] }"] {
        let err = notes_with(&runtime, config).await.unwrap_err().to_string();
        assert!(
            err.contains("test-manifest.toml:9: handler `filesystem`"),
            "{err}"
        );
        assert!(err.contains("no directory granted"), "{err}");
        assert!(err.contains("`path = \"<directory>\"`"), "{err}");
        assert!(err.contains("`new_dir = true`"), "{err}");
    }
    let missing = "{ path = \"/no/such/theater/dir\" }";
    let err = notes_with(&runtime, missing).await.unwrap_err().to_string();
    assert!(
        err.contains("the directory `/no/such/theater/dir` cannot be used"),
        "{err}"
    );
}

#[tokio::test]
async fn a_fresh_directory_is_the_actors_own_and_is_removed_when_it_stops() {
    let runtime = runtime();
    let config = "{ new_dir = true, allowed_commands = [\"pwd\"] }";
    let first = notes_with(&runtime, config).await.unwrap();
    let second = notes_with(&runtime, config).await.unwrap();
    let dir_of = async |notes: &ActorHandle| {
        let reply = request(notes, json!({ "run": { "command": "pwd" } }))
            .await
            .unwrap();
        PathBuf::from(reply["output"].as_str().unwrap().trim_end())
    };
    let first_dir = dir_of(&first).await;
    let second_dir = dir_of(&second).await;
    assert_ne!(first_dir, second_dir);
    request(&first, json!({ "write": { "name": "a", "text": "b" } }))
        .await
        .unwrap();
    assert!(first_dir.join("notes/a").exists());
    assert_eq!(
        request(&second, json!({ "list": null })).await.unwrap(),
        json!({ "notes": [] })
    );

    runtime.stop(first.id()).await.unwrap();
    let waiting = Instant::now();
    while first_dir.exists() && waiting.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !first_dir.exists(),
        "the fresh directory outlived its actor"
    );
    assert!(second_dir.exists());
}
