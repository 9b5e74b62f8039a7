//! The actor manifest: a TOML file naming the component, its initial state,
//! the capabilities it is granted and its limits.
//!
//! Parsing is strict where a mistake would change behaviour (missing or
//! mistyped keys are errors naming the file, key and line) and lenient where
//! manifests of earlier releases carry extra keys (unknown keys are warnings).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// Default linear-memory cap per actor. Guards the host against a guest
/// that allocates without bound.
pub const DEFAULT_MEMORY_MB: u64 = 128;
/// Default wall-clock budget of one call into an actor. Guards against a
/// guest that never returns.
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 10_000;
/// Default capacity of an actor's event queue. Guards the host against
/// callers that produce work faster than the actor can handle it.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// Default cap on one message delivered to an actor (send, request, channel
/// message). Guards the receiver against a sender that floods its memory.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Default cap on the state a call leaves behind. Guards the host's memory
/// and disk against an actor that grows its state without bound: every
/// call hands the state to the actor and back, and a changed state is
/// written to the chain database.
pub const DEFAULT_MAX_STATE_BYTES: usize = 8 * 1024 * 1024;
/// Default cap on a call's result as its chain event records it (JSON, in
/// which a byte list takes up to four bytes per byte) and on the message of
/// an `Err`. Guards the chain database and the callers against an actor that
/// answers without bound.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 16 * 1024 * 1024;
/// Largest state cap a manifest may ask for.
pub const MAX_STATE_BYTES: usize = 1 << 30;
/// Largest result cap a manifest may ask for.
pub const MAX_RESULT_BYTES: usize = 1 << 30;
/// Largest linear memory a manifest may allow: all a 32-bit guest can address.
pub const MAX_MEMORY_MB: u64 = 4096;
/// Largest queue a manifest may ask for.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;

/// A parsed and validated manifest, with paths resolved against its file.
/// It serializes (to JSON) so a stored actor record can start it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub description: Option<String>,
    pub version: Option<String>,
    /// Absolute path of the component.
    pub component_path: PathBuf,
    /// Bytes handed to `actor.init` as the first state.
    pub init_state: Option<Vec<u8>>,
    pub handlers: Vec<HandlerEntry>,
    pub limits: Limits,
    /// The file this came from (`<inline>` for manifest text).
    pub source: PathBuf,
    /// Keys this version does not know; each names its line.
    pub warnings: Vec<String>,
}

/// One `[[handlers]]` entry: a capability the actor is granted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandlerEntry {
    /// The `type` key, e.g. `message-server`.
    pub kind: String,
    pub config: toml::Table,
    /// Line of the `type` key, for error messages.
    pub line: usize,
}

/// The `[limits]` table.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub memory_mb: u64,
    pub call_timeout_ms: u64,
    pub queue_capacity: usize,
    pub max_message_bytes: usize,
    pub max_state_bytes: usize,
    pub max_result_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mb: DEFAULT_MEMORY_MB,
            call_timeout_ms: DEFAULT_CALL_TIMEOUT_MS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_state_bytes: DEFAULT_MAX_STATE_BYTES,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
        }
    }
}

/// A manifest that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ManifestError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Deserialize)]
struct RawManifest {
    name: Spanned<String>,
    component_path: Spanned<String>,
    description: Option<String>,
    version: Option<String>,
    init_state: Option<Spanned<String>>,
    /// Informational (`implements`, `requires`): accepted, not interpreted.
    #[serde(rename = "interface")]
    _interface: Option<toml::Table>,
    #[serde(default)]
    handlers: Vec<RawHandler>,
    #[serde(default)]
    limits: Option<Spanned<Limits>>,
}

#[derive(Deserialize)]
struct RawHandler {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    #[serde(default)]
    config: toml::Table,
}

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ManifestError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            file: path.to_owned(),
            line: None,
            message: format!("cannot read manifest: {e}"),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, path, dir)
    }

    /// Parses manifest text; relative paths resolve against `base_dir`.
    pub fn parse(text: &str, source: &Path, base_dir: &Path) -> Result<Self, ManifestError> {
        let error = |line: Option<usize>, message: String| ManifestError {
            file: source.to_owned(),
            line,
            message,
        };
        let line_of = |offset: usize| Some(line_at(text, offset));

        let deserializer = toml::de::Deserializer::parse(text).map_err(|e| {
            error(
                e.span().and_then(|s| line_of(s.start)),
                e.message().trim().to_owned(),
            )
        })?;
        let mut unknown = Vec::new();
        let raw: RawManifest = serde_ignored::deserialize(deserializer, |path| {
            unknown.push(path.to_string());
        })
        .map_err(|e| {
            error(
                e.span().and_then(|s| line_of(s.start)),
                describe_toml_error(e.message()),
            )
        })?;

        let name_line = line_of(raw.name.span().start);
        if raw.name.get_ref().trim().is_empty() {
            return Err(error(name_line, "`name` must not be empty".into()));
        }
        let component = raw.component_path.get_ref();
        if component.trim().is_empty() {
            return Err(error(
                line_of(raw.component_path.span().start),
                "`component_path` must not be empty".into(),
            ));
        }
        let init_state = raw
            .init_state
            .map(|init| {
                read_init_state(init.get_ref(), base_dir)
                    .map_err(|m| error(line_of(init.span().start), m))
            })
            .transpose()?;
        let limits = match raw.limits {
            Some(limits) => {
                let line = line_of(limits.span().start);
                let limits = limits.into_inner();
                validate_limits(&limits).map_err(|m| error(line, m))?;
                limits
            }
            None => Limits::default(),
        };
        let handlers = raw
            .handlers
            .into_iter()
            .map(|h| HandlerEntry {
                line: line_at(text, h.kind.span().start),
                kind: h.kind.into_inner(),
                config: h.config,
            })
            .collect();
        let mut located: Vec<(Option<usize>, String)> = unknown
            .into_iter()
            .map(|key| (find_key_line(text, &key), key))
            .collect();
        located.sort();
        let warnings = located
            .into_iter()
            .map(|(line, key)| {
                let line = line.map(|l| format!(":{l}")).unwrap_or_default();
                format!("{}{line}: unused manifest key `{key}`", source.display())
            })
            .collect();

        Ok(Self {
            name: raw.name.into_inner(),
            description: raw.description,
            version: raw.version,
            component_path: base_dir.join(component),
            init_state,
            handlers,
            limits,
            source: source.to_owned(),
            warnings,
        })
    }

    /// The directory relative paths in this manifest resolve against.
    pub fn base_dir(&self) -> &Path {
        self.source.parent().unwrap_or(Path::new("."))
    }
}

/// `init_state` is inline JSON when it looks like JSON, else a file path.
fn read_init_state(value: &str, base_dir: &Path) -> Result<Vec<u8>, String> {
    let trimmed = value.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::from_str::<serde_json::Value>(value)
            .map_err(|e| format!("`init_state` is not valid JSON: {e}"))?;
        return Ok(value.as_bytes().to_vec());
    }
    let path = base_dir.join(value);
    std::fs::read(&path)
        .map_err(|e| format!("cannot read `init_state` file {}: {e}", path.display()))
}

fn validate_limits(limits: &Limits) -> Result<(), String> {
    if !(1..=MAX_MEMORY_MB).contains(&limits.memory_mb) {
        return Err(format!(
            "`limits.memory_mb` must be between 1 and {MAX_MEMORY_MB}"
        ));
    }
    if limits.call_timeout_ms == 0 {
        return Err("`limits.call_timeout_ms` must be at least 1".into());
    }
    if limits.max_message_bytes == 0 {
        return Err("`limits.max_message_bytes` must be at least 1".into());
    }
    if !(1..=MAX_STATE_BYTES).contains(&limits.max_state_bytes) {
        return Err(format!(
            "`limits.max_state_bytes` must be between 1 and {MAX_STATE_BYTES}"
        ));
    }
    if !(1..=MAX_RESULT_BYTES).contains(&limits.max_result_bytes) {
        return Err(format!(
            "`limits.max_result_bytes` must be between 1 and {MAX_RESULT_BYTES}"
        ));
    }
    if !(1..=MAX_QUEUE_CAPACITY).contains(&limits.queue_capacity) {
        return Err(format!(
            "`limits.queue_capacity` must be between 1 and {MAX_QUEUE_CAPACITY}"
        ));
    }
    Ok(())
}

/// Turns serde's "missing field" into the manifest's vocabulary.
fn describe_toml_error(message: &str) -> String {
    let message = message.trim();
    match message.strip_prefix("missing field ") {
        Some(field) => format!("missing required key {field}"),
        None => message.to_owned(),
    }
}

/// 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Best-effort line of a dotted key path such as `handlers.0.priority`:
/// the first line that assigns its last segment.
fn find_key_line(text: &str, path: &str) -> Option<usize> {
    let key = path.rsplit('.').next()?;
    let table_header = format!("[{key}]");
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            line.starts_with(&table_header)
                || line
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(
            text,
            Path::new("/actors/x/manifest.toml"),
            Path::new("/actors/x"),
        )
    }

    #[test]
    fn minimal_manifest_gets_defaults() {
        let m = parse("name = \"counter\"\ncomponent_path = \"counter.wasm\"\n").unwrap();
        assert_eq!(m.name, "counter");
        assert_eq!(m.component_path, Path::new("/actors/x/counter.wasm"));
        assert_eq!(m.limits, Limits::default());
        assert!(m.handlers.is_empty() && m.warnings.is_empty());
    }

    #[test]
    fn handlers_limits_and_inline_state() {
        let m = parse(
            r#"name = "c"
component_path = "c.wasm"
init_state = '{"count": 3}'

[limits]
memory_mb = 16
call_timeout_ms = 250

[[handlers]]
type = "runtime"
config = {}

[[handlers]]
type = "timing"
config = { max_sleep_duration = 1000 }
"#,
        )
        .unwrap();
        assert_eq!(m.init_state.as_deref(), Some(br#"{"count": 3}"#.as_slice()));
        assert_eq!(m.limits.memory_mb, 16);
        assert_eq!(m.limits.call_timeout_ms, 250);
        assert_eq!(m.limits.queue_capacity, DEFAULT_QUEUE_CAPACITY);
        assert_eq!(m.handlers.len(), 2);
        assert_eq!(
            (m.handlers[1].kind.as_str(), m.handlers[1].line),
            ("timing", 14)
        );
        assert_eq!(
            m.handlers[1].config["max_sleep_duration"].as_integer(),
            Some(1000)
        );
    }

    #[test]
    fn missing_key_is_named() {
        let err = parse("name = \"c\"\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("missing required key `component_path`"),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("/actors/x/manifest.toml"),
            "{err}"
        );
    }

    #[test]
    fn malformed_toml_names_the_line() {
        let err =
            parse("name = \"c\"\ncomponent_path = \"c.wasm\"\nthis is not toml\n").unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
    }

    #[test]
    fn wrong_type_names_the_line() {
        let err = parse("name = \"c\"\ncomponent_path = 7\n").unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
    }

    #[test]
    fn unknown_keys_are_warnings_with_lines() {
        let m = parse("name = \"c\"\ncomponent_path = \"c.wasm\"\ninit_data = \"x\"\n").unwrap();
        assert_eq!(m.warnings.len(), 1);
        assert!(
            m.warnings[0].contains(":3: unused manifest key `init_data`"),
            "{:?}",
            m.warnings
        );
    }

    #[test]
    fn unknown_limit_is_an_error() {
        let err =
            parse("name = \"c\"\ncomponent_path = \"c.wasm\"\n[limits]\nmemory = 3\n").unwrap_err();
        assert!(err.to_string().contains("memory"), "{err}");
    }

    #[test]
    fn zero_limits_are_refused() {
        let err =
            parse("name = \"c\"\ncomponent_path = \"c.wasm\"\n[limits]\nqueue_capacity = 0\n")
                .unwrap_err();
        assert!(err.to_string().contains("queue_capacity"), "{err}");
    }

    #[test]
    fn state_and_result_caps_are_limits() {
        let m = parse("name = \"c\"\ncomponent_path = \"c.wasm\"\n[limits]\nmax_state_bytes = 1000\nmax_result_bytes = 2000\n").unwrap();
        assert_eq!(
            (m.limits.max_state_bytes, m.limits.max_result_bytes),
            (1000, 2000)
        );
        let m = parse("name = \"c\"\ncomponent_path = \"c.wasm\"\n").unwrap();
        assert_eq!(m.limits.max_state_bytes, DEFAULT_MAX_STATE_BYTES);
        let err =
            parse("name = \"c\"\ncomponent_path = \"c.wasm\"\n[limits]\nmax_state_bytes = 0\n")
                .unwrap_err();
        assert!(err.to_string().contains("max_state_bytes"), "{err}");
        let err = parse(&format!(
            "name = \"c\"\ncomponent_path = \"c.wasm\"\n[limits]\nmax_result_bytes = {}\n",
            MAX_RESULT_BYTES + 1
        ))
        .unwrap_err();
        assert!(err.to_string().contains("max_result_bytes"), "{err}");
    }

    #[test]
    fn missing_init_state_file_is_named() {
        let err = parse("name = \"c\"\ncomponent_path = \"c.wasm\"\ninit_state = \"nope.json\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("/actors/x/nope.json"), "{err}");
        assert_eq!(err.line, Some(3));
    }

    #[test]
    fn missing_file_is_named() {
        let err = Manifest::load("/definitely/not/here.toml").unwrap_err();
        assert!(
            err.to_string().contains("/definitely/not/here.toml"),
            "{err}"
        );
    }
}
