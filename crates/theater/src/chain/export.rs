//! The portable form of a chain: the JSON file `theater run --chain-out`
//! writes and `theater verify --file` reads.

use serde::{Deserialize, Serialize};

use super::{ChainEvent, VerifyError, record, verify};

/// The portable form of a chain, as `theater run --chain-out` writes it and
/// `theater verify --file` reads it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChainExport {
    pub format: String,
    pub actor_id: String,
    pub events: Vec<ChainEvent>,
}

/// The `format` value of exports written by this version.
pub const EXPORT_FORMAT: &str = "theater-chain/1";

/// A text that is not a chain export this version reads.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("not a chain export: {0}")]
    NotExport(#[from] serde_json::Error),
    #[error("unsupported chain format `{found}` (this version reads `{EXPORT_FORMAT}`)")]
    Format { found: String },
}

impl ChainExport {
    pub fn new(actor_id: String, events: Vec<ChainEvent>) -> Self {
        Self {
            format: EXPORT_FORMAT.to_owned(),
            actor_id,
            events,
        }
    }

    /// Verifies every event and that the chain belongs to the actor the
    /// export names (the `actor_id` field itself is not hashed; the genesis
    /// event's is).
    pub fn verify(&self) -> Result<(), VerifyError> {
        verify(&self.events)?;
        // The host calls and logs of `init` come before its `actor-init`.
        let genesis_actor = self
            .events
            .iter()
            .find(|e| e.event_type == record::ACTOR_INIT)
            .and_then(|e| serde_json::from_str::<serde_json::Value>(e.data.get()).ok())
            .and_then(|data| data["actor_id"].as_str().map(str::to_owned));
        match genesis_actor {
            Some(found) if found != self.actor_id => Err(VerifyError::WrongActor {
                expected: self.actor_id.clone(),
                found,
            }),
            _ => Ok(()),
        }
    }

    /// The index of the first event whose data is not compact JSON, as
    /// the runtime writes (and hashes) it: the export was re-formatted.
    pub fn first_reformatted_event(&self) -> Option<usize> {
        self.events
            .iter()
            .position(|event| !is_compact_json(event.data.get()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("chain events always serialize")
    }

    /// Parses an export; a file of another format is refused by name.
    pub fn from_json(text: &str) -> Result<Self, ExportError> {
        let export: Self = serde_json::from_str(text)?;
        export.check_format()?;
        Ok(export)
    }

    /// Whether this version reads the export's format.
    pub fn check_format(&self) -> Result<(), ExportError> {
        match self.format == EXPORT_FORMAT {
            true => Ok(()),
            false => Err(ExportError::Format {
                found: self.format.clone(),
            }),
        }
    }
}

/// Whether `text` (valid JSON) has no whitespace outside its strings.
fn is_compact_json(text: &str) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        match (in_string, c) {
            (true, _) if escaped => escaped = false,
            (true, '\\') => escaped = true,
            (_, '"') => in_string = !in_string,
            (false, c) if c.is_whitespace() => return false,
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::tests::{raw, sample_chain};

    #[test]
    fn export_round_trips_byte_for_byte() {
        let events = sample_chain(3);
        let json = ChainExport::new("a".into(), events.clone()).to_json();
        let back = ChainExport::from_json(&json).unwrap();
        assert_eq!(verify(&back.events), Ok(()));
        assert_eq!(
            back.events.last().unwrap().hash,
            events.last().unwrap().hash
        );
    }

    #[test]
    fn an_export_must_name_the_actor_of_its_genesis_event() {
        let init = ChainEvent::new(
            None,
            record::ACTOR_INIT,
            raw(r#"{"actor_id":"a"}"#),
            1,
            "init".into(),
        );
        assert_eq!(
            ChainExport::new("a".into(), vec![init.clone()]).verify(),
            Ok(())
        );
        let err = ChainExport::new("b".into(), vec![init])
            .verify()
            .unwrap_err();
        assert!(matches!(err, VerifyError::WrongActor { .. }), "{err}");
        assert!(err.to_string().contains("actor a's"), "{err}");
    }

    #[test]
    fn compact_json_is_told_from_reformatted_json() {
        assert!(is_compact_json(r#"{"a":[1,"x y",{"b":"\" c"}]}"#));
        assert!(!is_compact_json("{\"a\": 1}"));
        assert!(!is_compact_json("{\n  \"a\":1\n}"));
    }

    /// The export of `docs/chain.md` whose message is an array of numbers.
    #[test]
    fn an_export_recorded_before_base64_still_verifies() {
        let old = r#"{"format":"theater-chain/1","actor_id":"0654cb0d-f235-4bd1-8d3f-7b975c5b1f25","events":[
{"hash":"6263565de92c5d05e0378a0c0f4835740e12749696a8ced17f855f38f693a52e","parent_hash":null,"event_type":"actor-init",
"data":{"actor_id":"0654cb0d-f235-4bd1-8d3f-7b975c5b1f25","name":"counter","component":"7b07a5c52e408d14f277a240b00f77f178f6ff348a22de231d2ae286f9c73eff","state":{"sha256":"4b54b113904ea77c14fb933d7d6db8278537e134ebabc8044ef749533689f2bb","size":13}},
"timestamp":1795608819406,"description":"counter initialized"},
{"hash":"88357fad826fb603aabd225a2774f43a4ee224098a6fe90f4e3146958512b062","parent_hash":"6263565de92c5d05e0378a0c0f4835740e12749696a8ced17f855f38f693a52e","event_type":"call",
"data":{"function":"ntwk:theater/message-server-client.handle-send","params":[[123,34,97,100,100,34,58,49,125]],"result":null,"state":{"sha256":"6aea6dfe6561984cdc5c54ead84d47d2cf29e48253ae282aef237404adad4661","size":11}},
"timestamp":1795608819407,"description":"handle-send ok"}]}"#;
        assert_eq!(ChainExport::from_json(old).unwrap().verify(), Ok(()));
    }

    #[test]
    fn export_of_another_format_is_refused() {
        let err = ChainExport::from_json(r#"{"format":"x/9","actor_id":"a","events":[]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported chain format `x/9`"), "{err}");
    }
}
