//! Reading a handler's `config` table the same way in every handler: each
//! value checked for its type and range, keys no handler reads refused, and
//! every error naming its key, so the runtime can point at its line. The
//! comparisons at the end are what [`Handler::within`](super::Handler::within)
//! implementations are made of.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest duration a handler setting may name: a day.
pub const MAX_DURATION_MS: u64 = 24 * 60 * 60 * 1000;
/// Largest byte count a handler setting may name: 1 GiB.
pub const MAX_BYTES: u64 = 1 << 30;

/// A mistake in a handler's `config`, or a grant beyond the parent's, with
/// the key it is about when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn at(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }
}

impl From<String> for ConfigError {
    fn from(message: String) -> Self {
        Self { key: None, message }
    }
}

impl From<&str> for ConfigError {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Fails on the first key of `config` not in `known`.
pub fn known_keys(config: &toml::Table, known: &[&str]) -> Result<(), ConfigError> {
    match config.keys().find(|key| !known.contains(&key.as_str())) {
        None => Ok(()),
        Some(key) if known.is_empty() => Err(ConfigError::at(
            key,
            format!("unknown setting `{key}`: this handler takes no config"),
        )),
        Some(key) => Err(ConfigError::at(
            key,
            format!("unknown setting `{key}` (known: {})", known.join(", ")),
        )),
    }
}

/// For a handler that takes no config: fails on any key.
pub fn none(config: &toml::Table) -> Result<(), ConfigError> {
    known_keys(config, &[])
}

/// The whole number under `key`, which must lie in `range`; `default`
/// without one.
pub fn integer(
    config: &toml::Table,
    key: &str,
    range: RangeInclusive<u64>,
    default: u64,
) -> Result<u64, ConfigError> {
    let Some(value) = config.get(key) else {
        return Ok(default);
    };
    match value.as_integer() {
        Some(n) if n >= 0 && range.contains(&(n as u64)) => Ok(n as u64),
        _ => Err(ConfigError::at(
            key,
            format!(
                "`{key}` must be a whole number from {} to {}, not `{value}`",
                range.start(),
                range.end()
            ),
        )),
    }
}

/// The duration under `key`, in whole milliseconds within `range`;
/// `default` without one.
pub fn duration(
    config: &toml::Table,
    key: &str,
    range: RangeInclusive<u64>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let default = default.as_millis() as u64;
    integer(config, key, range, default).map(Duration::from_millis)
}

/// The boolean under `key`; `default` without one.
pub fn boolean(config: &toml::Table, key: &str, default: bool) -> Result<bool, ConfigError> {
    match config.get(key) {
        None => Ok(default),
        Some(toml::Value::Boolean(value)) => Ok(*value),
        Some(other) => Err(ConfigError::at(
            key,
            format!("`{key}` must be true or false, not `{other}`"),
        )),
    }
}

/// The non-empty string under `key`, if any; `shape` says what it names.
pub fn string<'a>(
    config: &'a toml::Table,
    key: &str,
    shape: &str,
) -> Result<Option<&'a str>, ConfigError> {
    match config.get(key) {
        None => Ok(None),
        Some(toml::Value::String(value)) if !value.trim().is_empty() => Ok(Some(value)),
        Some(other) => Err(ConfigError::at(
            key,
            format!("`{key}` must be {shape}, not `{other}`"),
        )),
    }
}

/// The list of non-empty strings under `key`, if any; `shape` shows what
/// the list holds.
pub fn strings(
    config: &toml::Table,
    key: &str,
    shape: &str,
) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(value) = config.get(key) else {
        return Ok(None);
    };
    let wrong = || {
        ConfigError::at(
            key,
            format!("`{key}` must be a list {shape}, not `{value}`"),
        )
    };
    value
        .as_array()
        .ok_or_else(wrong)?
        .iter()
        .map(|item| match item.as_str() {
            Some(text) if !text.trim().is_empty() => Ok(text.to_owned()),
            _ => Err(wrong()),
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// Fails if a child's `key` is above its parent's.
pub fn at_most(key: &str, child: u64, parent: u64) -> Result<(), ConfigError> {
    if child > parent {
        return Err(ConfigError::at(
            key,
            format!("`{key}` is {child}, more than the parent's {parent}"),
        ));
    }
    Ok(())
}

/// [`at_most`] for a duration, compared in milliseconds as written.
pub fn no_longer(key: &str, child: Duration, parent: Duration) -> Result<(), ConfigError> {
    at_most(key, child.as_millis() as u64, parent.as_millis() as u64)
}

/// Fails if a child's `key` is below its parent's (for settings that
/// restrict, such as a minimum).
pub fn at_least(key: &str, child: u64, parent: u64) -> Result<(), ConfigError> {
    if child < parent {
        return Err(ConfigError::at(
            key,
            format!("`{key}` is {child}, less than the parent's {parent}"),
        ));
    }
    Ok(())
}

/// Fails on the first entry of a child's list `key` that the parent's list
/// does not hold.
pub fn subset(key: &str, child: &[String], parent: &[String]) -> Result<(), ConfigError> {
    match child.iter().find(|entry| !parent.contains(entry)) {
        None => Ok(()),
        Some(extra) => Err(ConfigError::at(
            key,
            format!(
                "`{key}` holds `{extra}`, which the parent's does not (it holds: {})",
                if parent.is_empty() {
                    "nothing".to_owned()
                } else {
                    parent.join(", ")
                }
            ),
        )),
    }
}

/// Fails if the directory a child's `key` names does not lie within one of
/// `parent` (each resolved, symbolic links and all). Blocking. The message
/// is the same whether the directory is elsewhere or absent, so it tells
/// nothing of the host's files.
pub fn dir_within(key: &str, child: &Path, parent: &[PathBuf]) -> Result<(), ConfigError> {
    let inside = child.canonicalize().is_ok_and(|child| {
        parent
            .iter()
            .filter_map(|dir| dir.canonicalize().ok())
            .any(|dir| child.starts_with(dir))
    });
    if inside {
        return Ok(());
    }
    let shown: Vec<String> = parent.iter().map(|d| d.display().to_string()).collect();
    Err(ConfigError::at(
        key,
        format!(
            "`{key}` names {}, which is not a directory within the parent's ({})",
            child.display(),
            shown.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn values_are_checked_by_type_and_range() {
        let config = table("n = 5\nbig = 99\nneg = -1\ntext = \"x\"\nyes = true\nlist = [\"a\"]");
        assert_eq!(integer(&config, "n", 1..=10, 3), Ok(5));
        assert_eq!(integer(&config, "absent", 1..=10, 3), Ok(3));
        for key in ["big", "neg", "text"] {
            let err = integer(&config, key, 1..=10, 3).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key));
            assert!(err.message.contains("from 1 to 10"), "{err}");
        }
        assert_eq!(boolean(&config, "yes", false), Ok(true));
        assert!(boolean(&config, "n", false).is_err());
        assert_eq!(string(&config, "text", "a name"), Ok(Some("x")));
        assert!(string(&config, "n", "a name").is_err());
        assert_eq!(
            strings(&config, "list", "of names"),
            Ok(Some(vec!["a".to_owned()]))
        );
        assert!(strings(&config, "text", "of names").is_err());
    }

    #[test]
    fn unknown_keys_are_named() {
        let config = table("path = \"/\"\nallowed_command = []");
        let err = known_keys(&config, &["path", "allowed_commands"]).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("allowed_command"));
        assert!(
            err.message.contains("known: path, allowed_commands"),
            "{err}"
        );
        let err = known_keys(&config, &[]).unwrap_err();
        assert!(err.message.contains("takes no config"), "{err}");
    }

    #[test]
    fn comparisons_name_what_is_more() {
        assert!(at_most("n", 3, 3).is_ok());
        assert_eq!(at_most("n", 4, 3).unwrap_err().key.as_deref(), Some("n"));
        assert!(at_least("n", 4, 3).is_ok());
        assert!(at_least("n", 2, 3).is_err());
        let (ls, sh) = (
            vec!["ls".to_owned()],
            vec!["ls".to_owned(), "sh".to_owned()],
        );
        assert!(subset("c", &ls, &ls).is_ok());
        let err = subset("c", &sh, &ls).unwrap_err();
        assert!(err.message.contains("`sh`"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("in")).unwrap();
        let parent = [dir.path().to_owned()];
        assert!(dir_within("path", &dir.path().join("in/../in"), &parent).is_ok());
        let outside = dir_within("path", dir.path().parent().unwrap(), &parent).unwrap_err();
        let absent = dir_within("path", &dir.path().join("nope"), &parent).unwrap_err();
        assert!(
            outside.message.contains("not a directory within"),
            "{outside}"
        );
        assert!(
            absent.message.contains("not a directory within"),
            "{absent}"
        );
    }
}
