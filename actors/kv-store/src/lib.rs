//! A key-value actor on the content store. At init it creates a store (or
//! keeps the one its initial state names); its state is `{"store_id": id}`.
//! Requests are JSON commands: `put`, `get` and `list` for keys and values,
//! and one command per store function for working with content directly.

wit_bindgen::generate!({
    path: "../../wit",
    world: "store-actor",
});

use exports::ntwk::theater::actor::Guest as Actor;
use exports::ntwk::theater::message_server_client::{ChannelAccept, Guest as MessageServer};
use ntwk::theater::store::{self, ContentRef};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

type State = Option<Vec<u8>>;

#[derive(Serialize, Deserialize)]
struct KvState {
    store_id: String,
}

/// A command; the reply is JSON.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Request {
    /// Stores `value` under `key`, replacing what was there; replies its hash.
    Put { key: String, value: Value },
    /// Replies the value under the key, or `null`.
    Get(String),
    /// Replies every key.
    List(()),
    /// Replies this actor's store id.
    StoreId(()),
    /// `store`: replies the hash of the stored value.
    Store(Value),
    /// `get`: replies the value with this hash.
    Fetch(String),
    /// `exists`: replies whether the store has this hash.
    Exists(String),
    /// `label`: adds the hash to the label.
    Label { label: String, hash: String },
    /// `get-by-label`: replies the label's newest hash, or `null`.
    Labelled(String),
    /// `remove-label`.
    RemoveLabel(String),
    /// `remove-from-label`.
    RemoveFromLabel { label: String, hash: String },
    /// `store-at-label`: replies the hash.
    StoreAtLabel { label: String, value: Value },
    /// `replace-at-label`.
    ReplaceAtLabel { label: String, hash: String },
    /// `list-all-content`: replies every hash.
    Contents(()),
    /// `calculate-total-size`: replies the bytes of all content.
    Size(()),
}

fn load(state: &State) -> Result<KvState, String> {
    let bytes = state
        .as_deref()
        .ok_or("kv-store has no state: init did not run")?;
    serde_json::from_slice(bytes)
        .map_err(|e| format!("kv-store state is not {{\"store_id\": ...}}: {e}"))
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("JSON values always serialize")
}

fn content_ref(hash: String) -> ContentRef {
    ContentRef { hash }
}

fn fetch(id: &str, content: &ContentRef) -> Result<Value, String> {
    let bytes = store::get(id, content)?;
    serde_json::from_slice(&bytes).map_err(|e| format!("content {} is not JSON: {e}", content.hash))
}

/// Runs one command against the store `id`.
fn run(id: &str, msg: &[u8]) -> Result<Value, String> {
    let request: Request = serde_json::from_slice(msg)
        .map_err(|e| format!("not a kv-store command (see actors/README.md): {e}"))?;
    let reply = match request {
        Request::Put { key, value } => {
            json!(store::replace_content_at_label(id, &key, &to_json(&value))?.hash)
        }
        Request::Get(key) => match store::get_by_label(id, &key)? {
            Some(content) => fetch(id, &content)?,
            None => Value::Null,
        },
        Request::List(()) => json!(store::list_labels(id)?),
        Request::StoreId(()) => json!(id),
        Request::Store(value) => json!(store::store(id, &to_json(&value))?.hash),
        Request::Fetch(hash) => fetch(id, &content_ref(hash))?,
        Request::Exists(hash) => json!(store::exists(id, &content_ref(hash))?),
        Request::Label { label, hash } => json!(store::label(id, &label, &content_ref(hash))?),
        Request::Labelled(label) => json!(store::get_by_label(id, &label)?.map(|c| c.hash)),
        Request::RemoveLabel(label) => json!(store::remove_label(id, &label)?),
        Request::RemoveFromLabel { label, hash } => {
            json!(store::remove_from_label(id, &label, &content_ref(hash))?)
        }
        Request::StoreAtLabel { label, value } => {
            json!(store::store_at_label(id, &label, &to_json(&value))?.hash)
        }
        Request::ReplaceAtLabel { label, hash } => {
            json!(store::replace_at_label(id, &label, &content_ref(hash))?)
        }
        Request::Contents(()) => {
            let hashes: Vec<String> = store::list_all_content(id)?
                .into_iter()
                .map(|c| c.hash)
                .collect();
            json!(hashes)
        }
        Request::Size(()) => json!(store::calculate_total_size(id)?),
    };
    Ok(reply)
}

struct Component;

impl Actor for Component {
    fn init(state: State, _params: (String,)) -> Result<(State,), String> {
        let kv = match state {
            Some(_) => load(&state)?,
            None => KvState {
                store_id: store::new()?,
            },
        };
        Ok((Some(to_json(&kv)),))
    }
}

impl MessageServer for Component {
    fn handle_send(state: State, params: (Vec<u8>,)) -> Result<(State,), String> {
        run(&load(&state)?.store_id, &params.0)?;
        Ok((state,))
    }

    fn handle_request(state: State, params: (Vec<u8>,)) -> Result<(State, (Vec<u8>,)), String> {
        let reply = run(&load(&state)?.store_id, &params.0)?;
        Ok((state, (to_json(&reply),)))
    }

    fn handle_channel_open(
        state: State,
        _params: (Vec<u8>,),
    ) -> Result<(State, ChannelAccept), String> {
        let refuse = ChannelAccept {
            accepted: false,
            message: Some(to_json(&"kv-store takes no channels")),
        };
        Ok((state, refuse))
    }

    fn handle_channel_message(
        state: State,
        _params: (String, Vec<u8>),
    ) -> Result<(State,), String> {
        Ok((state,))
    }

    fn handle_channel_close(state: State, _params: (String,)) -> Result<(State,), String> {
        Ok((state,))
    }
}

export!(Component);
