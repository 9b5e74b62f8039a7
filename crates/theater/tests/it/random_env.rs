//! Randomness through the real `dice` actor: ranges, bytes, limits, and
//! every value in the chain. (Environment variables with values set by the
//! test are in `environment.rs`, a binary of its own.)

use crate::common::{failure, host_calls, request};
use crate::common::{runtime, spawn, spawn_with};
use serde_json::json;

#[tokio::test]
async fn rolls_stay_on_the_die_and_each_value_is_recorded() {
    let runtime = runtime();
    let dice = spawn(&runtime, "dice").await;
    let mut rolled = Vec::new();
    for _ in 0..60 {
        let reply = request(&dice, json!({ "roll": 6 })).await.unwrap();
        let n = reply["rolled"].as_u64().unwrap();
        assert!((1..=6).contains(&n), "rolled {n} on a six-sided die");
        rolled.push(n);
    }
    // 60 rolls of a fair die that never differ would be a broken generator.
    assert!(rolled.iter().any(|&n| n != rolled[0]));
    let calls = host_calls(&runtime, &dice, "ntwk:theater/random.get-random-range");
    let recorded: Vec<u64> = calls
        .iter()
        .map(|call| {
            assert_eq!(call["params"], json!([1, 7]));
            call["result"]["ok"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(recorded, rolled);
}

#[tokio::test]
async fn random_bytes_up_to_the_limit_and_a_clear_error_beyond() {
    let runtime = runtime();
    let dice = spawn(&runtime, "dice").await;
    let reply = request(&dice, json!({ "bytes": 16 })).await.unwrap();
    let hex = reply["bytes"].as_str().unwrap().to_owned();
    assert_eq!(hex.len(), 32);
    let reply = request(&dice, json!({ "bytes": 65536 })).await.unwrap();
    assert_eq!(reply["bytes"].as_str().unwrap().len(), 2 * 65536);

    let err = failure(request(&dice, json!({ "bytes": 65537 })).await);
    assert_eq!(
        err,
        "asked for 65537 random bytes, more than the limit of 65536 per call: ask in smaller pieces"
    );
    let calls = host_calls(&runtime, &dice, "ntwk:theater/random.get-random-bytes");
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0]["result"], json!({ "ok": hex }));
    assert_eq!(calls[2]["result"], json!({ "err": err }));
    // Still serving.
    request(&dice, json!({ "bytes": 1 })).await.unwrap();
}

#[tokio::test]
async fn ranges_are_half_open_and_an_empty_one_is_an_error() {
    let runtime = runtime();
    let dice = spawn(&runtime, "dice").await;
    let reply = request(&dice, json!({ "range": [41, 42] })).await.unwrap();
    assert_eq!(reply, json!({ "value": 41 }));
    let err = failure(request(&dice, json!({ "range": [5, 5] })).await);
    assert_eq!(
        err,
        "the range [5, 5) is empty: `min` must be less than `max`"
    );
    let err = failure(request(&dice, json!({ "roll": 0 })).await);
    assert!(err.contains("[1, 1) is empty"), "{err}");

    let reply = request(&dice, json!({ "u64": null })).await.unwrap();
    let calls = host_calls(&runtime, &dice, "ntwk:theater/random.get-random-u64");
    assert_eq!(calls[0]["result"]["ok"], reply["u64"]);
}

#[tokio::test]
async fn dice_without_the_random_handler_does_not_spawn() {
    let runtime = runtime();
    let manifest =
        "name = \"dice\"\ncomponent_path = \"dice.wasm\"\n\n[[handlers]]\ntype = \"environment\"\n";
    let err = spawn_with(&runtime, "dice", manifest)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("`ntwk:theater/random`"), "{err}");
    assert!(err.contains("type = \"random\""), "{err}");
}
