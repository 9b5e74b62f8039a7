//! Checks and key locations on the TOML document itself, before and
//! beside its deserialization: every key's line, tables where tables
//! belong, no `nan` or `inf`, and serde's errors in the manifest's words.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Every key of a document: its dotted path (tables in arrays, such as
/// `[[handlers]]`, by index), its line, and where its value lies.
pub(super) struct Key {
    pub path: String,
    pub line: usize,
    value: std::ops::Range<usize>,
}

pub(super) fn keys_of(text: &str, table: &DeTable<'_>, prefix: &str, keys: &mut Vec<Key>) {
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
pub(super) fn key_at(keys: &[Key], offset: usize) -> Option<&Key> {
    keys.iter()
        .filter(|key| key.value.contains(&offset))
        .min_by_key(|key| key.value.len())
}

/// Where a table belongs, an array would fill it field by field
/// (`limits = [200, 5]` as `memory_mb = 200, call_timeout_ms = 5`): these
/// must be tables. The error carries the offset of the offending value.
pub(super) fn tables_are_tables(document: &DeTable<'_>) -> Result<(), (usize, String)> {
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

/// The dotted path of the first `nan` or `inf` in `table`. No capability
/// takes one, and an actor record keeps its manifest as JSON, which has no
/// such numbers: the record of an actor started with one could not be read
/// back, and a restarted runtime would resume none of its actors.
pub(super) fn non_finite_number(table: &toml::Table, prefix: &str) -> Option<String> {
    fn check(value: &toml::Value, path: &str) -> Option<String> {
        match value {
            toml::Value::Float(number) if !number.is_finite() => Some(path.to_owned()),
            toml::Value::Table(table) => non_finite_number(table, path),
            // Keys inside an array are not located; its own key is.
            toml::Value::Array(items) => items.iter().find_map(|item| check(item, path)),
            _ => None,
        }
    }
    table
        .iter()
        .find_map(|(key, value)| check(value, &format!("{prefix}.{key}")))
}

/// Turns serde's "missing field" into the manifest's vocabulary.
pub(super) fn describe_toml_error(message: &str) -> String {
    let message = message.trim();
    match message.strip_prefix("missing field ") {
        Some(field) => format!("missing required key {field}"),
        None => message.to_owned(),
    }
}

/// 1-based line of a byte offset.
pub(super) fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}
