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
//!
//! - [`limits`]: the `[limits]` table, its defaults and bounds.
//! - [`parse`]: manifest text to a [`Manifest`], in either form.
//! - [`form_2025`]: what only the 2025 form needs.
//! - [`document`]: checks and key locations on the TOML document itself.

mod document;
mod form_2025;
pub mod limits;
mod parse;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::{self, FileKind, FileRules};

pub use limits::{
    DEFAULT_CALL_TIMEOUT_MS, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_RESULT_BYTES,
    DEFAULT_MAX_STATE_BYTES, DEFAULT_MEMORY_MB, DEFAULT_QUEUE_CAPACITY, Limits,
    MAX_CALL_TIMEOUT_MS, MAX_MAX_MESSAGE_BYTES, MAX_MEMORY_MB, MAX_QUEUE_CAPACITY,
    MAX_RESULT_BYTES, MAX_STATE_BYTES,
};

/// A parsed and validated manifest, with paths resolved against its file.
/// It serializes (to JSON) so a stored actor record can start it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandlerEntry {
    /// The `type` key, e.g. `message-server`.
    pub kind: String,
    pub config: toml::Table,
    /// Line of the `type` key, for error messages.
    pub line: usize,
}

/// A manifest that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ManifestError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
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
        parse::parse(text, source, base_dir, rules)
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
