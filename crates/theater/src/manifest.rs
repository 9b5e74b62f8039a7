//! The actor manifest: a TOML file naming the component, its initial state,
//! the capabilities it is granted and its limits.
//!
//! Parsing is strict where a mistake would change behaviour (missing,
//! mistyped or out-of-range values, and arrays where tables belong, are
//! errors naming the file, key and line) and lenient where manifests of
//! earlier releases carry extra top-level keys (those are warnings).
//!
//! Two forms are read: today's (`component_path`, `[[handlers]]` with a
//! `config` table) and the 2025 one (`component`, `[[handler]]` with the
//! handler's settings inline beside `type`, `long_description`,
//! `save_chain`, `permission_policy`). Both come out as the same
//! [`Manifest`]; one key written in both forms is an error naming both.
//! Files it names are read as [`crate::files`] says: regular files only,
//! within their limits, and for a spawn an actor asks for, only beneath the
//! directories its parent may spawn from.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::files::{self, FileKind, FileRules};

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
/// Longest call a manifest may allow: an hour. A call holds its actor's
/// queue for as long as it runs.
pub const MAX_CALL_TIMEOUT_MS: u64 = 60 * 60 * 1000;
/// Largest queue a manifest may ask for.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;
/// Largest message a manifest may let its actor take: 256 MiB, each held
/// in memory whole.
pub const MAX_MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// A parsed and validated manifest, with paths resolved against its file.
/// It serializes (to JSON) so a stored actor record can start it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub description: Option<String>,
    /// Informational, like `description`.
    #[serde(default)]
    pub long_description: Option<String>,
    pub version: Option<String>,
    /// Absolute path of the component.
    pub component_path: PathBuf,
    /// Bytes handed to `actor.init` as the first state.
    pub init_state: Option<Vec<u8>>,
    pub handlers: Vec<HandlerEntry>,
    pub limits: Limits,
    /// The file this came from (`<inline>` for manifest text).
    pub source: PathBuf,
    /// Keys this version does not know or does not act on; each names its
    /// line.
    pub warnings: Vec<String>,
    /// The line of every key, by dotted path (`limits.memory_mb`,
    /// `handlers.0.config.path`), for errors found after parsing. A
    /// `[[handler]]` setting is also found under its `handlers.N.config.`
    /// path.
    #[serde(default)]
    pub lines: BTreeMap<String, usize>,
}

/// One `[[handlers]]` (or `[[handler]]`) entry: a capability the actor is
/// granted.
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

impl Limits {
    /// Each limit: its key, its value and the values a manifest may give it.
    fn entries(&self) -> [(&'static str, u64, RangeInclusive<u64>); 6] {
        [
            ("memory_mb", self.memory_mb, 1..=MAX_MEMORY_MB),
            (
                "call_timeout_ms",
                self.call_timeout_ms,
                1..=MAX_CALL_TIMEOUT_MS,
            ),
            (
                "queue_capacity",
                self.queue_capacity as u64,
                1..=MAX_QUEUE_CAPACITY as u64,
            ),
            (
                "max_message_bytes",
                self.max_message_bytes as u64,
                1..=MAX_MAX_MESSAGE_BYTES as u64,
            ),
            (
                "max_state_bytes",
                self.max_state_bytes as u64,
                1..=MAX_STATE_BYTES as u64,
            ),
            (
                "max_result_bytes",
                self.max_result_bytes as u64,
                1..=MAX_RESULT_BYTES as u64,
            ),
        ]
    }

    /// Fails on the first limit out of its range, with its key.
    fn check(&self) -> Result<(), (&'static str, String)> {
        for (key, value, range) in self.entries() {
            if !range.contains(&value) {
                let (min, max) = range.into_inner();
                return Err((
                    key,
                    format!("`limits.{key}` is {value}; it must be from {min} to {max}"),
                ));
            }
        }
        Ok(())
    }

    /// These limits for a child an actor spawns: each one its manifest does
    /// not set (`set` says which it does) is lowered to the parent's, so a
    /// child left at the defaults never has more than its parent.
    pub fn inherited(mut self, parent: &Limits, set: impl Fn(&str) -> bool) -> Limits {
        if !set("memory_mb") {
            self.memory_mb = self.memory_mb.min(parent.memory_mb);
        }
        if !set("call_timeout_ms") {
            self.call_timeout_ms = self.call_timeout_ms.min(parent.call_timeout_ms);
        }
        if !set("queue_capacity") {
            self.queue_capacity = self.queue_capacity.min(parent.queue_capacity);
        }
        if !set("max_message_bytes") {
            self.max_message_bytes = self.max_message_bytes.min(parent.max_message_bytes);
        }
        if !set("max_state_bytes") {
            self.max_state_bytes = self.max_state_bytes.min(parent.max_state_bytes);
        }
        if !set("max_result_bytes") {
            self.max_result_bytes = self.max_result_bytes.min(parent.max_result_bytes);
        }
        self
    }

    /// Fails on the first limit higher than the parent's, with its key: a
    /// child an actor spawns may have no more than its parent.
    pub fn within(&self, parent: &Limits) -> Result<(), (&'static str, String)> {
        for ((key, child, _), (_, parent, _)) in self.entries().into_iter().zip(parent.entries()) {
            if child > parent {
                return Err((
                    key,
                    format!("`limits.{key}` is {child}, more than the parent's {parent}"),
                ));
            }
        }
        Ok(())
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
    component_path: Option<Spanned<String>>,
    /// The 2025 form of `component_path`.
    component: Option<Spanned<String>>,
    description: Option<String>,
    long_description: Option<String>,
    version: Option<String>,
    init_state: Option<Spanned<String>>,
    /// Chains are always saved: accepted, and `false` is ignored with a
    /// warning.
    save_chain: Option<Spanned<bool>>,
    /// Accepted, not enforced: a warning says so.
    permission_policy: Option<Spanned<toml::Value>>,
    /// Informational (`implements`, `requires`): accepted, not interpreted.
    #[serde(rename = "interface")]
    _interface: Option<toml::Table>,
    handlers: Option<Vec<RawHandler>>,
    /// The 2025 form of `handlers`: each a table with `type` and the
    /// handler's settings inline.
    handler: Option<Vec<toml::Table>>,
    #[serde(default)]
    limits: Limits,
}

#[derive(Deserialize)]
struct RawHandler {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    #[serde(default)]
    config: toml::Table,
}

impl Manifest {
    /// Reads and validates the manifest at `path`, anywhere this process
    /// may read, within the default file limits. Blocking: async code uses
    /// [`read`](Self::read).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ManifestError> {
        Self::load_with(path.as_ref(), &FileRules::default())
    }

    /// [`load`](Self::load) under `rules`.
    pub fn load_with(path: &Path, rules: &FileRules) -> Result<Self, ManifestError> {
        let bytes = files::read(path, FileKind::Manifest, rules).map_err(|e| ManifestError {
            file: path.to_owned(),
            line: None,
            message: e.to_string(),
        })?;
        let text = String::from_utf8(bytes).map_err(|e| ManifestError {
            file: path.to_owned(),
            line: None,
            message: format!("the manifest is not UTF-8 text: {e}"),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse_with(&text, path, dir, rules)
    }

    /// [`load_with`](Self::load_with) on a blocking thread.
    pub async fn read(path: PathBuf, rules: FileRules) -> Result<Self, ManifestError> {
        files::off_thread(move || Self::load_with(&path, &rules)).await
    }

    /// [`parse_with`](Self::parse_with) on a blocking thread (an
    /// `init_state` file is read).
    pub async fn read_text(
        text: String,
        source: PathBuf,
        base_dir: PathBuf,
        rules: FileRules,
    ) -> Result<Self, ManifestError> {
        files::off_thread(move || Self::parse_with(&text, &source, &base_dir, &rules)).await
    }

    /// Parses manifest text; relative paths resolve against `base_dir`.
    /// Blocking when it names an `init_state` file.
    pub fn parse(text: &str, source: &Path, base_dir: &Path) -> Result<Self, ManifestError> {
        Self::parse_with(text, source, base_dir, &FileRules::default())
    }

    /// [`parse`](Self::parse) under `rules`.
    pub fn parse_with(
        text: &str,
        source: &Path,
        base_dir: &Path,
        rules: &FileRules,
    ) -> Result<Self, ManifestError> {
        let error = |line: Option<usize>, message: String| ManifestError {
            file: source.to_owned(),
            line,
            message,
        };
        let line_of = |offset: usize| Some(line_at(text, offset));

        if text.len() as u64 > rules.limits.manifest_bytes {
            return Err(error(
                None,
                format!(
                    "the manifest is larger than the limit of {} bytes",
                    rules.limits.manifest_bytes
                ),
            ));
        }
        let document = DeTable::parse(text).map_err(|e| {
            error(
                e.span().and_then(|s| line_of(s.start)),
                e.message().trim().to_owned(),
            )
        })?;
        let mut keys = Vec::new();
        keys_of(text, document.get_ref(), "", &mut keys);
        tables_are_tables(document.get_ref()).map_err(|(at, m)| error(line_of(at), m))?;

        let mut unknown = Vec::new();
        let raw: RawManifest =
            serde_ignored::deserialize(toml::de::Deserializer::from(document), |path| {
                unknown.push(path.to_string());
            })
            .map_err(|e| {
                let at = e.span().map(|s| s.start);
                let message = describe_toml_error(e.message());
                match at.and_then(|at| key_at(&keys, at)) {
                    Some(key) => error(Some(key.line), format!("`{}`: {message}", key.path)),
                    None => error(at.and_then(line_of), message),
                }
            })?;
        let mut lines: BTreeMap<String, usize> =
            keys.into_iter().map(|key| (key.path, key.line)).collect();

        let name_line = line_of(raw.name.span().start);
        if raw.name.get_ref().trim().is_empty() {
            return Err(error(name_line, "`name` must not be empty".into()));
        }
        let (component_key, component) = match (raw.component_path, raw.component) {
            (Some(path), None) => ("component_path", path),
            (None, Some(path)) => ("component", path),
            (Some(_), Some(_)) => {
                return Err(both_forms(&lines, "component_path", "component", error));
            }
            (None, None) => {
                return Err(error(
                    None,
                    "missing required key `component_path` (or `component`, its 2025 form)".into(),
                ));
            }
        };
        if component.get_ref().trim().is_empty() {
            return Err(error(
                line_of(component.span().start),
                format!("`{component_key}` must not be empty"),
            ));
        }
        raw.limits
            .check()
            .map_err(|(key, m)| error(lines.get(&format!("limits.{key}")).copied(), m))?;
        let init_state = raw
            .init_state
            .map(|init| {
                read_init_state(init.get_ref(), base_dir, rules)
                    .map_err(|m| error(line_of(init.span().start), m))
            })
            .transpose()?;
        let handlers = match (raw.handlers, raw.handler) {
            (Some(_), Some(_)) => return Err(both_forms(&lines, "handlers", "handler", error)),
            (Some(entries), None) => entries
                .into_iter()
                .map(|h| HandlerEntry {
                    line: line_at(text, h.kind.span().start),
                    kind: h.kind.into_inner(),
                    config: h.config,
                })
                .collect(),
            (None, Some(entries)) => entries
                .into_iter()
                .enumerate()
                .map(|(index, entry)| inline_handler(index, entry, &mut lines, base_dir))
                .collect::<Result<_, _>>()
                .map_err(|(line, message)| error(line, message))?,
            (None, None) => Vec::new(),
        };
        let mut located: Vec<(Option<usize>, String)> = unknown
            .into_iter()
            .map(|key| {
                let line = lines.get(&key).copied();
                (line, format!("unused manifest key `{key}`"))
            })
            .collect();
        if let Some(save) = raw.save_chain.filter(|save| !save.get_ref()) {
            located.push((
                line_of(save.span().start),
                "`save_chain = false` is ignored: Theater saves every actor's chain".into(),
            ));
        }
        if let Some(policy) = raw.permission_policy.filter(|p| !is_empty(p.get_ref())) {
            located.push((
                line_of(policy.span().start),
                "`permission_policy` is not enforced: an actor holds exactly what its handler entries grant, within their settings".into(),
            ));
        }
        located.sort();
        let warnings = located
            .into_iter()
            .map(|(line, message)| {
                let line = line.map(|l| format!(":{l}")).unwrap_or_default();
                format!("{}{line}: {message}", source.display())
            })
            .collect();

        Ok(Self {
            name: raw.name.into_inner(),
            description: raw.description,
            long_description: raw.long_description,
            version: raw.version,
            component_path: base_dir.join(component.get_ref()),
            init_state,
            handlers,
            limits: raw.limits,
            source: source.to_owned(),
            warnings,
            lines,
        })
    }

    /// The directory relative paths in this manifest resolve against.
    pub fn base_dir(&self) -> &Path {
        self.source.parent().unwrap_or(Path::new("."))
    }

    /// The line of the key at `path` (dotted, as in [`lines`](Self::lines)).
    pub fn line_of(&self, path: &str) -> Option<usize> {
        self.lines.get(path).copied()
    }
}

/// The error for one key written in both its forms, naming both and the
/// line of each.
fn both_forms(
    lines: &BTreeMap<String, usize>,
    today: &str,
    form_2025: &str,
    error: impl Fn(Option<usize>, String) -> ManifestError,
) -> ManifestError {
    let at = |key: &str| lines.get(key).copied();
    let shown = |key: &str| match at(key) {
        Some(line) => format!("`{key}` (line {line})"),
        None => format!("`{key}`"),
    };
    error(
        at(today).max(at(form_2025)),
        format!(
            "{} and {} are the same key in two forms (`{form_2025}` is the 2025 form of `{today}`): keep one",
            shown(today),
            shown(form_2025)
        ),
    )
}

/// Handler settings that name a path: in the 2025 form they are relative
/// to the manifest's directory, as that format defined them (`[[handlers]]`
/// entries keep today's meaning, see `docs/filesystem.md`).
const PATH_SETTINGS: &[(&str, &str)] = &[("filesystem", "path")];

/// A `[[handler]]` entry (the 2025 form): `type` and the handler's
/// settings beside it, or in a `config` table as today. Its settings' lines
/// are also kept under `handlers.N.config.`, where handler errors look.
fn inline_handler(
    index: usize,
    mut entry: toml::Table,
    lines: &mut BTreeMap<String, usize>,
    base_dir: &Path,
) -> Result<HandlerEntry, (Option<usize>, String)> {
    let prefix = format!("handler.{index}.");
    let line_of = |key: &str| lines.get(&format!("{prefix}{key}")).copied();
    // Without `type`, the entry's first key, else the first entry's header.
    let entry_line = line_of("type")
        .or_else(|| {
            lines
                .iter()
                .filter(|(key, _)| key.starts_with(&prefix))
                .map(|(_, line)| *line)
                .min()
        })
        .or_else(|| lines.get("handler").copied());
    let kind = match entry.remove("type") {
        Some(toml::Value::String(kind)) => kind,
        Some(other) => {
            return Err((
                entry_line,
                format!("`type` must be a string, not {}", other.type_str()),
            ));
        }
        None => {
            return Err((
                entry_line,
                "each `[[handler]]` entry needs a `type`, like `type = \"filesystem\"`".into(),
            ));
        }
    };
    let (mut config, settings_prefix) = match entry.remove("config") {
        None => (entry, prefix.clone()),
        Some(toml::Value::Table(config)) => {
            if let Some(inline) = entry.keys().next() {
                return Err((
                    line_of(inline).max(line_of("config")),
                    format!(
                        "`config` and `{inline}` both set this handler's settings: write them inline or in `config`, not both"
                    ),
                ));
            }
            (config, format!("{prefix}config."))
        }
        Some(other) => {
            return Err((
                line_of("config"),
                format!(
                    "`config` of a handler must be a table, not {}",
                    other.type_str()
                ),
            ));
        }
    };
    for (handler, key) in PATH_SETTINGS {
        if kind == *handler
            && let Some(toml::Value::String(path)) = config.get_mut(*key)
        {
            *path = base_dir.join(&*path).display().to_string();
        }
    }
    for key in config.keys() {
        if let Some(line) = lines.get(&format!("{settings_prefix}{key}")).copied() {
            lines.insert(format!("handlers.{index}.config.{key}"), line);
        }
    }
    Ok(HandlerEntry {
        kind,
        config,
        line: entry_line.unwrap_or(0),
    })
}

/// Whether a `permission_policy` asks for nothing.
fn is_empty(value: &toml::Value) -> bool {
    match value {
        toml::Value::Table(table) => table.is_empty(),
        toml::Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// `init_state` is inline JSON when it looks like JSON, else a file path.
fn read_init_state(value: &str, base_dir: &Path, rules: &FileRules) -> Result<Vec<u8>, String> {
    let trimmed = value.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::from_str::<serde_json::Value>(value)
            .map_err(|e| format!("`init_state` is not valid JSON: {e}"))?;
        return Ok(value.as_bytes().to_vec());
    }
    files::read(&base_dir.join(value), FileKind::InitState, rules).map_err(|e| e.to_string())
}

/// Every key of a document: its dotted path (tables in arrays, such as
/// `[[handlers]]`, by index), its line, and where its value lies.
struct Key {
    path: String,
    line: usize,
    value: std::ops::Range<usize>,
}

fn keys_of(text: &str, table: &DeTable<'_>, prefix: &str, keys: &mut Vec<Key>) {
    for (key, value) in table {
        let path = format!("{prefix}{}", key.get_ref());
        keys.push(Key {
            path: path.clone(),
            line: line_at(text, key.span().start),
            value: value.span(),
        });
        match value.get_ref() {
            DeValue::Table(inner) => keys_of(text, inner, &format!("{path}."), keys),
            DeValue::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    if let DeValue::Table(inner) = item.get_ref() {
                        keys_of(text, inner, &format!("{path}.{index}."), keys);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The innermost key whose value holds the byte at `offset`: what a
/// serde error about a value is about.
fn key_at(keys: &[Key], offset: usize) -> Option<&Key> {
    keys.iter()
        .filter(|key| key.value.contains(&offset))
        .min_by_key(|key| key.value.len())
}

/// Where a table belongs, an array would fill it field by field
/// (`limits = [200, 5]` as `memory_mb = 200, call_timeout_ms = 5`): these
/// must be tables. The error carries the offset of the offending value.
fn tables_are_tables(document: &DeTable<'_>) -> Result<(), (usize, String)> {
    let not_a_table = |value: &Spanned<DeValue<'_>>, message: &str| {
        let found = value.get_ref().type_str();
        let article = if found.starts_with(['a', 'i']) {
            "an"
        } else {
            "a"
        };
        Err((
            value.span().start,
            format!("{message}, not {article} {found}"),
        ))
    };
    for (key, value) in document {
        match (key.get_ref().as_ref(), value.get_ref()) {
            ("limits", DeValue::Table(_)) => {}
            ("limits", _) => {
                return not_a_table(
                    value,
                    "`limits` must be a table (`[limits]` with `memory_mb = ...` and so on)",
                );
            }
            ("handlers" | "handler", DeValue::Array(entries)) => {
                for entry in entries {
                    let DeValue::Table(entry_table) = entry.get_ref() else {
                        return not_a_table(
                            entry,
                            "each `handlers` entry must be a table (`[[handlers]]` with `type` and `config`, or `[[handler]]` with `type` and its settings)",
                        );
                    };
                    for (key, config) in entry_table {
                        if key.get_ref() == "config" && !config.get_ref().is_table() {
                            return not_a_table(
                                config,
                                "`config` of a handler must be a table, like `config = { ... }`",
                            );
                        }
                    }
                }
            }
            ("handlers" | "handler", _) => {
                return not_a_table(
                    value,
                    "`handlers` must be an array of tables (`[[handlers]]` entries, or `[[handler]]` in the 2025 form)",
                );
            }
            _ => {}
        }
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
    fn arrays_where_tables_belong_are_refused_at_their_line() {
        let head = "name = \"c\"\ncomponent_path = \"c.wasm\"\n";
        for (rest, line, words) in [
            (
                "limits = [200, 5]\n",
                3,
                "`limits` must be a table (`[limits]` with `memory_mb = ...` and so on), not an array",
            ),
            ("limits = [1]\n", 3, "`limits` must be a table"),
            ("limits = 7\n", 3, "not an integer"),
            (
                "handlers = [[\"filesystem\", { path = \"/\" }]]\n",
                3,
                "each `handlers` entry must be a table",
            ),
            (
                "handlers = { type = \"runtime\" }\n",
                3,
                "`handlers` must be an array",
            ),
            (
                "[[handlers]]\ntype = \"runtime\"\nconfig = \"all\"\n",
                5,
                "`config` of a handler must be a table",
            ),
        ] {
            let err = parse(&format!("{head}{rest}")).unwrap_err();
            assert_eq!(err.line, Some(line), "{rest}: {err}");
            assert!(err.to_string().contains(words), "{rest}: {err}");
        }
    }

    #[test]
    fn every_limit_is_range_checked_at_its_line() {
        let head = "name = \"c\"\ncomponent_path = \"c.wasm\"\n[limits]\n";
        for (rest, key) in [
            (
                "call_timeout_ms = 18446744073709551615\n",
                "call_timeout_ms",
            ),
            ("call_timeout_ms = 3600001\n", "call_timeout_ms"),
            ("max_message_bytes = 268435457\n", "max_message_bytes"),
            ("queue_capacity = 0\n", "queue_capacity"),
            ("memory_mb = -1\n", "memory_mb"),
            ("memory_mb = \"lots\"\n", "memory_mb"),
        ] {
            let err = parse(&format!("{head}{rest}")).unwrap_err();
            assert_eq!(err.line, Some(4), "{rest}: {err}");
            assert!(err.to_string().contains(key), "{rest}: {err}");
        }
        let m = parse(&format!("{head}call_timeout_ms = 3600000\n")).unwrap();
        assert_eq!(m.limits.call_timeout_ms, MAX_CALL_TIMEOUT_MS);
    }

    #[test]
    fn lines_of_keys_are_kept_for_later_errors() {
        let m = parse("name = \"c\"\ncomponent_path = \"c.wasm\"\n\n[[handlers]]\ntype = \"timing\"\nconfig = { max_sleep_duration = 5,\n  min_sleep_duration = 1 }\n\n[limits]\nmemory_mb = 3\n").unwrap();
        assert_eq!(m.line_of("handlers.0.config.max_sleep_duration"), Some(6));
        assert_eq!(m.line_of("handlers.0.config.min_sleep_duration"), Some(7));
        assert_eq!(m.line_of("limits.memory_mb"), Some(10));
    }

    #[test]
    fn a_child_has_no_limit_above_its_parent() {
        let parent = Limits {
            memory_mb: 64,
            ..Limits::default()
        };
        let child = Limits::default().inherited(&parent, |_| false);
        assert_eq!(child.memory_mb, 64);
        assert_eq!(child.call_timeout_ms, DEFAULT_CALL_TIMEOUT_MS);
        let child = Limits::default().inherited(&parent, |key| key == "memory_mb");
        assert_eq!(child.memory_mb, DEFAULT_MEMORY_MB);
        let parent = Limits::default();
        assert_eq!(parent.within(&parent), Ok(()));
        let child = Limits {
            memory_mb: DEFAULT_MEMORY_MB + 1,
            ..Limits::default()
        };
        let (key, message) = child.within(&parent).unwrap_err();
        assert_eq!(key, "memory_mb");
        assert!(
            message.contains("129, more than the parent's 128"),
            "{message}"
        );
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
    fn the_2025_form_reads_as_todays() {
        let m = parse(
            r#"name = "c"
component = "c.wasm"
version = "0.2.0"
description = "short"
long_description = "long"
save_chain = true

[[handler]]
type = "message-server"

[[handler]]
type = "timing"
max_sleep_duration = 1000
min_sleep_duration = 5

[[handler]]
type = "filesystem"
path = "data"
"#,
        )
        .unwrap();
        assert_eq!(m.component_path, Path::new("/actors/x/c.wasm"));
        assert_eq!(m.long_description.as_deref(), Some("long"));
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        let kinds: Vec<&str> = m.handlers.iter().map(|h| h.kind.as_str()).collect();
        assert_eq!(kinds, ["message-server", "timing", "filesystem"]);
        assert!(m.handlers[0].config.is_empty());
        assert_eq!(m.handlers[1].line, 12);
        assert_eq!(
            m.handlers[1].config["max_sleep_duration"].as_integer(),
            Some(1000)
        );
        // Handler errors find a setting's line under today's path.
        assert_eq!(m.line_of("handlers.1.config.min_sleep_duration"), Some(14));
        // A path setting of the 2025 form is relative to the manifest.
        assert_eq!(
            m.handlers[2].config["path"].as_str(),
            Some("/actors/x/data")
        );
    }

    #[test]
    fn a_key_in_both_forms_is_an_error_naming_both() {
        for (text, line, first, second) in [
            (
                "name = \"c\"\ncomponent_path = \"a.wasm\"\ncomponent = \"b.wasm\"\n",
                3,
                "`component_path` (line 2)",
                "`component` (line 3)",
            ),
            (
                "name = \"c\"\ncomponent = \"c.wasm\"\n[[handlers]]\ntype = \"timing\"\n[[handler]]\ntype = \"random\"\n",
                5,
                "`handlers` (line 3)",
                "`handler` (line 5)",
            ),
            (
                "name = \"c\"\ncomponent = \"c.wasm\"\n[[handler]]\ntype = \"timing\"\nconfig = { max_sleep_duration = 5 }\nmin_sleep_duration = 1\n",
                6,
                "`config`",
                "`min_sleep_duration`",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.line, Some(line), "{err}");
            let message = err.to_string();
            assert!(
                message.contains(first) && message.contains(second),
                "{message}"
            );
        }
        let err = parse("name = \"c\"\n").unwrap_err();
        assert!(err.to_string().contains("`component`"), "{err}");
        let err = parse(
            "name = \"c\"\ncomponent = \"c.wasm\"\n[[handler]]\ntype = \"random\"\n[[handler]]\npath = \"x\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("needs a `type`"), "{err}");
        assert_eq!(err.line, Some(6));
    }

    #[test]
    fn the_2025_form_warns_of_what_it_does_not_act_on() {
        let m = parse(
            "name = \"c\"\ncomponent = \"c.wasm\"\ninit_data = 1\nsave_chain = false\n[permission_policy]\nfilesystem = \"read-only\"\n[[handler]]\ntype = \"runtime\"\n",
        )
        .unwrap();
        assert_eq!(m.warnings.len(), 3, "{:?}", m.warnings);
        assert!(m.warnings[0].ends_with(":3: unused manifest key `init_data`"));
        assert!(m.warnings[1].contains(":4: `save_chain = false` is ignored"));
        assert!(m.warnings[2].contains(":5: `permission_policy` is not enforced"));
        let m = parse("name = \"c\"\ncomponent = \"c.wasm\"\npermission_policy = {}\n").unwrap();
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
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
