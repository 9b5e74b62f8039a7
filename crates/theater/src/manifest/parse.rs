//! Manifest text to a [`Manifest`]: the TOML read strictly where a
//! mistake would change behaviour, keys in either form, unknown keys kept
//! as warnings with their lines.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::DeTable;

use super::document::{
    describe_toml_error, key_at, keys_of, line_at, non_finite_number, tables_are_tables,
};
use super::form_2025::{both_forms, inline_handler};
use super::{HandlerEntry, Limits, Manifest, ManifestError};
use crate::files::{self, FileKind, FileRules};

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

/// Parses manifest text; relative paths resolve against `base_dir`.
pub(super) fn parse(
    text: &str,
    source: &Path,
    base_dir: &Path,
    rules: &FileRules,
) -> Result<Manifest, ManifestError> {
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
    for (index, handler) in handlers.iter().enumerate() {
        let prefix = format!("handlers.{index}.config");
        if let Some(key) = non_finite_number(&handler.config, &prefix) {
            let line = lines.get(&key).copied().unwrap_or(handler.line);
            return Err(error(
                Some(line),
                format!(
                    "`{key}` is not a finite number; give a number such as 0.5, not nan or inf"
                ),
            ));
        }
    }
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

    Ok(Manifest {
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
