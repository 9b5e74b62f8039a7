//! The directory an actor may use, and the file functions on it.
//!
//! A path is first read as text: `..` is resolved on the text and may not
//! climb above the directory, and absolute paths are refused. What is left
//! is handed to the kernel relative to the directory's open handle, with
//! the rule that resolution stays beneath it (`openat2` with
//! `RESOLVE_BENEATH`, through `cap-std`), in the same call that uses the
//! file. A symbolic link that leads outside fails that call, and a link
//! swapped in by another process at any moment cannot lead it outside: there
//! is no gap between a check and a use.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use cap_std::fs::{Dir, File, OpenOptions, OpenOptionsExt};

/// Most absolute links one path may go through, as the kernel's own limit
/// on links: a loop of them ends here.
const MAX_ABSOLUTE_LINKS: usize = 40;

/// A directory granted to an actor, open.
#[derive(Debug)]
pub(super) struct GrantedDir {
    dir: Dir,
    /// Where the directory was when granted, canonical: an absolute link
    /// into it is followed as the relative path it stands for.
    root: PathBuf,
    /// Most bytes `read-file` hands the actor.
    max_read_bytes: u64,
}

/// Whether an operation acts on what the last link of a path points to,
/// or on the link itself (as removing it does).
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Last {
    Follow,
    Keep,
}

impl GrantedDir {
    /// Opens the directory at `root` (canonical): from now on the grant is
    /// this directory, wherever it is moved, not whatever is at `root` later.
    pub(super) fn open(root: PathBuf, max_read_bytes: u64) -> Result<Self, String> {
        let dir = Dir::open_ambient_dir(&root, cap_std::ambient_authority())
            .map_err(|e| format!("cannot open the directory {}: {e}", root.display()))?;
        Ok(Self {
            dir,
            root,
            max_read_bytes,
        })
    }

    /// The open directory: every path of the actor is resolved beneath it.
    pub(super) fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Runs `op` on `path` (relative, without `..` above the directory)
    /// beneath the directory. The kernel refuses every absolute link there,
    /// so if that is what stopped `op`, the links that point inside are
    /// replaced by the relative paths they stand for and `op` runs once
    /// more, again beneath the directory.
    pub(super) fn beneath<T>(
        &self,
        path: &Path,
        last: Last,
        op: impl Fn(&Path) -> io::Result<T>,
    ) -> io::Result<T> {
        match op(path) {
            Err(e) if is_escape(&e) => match self.with_links_rewritten(path, last) {
                Some(inside) if inside != path => op(&inside),
                _ => Err(e),
            },
            done => done,
        }
    }

    /// `path` with each link (the last part too if `last` follows it)
    /// replaced by its target, absolute ones into the directory made
    /// relative to it; `None` if one leads elsewhere. The result is only ever
    /// used beneath the directory, so a link changed meanwhile cannot lead
    /// outside.
    fn with_links_rewritten(&self, path: &Path, last: Last) -> Option<PathBuf> {
        let mut path = path.to_owned();
        'rewrite: for _ in 0..MAX_ABSOLUTE_LINKS {
            let parts: Vec<_> = path.components().collect();
            let mut prefix = PathBuf::new();
            for (i, part) in parts.iter().enumerate() {
                prefix.push(part);
                if last == Last::Keep && i + 1 == parts.len() {
                    break;
                }
                let Ok(target) = self.dir.read_link_contents(&prefix) else {
                    continue;
                };
                let mut rewritten = if target.is_absolute() {
                    target.strip_prefix(&self.root).ok()?.to_owned()
                } else {
                    prefix.parent().unwrap_or(Path::new("")).join(target)
                };
                rewritten.extend(&parts[i + 1..]);
                if rewritten.as_os_str().is_empty() {
                    rewritten.push(".");
                }
                path = rewritten;
                continue 'rewrite;
            }
            return Some(path);
        }
        None
    }

    /// The file's bytes; only a regular file, at most `max_read_bytes`.
    pub(super) fn read_file(&self, path: &str) -> Result<Vec<u8>, String> {
        let cannot = |e: io::Error| cannot("read", path, e);
        let mut file = self.open_regular(path, OpenOptions::new().read(true), "read")?;
        let len = file.metadata().map_err(cannot)?.len();
        if len > self.max_read_bytes {
            return Err(too_big(path, len, self.max_read_bytes));
        }
        let mut content = Vec::with_capacity(len as usize);
        Read::by_ref(&mut file)
            .take(self.max_read_bytes + 1)
            .read_to_end(&mut content)
            .map_err(cannot)?;
        if content.len() as u64 > self.max_read_bytes {
            return Err(too_big(path, content.len() as u64, self.max_read_bytes));
        }
        Ok(content)
    }

    /// Creates or replaces a regular file.
    pub(super) fn write_file(&self, path: &str, content: &str) -> Result<(), String> {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        let mut file = self.open_regular(path, &options, "write")?;
        file.write_all(content.as_bytes())
            .map_err(|e| cannot("write", path, e))
    }

    /// Opens `path` if it is a regular file. Opening does not wait (a pipe
    /// or device would hold the call forever); anything but a regular file
    /// is then refused.
    fn open_regular(
        &self,
        path: &str,
        options: &OpenOptions,
        action: &str,
    ) -> Result<File, String> {
        let mut options = options.clone();
        options.custom_flags(libc::O_NONBLOCK);
        let file = self
            .beneath(&relative(path)?, Last::Follow, |p| {
                self.dir.open_with(p, &options)
            })
            .map_err(|e| cannot(action, path, e))?;
        let kind = file
            .metadata()
            .map_err(|e| cannot(action, path, e))?
            .file_type();
        if !kind.is_file() {
            return Err(format!(
                "cannot {action} `{path}`: it is not a regular file{}",
                if kind.is_dir() {
                    " but a directory"
                } else {
                    ""
                }
            ));
        }
        Ok(file)
    }

    /// The names in a directory, sorted.
    pub(super) fn list_files(&self, path: &str) -> Result<Vec<String>, String> {
        let cannot = |e: io::Error| cannot("list", path, e);
        let mut names = self
            .beneath(&relative(path)?, Last::Follow, |p| self.dir.read_dir(p))
            .map_err(cannot)?
            .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>, io::Error>>()
            .map_err(cannot)?;
        names.sort();
        Ok(names)
    }

    /// Removes a file, or a symbolic link itself (never what it points to).
    pub(super) fn delete_file(&self, path: &str) -> Result<(), String> {
        let relative = relative(path)?;
        let cannot = |e: io::Error| cannot("delete", path, e);
        self.beneath(&relative, Last::Keep, |p| {
            if self.dir.symlink_metadata(p)?.is_dir() {
                return Err(io::Error::from(io::ErrorKind::IsADirectory));
            }
            self.dir.remove_file(p)
        })
        .map_err(|e| match e.kind() {
            io::ErrorKind::IsADirectory => {
                format!("cannot delete `{path}`: it is a directory; use delete-dir")
            }
            _ => cannot(e),
        })
    }

    /// Creates a directory and any missing parents; one already there is fine.
    pub(super) fn create_dir(&self, path: &str) -> Result<(), String> {
        self.beneath(&relative(path)?, Last::Follow, |p| {
            self.dir.create_dir_all(p)
        })
        .map_err(|e| cannot("create", path, e))
    }

    /// Removes a directory and everything in it, never following a link.
    pub(super) fn delete_dir(&self, path: &str) -> Result<(), String> {
        let relative = relative(path)?;
        if relative == Path::new(".") {
            return Err(format!(
                "cannot delete `{path}`: it is the directory this actor was granted"
            ));
        }
        self.beneath(&relative, Last::Keep, |p| {
            if !self.dir.symlink_metadata(p)?.is_dir() {
                return Err(io::Error::from(io::ErrorKind::NotADirectory));
            }
            self.dir.remove_dir_all(p)
        })
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotADirectory => {
                format!("cannot delete `{path}`: it is not a directory; use delete-file")
            }
            _ => cannot("delete", path, e),
        })
    }

    /// Whether something is there (a link: whether what it points to is).
    pub(super) fn path_exists(&self, path: &str) -> Result<bool, String> {
        match self.beneath(&relative(path)?, Last::Follow, |p| self.dir.metadata(p)) {
            Ok(_) => Ok(true),
            Err(e) if is_escape(&e) => Err(cannot("find", path, e)),
            Err(_) => Ok(false),
        }
    }
}

/// `path` as a relative path without `.` or `..` (`.` for the directory
/// itself), if it stays inside: absolute paths and `..` above the
/// directory are refused.
pub(super) fn relative(path: &str) -> Result<PathBuf, String> {
    relative_to(Path::new(""), path)
}

/// `path` taken from `base` (itself relative, without `..`), as
/// [`relative`] does.
pub(super) fn relative_to(base: &Path, path: &str) -> Result<PathBuf, String> {
    let mut parts: Vec<_> = base
        .components()
        .filter(|part| matches!(part, Component::Normal(_)))
        .collect();
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
            Component::Normal(_) => parts.push(component),
        }
    }
    Ok(match parts.is_empty() {
        true => PathBuf::from("."),
        false => parts.iter().collect(),
    })
}

/// Whether `error` is the refusal of a path that would resolve outside
/// the directory: `..` is gone from the text by then, so only a symbolic
/// link can lead there. It carries no OS error code, unlike a real
/// permission error.
pub(super) fn is_escape(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::PermissionDenied && error.raw_os_error().is_none()
}

/// The error of `action` on `path`, the way out named as such.
pub(super) fn cannot(action: &str, path: &str, error: io::Error) -> String {
    if is_escape(&error) {
        format!(
            "access denied: cannot resolve `{path}` inside the directory this actor was granted: it leads outside through a symbolic link"
        )
    } else {
        format!("cannot {action} `{path}`: {error}")
    }
}

fn too_big(path: &str, len: u64, max: u64) -> String {
    format!(
        "cannot read `{path}`: it holds {len} bytes, more than the {max} this actor may read at once (`max_read_bytes` of its filesystem handler)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(root: &Path) -> GrantedDir {
        GrantedDir::open(root.canonicalize().unwrap(), 64).unwrap()
    }

    #[test]
    fn paths_are_read_as_text_and_never_climb_out() {
        assert_eq!(relative("").unwrap(), Path::new("."));
        assert_eq!(relative("./.").unwrap(), Path::new("."));
        assert_eq!(relative("a/./b/../c").unwrap(), Path::new("a/c"));
        assert_eq!(relative("a/..").unwrap(), Path::new("."));
        for escape in ["..", "../x", "a/../../x", "a/b/../../../x"] {
            let err = relative(escape).unwrap_err();
            assert!(err.contains("leads outside"), "{escape}: {err}");
        }
        let err = relative("/etc/passwd").unwrap_err();
        assert!(err.contains("is an absolute path"), "{err}");
        assert_eq!(
            relative_to(Path::new("a/b"), "../c").unwrap(),
            Path::new("a/c")
        );
        let err = relative_to(Path::new("a"), "../../x").unwrap_err();
        assert!(err.contains("leads outside"), "{err}");
        let err = relative_to(Path::new("."), "..").unwrap_err();
        assert!(err.contains("leads outside"), "{err}");
    }

    #[test]
    fn links_that_lead_outside_are_refused_and_links_inside_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        let dir = granted(tmp.path());
        let root = tmp.path();
        std::fs::create_dir(root.join("a")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
        std::os::unix::fs::symlink("a", root.join("in")).unwrap();
        std::os::unix::fs::symlink("..", root.join("up")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("ghost"), root.join("dangling")).unwrap();

        for through in ["out/secret", "up/x"] {
            let err = dir.read_file(through).unwrap_err();
            assert!(err.contains("through a symbolic link"), "{through}: {err}");
        }
        let err = dir.write_file("dangling", "x").unwrap_err();
        assert!(err.contains("cannot resolve `dangling`"), "{err}");
        assert!(!outside.path().join("ghost").exists());
        let err = dir.path_exists("out/secret").unwrap_err();
        assert!(err.contains("access denied"), "{err}");
        let err = dir.create_dir("out/made").unwrap_err();
        assert!(err.contains("access denied"), "{err}");

        dir.write_file("in/x", "via link").unwrap();
        assert_eq!(dir.read_file("a/x").unwrap(), b"via link");

        // Absolute links are followed when they point inside, directly or
        // through other links, and never when they point elsewhere.
        let canonical = root.canonicalize().unwrap();
        std::os::unix::fs::symlink(canonical.join("a"), root.join("abs-in")).unwrap();
        std::os::unix::fs::symlink("abs-in", root.join("via-rel")).unwrap();
        std::os::unix::fs::symlink(canonical.join("../.."), root.join("abs-up")).unwrap();
        std::os::unix::fs::symlink(canonical.join("loop"), root.join("loop")).unwrap();
        std::os::unix::fs::symlink(canonical.join("a/x"), root.join("abs-file")).unwrap();
        std::os::unix::fs::symlink(&canonical, root.join("abs-root")).unwrap();
        assert_eq!(dir.read_file("abs-in/x").unwrap(), b"via link");
        assert_eq!(dir.read_file("via-rel/x").unwrap(), b"via link");
        assert_eq!(dir.list_files("via-rel").unwrap(), ["x"]);
        assert_eq!(dir.read_file("abs-file").unwrap(), b"via link");
        assert_eq!(dir.read_file("abs-root/a/x").unwrap(), b"via link");
        assert!(dir.path_exists("abs-root").unwrap());
        for way_out in ["abs-up/etc/passwd", "loop/x"] {
            let err = dir.read_file(way_out).unwrap_err();
            assert!(err.contains("access denied"), "{way_out}: {err}");
        }
        dir.delete_file("abs-in").unwrap();
        assert!(root.join("a/x").exists());
        // The link itself goes, never what it points to.
        dir.delete_file("out").unwrap();
        assert!(outside.path().join("secret").exists());
    }

    #[test]
    fn only_regular_files_are_read_and_never_more_than_the_cap() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = granted(tmp.path());
        let fifo = std::ffi::CString::new(tmp.path().join("fifo").to_str().unwrap()).unwrap();
        // SAFETY: a valid C string and mode.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        for err in [
            dir.read_file("fifo").unwrap_err(),
            dir.write_file("fifo", "x").unwrap_err(),
        ] {
            assert!(
                err.contains("not a regular file") || err.contains("No such device"),
                "{err}"
            );
        }
        let err = dir.read_file(".").unwrap_err();
        assert!(err.contains("not a regular file but a directory"), "{err}");
        dir.write_file("big", &"x".repeat(65)).unwrap();
        let err = dir.read_file("big").unwrap_err();
        assert!(err.contains("holds 65 bytes, more than the 64"), "{err}");
        assert!(err.contains("`max_read_bytes`"), "{err}");
        dir.write_file("small", &"x".repeat(64)).unwrap();
        assert_eq!(dir.read_file("small").unwrap().len(), 64);
    }
}
