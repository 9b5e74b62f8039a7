//! What only the 2025 form of a manifest needs: `[[handler]]` entries
//! with their settings inline, paths relative to the manifest, and the
//! error for a key written in both forms.

use std::collections::BTreeMap;
use std::path::Path;

use super::{HandlerEntry, ManifestError};

/// The error for one key written in both its forms, naming both and the
/// line of each.
pub(super) fn both_forms(
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
pub(super) fn inline_handler(
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
