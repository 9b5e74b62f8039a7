//! The `filesystem` entry of a manifest: which directory, which commands,
//! which limits. Checked once per manifest, with errors that name the key;
//! the directory is opened for each actor.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use super::command::Commands;
use super::granted::GrantedDir;
use super::sandbox::warn_if_unavailable;
use super::{
    Access, COMMAND_TIMEOUT_KEY, COMMANDS_KEY, DEFAULT_COMMAND_TIMEOUT_MS,
    DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_READ_BYTES, MAX_OUTPUT_KEY, MAX_READ_KEY, NEW_DIR_KEY,
    PATH_KEY,
};
use crate::host::HandlerConfig;
use crate::host::config::{self, ConfigError, MAX_BYTES, MAX_DURATION_MS};

/// What the manifest grants one actor. Kept as a setting, so a fresh
/// directory lives as long as the actor (through instance replacements,
/// like its state) and is removed when the actor ends.
#[derive(Debug)]
pub(super) struct Grant {
    pub(super) access: Arc<Access>,
    /// The fresh directory of `new_dir = true`; dropping it removes it.
    _fresh: Option<TempDir>,
}

/// What a filesystem config says, read without touching any directory.
#[derive(Debug, Clone)]
pub struct Settings {
    pub path: Option<PathBuf>,
    pub new_dir: bool,
    pub commands: Vec<String>,
    pub command_timeout_ms: u64,
    pub max_output_bytes: u64,
    pub max_read_bytes: u64,
}

impl HandlerConfig for Settings {
    fn from_table(config: &toml::Table) -> Result<Self, ConfigError> {
        config::known_keys(
            config,
            &[
                PATH_KEY,
                NEW_DIR_KEY,
                COMMANDS_KEY,
                COMMAND_TIMEOUT_KEY,
                MAX_OUTPUT_KEY,
                MAX_READ_KEY,
            ],
        )?;
        let settings = Self {
            path: config::string(config, PATH_KEY, "the path of a directory")?.map(PathBuf::from),
            new_dir: config::boolean(config, NEW_DIR_KEY, false)?,
            commands: config::strings(
                config,
                COMMANDS_KEY,
                "of command names, like [\"ls\", \"echo\"]",
            )?
            .unwrap_or_default(),
            command_timeout_ms: config::integer(
                config,
                COMMAND_TIMEOUT_KEY,
                1..=MAX_DURATION_MS,
                DEFAULT_COMMAND_TIMEOUT_MS,
            )?,
            max_output_bytes: config::integer(
                config,
                MAX_OUTPUT_KEY,
                0..=MAX_BYTES,
                DEFAULT_MAX_OUTPUT_BYTES,
            )?,
            max_read_bytes: config::integer(
                config,
                MAX_READ_KEY,
                0..=MAX_BYTES,
                DEFAULT_MAX_READ_BYTES,
            )?,
        };
        if settings.path.is_none() && !settings.new_dir {
            return Err(ConfigError::at(
                PATH_KEY,
                format!(
                    "no directory granted: set `{PATH_KEY} = \"<directory>\"` to a directory the actor may use, or `{NEW_DIR_KEY} = true` for a fresh one of its own"
                ),
            ));
        }
        Ok(settings)
    }
}

impl Grant {
    /// The directory and commands `settings` grant one actor: its own
    /// fresh directory for `new_dir`.
    pub(super) fn open(settings: &Settings) -> Result<Self, ConfigError> {
        let dir_error = |e: String| ConfigError::at(PATH_KEY, e);
        let (root, fresh) = match (&settings.path, settings.new_dir) {
            (Some(path), false) => (existing_dir(path).map_err(dir_error)?, None),
            (parent, _) => {
                let builder =
                    tempfile::Builder::new()
                        .prefix("theater-fs-")
                        .tempdir_in(match parent {
                            Some(parent) => existing_dir(parent).map_err(dir_error)?,
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
        if !settings.commands.is_empty() {
            warn_if_unavailable();
        }
        Ok(Self {
            access: Arc::new(Access {
                dir: Arc::new(GrantedDir::open(root, settings.max_read_bytes)?),
                commands: Commands {
                    allowed: settings.commands.clone(),
                    timeout: Duration::from_millis(settings.command_timeout_ms),
                    max_output_bytes: settings.max_output_bytes,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `grant` opened the directory at `path`.
    fn same_dir(grant: &Grant, path: &Path) -> bool {
        use cap_std::fs::MetadataExt as _;
        use std::os::unix::fs::MetadataExt as _;
        let opened = grant.access.dir.dir().dir_metadata().unwrap();
        opened.ino() == std::fs::metadata(path).unwrap().ino()
    }

    fn configured(config: &str) -> Result<Grant, String> {
        Grant::open(&Settings::from_table(&toml::from_str(config).unwrap()).map_err(|e| e.message)?)
            .map_err(|e| e.message)
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
            err.contains("`command_timeout_ms` must be a whole number from 1"),
            "{err}"
        );
        let err = configured("new_dir = true\nmax_read_bytes = -1").unwrap_err();
        assert!(
            err.contains("`max_read_bytes` must be a whole number"),
            "{err}"
        );
        let err = configured("new_dir = true\nallowed_command = [\"ls\"]").unwrap_err();
        assert!(err.contains("unknown setting `allowed_command`"), "{err}");

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
