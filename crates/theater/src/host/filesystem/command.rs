//! Allowed commands: run by exact name, without a shell, started in a
//! directory opened beneath the granted one, with every argument that
//! could name a path checked the way file paths are, a cleared
//! environment, a time limit and capped output; and, where the kernel has
//! Landlock, inside the sandbox of `sandbox.rs`.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::granted::{GrantedDir, Last, cannot, is_escape, relative, relative_to};
use super::sandbox::Confinement;
use super::{COMMAND_TIMEOUT_KEY, COMMANDS_KEY, MAX_OUTPUT_KEY, blocking};

/// What an actor may run, for how long, and how much it may print.
#[derive(Debug)]
pub(super) struct Commands {
    pub(super) allowed: Vec<String>,
    pub(super) timeout: Duration,
    pub(super) max_output_bytes: u64,
}

impl Commands {
    /// Runs `command` (exactly as allow-listed) with `args` in `dir`;
    /// answers its stdout if it exits with success.
    pub(super) async fn execute(
        &self,
        granted: &Arc<GrantedDir>,
        dir: &str,
        command: &str,
        args: &[String],
    ) -> Result<String, String> {
        if !self.allows(command) {
            return Err(format!(
                "the command `{command}` is not allowed: it is not in `{COMMANDS_KEY}` of this actor's filesystem handler (allowed: {})",
                if self.allowed.is_empty() {
                    "none".to_owned()
                } else {
                    self.allowed.join(", ")
                }
            ));
        }
        let (program, confinement) = blocking({
            let (granted, dir, command, args) = (
                granted.clone(),
                dir.to_owned(),
                command.to_owned(),
                args.to_vec(),
            );
            move || prepare(&granted, &dir, &command, &args)
        })
        .await?;
        let mut child = tokio::process::Command::new(program);
        child
            .arg0(command)
            .args(args)
            .env_clear()
            .envs(std::env::var_os("PATH").map(|path| ("PATH", path)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        confinement.apply(&mut child);
        let mut child = child
            .spawn()
            .map_err(|e| format!("could not start `{command}`: {e}"))?;
        let outcome = tokio::time::timeout(
            self.timeout,
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
                    self.timeout.as_millis()
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

    /// `nix` with the words of `command` as its arguments, if `nix` is
    /// allowed and installed.
    pub(super) async fn execute_nix(
        &self,
        granted: &Arc<GrantedDir>,
        dir: &str,
        command: &str,
    ) -> Result<String, String> {
        if !self.allows("nix") {
            return Err(format!(
                "execute-nix-command is not supported for this actor: add \"nix\" to `{COMMANDS_KEY}` of its filesystem handler to allow it"
            ));
        }
        if find_program("nix").is_none() {
            return Err(
                "execute-nix-command is not supported on this host: `nix` is not on its PATH"
                    .to_owned(),
            );
        }
        let args: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
        self.execute(granted, dir, "nix", &args).await
    }

    fn allows(&self, command: &str) -> bool {
        self.allowed.iter().any(|allowed| allowed == command)
    }
}

/// Opens the directory `dir` beneath `granted`, checks `args`, finds the
/// program: everything a command needs before it starts.
fn prepare(
    granted: &GrantedDir,
    dir: &str,
    command: &str,
    args: &[String],
) -> Result<(PathBuf, Confinement), String> {
    let cwd = relative(dir)?;
    let opened = granted
        .beneath(&cwd, Last::Follow, |p| granted.dir().open_dir(p))
        .map_err(|e| cannot("run a command in", dir, e))?;
    check_args(granted, &cwd, args)?;
    let program = find_program(command).ok_or_else(|| {
        format!("could not start `{command}`: it is not a program on the runtime's PATH")
    })?;
    let confinement = Confinement::new(opened, granted.dir(), &program)?;
    Ok((program, confinement))
}

/// Refuses an argument that names a path outside the granted directory:
/// an absolute path, one whose `..` climb above it (taken from `cwd`, where
/// the command starts), or an existing entry that resolves outside through
/// a symbolic link. An option's value (`--file=PATH`) is checked too.
fn check_args(granted: &GrantedDir, cwd: &Path, args: &[String]) -> Result<(), String> {
    for candidate in args.iter().flat_map(|arg| path_candidates(arg)) {
        relative_to(cwd, candidate)?;
        // The command resolves the path itself, `..` after a link
        // included: ask the kernel the same way, beneath the directory.
        let path = cwd.join(candidate);
        if let Err(e) = granted.beneath(&path, Last::Follow, |p| granted.dir().metadata(p))
            && is_escape(&e)
        {
            return Err(cannot("pass", candidate, e));
        }
    }
    Ok(())
}

/// The parts of `arg` that could be a path: itself, and the value of an
/// `--option=value`.
fn path_candidates(arg: &str) -> impl Iterator<Item = &str> {
    let value = arg
        .strip_prefix('-')
        .and_then(|option| option.split_once('='))
        .map(|(_, value)| value);
    std::iter::once(arg)
        .chain(value)
        .filter(|candidate| !candidate.is_empty())
}

/// The executable `name` names: itself if it has a `/`, else the first
/// one in a directory of the runtime's PATH.
pub(super) fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|meta| meta.is_file() && executable(&meta))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(root: &Path) -> Arc<GrantedDir> {
        Arc::new(GrantedDir::open(root.canonicalize().unwrap(), 1024).unwrap())
    }

    fn echo_only() -> Commands {
        Commands {
            allowed: vec!["echo".into()],
            timeout: Duration::from_secs(5),
            max_output_bytes: 16,
        }
    }

    #[tokio::test]
    async fn commands_are_allow_listed_and_capped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = granted(tmp.path());
        let commands = echo_only();
        let out = commands
            .execute(&dir, "", "echo", &["hi".into()])
            .await
            .unwrap();
        assert_eq!(out, "hi\n");
        let err = commands.execute(&dir, "", "ls", &[]).await.unwrap_err();
        assert!(err.contains("`ls` is not allowed"), "{err}");
        assert!(err.contains("(allowed: echo)"), "{err}");
        let err = commands
            .execute(&dir, "", "echo", &["x".repeat(40)])
            .await
            .unwrap_err();
        assert!(err.contains("more than 16 bytes to stdout"), "{err}");
        let err = commands
            .execute(&dir, "../", "echo", &[])
            .await
            .unwrap_err();
        assert!(err.contains("leads outside"), "{err}");
        let err = commands.execute_nix(&dir, "", "build").await.unwrap_err();
        assert!(err.contains("not supported for this actor"), "{err}");

        let nix_allowed = Commands {
            allowed: vec!["nix".into()],
            ..echo_only()
        };
        if find_program("nix").is_none() {
            let err = nix_allowed
                .execute_nix(&dir, "", "--version")
                .await
                .unwrap_err();
            assert!(err.contains("not supported on this host"), "{err}");
        }
    }

    #[test]
    fn arguments_that_name_a_way_out_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = granted(tmp.path());
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("/", tmp.path().join("root-link")).unwrap();
        let check = |cwd: &str, args: &[&str]| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            check_args(&dir, Path::new(cwd), &args)
        };
        for (cwd, args) in [
            (".", &["-la", "sub", "..."][..]),
            ("sub", &[".."]),
            ("sub", &["--color=never", "../sub/./x"]),
            (".", &["s/a/b/", "not-there", "--"]),
        ] {
            check(cwd, args).unwrap_or_else(|e| panic!("{args:?} in {cwd}: {e}"));
        }
        for (cwd, args, expected) in [
            (".", &["-la", "/etc"][..], "is an absolute path"),
            (".", &["--file=/etc/passwd"], "is an absolute path"),
            (".", &[".."], "leads outside"),
            (".", &["./.."], "leads outside"),
            ("sub", &["../.."], "leads outside"),
            (".", &["--dir=sub/../.."], "leads outside"),
            (".", &["root-link/etc"], "through a symbolic link"),
            (".", &["--in=root-link"], "through a symbolic link"),
        ] {
            let err = check(cwd, args).unwrap_err();
            assert!(err.contains("access denied"), "{args:?}: {err}");
            assert!(err.contains(expected), "{args:?}: {err}");
        }
    }
}
