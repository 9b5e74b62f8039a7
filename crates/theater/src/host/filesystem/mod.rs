//! `ntwk:theater/filesystem`: files in the one directory an actor's manifest
//! grants, and the commands it allow-lists, run in that directory. Paths
//! are relative to the granted directory and can never leave it: not with
//! `..`, not as absolute paths, not through symbolic links, not even one
//! swapped in while a call runs. File work runs on blocking threads (the
//! actor waits, the runtime does not) and every operation is recorded in
//! the actor's chain. See `docs/filesystem.md`.
//!
//! - `grant`: the manifest entry, checked once per manifest, and the
//!   directory it opens for each actor.
//! - `granted`: the open directory and the file functions on it.
//! - `command`: allowed commands, their arguments, time and output limits.
//! - `sandbox`: the kernel sandbox (Landlock) of a command's process.

mod command;
mod grant;
mod granted;
mod sandbox;

pub use sandbox::{CommandSandbox, command_sandbox};

use std::future::Future;
use std::sync::Arc;

use serde_json::{Value, json};
use wasmtime::StoreContextMut;
use wasmtime::component::{ComponentNamedList, ComponentType, Lift, Linker, LinkerInstance, Lower};

use self::command::Commands;
use self::grant::{Grant, Settings};
use self::granted::GrantedDir;
use super::config::{self, ConfigError};
use super::recorded::{off_clock, recorded, shown_by};
use super::{Granted, Handler, HostFunctions};
use crate::actor::{ActorStore, Extensions};
use crate::packages::Package;

const INTERFACE: &str = "ntwk:theater/filesystem";

const PATH_KEY: &str = "path";
const NEW_DIR_KEY: &str = "new_dir";
const COMMANDS_KEY: &str = "allowed_commands";
const COMMAND_TIMEOUT_KEY: &str = "command_timeout_ms";
const MAX_OUTPUT_KEY: &str = "max_output_bytes";
const MAX_READ_KEY: &str = "max_read_bytes";

/// How long a command may run unless the manifest says otherwise.
pub const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 30_000;
/// Most a command may write to stdout, and separately to stderr, unless the
/// manifest says otherwise.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 1024 * 1024;
/// Most `read-file` hands an actor at once unless the manifest says
/// otherwise: a huge (or sparse) file in its directory would otherwise be
/// read whole into the host's memory.
pub const DEFAULT_MAX_READ_BYTES: u64 = 64 * 1024 * 1024;
/// How much of a file's content (or a command's output) its chain event keeps.
pub const RECORDED_CONTENT_BYTES: usize = 1024;
/// How many names of a listing its chain event keeps.
pub const RECORDED_NAMES: usize = 256;

/// `type = "filesystem"`, config `{ path, new_dir, allowed_commands,
/// command_timeout_ms, max_output_bytes, max_read_bytes }`.
pub struct FilesystemHandler;

impl Handler for FilesystemHandler {
    const NAME: &'static str = "filesystem";
    const IMPORTS: &'static [&'static str] = &[INTERFACE];
    type Config = Settings;

    /// Opens the actor's directory (a fresh one for `new_dir`).
    fn configure(
        &self,
        settings: &Settings,
        extensions: &mut Extensions,
    ) -> Result<(), ConfigError> {
        extensions.insert(Grant::open(settings)?);
        Ok(())
    }

    /// A child's directory lies within its parent's (a parent's fresh
    /// directory is its alone: its child may only have a fresh one too, made
    /// in the same place); its commands are among the parent's, with no
    /// longer time and no more output.
    fn within(
        &self,
        child: &Granted<'_, Settings>,
        parent: &Granted<'_, Settings>,
    ) -> Result<(), ConfigError> {
        let (child, parent) = (child.config, parent.config);
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
        )?;
        config::at_most(MAX_READ_KEY, child.max_read_bytes, parent.max_read_bytes)
    }
}

impl HostFunctions for FilesystemHandler {
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
            |granted, (path,)| blocking(move || granted.dir.read_file(&path)),
        )?;
        define(
            &mut fs,
            "write-file",
            |(path, content): &(String, String)| {
                json!([path, recorded_content(content.as_bytes())])
            },
            |()| Value::Null,
            |granted, (path, content)| blocking(move || granted.dir.write_file(&path, &content)),
        )?;
        define(
            &mut fs,
            "list-files",
            |(path,): &(String,)| json!([path]),
            |names: &Vec<String>| recorded_names(names),
            |granted, (path,)| blocking(move || granted.dir.list_files(&path)),
        )?;
        define(
            &mut fs,
            "delete-file",
            |(path,): &(String,)| json!([path]),
            |()| Value::Null,
            |granted, (path,)| blocking(move || granted.dir.delete_file(&path)),
        )?;
        define(
            &mut fs,
            "create-dir",
            |(path,): &(String,)| json!([path]),
            |()| Value::Null,
            |granted, (path,)| blocking(move || granted.dir.create_dir(&path)),
        )?;
        define(
            &mut fs,
            "delete-dir",
            |(path,): &(String,)| json!([path]),
            |()| Value::Null,
            |granted, (path,)| blocking(move || granted.dir.delete_dir(&path)),
        )?;
        define(
            &mut fs,
            "path-exists",
            |(path,): &(String,)| json!([path]),
            |exists: &bool| json!(exists),
            |granted, (path,)| blocking(move || granted.dir.path_exists(&path)),
        )?;
        define(
            &mut fs,
            "execute-command",
            |(dir, command, args): &(String, String, Vec<String>)| json!([dir, command, args]),
            |output: &String| recorded_content(output.as_bytes()),
            |granted, (dir, command, args)| async move {
                granted
                    .commands
                    .execute(&granted.dir, &dir, &command, &args)
                    .await
            },
        )?;
        define(
            &mut fs,
            "execute-nix-command",
            |(dir, command): &(String, String)| json!([dir, command]),
            |output: &String| recorded_content(output.as_bytes()),
            |granted, (dir, command)| async move {
                granted
                    .commands
                    .execute_nix(&granted.dir, &dir, &command)
                    .await
            },
        )?;
        Ok(())
    }
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
    F: Fn(Arc<Access>, P) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<T, String>> + Send + 'static,
{
    let function: Arc<str> = format!("{INTERFACE}.{name}").into();
    instance.func_wrap_async(
        name,
        move |mut store: StoreContextMut<'_, ActorStore>, call: P| {
            let function = function.clone();
            Box::new(async move {
                let granted = store
                    .data()
                    .extensions
                    .get::<Grant>()
                    .map(|grant| grant.access.clone())
                    .ok_or_else(|| {
                        wasmtime::Error::msg("filesystem was not configured for this actor")
                    })?;
                let recorded_params = params(&call);
                let result = off_clock(&mut store, op(granted, call)).await;
                recorded(&mut store, &function, recorded_params, result, shown_by(ok)).await
            })
        },
    )
}

/// What one actor may use: its directory and its commands.
#[derive(Debug)]
struct Access {
    dir: Arc<GrantedDir>,
    commands: Commands,
}

/// Runs blocking file work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    op: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(op)
        .await
        .unwrap_or_else(|e| Err(format!("the file operation failed in the host: {e}")))
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
