//! Supervision trees with real actors: spawn, stop, restart, failures,
//! restart strategies and escalation.

use std::time::Duration;

use crate::common::{
    eventually, json, records, request as command, runtime, spawn, spawn_with, strict_supervisor,
    supervisor_with,
};
use serde_json::{Value, json};
use theater::chain::{self, record};
use theater::{ActorHandle, ActorId, TheaterRuntime};

const TIMEOUT: Duration = Duration::from_secs(5);

async fn spawn_child(parent: &ActorHandle, manifest: &str) -> ActorId {
    let id = command(parent, json!({ "spawn": manifest })).await.unwrap();
    id.as_str().unwrap().parse().unwrap()
}

async fn memory(actor: &ActorHandle) -> Value {
    serde_json::from_slice(&actor.state().await.unwrap().unwrap()).unwrap()
}

async fn trap(runtime: &TheaterRuntime, child: ActorId) {
    runtime.send(None, child, json(r#""trap""#)).await.unwrap();
}

/// The `supervision` events in an actor's chain, as JSON.
fn decisions(runtime: &TheaterRuntime, actor: ActorId) -> Vec<Value> {
    records(runtime, actor, record::SUPERVISION)
}

#[tokio::test]
async fn a_parent_spawns_lists_and_inspects_its_children() {
    let runtime = runtime();
    let parent = spawn(&runtime, "supervisor").await;
    let child = spawn_child(&parent, "../trap/manifest.toml").await;
    assert_eq!(runtime.parent(child), Some(parent.id()));
    assert_eq!(
        command(&parent, json!({"children": null})).await.unwrap(),
        json!([child.to_string()])
    );
    runtime.send(None, child, json(r#""one""#)).await.unwrap();
    let state = command(&parent, json!({"state_of": child.to_string()}))
        .await
        .unwrap();
    assert_eq!(state["count"], 1);
    let events = command(&parent, json!({"events_of": child.to_string()}))
        .await
        .unwrap();
    assert_eq!(events, json!(runtime.chain(child).unwrap().len()));
    // Another actor's child is not its business.
    let stranger = spawn(&runtime, "supervisor").await;
    let err = command(&stranger, json!({"stop": child.to_string()}))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is not a child of this actor"),
        "{err}"
    );
}

#[tokio::test]
async fn a_failing_child_is_restarted_with_its_state_and_the_parent_hears_of_it() {
    let runtime = runtime();
    let parent = spawn(&runtime, "supervisor").await;
    let child = spawn_child(&parent, "../trap/manifest.toml").await;
    runtime.send(None, child, json(r#""one""#)).await.unwrap();
    trap(&runtime, child).await;
    let errors = eventually("the parent hears of the failure", async || {
        let memory = memory(&parent).await;
        (!memory["errors"].as_array().unwrap().is_empty()).then(|| memory["errors"].clone())
    })
    .await;
    assert_eq!(errors[0][0], child.to_string());
    assert!(
        errors[0][1].as_str().unwrap().contains("trapped"),
        "{errors}"
    );
    // Restarted, state kept.
    let reply = runtime
        .request(None, child, json("{}"), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&reply).unwrap()["count"], 1);
    let decision = eventually("a decision is recorded", async || {
        decisions(&runtime, parent.id()).pop()
    })
    .await;
    assert_eq!(decision["decision"], "restart");
    assert_eq!(decision["child"], child.to_string());
    chain::verify(&runtime.chain(parent.id()).unwrap()).unwrap();
}

#[tokio::test]
async fn three_failures_within_the_window_escalate_under_max_restarts_two() {
    let runtime = runtime();
    let parent = spawn(&runtime, "supervisor").await; // max_restarts = 2, window_s = 10
    let child = spawn_child(&parent, "../trap/manifest.toml").await;
    for _ in 0..3 {
        trap(&runtime, child).await;
    }
    eventually("the parent fails and its subtree stops", async || {
        (runtime.actor(parent.id()).is_err() && runtime.actor(child).is_err()).then_some(())
    })
    .await;
    let decisions: Vec<Value> = decisions(&runtime, parent.id())
        .iter()
        .map(|d| d["decision"].clone())
        .collect();
    assert_eq!(
        decisions[..3],
        [json!("restart"), json!("restart"), json!("escalate")],
        "{decisions:?}"
    );
    chain::verify(&runtime.chain(parent.id()).unwrap()).unwrap();
}

#[tokio::test]
async fn an_escalating_parent_is_reported_to_its_own_parent() {
    let runtime = runtime();
    let top = spawn(&runtime, "supervisor").await;
    let middle = spawn_child(&top, "manifest.toml").await;
    let middle_handle = runtime.actor(middle).unwrap();
    let leaf = spawn_child(&middle_handle, "../trap/manifest.toml").await;
    for _ in 0..3 {
        trap(&runtime, leaf).await;
    }
    let memory = eventually(
        "the top hears that the middle failed and exited",
        async || {
            let memory = memory(&top).await;
            (!memory["exits"].as_array().unwrap().is_empty()).then_some(memory)
        },
    )
    .await;
    assert_eq!(memory["errors"][0][0], middle.to_string());
    assert!(
        memory["errors"][0][1]
            .as_str()
            .unwrap()
            .contains("restart intensity exceeded"),
        "{memory}"
    );
    assert!(runtime.actor(top.id()).is_ok(), "the top stays up");
}

#[tokio::test]
async fn restart_never_stops_the_failed_child() {
    let runtime = runtime();
    let parent = strict_supervisor(&runtime).await;
    let child = spawn_child(&parent, "../trap/manifest.toml").await;
    trap(&runtime, child).await;
    let memory = eventually("the child exits", async || {
        let memory = memory(&parent).await;
        (!memory["exits"].as_array().unwrap().is_empty()).then_some(memory)
    })
    .await;
    assert_eq!(memory["exits"][0][0], child.to_string());
    assert!(runtime.actor(child).is_err());
    assert!(
        decisions(&runtime, parent.id())
            .iter()
            .any(|d| d["decision"] == "stop")
    );
}

#[tokio::test]
async fn one_for_all_restarts_the_siblings_too() {
    let runtime = runtime();
    let config = r#"{ strategy = "one-for-all", spawn_from = [".."] }"#;
    let parent = supervisor_with(&runtime, config).await;
    let first = spawn_child(&parent, "../trap/manifest.toml").await;
    let second = spawn_child(&parent, "../counter/manifest.toml").await;
    trap(&runtime, first).await;
    let decision = eventually("a restart decision", async || {
        decisions(&runtime, parent.id()).pop()
    })
    .await;
    assert_eq!(decision["also_restarted"], json!([second.to_string()]));
    // Both still serve.
    runtime
        .request(None, first, json("{}"), TIMEOUT)
        .await
        .unwrap();
    runtime
        .request(None, second, json("{}"), TIMEOUT)
        .await
        .unwrap();
}

#[tokio::test]
async fn stop_and_restart_child_and_a_stopped_parent_takes_its_subtree() {
    let runtime = runtime();
    let parent = spawn(&runtime, "supervisor").await;
    let counter = spawn_child(&parent, "../counter/manifest.toml").await;
    runtime
        .send(None, counter, json(r#"{"add":5}"#))
        .await
        .unwrap();
    command(&parent, json!({"restart": counter.to_string()}))
        .await
        .unwrap();
    let state = command(&parent, json!({"state_of": counter.to_string()}))
        .await
        .unwrap();
    assert_eq!(state["count"], 5, "restart keeps state");

    command(&parent, json!({"stop": counter.to_string()}))
        .await
        .unwrap();
    assert!(runtime.actor(counter).is_err());
    let memory = eventually("the exit is reported", async || {
        let memory = memory(&parent).await;
        (!memory["exits"].as_array().unwrap().is_empty()).then_some(memory)
    })
    .await;
    assert_eq!(memory["exits"][0][0], counter.to_string());

    let a = spawn_child(&parent, "../counter/manifest.toml").await;
    let b = spawn_child(&parent, "../echo/manifest.toml").await;
    runtime.stop(parent.id()).await.unwrap();
    assert!(
        runtime.actor(a).is_err()
            && runtime.actor(b).is_err()
            && runtime.actor(parent.id()).is_err()
    );
}

#[tokio::test]
async fn a_child_that_shuts_down_is_reported_with_its_data() {
    let runtime = runtime();
    let parent = spawn(&runtime, "supervisor").await;
    let child = spawn_child(&parent, "manifest.toml").await;
    let child_handle = runtime.actor(child).unwrap();
    command(&child_handle, json!({"shutdown": "bye"}))
        .await
        .unwrap();
    let memory = eventually("the parent hears the exit", async || {
        let memory = memory(&parent).await;
        (!memory["exits"].as_array().unwrap().is_empty()).then_some(memory)
    })
    .await;
    assert_eq!(memory["exits"][0], json!([child.to_string(), "bye"]));
    assert!(runtime.actor(child).is_err());
}

#[tokio::test]
async fn inline_manifests_and_given_state() {
    let runtime = runtime();
    let parent = spawn(&runtime, "supervisor").await;
    let inline = "name = \"inline\"\ncomponent_path = \"../counter/counter.wasm\"\n";
    let id = command(
        &parent,
        json!({"spawn_with": {"manifest": inline, "state": {"count": 9}}}),
    )
    .await
    .unwrap();
    let state = command(&parent, json!({"state_of": id})).await.unwrap();
    assert_eq!(state["count"], 9);
    let id = command(
        &parent,
        json!({"resume": {"manifest": "../counter/manifest.toml", "state": {"count": 4}}}),
    )
    .await
    .unwrap();
    assert_eq!(
        command(&parent, json!({"state_of": id})).await.unwrap()["count"],
        4
    );
}

#[tokio::test]
async fn a_malformed_child_manifest_is_a_clear_error_and_the_parent_keeps_serving() {
    let runtime = runtime();
    let parent = spawn(&runtime, "supervisor").await;
    let err = command(
        &parent,
        json!({"spawn": "name = \"x\"\ncomponent_path = 7\n"}),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("<inline manifest>:2"), "{err}");
    let err = command(&parent, json!({"spawn": "../nowhere/manifest.toml"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nowhere/manifest.toml"), "{err}");
    assert_eq!(
        command(&parent, json!({"children": null})).await.unwrap(),
        json!([])
    );
}

#[tokio::test]
async fn a_supervisor_needs_the_grant() {
    let text = "name = \"s\"\ncomponent_path = \"supervisor.wasm\"\n";
    let err = spawn_with(&runtime(), "supervisor", text)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("ntwk:theater/supervisor") && message.contains("type = \"supervisor\""),
        "{message}"
    );
}

#[tokio::test]
async fn an_actor_that_ends_on_its_own_takes_its_subtree_with_it() {
    let runtime = runtime();
    let top = spawn(&runtime, "supervisor").await;
    let middle = spawn_child(&top, "manifest.toml").await;
    let middle_handle = runtime.actor(middle).unwrap();
    let leaf = spawn_child(&middle_handle, "../counter/manifest.toml").await;
    command(&middle_handle, json!({"shutdown": null}))
        .await
        .unwrap();
    eventually("the leaf stops with its parent", async || {
        runtime.actor(leaf).is_err().then_some(())
    })
    .await;
    assert!(runtime.actor(top.id()).is_ok());
    let lists: Vec<String> = runtime
        .chain(top.id())
        .unwrap()
        .iter()
        .filter(|e| e.event_type == record::HOST_CALL)
        .map(|e| e.data.get().to_owned())
        .collect();
    assert!(
        lists.iter().any(|d| d.contains("supervisor.spawn")),
        "{lists:?}"
    );
}
