//! The kernel sandbox of an allowed command. Where Linux has Landlock, the
//! command's process is restricted, before the program starts, to: every
//! file operation beneath the granted directory; reading and running what
//! is in the system's program directories ([`SYSTEM_DIRS`]) and a few
//! device files ([`SYSTEM_FILES`]); and nothing else on the filesystem. It
//! may not open TCP connections or listen on TCP ports (Landlock ABI 4 and
//! later), nor signal processes or reach abstract Unix sockets outside its
//! sandbox (ABI 6 and later). The rules name open handles, not paths, so a
//! directory renamed or swapped for a link later changes nothing.
//!
//! Without Landlock, a command only starts in the granted directory and has
//! its arguments checked (see `command.rs`): the process itself could still
//! read anything the runtime can. A warning says so once.

use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Once, OnceLock};

use cap_std::fs::Dir;

/// Directories whose programs and libraries commands may read and run.
pub(super) const SYSTEM_DIRS: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/nix/store",
];

/// Single files commands may use, and whether they may write them.
pub(super) const SYSTEM_FILES: &[(&str, bool)] = &[
    ("/etc/ld.so.cache", false),
    ("/dev/null", true),
    ("/dev/zero", false),
    ("/dev/urandom", false),
];

/// What confines the processes of allowed commands on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandSandbox {
    /// The kernel restricts them with Landlock, of this ABI version.
    Landlock { abi: u32 },
    /// The kernel has no Landlock (or it is turned off): commands are
    /// confined by their start directory and checked arguments only.
    Unavailable,
}

impl fmt::Display for CommandSandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Landlock { abi } => write!(f, "Landlock ABI {abi}"),
            Self::Unavailable => f.write_str("none: this kernel has no Landlock"),
        }
    }
}

/// The sandbox this host gives allowed commands, asked of the kernel once.
pub fn command_sandbox() -> CommandSandbox {
    static PROBED: OnceLock<CommandSandbox> = OnceLock::new();
    *PROBED.get_or_init(probe)
}

#[cfg(target_os = "linux")]
fn probe() -> CommandSandbox {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute, size 0 and the VERSION flag, the call
    // only answers the ABI version (or an error).
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    match u32::try_from(abi) {
        Ok(abi) if abi > 0 => CommandSandbox::Landlock { abi },
        _ => CommandSandbox::Unavailable,
    }
}

#[cfg(not(target_os = "linux"))]
fn probe() -> CommandSandbox {
    CommandSandbox::Unavailable
}

/// Says once per process that commands run without a kernel sandbox.
pub(super) fn warn_if_unavailable() {
    static WARNED: Once = Once::new();
    if command_sandbox() == CommandSandbox::Unavailable {
        WARNED.call_once(|| {
            tracing::warn!(
                "this kernel has no Landlock: allowed commands start in their granted directory and their path arguments are checked, but the processes themselves can reach any file the runtime can (see docs/filesystem.md)"
            );
        });
    }
}

/// What a command's process does to itself between fork and exec: move
/// into its directory and, where the kernel can, enter its sandbox.
pub(super) struct Confinement {
    cwd: OwnedFd,
    ruleset: Option<OwnedFd>,
}

impl Confinement {
    /// Starts in `cwd`; sandboxed to `granted` (and the system) running
    /// `program`, where the kernel has Landlock.
    pub(super) fn new(cwd: Dir, granted: &Dir, program: &Path) -> Result<Self, String> {
        let ruleset = match command_sandbox() {
            CommandSandbox::Landlock { .. } => Some(landlock_rules(granted, program)?),
            CommandSandbox::Unavailable => None,
        };
        Ok(Self {
            cwd: cwd.into_std_file().into(),
            ruleset,
        })
    }

    /// Makes `command` confine its process this way.
    pub(super) fn apply(self, command: &mut tokio::process::Command) {
        let confine = move || -> std::io::Result<()> {
            // Only async-signal-safe system calls here: this runs in the
            // forked child of a multi-threaded process.
            check(unsafe { libc::fchdir(self.cwd.as_raw_fd()) })?;
            if let Some(ruleset) = &self.ruleset {
                check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
                let restricted = unsafe {
                    libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32)
                };
                check(restricted as libc::c_int)?;
            }
            Ok(())
        };
        // SAFETY: `confine` makes only async-signal-safe system calls and
        // allocates nothing.
        unsafe {
            command.pre_exec(confine);
        }
    }
}

fn check(result: libc::c_int) -> std::io::Result<()> {
    if result == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The Landlock ruleset of a command: everything beneath `granted`,
/// reading and running the system, `program` itself, nothing else.
fn landlock_rules(granted: &Dir, program: &Path) -> Result<OwnedFd, String> {
    use landlock::{
        ABI, Access, AccessFs, AccessNet, PathBeneath, PathFd, Ruleset, RulesetAttr,
        RulesetCreatedAttr, Scope,
    };
    // The newest ABI these rules were written for; older kernels enforce
    // what they can of it.
    let abi = ABI::V6;
    let failed = |e: &dyn fmt::Display| format!("cannot set up the command sandbox: {e}");
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rule(PathBeneath::new(granted, AccessFs::from_all(abi))))
        .map_err(|e| failed(&e))?;
    let read_file = AccessFs::ReadFile | AccessFs::Execute;
    let system = SYSTEM_DIRS
        .iter()
        .map(|dir| (Path::new(dir), AccessFs::from_read(abi)))
        .chain(SYSTEM_FILES.iter().map(|(file, writable)| {
            let access = match writable {
                true => AccessFs::ReadFile | AccessFs::WriteFile,
                false => AccessFs::ReadFile.into(),
            };
            (Path::new(file), access)
        }))
        .chain([(program, read_file)]);
    for (path, access) in system {
        // A directory this system does not have needs no rule.
        let Ok(fd) = PathFd::new(path) else {
            continue;
        };
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| failed(&e))?;
    }
    Option::<OwnedFd>::from(ruleset)
        .ok_or_else(|| failed(&"the kernel did not create a Landlock ruleset"))
}
