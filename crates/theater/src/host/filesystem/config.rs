//! The `filesystem` entry of a manifest: which directory, which commands,
//! which limits. Checked once per spawn, with errors that name the key.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use super::command::Commands;
use super::granted::GrantedDir;
use super::sandbox::warn_if_unavailable;
use super::{
    COMMAND_TIMEOUT_KEY, COMMANDS_KEY, DEFAULT_COMMAND_TIMEOUT_MS, DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MAX_READ_BYTES, Granted, MAX_OUTPUT_KEY, MAX_READ_KEY, NEW_DIR_KEY, PATH_KEY,
};

/// What the manifest grants one actor. Kept as a setting, so a fresh
/// directory lives as long as the actor (through instance replacements,
/// like its state) and is removed when the actor ends.
#[derive(Debug)]
pub(super) struct Grant {
    pub(super) granted: Arc<Granted>,
    /// The fresh directory of `new_dir = true`; dropping it removes it.
    _fresh: Option<TempDir>,
}

impl Grant {
    pub(super) fn from_config(config: &toml::Table) -> Result<Self, String> {
        let new_dir = match config.get(NEW_DIR_KEY) {
            None => false,
            Some(toml::Value::Boolean(new_dir)) => *new_dir,
            Some(other) => {
                return Err(format!(
                    "`{NEW_DIR_KEY}` must be true or false, not `{other}`"
                ));
            }
        };
        let path = match config.get(PATH_KEY) {
            None => None,
            Some(toml::Value::String(path)) if !path.is_empty() => Some(PathBuf::from(path)),
            Some(other) => {
                return Err(format!(
                    "`{PATH_KEY}` must be the path of a directory, not `{other}`"
                ));
            }
        };
        let (root, fresh) = match (path, new_dir) {
            (None, false) => {
                return Err(format!(
                    "no directory granted: set `{PATH_KEY} = \"<directory>\"` to a directory the actor may use, or `{NEW_DIR_KEY} = true` for a fresh one of its own"
                ));
            }
            (Some(path), false) => (existing_dir(&path)?, None),
            (parent, true) => {
                let builder =
                    tempfile::Builder::new()
                        .prefix("theater-fs-")
                        .tempdir_in(match &parent {
                            Some(parent) => existing_dir(parent)?,
                            None => std::env::temp_dir(),
                        });
                let fresh =
                    builder.map_err(|e| format!("could not create a fresh directory: {e}"))?;
                let root = fresh.path().canonicalize().map_err(|e| {
                    format!(
                        "could not resolve the fresh directory {}: {e}",
                        fresh.path().display()
                    )
                })?;
                (root, Some(fresh))
            }
        };
        let allowed: Vec<String> = match config.get(COMMANDS_KEY) {
            None => Vec::new(),
            Some(toml::Value::Array(commands)) => commands
                .iter()
                .map(|command| match command {
                    toml::Value::String(name) if !name.trim().is_empty() => Ok(name.clone()),
                    other => Err(format!(
                        "`{COMMANDS_KEY}` must list command names, like [\"ls\", \"echo\"], not `{other}`"
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(format!(
                    "`{COMMANDS_KEY}` must be a list of command names, like [\"ls\", \"echo\"], not `{other}`"
                ));
            }
        };
        let timeout_ms = whole_number(config, COMMAND_TIMEOUT_KEY, DEFAULT_COMMAND_TIMEOUT_MS)?;
        if timeout_ms == 0 {
            return Err(format!(
                "`{COMMAND_TIMEOUT_KEY}` must be at least 1: with 0 no command could run"
            ));
        }
        if !allowed.is_empty() {
            warn_if_unavailable();
        }
        let max_read_bytes = whole_number(config, MAX_READ_KEY, DEFAULT_MAX_READ_BYTES)?;
        Ok(Self {
            granted: Arc::new(Granted {
                dir: Arc::new(GrantedDir::open(root, max_read_bytes)?),
                commands: Commands {
                    allowed,
                    timeout: Duration::from_millis(timeout_ms),
                    max_output_bytes: whole_number(
                        config,
                        MAX_OUTPUT_KEY,
                        DEFAULT_MAX_OUTPUT_BYTES,
                    )?,
                },
            }),
            _fresh: fresh,
        })
    }
}

/// `path` (as given if absolute, else relative to the working directory of
/// the process), checked to be a directory and resolved.
fn existing_dir(path: &Path) -> Result<PathBuf, String> {
    let shown = match std::env::current_dir() {
        Ok(cwd) if path.is_relative() => format!(
            "`{}` (relative to the working directory {})",
            path.display(),
            cwd.display()
        ),
        _ => format!("`{}`", path.display()),
    };
    let root = path
        .canonicalize()
        .map_err(|e| format!("the directory {shown} cannot be used: {e}"))?;
    if !root.is_dir() {
        return Err(format!("{shown} is not a directory"));
    }
    Ok(root)
}

/// A whole number under `key`, or `default` without one.
fn whole_number(config: &toml::Table, key: &str, default: u64) -> Result<u64, String> {
    match config.get(key) {
        None => Ok(default),
        Some(toml::Value::Integer(n)) if *n >= 0 => Ok(*n as u64),
        Some(other) => Err(format!(
            "`{key}` must be a whole number, 0 or more, not `{other}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `grant` opened the directory at `path`.
    fn same_dir(grant: &Grant, path: &Path) -> bool {
        use cap_std::fs::MetadataExt as _;
        use std::os::unix::fs::MetadataExt as _;
        let opened = grant.granted.dir.dir().dir_metadata().unwrap();
        opened.ino() == std::fs::metadata(path).unwrap().ino()
    }

    fn configured(config: &str) -> Result<Grant, String> {
        Grant::from_config(&toml::from_str(config).unwrap())
    }

    #[test]
    fn configs_grant_a_directory_or_fail_clearly() {
        let err = configured("").unwrap_err();
        assert!(err.contains("no directory granted"), "{err}");
        assert!(err.contains("`path = \"<directory>\"`"), "{err}");
        assert!(err.contains("`new_dir = true`"), "{err}");
        let err = configured("new_dir = false").unwrap_err();
        assert!(err.contains("no directory granted"), "{err}");
        let err = configured("path = \"/no/such/dir/anywhere\"").unwrap_err();
        assert!(
            err.contains("`/no/such/dir/anywhere` cannot be used"),
            "{err}"
        );
        let err = configured("path = \"missing-here\"").unwrap_err();
        assert!(err.contains("relative to the working directory"), "{err}");
        let err = configured("new_dir = \"yes\"").unwrap_err();
        assert!(err.contains("`new_dir` must be true or false"), "{err}");
        let err = configured("new_dir = true\nallowed_commands = \"ls\"").unwrap_err();
        assert!(err.contains("must be a list of command names"), "{err}");
        let err = configured("new_dir = true\ncommand_timeout_ms = 0").unwrap_err();
        assert!(
            err.contains("`command_timeout_ms` must be at least 1"),
            "{err}"
        );
        let err = configured("new_dir = true\nmax_read_bytes = -1").unwrap_err();
        assert!(
            err.contains("`max_read_bytes` must be a whole number"),
            "{err}"
        );

        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().display();
        let grant = configured(&format!("path = \"{path}\"")).unwrap();
        assert!(same_dir(&grant, tmp.path()));
        assert!(grant._fresh.is_none());

        // new_dir inside path: a fresh directory there, removed on drop.
        let grant = configured(&format!("path = \"{path}\"\nnew_dir = true")).unwrap();
        let fresh = grant._fresh.as_ref().unwrap().path().to_owned();
        assert_eq!(fresh.parent().unwrap(), tmp.path());
        assert!(same_dir(&grant, &fresh));
        drop(grant);
        assert!(!fresh.exists());
    }
}
