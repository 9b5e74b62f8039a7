//! Capability escalation through spawn: a parent tries to give a child
//! more than it holds itself (capabilities, directories, commands, hosts,
//! variables, limits), or to read host files through the manifests it hands
//! to `spawn`. Every try is refused with an error naming the capability and
//! key, nothing is spawned, and the parent keeps serving.

use std::path::Path;

use crate::common::{manifest_for, request, runtime};
use serde_json::{Value, json};
use theater::{ActorError, ActorHandle, TheaterRuntime};

/// The hostile parent under `handlers` (TOML of `[[handlers]]` entries and
/// `[limits]`), always with a supervisor grant that may spawn from `actors/`.
pub async fn spawner(runtime: &TheaterRuntime, supervisor: &str, rest: &str) -> ActorHandle {
    let text = format!(
        "name = \"hostile-spawner\"\ncomponent_path = \"hostile-spawner.wasm\"\n\n[[handlers]]\ntype = \"supervisor\"\nconfig = {supervisor}\n\n{rest}"
    );
    runtime
        .spawn(&manifest_for("hostile-spawner", &text))
        .await
        .expect("the hostile spawner starts")
}

/// A spawner that may spawn from `actors/` and holds nothing else.
pub async fn bare_spawner(runtime: &TheaterRuntime) -> ActorHandle {
    spawner(runtime, "{ spawn_from = [\"..\"] }", "").await
}

/// Asks `parent` to spawn `manifest`; the error it got, or the child's id.
pub async fn try_spawn(parent: &ActorHandle, manifest: &str) -> Result<String, String> {
    match request(parent, json!({ "spawn": manifest })).await {
        Ok(id) => Ok(id.as_str().expect("an id").to_owned()),
        Err(ActorError::Failed { message, .. }) => Err(message),
        Err(other) => panic!("the spawn call itself failed: {other}"),
    }
}

/// Spawning `manifest` must be refused with an error that names every one
/// of `names`.
async fn refused(parent: &ActorHandle, manifest: &str, names: &[&str]) -> String {
    let error = match try_spawn(parent, manifest).await {
        Err(error) => error,
        Ok(child) => panic!("a child with more than its parent was spawned ({child}):\n{manifest}"),
    };
    for name in names {
        assert!(error.contains(name), "`{name}` not named in: {error}");
    }
    error
}

async fn children(parent: &ActorHandle) -> Value {
    request(parent, json!({ "children": null })).await.unwrap()
}

/// An inline child manifest for the component of `actor`, with `rest`.
fn child(actor: &str, rest: &str) -> String {
    format!("name = \"child\"\ncomponent_path = \"../{actor}/{actor}.wasm\"\n\n{rest}")
}

#[tokio::test]
async fn a_parent_with_only_supervisor_cannot_hand_a_child_a_root_shell() {
    let runtime = runtime();
    let parent = bare_spawner(&runtime).await;
    let root_shell = child(
        "file-notes",
        "[[handlers]]\ntype = \"message-server\"\nconfig = {}\n\n[[handlers]]\ntype = \"filesystem\"\nconfig = { path = \"/\", allowed_commands = [\"sh\"] }\n\n[limits]\nmemory_mb = 4096\n",
    );
    match try_spawn(&parent, &root_shell).await {
        Ok(child) => {
            let ran = runtime
                .request(
                    None,
                    child.parse().unwrap(),
                    json!({"run": {"dir": ".", "command": "sh", "args": ["-c", "id"]}})
                        .to_string()
                        .into_bytes(),
                    std::time::Duration::from_secs(10),
                )
                .await;
            panic!("the child was spawned with a root shell; it ran `sh -c id`: {ran:?}");
        }
        Err(error) => {
            assert!(error.contains("filesystem"), "{error}");
            assert!(error.contains("<inline manifest>:"), "{error}");
        }
    }
    assert_eq!(children(&parent).await, json!([]));
    // The parent keeps serving, and may still spawn within what it holds.
    try_spawn(&parent, "../echo/manifest.toml").await.unwrap();
}

#[tokio::test]
async fn every_grant_of_a_child_is_at_most_its_parents() {
    let runtime = runtime();
    let granted = tempfile::tempdir().unwrap();
    std::fs::create_dir(granted.path().join("inner")).unwrap();
    let dir = granted.path().display();
    let parent = spawner(
        &runtime,
        "{ spawn_from = [\"..\"], max_children = 8 }",
        &format!(
            "[[handlers]]
type = \"filesystem\"
config = {{ path = \"{dir}\", allowed_commands = [\"ls\"], command_timeout_ms = 1000 }}

[[handlers]]
type = \"http-client\"
config = {{ allowed_hosts = [\"127.0.0.1\"], timeout_ms = 1000 }}

[[handlers]]
type = \"environment\"
config = {{ allowed_vars = [\"LANG\"] }}

[[handlers]]
type = \"timing\"
config = {{ max_sleep_duration = 1000 }}

[limits]
memory_mb = 64
call_timeout_ms = 2000
"
        ),
    )
    .await;
    let handler = |kind: &str, config: &str| {
        child(
            "echo",
            &format!("[[handlers]]\ntype = \"{kind}\"\nconfig = {config}\n"),
        )
    };
    let fs = |config: &str| handler("filesystem", config);
    let outside = granted.path().parent().unwrap().display().to_string();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            fs(&format!("{{ path = \"{outside}\" }}")),
            vec!["filesystem", "path"],
        ),
        (
            fs(&format!(
                "{{ path = \"{dir}/inner/..\" , allowed_commands = [\"ls\", \"sh\"] }}"
            )),
            vec!["filesystem", "allowed_commands", "sh"],
        ),
        (
            fs(&format!(
                "{{ path = \"{dir}\", command_timeout_ms = 5000 }}"
            )),
            vec!["filesystem", "command_timeout_ms"],
        ),
        (fs("{ new_dir = true }"), vec!["filesystem", "new_dir"]),
        (
            handler("http-client", "{ timeout_ms = 1000 }"),
            vec!["http-client", "allowed_hosts"],
        ),
        (
            handler("http-client", "{ allowed_hosts = [\"example.com\"] }"),
            vec!["http-client", "allowed_hosts", "example.com"],
        ),
        (
            handler("http-client", "{ allowed_hosts = [\"127.0.0.1\"] }"),
            vec!["http-client", "timeout_ms"],
        ),
        (
            handler("environment", "{ allowed_vars = [\"LANG\", \"HOME\"] }"),
            vec!["environment", "allowed_vars", "HOME"],
        ),
        (
            handler("timing", "{ max_sleep_duration = 5000 }"),
            vec!["timing", "max_sleep_duration"],
        ),
        (handler("store", "{}"), vec!["store"]),
        (handler("random", "{}"), vec!["random"]),
        (
            handler("message-server", "{ request_timeout_ms = 3600000 }"),
            vec!["message-server", "request_timeout_ms"],
        ),
        (
            handler("supervisor", "{ spawn_from = [\"/\"], max_children = 1 }"),
            vec!["supervisor", "spawn_from"],
        ),
        (
            handler("supervisor", "{ max_children = 9 }"),
            vec!["supervisor", "max_children"],
        ),
        (
            child("echo", "[limits]\nmemory_mb = 65\n"),
            vec!["limits.memory_mb", "64"],
        ),
        (
            child("echo", "[limits]\ncall_timeout_ms = 2001\n"),
            vec!["limits.call_timeout_ms"],
        ),
        (
            child("echo", "[limits]\nqueue_capacity = 1000000\n"),
            vec!["limits.queue_capacity"],
        ),
    ];
    for (manifest, names) in &cases {
        refused(&parent, manifest, names).await;
    }
    assert_eq!(children(&parent).await, json!([]));

    // Exactly what it holds, or less, is fine.
    let within = [
        fs(&format!(
            "{{ path = \"{dir}/inner\", allowed_commands = [\"ls\"], command_timeout_ms = 1000 }}"
        )),
        fs(&format!(
            "{{ path = \"{dir}\", new_dir = true, command_timeout_ms = 10 }}"
        )),
        handler(
            "http-client",
            "{ allowed_hosts = [\"127.0.0.1\"], timeout_ms = 500 }",
        ),
        handler("environment", "{ allowed_vars = [] }"),
        handler("timing", "{ max_sleep_duration = 10 }"),
        child("echo", "[limits]\nmemory_mb = 32\ncall_timeout_ms = 100\n"),
    ];
    for manifest in &within {
        try_spawn(&parent, manifest)
            .await
            .unwrap_or_else(|e| panic!("refused within the parent's grants: {e}\n{manifest}"));
    }
}

#[tokio::test]
async fn a_child_cannot_read_host_files_through_its_manifest() {
    let runtime = runtime();
    let parent = bare_spawner(&runtime).await;
    let secret = tempfile::tempdir().unwrap();
    let secret_file = secret.path().join("secret.json");
    std::fs::write(&secret_file, r#"{"password": "hunter2"}"#).unwrap();
    let secret_file = secret_file.display().to_string();

    // `init_state` naming a host file, absolute or climbing out.
    let climb = format!("{}{secret_file}", "../".repeat(40));
    for init_state in [secret_file.as_str(), climb.as_str()] {
        let manifest = child("echo", &format!("init_state = \"{init_state}\"\n"));
        match try_spawn(&parent, &manifest).await {
            Ok(child) => {
                let state = request(&parent, json!({ "state_of": child })).await;
                panic!("the child's state is a host file: {state:?}");
            }
            Err(error) => assert!(error.contains("outside"), "{error}"),
        }
    }
    // The manifest itself, and the component.
    let error = try_spawn(&parent, &secret_file).await.unwrap_err();
    assert!(error.contains("outside"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
    let manifest = format!("name = \"c\"\ncomponent_path = \"{secret_file}\"\n");
    let error = try_spawn(&parent, &manifest).await.unwrap_err();
    assert!(error.contains("outside"), "{error}");
    assert_eq!(children(&parent).await, json!([]));
}

/// A directory holding the echo component and `manifest_text` as its
/// manifest, a parent that may spawn from it, and the manifest's path.
async fn echo_area(
    runtime: &TheaterRuntime,
    manifest_text: &str,
) -> (tempfile::TempDir, ActorHandle, String) {
    let area = tempfile::tempdir().unwrap();
    let component = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../actors/echo/echo.wasm");
    std::fs::copy(&component, area.path().join("echo.wasm")).unwrap();
    std::fs::write(area.path().join("manifest.toml"), manifest_text).unwrap();
    let parent = spawner(
        runtime,
        &format!("{{ spawn_from = [\"{}\"] }}", area.path().display()),
        "",
    )
    .await;
    let manifest = area.path().join("manifest.toml").display().to_string();
    (area, parent, manifest)
}

#[tokio::test]
async fn a_symlink_inside_the_spawn_directory_cannot_lead_out() {
    let runtime = runtime();
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("state.json"), r#"{"secret": 1}"#).unwrap();
    let manifest_text =
        "name = \"c\"\ncomponent_path = \"echo.wasm\"\ninit_state = \"link/state.json\"\n";
    let (area, parent, manifest) = echo_area(&runtime, manifest_text).await;
    std::os::unix::fs::symlink(secret.path(), area.path().join("link")).unwrap();
    let error = try_spawn(&parent, &manifest).await.unwrap_err();
    assert!(error.contains("link/state.json"), "{error}");
    // Without the link, the same directory is fine.
    std::fs::write(
        area.path().join("manifest.toml"),
        "name = \"c\"\ncomponent_path = \"echo.wasm\"\n",
    )
    .unwrap();
    try_spawn(&parent, &manifest).await.unwrap();
}

#[tokio::test]
async fn a_component_swapped_for_a_link_out_after_a_spawn_is_refused_the_next() {
    let runtime = runtime();
    let manifest_text = "name = \"c\"\ncomponent_path = \"echo.wasm\"\n";
    let (area, parent, manifest) = echo_area(&runtime, manifest_text).await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::copy(
        area.path().join("echo.wasm"),
        outside.path().join("echo.wasm"),
    )
    .unwrap();
    // Twice: the second spawn finds the file trusted, without opening it.
    try_spawn(&parent, &manifest).await.unwrap();
    try_spawn(&parent, &manifest).await.unwrap();
    // The same bytes, now through a link that leads out of the area.
    std::fs::remove_file(area.path().join("echo.wasm")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("echo.wasm"),
        area.path().join("echo.wasm"),
    )
    .unwrap();
    let error = try_spawn(&parent, &manifest).await.unwrap_err();
    assert!(error.contains("echo.wasm"), "{error}");
}

#[tokio::test]
async fn by_default_a_parent_spawns_only_from_its_own_directory() {
    let runtime = runtime();
    let parent = spawner(&runtime, "{}", "").await;
    let error = try_spawn(&parent, "../echo/manifest.toml")
        .await
        .unwrap_err();
    assert!(
        error.contains("outside") && error.contains("spawn_from"),
        "{error}"
    );
    // Its own directory is fine.
    let own = "name = \"c\"\ncomponent_path = \"hostile-spawner.wasm\"\n[[handlers]]\ntype = \"supervisor\"\nconfig = {}\n";
    try_spawn(&parent, own).await.unwrap();
}
