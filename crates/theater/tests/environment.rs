//! Environment variables through the real `dice` actor: only allow-listed
//! ones are visible, and every value read is recorded. A binary of its own
//! with one test, because it sets variables of the test process.

#[path = "it/common/mod.rs"]
mod common;

use common::{host_calls, request};
use common::{runtime, spawn, spawn_with};
use serde_json::json;

#[tokio::test]
async fn only_allowed_variables_are_visible_and_each_value_is_recorded() {
    // SAFETY: this binary's only test, before its runtime starts any thread.
    unsafe {
        std::env::set_var("THEATER_DICE_GREETING", "hello");
        std::env::set_var("THEATER_DICE_SECRET", "do not tell");
    }
    let runtime = runtime();
    // Its manifest allows THEATER_DICE_GREETING only.
    let dice = spawn(&runtime, "dice").await;
    let env = |name: &str| json!({ "env": name });
    let reply = request(&dice, env("THEATER_DICE_GREETING")).await.unwrap();
    assert_eq!(reply, json!({ "value": "hello" }));
    let reply = request(&dice, env("THEATER_DICE_SECRET")).await.unwrap();
    assert_eq!(reply, json!({ "value": null }));
    let reply = request(&dice, json!({ "vars": null })).await.unwrap();
    assert_eq!(
        reply,
        json!({ "vars": { "THEATER_DICE_GREETING": "hello" } })
    );

    let calls = host_calls(&runtime, &dice, "ntwk:theater/environment.get-var");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["params"], json!(["THEATER_DICE_GREETING"]));
    assert_eq!(calls[0]["result"], json!({ "ok": "hello" }));
    assert_eq!(calls[1]["result"], json!({ "ok": null }));
    let listed = host_calls(&runtime, &dice, "ntwk:theater/environment.list-vars");
    assert_eq!(
        listed[0]["result"],
        json!({ "ok": [["THEATER_DICE_GREETING", "hello"]] })
    );

    // Without `allowed_vars`, nothing is visible; an allowed but unset variable is absent.
    let manifest = "name = \"dice\"\ncomponent_path = \"dice.wasm\"\n\n[[handlers]]\ntype = \"random\"\n\n[[handlers]]\ntype = \"environment\"\nconfig = { allowed_vars = [\"THEATER_DICE_UNSET\"] }\n";
    let strict = spawn_with(&runtime, "dice", manifest).await.unwrap();
    let reply = request(&strict, env("THEATER_DICE_GREETING"))
        .await
        .unwrap();
    assert_eq!(reply, json!({ "value": null }));
    let reply = request(&strict, env("THEATER_DICE_UNSET")).await.unwrap();
    assert_eq!(reply, json!({ "value": null }));
    let reply = request(&strict, json!({ "vars": null })).await.unwrap();
    assert_eq!(reply, json!({ "vars": {} }));
}
