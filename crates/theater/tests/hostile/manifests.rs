//! Manifest type confusion: values of the wrong shape (an array where a
//! table belongs), out of range, or under keys nobody reads. Each is refused
//! with the file, line and key, whether an operator or an actor wrote it.

use crate::common::runtime;
use crate::escalation::{bare_spawner, try_spawn};

/// Text of a manifest for the echo component, from its own directory.
fn echo(rest: &str) -> String {
    format!("name = \"e\"\ncomponent_path = \"echo.wasm\"\n{rest}")
}

/// The error spawning `text` as an operator's manifest gives, or a panic
/// if it spawns.
async fn operator_refuses(text: &str) -> String {
    let runtime = runtime();
    let manifest = match theater::Manifest::parse(
        text,
        &crate::common::manifest_path("echo").with_file_name("test-manifest.toml"),
        crate::common::manifest_path("echo").parent().unwrap(),
    ) {
        Ok(manifest) => manifest,
        Err(error) => return error.to_string(),
    };
    match runtime.spawn(&manifest).await {
        Ok(_) => panic!("accepted, as limits {:?}:\n{text}", manifest.limits),
        Err(error) => error.to_string(),
    }
}

fn names(error: &str, line: usize, key: &str) {
    assert!(
        error.contains(&format!("test-manifest.toml:{line}:")),
        "line {line} not named: {error}"
    );
    assert!(error.contains(key), "`{key}` not named: {error}");
}

#[tokio::test]
async fn tables_must_be_tables() {
    // Once taken as memory_mb = 200, call_timeout_ms = 5.
    let error = operator_refuses(&echo("limits = [200, 5]\n")).await;
    names(&error, 3, "limits");
    assert!(error.contains("table"), "{error}");
    let error = operator_refuses(&echo("limits = [1]\n")).await;
    names(&error, 3, "limits");
    // A handler as an array, once read as its type and config.
    let error = operator_refuses(&echo("handlers = [[\"filesystem\", { path = \"/\" }]]\n")).await;
    names(&error, 3, "handlers");
    let error = operator_refuses(&echo("[[handlers]]\ntype = \"runtime\"\nconfig = [1]\n")).await;
    names(&error, 5, "config");
}

#[tokio::test]
async fn every_value_is_range_checked() {
    for (text, line, key) in [
        (
            "[limits]\ncall_timeout_ms = 18446744073709551615\n",
            4,
            "call_timeout_ms",
        ),
        ("[limits]\nmemory_mb = 5000\n", 4, "memory_mb"),
        (
            "[limits]\nmax_message_bytes = 99999999999999\n",
            4,
            "max_message_bytes",
        ),
        ("[limits]\nqueue_capacity = -1\n", 4, "queue_capacity"),
        (
            "[[handlers]]\ntype = \"timing\"\nconfig = { max_sleep_duration = 99999999999999 }\n",
            5,
            "max_sleep_duration",
        ),
        (
            "[[handlers]]\ntype = \"message-server\"\nconfig = { request_timeout_ms = 99999999999999 }\n",
            5,
            "request_timeout_ms",
        ),
        (
            "[[handlers]]\ntype = \"http-client\"\nconfig = { max_response_bytes = 99999999999999 }\n",
            5,
            "max_response_bytes",
        ),
        (
            "[[handlers]]\ntype = \"supervisor\"\nconfig = {\n  max_restarts = 1,\n  window_s = 99999999999999 }\n",
            7,
            "window_s",
        ),
    ] {
        let error = operator_refuses(&echo(text)).await;
        names(&error, line, key);
    }
}

#[tokio::test]
async fn unknown_and_mistyped_handler_keys_are_errors_at_their_line() {
    for (text, line, key) in [
        (
            "[[handlers]]\ntype = \"filesystem\"\nconfig = { new_dir = true,\n  allowed_command = [\"sh\"] }\n",
            6,
            "allowed_command",
        ),
        (
            "[[handlers]]\ntype = \"random\"\nconfig = { seed = 4 }\n",
            5,
            "seed",
        ),
        (
            "[[handlers]]\ntype = \"timing\"\n[handlers.config]\nmax_sleep_duration = \"1000\"\n",
            6,
            "max_sleep_duration",
        ),
        (
            "[[handlers]]\ntype = \"message-server\"\nconfig = { request_timeout = 5 }\n",
            5,
            "request_timeout",
        ),
    ] {
        let error = operator_refuses(&echo(text)).await;
        names(&error, line, key);
    }
}

#[tokio::test]
async fn an_actor_gets_the_same_errors() {
    let runtime = runtime();
    let parent = bare_spawner(&runtime).await;
    let child = "name = \"c\"\ncomponent_path = \"../echo/echo.wasm\"\nlimits = [200, 5]\n";
    let error = try_spawn(&parent, child).await.unwrap_err();
    assert!(
        error.contains("<inline manifest>:3:") && error.contains("limits"),
        "{error}"
    );
    // The parent keeps serving.
    try_spawn(&parent, "../echo/manifest.toml").await.unwrap();
}
