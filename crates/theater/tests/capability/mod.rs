//! Helpers for the tests of host capabilities (store, timing, random,
//! environment): JSON requests to the example actors and the `host-call`
//! events of their chains.

#![allow(dead_code)] // each test file uses a different subset

use serde_json::Value;
use theater::chain::{ChainEvent, record};
use theater::host::HANDLE_REQUEST;
use theater::{ActorError, ActorHandle, TheaterRuntime};

/// Sends `request` (JSON) to `actor` and parses its JSON reply.
pub async fn request(actor: &ActorHandle, request: Value) -> Result<Value, ActorError> {
    let (reply,) = actor
        .call_function::<(Vec<u8>,), (Vec<u8>,)>(
            HANDLE_REQUEST,
            (request.to_string().into_bytes(),),
        )
        .await?;
    Ok(serde_json::from_slice(&reply).expect("the actor answers JSON"))
}

/// The message of a call that failed with `Err` from the actor.
pub fn failure(result: Result<Value, ActorError>) -> String {
    match result {
        Err(ActorError::Failed { message, .. }) => message,
        other => panic!("expected the actor to answer Err, got {other:?}"),
    }
}

/// The data of each `host-call` event of `function` in the actor's chain,
/// oldest first; checks that the chain verifies.
pub fn host_calls(runtime: &TheaterRuntime, actor: &ActorHandle, function: &str) -> Vec<Value> {
    let events = runtime.chain(actor.id()).expect("the chain is readable");
    theater::chain::verify(&events).expect("the chain verifies");
    events
        .iter()
        .filter(|event| event.event_type == record::HOST_CALL)
        .map(data)
        .filter(|data| data["function"] == function)
        .collect()
}

fn data(event: &ChainEvent) -> Value {
    serde_json::from_str(event.data.get()).expect("event data is JSON")
}
