//! The content store through the real `kv-store` actor: every store
//! function, persistence across runtimes, sharing, concurrency, errors and
//! the chain.

use std::path::Path;

use crate::common::{failure, host_calls, request};
use crate::common::{manifest_for, spawn, spawn_with};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use theater::{ActorHandle, RuntimeConfig, TheaterRuntime};

/// A runtime whose home, and so whose store, is `home`. Its `cache/` links
/// to the compiled-component cache all tests share, so that the actors are
/// not compiled again for every fresh home.
fn runtime_at(home: &Path) -> TheaterRuntime {
    let shared = Path::new(env!("CARGO_TARGET_TMPDIR")).join("theater-home/cache");
    std::fs::create_dir_all(&shared).unwrap();
    let cache = home.join("cache");
    if !cache.exists() {
        #[cfg(unix)]
        std::os::unix::fs::symlink(&shared, &cache).unwrap();
    }
    let mut config = RuntimeConfig::ephemeral();
    config.home = Some(home.to_owned());
    TheaterRuntime::new(config).expect("runtime starts")
}

/// The hash the store gives a JSON value the kv-store stores.
fn hash_of(value: &Value) -> String {
    hex::encode(Sha256::digest(value.to_string()))
}

async fn store_id(kv: &ActorHandle) -> String {
    let id = request(kv, json!({ "store_id": null })).await.unwrap();
    id.as_str().expect("a store id").to_owned()
}

/// A kv-store that works on the existing store `id`.
async fn spawn_on(runtime: &TheaterRuntime, id: &str) -> ActorHandle {
    let manifest = format!(
        "name = \"kv-store\"\ncomponent_path = \"kv-store.wasm\"\ninit_state = '{}'\n\n[[handlers]]\ntype = \"store\"\n",
        json!({ "store_id": id })
    );
    spawn_with(runtime, "kv-store", &manifest)
        .await
        .expect("kv-store spawns on the store it names")
}

#[tokio::test]
async fn every_store_function_answers_through_an_actor() {
    let home = tempfile::tempdir().unwrap();
    let runtime = runtime_at(home.path());
    let kv = spawn(&runtime, "kv-store").await;

    // put / get / list: replace-content-at-label, get-by-label + get, list-labels.
    let one = json!({ "n": 1 });
    let put = request(&kv, json!({ "put": { "key": "a", "value": one } })).await;
    assert_eq!(put.unwrap(), json!(hash_of(&one)));
    assert_eq!(request(&kv, json!({ "get": "a" })).await.unwrap(), one);
    assert_eq!(
        request(&kv, json!({ "get": "none" })).await.unwrap(),
        Value::Null
    );
    assert_eq!(
        request(&kv, json!({ "list": null })).await.unwrap(),
        json!(["a"])
    );

    // store / get / exists.
    let text = json!("some text");
    let hash = request(&kv, json!({ "store": text })).await.unwrap();
    assert_eq!(hash, json!(hash_of(&text)));
    assert_eq!(request(&kv, json!({ "fetch": hash })).await.unwrap(), text);
    assert_eq!(
        request(&kv, json!({ "exists": hash })).await.unwrap(),
        json!(true)
    );
    let never = hash_of(&json!("never stored"));
    assert_eq!(
        request(&kv, json!({ "exists": never })).await.unwrap(),
        json!(false)
    );

    // label / get-by-label / store-at-label / remove-from-label: the newest ref wins.
    let label = |hash: &Value| json!({ "label": { "label": "doc", "hash": hash } });
    assert_eq!(request(&kv, label(&hash)).await.unwrap(), Value::Null);
    let v2 = json!("version 2");
    let at = json!({ "store_at_label": { "label": "doc", "value": v2 } });
    let hash2 = request(&kv, at).await.unwrap();
    assert_eq!(
        request(&kv, json!({ "labelled": "doc" })).await.unwrap(),
        hash2
    );
    let off = json!({ "remove_from_label": { "label": "doc", "hash": hash2 } });
    request(&kv, off).await.unwrap();
    assert_eq!(
        request(&kv, json!({ "labelled": "doc" })).await.unwrap(),
        hash
    );

    // replace-at-label: exactly one ref; remove-label: gone.
    let replace = json!({ "replace_at_label": { "label": "doc", "hash": hash2 } });
    request(&kv, replace).await.unwrap();
    let off = json!({ "remove_from_label": { "label": "doc", "hash": hash2 } });
    request(&kv, off).await.unwrap();
    assert_eq!(
        request(&kv, json!({ "labelled": "doc" })).await.unwrap(),
        Value::Null
    );
    request(&kv, label(&hash)).await.unwrap();
    request(&kv, json!({ "remove_label": "doc" }))
        .await
        .unwrap();
    assert_eq!(
        request(&kv, json!({ "list": null })).await.unwrap(),
        json!(["a"])
    );

    // list-all-content / calculate-total-size.
    let mut all = vec![hash_of(&one), hash_of(&text), hash_of(&v2)];
    all.sort();
    assert_eq!(
        request(&kv, json!({ "contents": null })).await.unwrap(),
        json!(all)
    );
    let size: usize = [&one, &text, &v2].iter().map(|v| v.to_string().len()).sum();
    assert_eq!(
        request(&kv, json!({ "size": null })).await.unwrap(),
        json!(size)
    );
    assert!(home.path().join("store.redb").is_file());
}

#[tokio::test]
async fn unknown_refs_and_labels_are_clear_errors_and_the_actor_keeps_serving() {
    let home = tempfile::tempdir().unwrap();
    let runtime = runtime_at(home.path());
    let kv = spawn(&runtime, "kv-store").await;
    request(&kv, json!({ "put": { "key": "k", "value": 1 } }))
        .await
        .unwrap();
    let state = kv.state().await.unwrap();
    let id = store_id(&kv).await;
    let never = hash_of(&json!("never stored"));

    let err = failure(request(&kv, json!({ "fetch": never })).await);
    assert_eq!(
        err,
        format!("no content {never} in store {id}: store it first with `store.store`")
    );
    let err = failure(request(&kv, json!({ "label": { "label": "l", "hash": never } })).await);
    assert!(
        err.starts_with(&format!("no content {never} in store {id}")),
        "{err}"
    );
    let err = failure(request(&kv, json!({ "remove_label": "nope" })).await);
    assert_eq!(err, format!("no label `nope` in store {id}"));
    let err = failure(request(&kv, json!({ "fetch": "not-a-hash" })).await);
    assert!(err.contains("`not-a-hash` is not a content ref"), "{err}");
    let hash = hash_of(&json!(1));
    let off = json!({ "remove_from_label": { "label": "nope", "hash": hash } });
    assert_eq!(
        failure(request(&kv, off).await),
        format!("no label `nope` in store {id}")
    );

    assert_eq!(kv.state().await.unwrap(), state);
    assert_eq!(request(&kv, json!({ "get": "k" })).await.unwrap(), json!(1));
    assert_eq!(
        request(&kv, json!({ "list": null })).await.unwrap(),
        json!(["k"])
    );
}

/// Rule 11: a store id is a name; a store never made with `new` exists,
/// empty, from its first use, and actors naming it share it.
#[tokio::test]
async fn a_store_id_is_a_name() {
    let home = tempfile::tempdir().unwrap();
    let runtime = runtime_at(home.path());
    let kv = spawn_on(&runtime, "never-made").await;
    assert_eq!(
        request(&kv, json!({ "get": "k" })).await.unwrap(),
        json!(null)
    );
    assert_eq!(
        request(&kv, json!({ "list": null })).await.unwrap(),
        json!([])
    );
    let put = json!({ "put": { "key": "k", "value": 1 } });
    request(&kv, put).await.unwrap();
    let other = spawn_on(&runtime, "never-made").await;
    assert_eq!(
        request(&other, json!({ "get": "k" })).await.unwrap(),
        json!(1)
    );
    let empty = spawn_on(&runtime, "").await;
    let err = failure(request(&empty, json!({ "get": "k" })).await);
    assert!(err.contains("a store id must not be empty"), "{err}");
}

#[tokio::test]
async fn store_data_survives_a_runtime_restart() {
    let home = tempfile::tempdir().unwrap();
    let id = {
        let runtime = runtime_at(home.path());
        let kv = spawn(&runtime, "kv-store").await;
        let put = json!({ "put": { "key": "kept", "value": { "across": "restarts" } } });
        request(&kv, put).await.unwrap();
        let id = store_id(&kv).await;
        runtime.stop(kv.id()).await.unwrap();
        id
    };
    let runtime = runtime_at(home.path());
    let kv = spawn_on(&runtime, &id).await;
    let value = request(&kv, json!({ "get": "kept" })).await.unwrap();
    assert_eq!(value, json!({ "across": "restarts" }));
    assert_eq!(
        request(&kv, json!({ "list": null })).await.unwrap(),
        json!(["kept"])
    );
}

#[tokio::test]
async fn a_runtime_without_a_home_keeps_its_store_in_memory() {
    let runtime = TheaterRuntime::new(RuntimeConfig::ephemeral()).unwrap();
    let kv = spawn(&runtime, "kv-store").await;
    request(&kv, json!({ "put": { "key": "k", "value": "v" } }))
        .await
        .unwrap();
    assert_eq!(
        request(&kv, json!({ "get": "k" })).await.unwrap(),
        json!("v")
    );
}

#[tokio::test]
async fn actors_sharing_a_store_id_see_each_others_content() {
    let home = tempfile::tempdir().unwrap();
    let runtime = runtime_at(home.path());
    let a = spawn(&runtime, "kv-store").await;
    let b = spawn_on(&runtime, &store_id(&a).await).await;
    let other = spawn(&runtime, "kv-store").await;

    request(&a, json!({ "put": { "key": "from-a", "value": 1 } }))
        .await
        .unwrap();
    request(&b, json!({ "put": { "key": "from-b", "value": 2 } }))
        .await
        .unwrap();
    assert_eq!(
        request(&b, json!({ "get": "from-a" })).await.unwrap(),
        json!(1)
    );
    assert_eq!(
        request(&a, json!({ "get": "from-b" })).await.unwrap(),
        json!(2)
    );
    let keys = request(&a, json!({ "list": null })).await.unwrap();
    assert_eq!(keys, json!(["from-a", "from-b"]));
    // Another store sees none of it.
    assert_eq!(
        request(&other, json!({ "list": null })).await.unwrap(),
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_from_many_actors_all_land() {
    const ACTORS: usize = 8;
    const PUTS: usize = 25;
    let home = tempfile::tempdir().unwrap();
    let runtime = runtime_at(home.path());
    let first = spawn(&runtime, "kv-store").await;
    let id = store_id(&first).await;
    let mut actors = vec![first];
    for _ in 1..ACTORS {
        actors.push(spawn_on(&runtime, &id).await);
    }
    let writers: Vec<_> = actors
        .iter()
        .enumerate()
        .map(|(a, actor)| {
            let actor = actor.clone();
            tokio::spawn(async move {
                for p in 0..PUTS {
                    let put = json!({ "put": { "key": format!("{a}-{p}"), "value": p } });
                    request(&actor, put).await.unwrap();
                    // Every actor also writes the same label: one of them wins.
                    let shared = json!({ "put": { "key": "shared", "value": a } });
                    request(&actor, shared).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let keys = request(&actors[0], json!({ "list": null })).await.unwrap();
    assert_eq!(keys.as_array().unwrap().len(), ACTORS * PUTS + 1);
    let shared = request(&actors[0], json!({ "get": "shared" }))
        .await
        .unwrap();
    assert!(shared.as_u64().unwrap() < ACTORS as u64);
    for (a, actor) in actors.iter().enumerate() {
        let value = request(actor, json!({ "get": format!("{a}-{}", PUTS - 1) })).await;
        assert_eq!(value.unwrap(), json!(PUTS - 1));
    }
}

#[tokio::test]
async fn every_store_call_is_recorded_in_the_chain() {
    let home = tempfile::tempdir().unwrap();
    let runtime = runtime_at(home.path());
    let kv = spawn(&runtime, "kv-store").await;
    let id = store_id(&kv).await;
    request(&kv, json!({ "put": { "key": "k", "value": "v" } }))
        .await
        .unwrap();
    request(&kv, json!({ "get": "k" })).await.unwrap();
    let never = hash_of(&json!("never stored"));
    request(&kv, json!({ "fetch": never })).await.unwrap_err();

    let new = host_calls(&runtime, &kv, "ntwk:theater/store.new");
    assert_eq!(new.len(), 1);
    assert_eq!(new[0]["result"], json!({ "ok": id }));
    let replace = host_calls(&runtime, &kv, "ntwk:theater/store.replace-content-at-label");
    let hash = hash_of(&json!("v"));
    assert_eq!(replace[0]["params"], json!([id, "k", { "bytes": 3 }]));
    assert_eq!(replace[0]["result"], json!({ "ok": { "hash": hash } }));
    let by_label = host_calls(&runtime, &kv, "ntwk:theater/store.get-by-label");
    assert_eq!(by_label[0]["result"], json!({ "ok": { "hash": hash } }));
    let gets = host_calls(&runtime, &kv, "ntwk:theater/store.get");
    assert_eq!(gets.len(), 2);
    assert_eq!(gets[0]["result"], json!({ "ok": { "bytes": 3 } }));
    let err = gets[1]["result"]["err"].as_str().unwrap();
    assert!(err.starts_with(&format!("no content {never}")), "{err}");
}

#[tokio::test]
async fn a_kv_store_without_the_store_handler_does_not_spawn() {
    let home = tempfile::tempdir().unwrap();
    let runtime = runtime_at(home.path());
    let manifest = manifest_for(
        "kv-store",
        "name = \"kv-store\"\ncomponent_path = \"kv-store.wasm\"\n",
    );
    let err = runtime.spawn(&manifest).await.unwrap_err().to_string();
    assert!(err.contains("`ntwk:theater/store`"), "{err}");
    assert!(err.contains("type = \"store\""), "{err}");
}
