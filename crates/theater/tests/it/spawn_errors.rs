//! Bad manifests and bad components: each a clear error, nothing registered.

use crate::common;

use crate::common::{actors_dir, manifest_for, runtime, spawn_with};
use theater::{Manifest, SpawnError};

fn write(dir: &tempfile::TempDir, name: &str, text: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_missing_manifest_is_named() {
    let err = runtime()
        .spawn_file("/no/such/manifest.toml")
        .await
        .unwrap_err();
    assert!(matches!(err, SpawnError::Manifest(_)));
    assert!(err.to_string().contains("/no/such/manifest.toml"), "{err}");
}

#[test]
fn malformed_toml_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "manifest.toml",
        b"name = \"x\"\ncomponent_path = \"x.wasm\n",
    );
    let err = Manifest::load(&path).unwrap_err();
    assert_eq!(err.line, Some(2), "{err}");
    assert!(
        err.to_string().starts_with(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn a_missing_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "manifest.toml", b"component_path = \"x.wasm\"\n");
    let err = Manifest::load(&path).unwrap_err();
    assert!(
        err.to_string().contains("missing required key `name`"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unknown_key_is_a_warning_and_the_actor_runs() {
    let manifest = manifest_for(
        "counter",
        "name = \"c\"\ncomponent_path = \"counter.wasm\"\ninit_data = \"old\"\n",
    );
    assert_eq!(manifest.warnings.len(), 1);
    assert!(
        manifest.warnings[0].contains(":3: unused manifest key `init_data`"),
        "{:?}",
        manifest.warnings
    );
    runtime().spawn(&manifest).await.unwrap();
}

#[tokio::test]
async fn a_missing_component_is_named() {
    let err = spawn_with(
        &runtime(),
        "counter",
        "name = \"c\"\ncomponent_path = \"gone.wasm\"\n",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("gone.wasm"), "{err}");
}

#[tokio::test]
async fn a_file_that_is_not_wasm_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, "junk.wasm", b"this is text, not wasm");
    let path = write(
        &dir,
        "manifest.toml",
        b"name = \"j\"\ncomponent_path = \"junk.wasm\"\n",
    );
    let err = runtime().spawn_file(&path).await.unwrap_err();
    assert!(
        err.to_string().contains("is not a WebAssembly file"),
        "{err}"
    );
}

#[tokio::test]
async fn a_core_module_is_refused_with_a_hint() {
    let manifest = manifest_for(
        "compat-basic",
        "name = \"core\"\ncomponent_path = \"compat-basic.core.wasm\"\n",
    );
    let err = runtime().spawn(&manifest).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("core WebAssembly module, not a component"),
        "{err}"
    );
}

#[tokio::test]
async fn a_truncated_component_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(actors_dir().join("counter/counter.wasm")).unwrap();
    write(&dir, "cut.wasm", &bytes[..bytes.len() / 2]);
    let path = write(
        &dir,
        "manifest.toml",
        b"name = \"cut\"\ncomponent_path = \"cut.wasm\"\n",
    );
    let err = runtime().spawn_file(&path).await.unwrap_err();
    assert!(
        err.to_string().contains("is not a valid component"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_required_export_names_function_and_signature() {
    let text = "name = \"m\"\ncomponent_path = \"minimal.wasm\"\n[[handlers]]\ntype = \"message-server\"\nconfig = {}\n";
    let err = spawn_with(&runtime(), "minimal", text).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, SpawnError::MissingExport { .. }), "{message}");
    assert!(
        message.contains("ntwk:theater/message-server-client.handle-send"),
        "{message}"
    );
    assert!(
        message.contains("handle-send: func(state: Option<Vec<u8>>, params: (Vec<u8>,))"),
        "{message}"
    );
}

#[tokio::test]
async fn without_the_listing_the_same_component_runs() {
    let runtime = runtime();
    let actor = spawn_with(
        &runtime,
        "minimal",
        "name = \"m\"\ncomponent_path = \"minimal.wasm\"\n",
    )
    .await
    .unwrap();
    let err = actor
        .call_function::<(Vec<u8>,), ()>(theater::host::HANDLE_SEND, (b"{}".to_vec(),))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has no export"), "{err}");
}

#[tokio::test]
async fn a_mistyped_export_names_function_and_signature() {
    let err = runtime()
        .spawn_file(common::manifest_path("wrong-signature"))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, SpawnError::MistypedExport { .. }),
        "{message}"
    );
    assert!(message.contains("handle-send"), "{message}");
    assert!(message.contains("params: (Vec<u8>,)"), "{message}");
}

#[tokio::test]
async fn an_unknown_handler_type_names_type_and_line() {
    let text = "name = \"c\"\ncomponent_path = \"counter.wasm\"\n\n[[handlers]]\ntype = \"teleport\"\nconfig = {}\n";
    let err = spawn_with(&runtime(), "counter", text).await.unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, SpawnError::UnknownHandler { line: 5, .. }),
        "{message}"
    );
    assert!(
        message.contains("`teleport`") && message.contains("runtime"),
        "{message}"
    );
}

#[tokio::test]
async fn init_state_bytes_reach_init_verbatim() {
    // State is opaque bytes to the runtime, JSON or not; the counter keeps
    // whatever state it is given at init.
    let dir = tempfile::tempdir().unwrap();
    write(&dir, "state.bin", b"\xff\xfe");
    let component = actors_dir().join("counter/counter.wasm");
    let text = format!(
        "name = \"c\"\ncomponent_path = \"{}\"\ninit_state = \"state.bin\"\n",
        component.display()
    );
    let path = write(&dir, "manifest.toml", text.as_bytes());
    let runtime = runtime();
    let actor = runtime.spawn_file(&path).await.unwrap();
    assert_eq!(
        actor.state().await.unwrap().as_deref(),
        Some(b"\xff\xfe".as_slice())
    );
}

#[tokio::test]
async fn a_memory_limit_below_the_initial_memory_fails_the_spawn() {
    let text = "name = \"c\"\ncomponent_path = \"counter.wasm\"\n[limits]\nmemory_mb = 1\n";
    let runtime = runtime();
    let err = spawn_with(&runtime, "counter", text).await.unwrap_err();
    assert!(err.to_string().contains("memory limit of 1 MiB"), "{err}");
    assert!(runtime.actor_ids().is_empty());
}
