//! The manifest parser, on any text.
//!
//! - An error names the manifest and, when it gives a line, a line the
//!   text has.
//! - A manifest that parses is valid: a name, a component beneath the base
//!   directory, limits in range, every recorded line within the text,
//!   inline state that is JSON.
//! - It survives the trip through an actor record (JSON) unchanged, as a
//!   restarted runtime reads it back.

#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use theater::Manifest;
use theater::files::FileRules;
use theater::manifest::{
    MAX_CALL_TIMEOUT_MS, MAX_MAX_MESSAGE_BYTES, MAX_MEMORY_MB, MAX_QUEUE_CAPACITY,
};

const SOURCE: &str = "/fuzz/manifest.toml";
/// Never created: an `init_state` naming a file is refused, not read, so
/// runs depend on the input alone.
const BASE_DIR: &str = "/nonexistent/theater-fuzz";

fn lines_in(text: &str) -> usize {
    text.matches('\n').count() + 1
}

fn check_valid(manifest: &Manifest, text: &str) {
    let lines = lines_in(text);
    let within = |line: usize| (1..=lines).contains(&line);
    assert!(!manifest.name.trim().is_empty(), "empty name accepted");
    assert!(
        manifest.component_path.starts_with(BASE_DIR),
        "component outside the base directory: {:?}",
        manifest.component_path
    );
    let limits = &manifest.limits;
    assert!((1..=MAX_MEMORY_MB).contains(&limits.memory_mb));
    assert!((1..=MAX_CALL_TIMEOUT_MS).contains(&limits.call_timeout_ms));
    assert!((1..=MAX_QUEUE_CAPACITY).contains(&limits.queue_capacity));
    assert!((1..=MAX_MAX_MESSAGE_BYTES).contains(&limits.max_message_bytes));
    for handler in &manifest.handlers {
        assert!(
            within(handler.line),
            "handler line {} of {lines}",
            handler.line
        );
    }
    for (key, line) in &manifest.lines {
        assert!(within(*line), "`{key}` on line {line} of {lines}");
    }
    for warning in &manifest.warnings {
        assert!(
            warning.starts_with(SOURCE),
            "warning without its file: {warning}"
        );
    }
    if let Some(state) = &manifest.init_state {
        serde_json::from_slice::<serde_json::Value>(state).expect("inline state is JSON");
    }
}

/// As an actor record stores it and a restarted runtime reads it.
fn check_record_round_trip(manifest: &Manifest) {
    let stored = serde_json::to_string(manifest).expect("a manifest serializes");
    let read: Manifest = serde_json::from_str(&stored)
        .unwrap_or_else(|e| panic!("a stored manifest does not read back: {e}\n{stored}"));
    let again = serde_json::to_string(&read).expect("a manifest serializes");
    assert_eq!(again, stored, "a stored manifest changed on the way back");
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let rules = FileRules {
        beneath: Some(Arc::from([Path::new(BASE_DIR).to_owned()])),
        ..FileRules::default()
    };
    match Manifest::parse_with(text, Path::new(SOURCE), Path::new(BASE_DIR), &rules) {
        Ok(manifest) => {
            check_valid(&manifest, text);
            check_record_round_trip(&manifest);
        }
        Err(error) => {
            assert_eq!(error.file, Path::new(SOURCE));
            assert!(!error.message.trim().is_empty(), "an error says nothing");
            if let Some(line) = error.line {
                let lines = lines_in(text);
                assert!(
                    (1..=lines).contains(&line),
                    "error on line {line} of a {lines}-line text: {error}"
                );
            }
        }
    }
});
