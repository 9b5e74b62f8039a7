//! `ntwk:theater/filesystem`: files in the one directory an actor's manifest
//! grants, and the commands it allow-lists, run in that directory. Paths
//! are relative to the granted directory and can never leave it: not with
//! `..`, not as absolute paths, not through symbolic links. File work runs
//! on blocking threads (the actor waits, the runtime does not) and every
//! operation is recorded in the actor's chain. See `docs/filesystem.md`.

use std::ffi::OsStr;
use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt};
use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentNamedList, ComponentType, Lift, Linker, LinkerInstance, Lower};

use super::config::{self, ConfigError, MAX_BYTES, MAX_DURATION_MS};
use super::{Granted, Handler};
use crate::actor::{ActorStore, Extensions};
use crate::packages::Package;
use crate::wasm::ExportRegistry;

const INTERFACE: &str = "ntwk:theater/filesystem";

const PATH_KEY: &str = "path";
const NEW_DIR_KEY: &str = "new_dir";
const COMMANDS_KEY: &str = "allowed_commands";
const COMMAND_TIMEOUT_KEY: &str = "command_timeout_ms";
const MAX_OUTPUT_KEY: &str = "max_output_bytes";

/// How long a command may run unless the manifest says otherwise.
pub const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 30_000;
/// Most a command may write to stdout, and separately to stderr, unless the
/// manifest says otherwise.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 1024 * 1024;
/// How much of a file's content (or a command's output) its chain event keeps.
pub const RECORDED_CONTENT_BYTES: usize = 1024;
/// How many names of a listing its chain event keeps.
pub const RECORDED_NAMES: usize = 256;

/// `type = "filesystem"`, config `{ path, new_dir, allowed_commands,
/// command_timeout_ms, max_output_bytes }`.
pub struct FilesystemHandler;

impl Handler for FilesystemHandler {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn imports(&self) -> &'static [&'static str] {
        &[INTERFACE]
    }

    fn configure(
        &self,
        config: &toml::Table,
        extensions: &mut Extensions,
    ) -> Result<(), ConfigError> {
        extensions.insert(Grant::from_config(config)?);
        Ok(())
    }

    /// A child's directory lies within its parent's (a parent's fresh
    /// directory is its alone: its child may only have a fresh one too, made
    /// in the same place); its commands are among the parent's, with no
    /// longer time and no more output.
    fn within(&self, child: &Granted<'_>, parent: &Granted<'_>) -> Result<(), ConfigError> {
        let child = Settings::from_config(child.config)?;
        let parent = Settings::from_config(parent.config)?;
        match (&parent.path, parent.new_dir) {
            (place, true) => {
                let same_place = match (&child.path, place) {
                    (None, None) => true,
                    (Some(child), Some(parent)) => child
                        .canonicalize()
                        .ok()
                        .is_some_and(|c| parent.canonicalize().ok() == Some(c)),
                    _ => false,
                };
                if !child.new_dir || !same_place {
                    return Err(ConfigError::at(
                        NEW_DIR_KEY,
                        format!(
                            "the parent has a fresh directory of its own, which it cannot share: a child may only have `{NEW_DIR_KEY} = true` too, with the parent's `{PATH_KEY}`"
                        ),
                    ));
                }
            }
            (Some(parent_dir), false) => match &child.path {
                Some(child_dir) => {
                    config::dir_within(PATH_KEY, child_dir, std::slice::from_ref(parent_dir))?
                }
                None => {
                    return Err(ConfigError::at(
                        NEW_DIR_KEY,
                        format!(
                            "`{NEW_DIR_KEY} = true` without `{PATH_KEY}` makes a directory outside the parent's: give a `{PATH_KEY}` within {}",
                            parent_dir.display()
                        ),
                    ));
                }
            },
            (None, false) => unreachable!("a config without a directory is refused"),
        }
        config::subset(COMMANDS_KEY, &child.commands, &parent.commands)?;
        config::at_most(
            COMMAND_TIMEOUT_KEY,
            child.command_timeout_ms,
            parent.command_timeout_ms,
        )?;
        config::at_most(
            MAX_OUTPUT_KEY,
            child.max_output_bytes,
            parent.max_output_bytes,
        )
    }

    fn add_to_linker(
        &self,
        linker: &mut Linker<ActorStore>,
        package: Package,
    ) -> wasmtime::Result<()> {
        let mut fs = linker.instance(&package.name_of(INTERFACE))?;
        define(
            &mut fs,
            "read-file",
            |(path,): &(String,)| json!([path]),
            |content: &Vec<u8>| recorded_content(content),
            |dir, (path,)| blocking(move || dir.read_file(&path)),
        )?;
        define(
            &mut fs,
            "write-file",
            |(path, content): &(String, String)| {
                json!([path, recorded_content(content.as_bytes())])
            },
            |()| Value::Null,
            |dir, (path, content)| blocking(move || dir.write_file(&path, &content)),
        )?;
        define(
            &mut fs,
            "list-files",
            |(path,): &(String,)| json!([path]),
            |names: &Vec<String>| recorded_names(names),
            |dir, (path,)| blocking(move || dir.list_files(&path)),
        )?;
        define(
            &mut fs,
            "delete-file",
            |(path,): &(String,)| json!([path]),
            |()| Value::Null,
            |dir, (path,)| blocking(move || dir.delete_file(&path)),
        )?;
        define(
            &mut fs,
            "create-dir",
            |(path,): &(String,)| json!([path]),
            |()| Value::Null,
            |dir, (path,)| blocking(move || dir.create_dir(&path)),
        )?;
        define(
            &mut fs,
            "delete-dir",
            |(path,): &(String,)| json!([path]),
            |()| Value::Null,
            |dir, (path,)| blocking(move || dir.delete_dir(&path)),
        )?;
        define(
            &mut fs,
            "path-exists",
            |(path,): &(String,)| json!([path]),
            |exists: &bool| json!(exists),
            |dir, (path,)| blocking(move || dir.path_exists(&path)),
        )?;
        define(
            &mut fs,
            "execute-command",
            |(dir, command, args): &(String, String, Vec<String>)| json!([dir, command, args]),
            |output: &String| recorded_content(output.as_bytes()),
            |granted, (dir, command, args)| async move {
                granted.execute_command(&dir, &command, &args).await
            },
        )?;
        define(
            &mut fs,
            "execute-nix-command",
            |(dir, command): &(String, String)| json!([dir, command]),
            |output: &String| recorded_content(output.as_bytes()),
            |granted, (dir, command)| async move { granted.execute_nix_command(&dir, &command).await },
        )?;
        Ok(())
    }

    fn exports(&self, _exports: &mut ExportRegistry, _listed: bool) {}
}

/// Defines the filesystem function `name`: runs `op` on the actor's
/// granted directory, pushes the call's deadline back by the time it took,
/// records the call (as `params` and `ok` show it) and hands the actor the
/// result.
fn define<P, T, F, Fut>(
    instance: &mut LinkerInstance<'_, ActorStore>,
    name: &'static str,
    params: fn(&P) -> Value,
    ok: fn(&T) -> Value,
    op: F,
) -> wasmtime::Result<()>
where
    P: ComponentNamedList + Lift + Send + 'static,
    T: ComponentType + Lower + Send + Sync + 'static,
    F: Fn(Arc<GrantedDir>, P) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<T, String>> + Send + 'static,
{
    let function: Arc<str> = format!("{INTERFACE}.{name}").into();
    instance.func_wrap_async(
        name,
        move |mut store: StoreContextMut<'_, ActorStore>, call: P| {
            let function = function.clone();
            Box::new(async move {
                let dir = store
                    .data()
                    .extensions
                    .get::<Grant>()
                    .map(|grant| grant.dir.clone())
                    .ok_or_else(|| {
                        wasmtime::Error::msg("filesystem was not configured for this actor")
                    })?;
                let recorded_params = params(&call);
                let started = Instant::now();
                let result = op(dir, call).await;
                let data = store.data_mut();
                data.extend_deadline(started.elapsed());
                let recorded = result.as_ref().map(ok);
                data.recorder
                    .record_host_call(&function, recorded_params, &recorded)
                    .await?;
                Ok((result,))
            })
        },
    )
}

/// Runs blocking file work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    op: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(op)
        .await
        .unwrap_or_else(|e| Err(format!("the file operation failed in the host: {e}")))
}

/// What the manifest grants one actor. Kept as a setting, so a fresh
/// directory lives as long as the actor (through instance replacements,
/// like its state) and is removed when the actor ends.
#[derive(Debug)]
struct Grant {
    dir: Arc<GrantedDir>,
    /// The fresh directory of `new_dir = true`; dropping it removes it.
    _fresh: Option<TempDir>,
}

/// What a filesystem config says, read without touching any directory.
#[derive(Debug)]
struct Settings {
    path: Option<PathBuf>,
    new_dir: bool,
    commands: Vec<String>,
    command_timeout_ms: u64,
    max_output_bytes: u64,
}

impl Settings {
    fn from_config(config: &toml::Table) -> Result<Self, ConfigError> {
        config::known_keys(
            config,
            &[
                PATH_KEY,
                NEW_DIR_KEY,
                COMMANDS_KEY,
                COMMAND_TIMEOUT_KEY,
                MAX_OUTPUT_KEY,
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
    fn from_config(config: &toml::Table) -> Result<Self, ConfigError> {
        let settings = Settings::from_config(config)?;
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
        Ok(Self {
            dir: Arc::new(GrantedDir {
                root: Root(root),
                commands: settings.commands,
                command_timeout: Duration::from_millis(settings.command_timeout_ms),
                max_output_bytes: settings.max_output_bytes,
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

/// The directory an actor may use, and what it may run there.
#[derive(Debug)]
struct GrantedDir {
    root: Root,
    commands: Vec<String>,
    command_timeout: Duration,
    max_output_bytes: u64,
}

/// Whether resolving a path follows a symbolic link in its last component
/// (to use what it points to) or keeps it (to remove the link itself).
#[derive(Clone, Copy, PartialEq)]
enum Last {
    Follow,
    Keep,
}

/// A granted directory, canonical: every resolved path must start with it.
#[derive(Debug, Clone, PartialEq)]
struct Root(PathBuf);

impl Root {
    /// The host path for `path`, relative to the granted directory, if it
    /// stays inside: `..` may not climb above it, absolute paths are
    /// refused, and every part that exists is resolved (symbolic links
    /// included) and must still be inside. A part that does not exist yet
    /// cannot be a link, so the deepest existing part decides.
    fn resolve(&self, path: &str, last: Last) -> Result<PathBuf, String> {
        let mut parts: Vec<&OsStr> = Vec::new();
        for component in Path::new(path).components() {
            match component {
                Component::Prefix(_) | Component::RootDir => {
                    return Err(format!(
                        "access denied: `{path}` is an absolute path; paths are relative to the directory this actor was granted"
                    ));
                }
                Component::CurDir => {}
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        return Err(format!(
                            "access denied: `{path}` leads outside the directory this actor was granted"
                        ));
                    }
                }
                Component::Normal(part) => parts.push(part),
            }
        }
        match (last, parts.split_last()) {
            (Last::Keep, Some((name, parent))) => Ok(self.confine(path, parent)?.join(name)),
            _ => self.confine(path, &parts),
        }
    }

    /// `root/parts`, with its deepest existing ancestor (or itself)
    /// resolved and checked to be inside the root.
    fn confine(&self, path: &str, parts: &[&OsStr]) -> Result<PathBuf, String> {
        let mut existing = parts.len();
        let mut candidate = self.0.clone();
        candidate.extend(parts);
        while existing > 0 && candidate.symlink_metadata().is_err() {
            existing -= 1;
            candidate.pop();
        }
        let real = candidate.canonicalize().map_err(|e| {
            format!("cannot resolve `{path}` (a symbolic link that leads nowhere?): {e}")
        })?;
        if !real.starts_with(&self.0) {
            return Err(format!(
                "access denied: `{path}` leads outside the directory this actor was granted (through a symbolic link)"
            ));
        }
        Ok(parts[existing..]
            .iter()
            .fold(real, |resolved, part| resolved.join(part)))
    }
}

impl GrantedDir {
    fn resolve(&self, path: &str, last: Last) -> Result<PathBuf, String> {
        self.root.resolve(path, last)
    }

    fn read_file(&self, path: &str) -> Result<Vec<u8>, String> {
        let file = self.resolve(path, Last::Follow)?;
        std::fs::read(file).map_err(|e| format!("cannot read `{path}`: {e}"))
    }

    fn write_file(&self, path: &str, content: &str) -> Result<(), String> {
        let file = self.resolve(path, Last::Follow)?;
        std::fs::write(file, content).map_err(|e| format!("cannot write `{path}`: {e}"))
    }

    /// The names in a directory, sorted.
    fn list_files(&self, path: &str) -> Result<Vec<String>, String> {
        let dir = self.resolve(path, Last::Follow)?;
        let cannot = |e: std::io::Error| format!("cannot list `{path}`: {e}");
        let mut names = std::fs::read_dir(dir)
            .map_err(cannot)?
            .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>, std::io::Error>>()
            .map_err(cannot)?;
        names.sort();
        Ok(names)
    }

    /// Removes a file, or a symbolic link itself (never what it points to).
    fn delete_file(&self, path: &str) -> Result<(), String> {
        let file = self.resolve(path, Last::Keep)?;
        let cannot = |e: std::io::Error| format!("cannot delete `{path}`: {e}");
        if file.symlink_metadata().map_err(cannot)?.is_dir() {
            return Err(format!(
                "cannot delete `{path}`: it is a directory; use delete-dir"
            ));
        }
        std::fs::remove_file(file).map_err(cannot)
    }

    /// Creates a directory and any missing parents; one already there is fine.
    fn create_dir(&self, path: &str) -> Result<(), String> {
        let dir = self.resolve(path, Last::Follow)?;
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{path}`: {e}"))
    }

    /// Removes a directory and everything in it.
    fn delete_dir(&self, path: &str) -> Result<(), String> {
        let dir = self.resolve(path, Last::Keep)?;
        if dir == self.root.0 {
            return Err(format!(
                "cannot delete `{path}`: it is the directory this actor was granted"
            ));
        }
        let cannot = |e: std::io::Error| format!("cannot delete `{path}`: {e}");
        let kind = dir.symlink_metadata().map_err(cannot)?.file_type();
        if !kind.is_dir() {
            return Err(format!(
                "cannot delete `{path}`: it is not a directory; use delete-file"
            ));
        }
        std::fs::remove_dir_all(dir).map_err(cannot)
    }

    fn path_exists(&self, path: &str) -> Result<bool, String> {
        let resolved = self.resolve(path, Last::Follow)?;
        Ok(resolved.symlink_metadata().is_ok())
    }

    /// Runs `command` (exactly as allow-listed, no shell) with `args` in
    /// `dir`; answers its stdout if it exits with success.
    async fn execute_command(
        &self,
        dir: &str,
        command: &str,
        args: &[String],
    ) -> Result<String, String> {
        if !self.commands.iter().any(|allowed| allowed == command) {
            return Err(format!(
                "the command `{command}` is not allowed: it is not in `{COMMANDS_KEY}` of this actor's filesystem handler (allowed: {})",
                if self.commands.is_empty() {
                    "none".to_owned()
                } else {
                    self.commands.join(", ")
                }
            ));
        }
        self.run(dir, command, args).await
    }

    /// `nix` with the words of `command` as its arguments, if `nix` is
    /// allowed and installed.
    async fn execute_nix_command(&self, dir: &str, command: &str) -> Result<String, String> {
        if !self.commands.iter().any(|allowed| allowed == "nix") {
            return Err(format!(
                "execute-nix-command is not supported for this actor: add \"nix\" to `{COMMANDS_KEY}` of its filesystem handler to allow it"
            ));
        }
        if !on_path("nix") {
            return Err(
                "execute-nix-command is not supported on this host: `nix` is not on its PATH"
                    .to_owned(),
            );
        }
        let args: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
        self.run(dir, "nix", &args).await
    }

    async fn run(&self, dir: &str, command: &str, args: &[String]) -> Result<String, String> {
        let root = self.root.clone();
        let shown = dir.to_owned();
        let cwd = blocking(move || {
            let cwd = root.resolve(&shown, Last::Follow)?;
            if cwd.is_dir() {
                Ok(cwd)
            } else {
                Err(format!(
                    "cannot run a command in `{shown}`: it is not a directory"
                ))
            }
        })
        .await?;
        let mut child = tokio::process::Command::new(command)
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .envs(std::env::var_os("PATH").map(|path| ("PATH", path)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("could not start `{command}`: {e}"))?;
        let outcome = tokio::time::timeout(
            self.command_timeout,
            collect(&mut child, command, self.max_output_bytes),
        )
        .await;
        let (status, stdout, stderr) = match outcome {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                let _ = child.kill().await;
                return Err(e);
            }
            Err(_) => {
                let _ = child.kill().await;
                return Err(format!(
                    "`{command}` did not finish within {} ms and was stopped (`{COMMAND_TIMEOUT_KEY}` of this actor's filesystem handler)",
                    self.command_timeout.as_millis()
                ));
            }
        };
        if status.success() {
            Ok(String::from_utf8_lossy(&stdout).into_owned())
        } else {
            Err(format!(
                "`{command}` failed ({status}): {}",
                String::from_utf8_lossy(&stderr).trim_end()
            ))
        }
    }
}

/// Waits for `child`, reading its stdout and stderr, each up to `max` bytes.
async fn collect(
    child: &mut tokio::process::Child,
    command: &str,
    max: u64,
) -> Result<(ExitStatus, Vec<u8>, Vec<u8>), String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (stdout, stderr) = tokio::try_join!(
        read_capped(stdout, command, "stdout", max),
        read_capped(stderr, command, "stderr", max),
    )?;
    let status = child
        .wait()
        .await
        .map_err(|e| format!("waiting for `{command}` failed: {e}"))?;
    Ok((status, stdout, stderr))
}

/// Reads `stream` to its end, failing as soon as it passes `max` bytes.
async fn read_capped(
    stream: impl AsyncRead + Unpin,
    command: &str,
    name: &str,
    max: u64,
) -> Result<Vec<u8>, String> {
    let mut output = Vec::new();
    stream
        .take(max.saturating_add(1))
        .read_to_end(&mut output)
        .await
        .map_err(|e| format!("reading the {name} of `{command}` failed: {e}"))?;
    if output.len() as u64 > max {
        return Err(format!(
            "`{command}` wrote more than {max} bytes to {name} and was stopped (`{MAX_OUTPUT_KEY}` of this actor's filesystem handler)"
        ));
    }
    Ok(output)
}

/// Whether an executable `name` is in a directory of the host's PATH.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            dir.join(name)
                .metadata()
                .is_ok_and(|meta| meta.is_file() && executable(&meta))
        })
    })
}

#[cfg(unix)]
fn executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn executable(_meta: &std::fs::Metadata) -> bool {
    true
}

/// Content as the chain keeps it: its size and its first bytes as text.
fn recorded_content(content: &[u8]) -> Value {
    let head = &content[..content.len().min(RECORDED_CONTENT_BYTES)];
    let mut recorded = json!({
        "bytes": content.len(),
        "head": String::from_utf8_lossy(head),
    });
    if head.len() < content.len() {
        recorded["truncated"] = json!(true);
    }
    recorded
}

/// A listing as the chain keeps it: every name, or the first ones and the count.
fn recorded_names(names: &[String]) -> Value {
    if names.len() <= RECORDED_NAMES {
        json!(names)
    } else {
        json!({ "count": names.len(), "first": &names[..RECORDED_NAMES] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(root: &Path) -> GrantedDir {
        GrantedDir {
            root: Root(root.canonicalize().unwrap()),
            commands: vec!["echo".into()],
            command_timeout: Duration::from_secs(5),
            max_output_bytes: 16,
        }
    }

    fn configured(config: &str) -> Result<Grant, String> {
        Grant::from_config(&toml::from_str(config).unwrap()).map_err(|e| e.message)
    }

    #[test]
    fn paths_resolve_inside_and_never_outside() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = granted(tmp.path());
        let root = dir.root.0.clone();
        std::fs::create_dir(root.join("a")).unwrap();
        assert_eq!(dir.resolve("", Last::Follow).unwrap(), root);
        assert_eq!(dir.resolve(".", Last::Follow).unwrap(), root);
        assert_eq!(
            dir.resolve("a/./b/../c", Last::Follow).unwrap(),
            root.join("a/c")
        );
        assert_eq!(
            dir.resolve("new/deep/x", Last::Follow).unwrap(),
            root.join("new/deep/x")
        );
        for escape in ["..", "../x", "a/../../x", "a/b/../../../x"] {
            let err = dir.resolve(escape, Last::Follow).unwrap_err();
            assert!(err.contains("leads outside"), "{escape}: {err}");
        }
        let err = dir.resolve("/etc/passwd", Last::Follow).unwrap_err();
        assert!(err.contains("is an absolute path"), "{err}");

        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("in")).unwrap();
        for through in ["out", "out/x", "out/new/x", "a/../out/x"] {
            let err = dir.resolve(through, Last::Follow).unwrap_err();
            assert!(err.contains("through a symbolic link"), "{through}: {err}");
        }
        assert_eq!(dir.resolve("in/x", Last::Follow).unwrap(), root.join("a/x"));
        // The link itself, as delete-file removes it.
        assert_eq!(dir.resolve("out", Last::Keep).unwrap(), root.join("out"));

        // A dangling link could create a file outside: refused.
        std::os::unix::fs::symlink(outside.path().join("ghost"), root.join("dangling")).unwrap();
        let err = dir.resolve("dangling", Last::Follow).unwrap_err();
        assert!(err.contains("cannot resolve `dangling`"), "{err}");
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
        let err = configured("new_dir = true\nallowed_command = [\"ls\"]").unwrap_err();
        assert!(err.contains("unknown setting `allowed_command`"), "{err}");

        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().display();
        let grant = configured(&format!("path = \"{path}\"")).unwrap();
        assert_eq!(grant.dir.root.0, tmp.path().canonicalize().unwrap());
        assert!(grant._fresh.is_none());

        // new_dir inside path: a fresh directory there, removed on drop.
        let grant = configured(&format!("path = \"{path}\"\nnew_dir = true")).unwrap();
        let fresh = grant.dir.root.0.clone();
        assert_eq!(fresh.parent().unwrap(), tmp.path().canonicalize().unwrap());
        assert!(fresh.is_dir());
        drop(grant);
        assert!(!fresh.exists());
    }

    #[tokio::test]
    async fn commands_are_allow_listed_and_capped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = granted(tmp.path());
        let out = dir
            .execute_command("", "echo", &["hi".into()])
            .await
            .unwrap();
        assert_eq!(out, "hi\n");
        let err = dir.execute_command("", "ls", &[]).await.unwrap_err();
        assert!(err.contains("`ls` is not allowed"), "{err}");
        assert!(err.contains("(allowed: echo)"), "{err}");
        let err = dir
            .execute_command("", "echo", &["x".repeat(40)])
            .await
            .unwrap_err();
        assert!(err.contains("more than 16 bytes to stdout"), "{err}");
        let err = dir.execute_command("../", "echo", &[]).await.unwrap_err();
        assert!(err.contains("leads outside"), "{err}");
        let err = dir.execute_nix_command("", "build").await.unwrap_err();
        assert!(err.contains("not supported for this actor"), "{err}");

        let nix_allowed = GrantedDir {
            commands: vec!["nix".into()],
            ..granted(tmp.path())
        };
        if !on_path("nix") {
            let err = nix_allowed
                .execute_nix_command("", "--version")
                .await
                .unwrap_err();
            assert!(err.contains("not supported on this host"), "{err}");
        }
    }

    #[test]
    fn long_contents_and_listings_are_capped_in_the_record() {
        assert_eq!(
            recorded_content(b"abc"),
            json!({ "bytes": 3, "head": "abc" })
        );
        let big = recorded_content(&[b'x'; RECORDED_CONTENT_BYTES + 5]);
        assert_eq!(big["truncated"], true);
        assert_eq!(big["head"].as_str().unwrap().len(), RECORDED_CONTENT_BYTES);
        let names: Vec<String> = (0..RECORDED_NAMES + 1).map(|i| i.to_string()).collect();
        let recorded = recorded_names(&names);
        assert_eq!(recorded["count"], RECORDED_NAMES + 1);
        assert_eq!(recorded["first"].as_array().unwrap().len(), RECORDED_NAMES);
    }
}
