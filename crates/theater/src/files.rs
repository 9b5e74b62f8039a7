//! Host files a manifest names: the manifest itself, its `component_path`
//! and an `init_state` file. Each is read only if it is a regular file (a
//! FIFO or a device is refused by name, and opening one never waits), up to
//! a size limit, and by code meant for a blocking thread. For a spawn an
//! actor asks for, only files beneath the directories its parent may spawn
//! from are read: no `..`, absolute path or symbolic link leads out.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Largest manifest read, unless the runtime says otherwise. Guards the
/// host's memory against a manifest that names a huge file or a device.
pub const DEFAULT_MAX_MANIFEST_BYTES: u64 = 1024 * 1024;
/// Largest `init_state` file read, unless the runtime says otherwise: the
/// largest message an actor takes by default.
pub const DEFAULT_MAX_INIT_STATE_BYTES: u64 = 16 * 1024 * 1024;
/// Largest component read, unless the runtime says otherwise. Guards the
/// host's memory and compiler against a component path that names a huge
/// file or a device.
pub const DEFAULT_MAX_COMPONENT_BYTES: u64 = 256 * 1024 * 1024;

/// How large each kind of file may be; a runtime setting
/// (`RuntimeConfig::files`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimits {
    pub manifest_bytes: u64,
    pub init_state_bytes: u64,
    pub component_bytes: u64,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES,
            init_state_bytes: DEFAULT_MAX_INIT_STATE_BYTES,
            component_bytes: DEFAULT_MAX_COMPONENT_BYTES,
        }
    }
}

/// What a file is to the manifest that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Manifest,
    InitState,
    Component,
}

impl FileKind {
    fn what(self) -> &'static str {
        match self {
            Self::Manifest => "manifest",
            Self::InitState => "`init_state` file",
            Self::Component => "component",
        }
    }

    fn limit(self, limits: &FileLimits) -> u64 {
        match self {
            Self::Manifest => limits.manifest_bytes,
            Self::InitState => limits.init_state_bytes,
            Self::Component => limits.component_bytes,
        }
    }

    /// The `theater server` flag that raises its limit.
    fn flag(self) -> &'static str {
        match self {
            Self::Manifest => "--max-manifest-bytes",
            Self::InitState => "--max-init-state-bytes",
            Self::Component => "--max-component-bytes",
        }
    }
}

/// Where a manifest's files may come from, and how large they may be.
#[derive(Debug, Clone, Default)]
pub struct FileRules {
    pub limits: FileLimits,
    /// `None`: anywhere this process may read, for an operator's manifests.
    /// `Some`: only beneath these directories, for a spawn an actor asks for.
    pub beneath: Option<Arc<[PathBuf]>>,
}

/// A file that cannot be read; it names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {path} is not a regular file (it is {kind}); name a regular file")]
    NotRegular {
        what: &'static str,
        path: PathBuf,
        kind: &'static str,
    },
    #[error(
        "{what} {path} is larger than the limit of {limit} bytes; the runtime reads no more (`theater server {flag}` raises it)"
    )]
    TooLarge {
        what: &'static str,
        path: PathBuf,
        limit: u64,
        flag: &'static str,
    },
    #[error(
        "{what} {path} is outside the directories this actor may spawn from ({dirs}); its operator may add one to `spawn_from` of its supervisor handler"
    )]
    Outside {
        what: &'static str,
        path: PathBuf,
        dirs: String,
    },
}

/// An open regular file within its size limit, ready to read.
pub(crate) struct HostFile {
    file: File,
    metadata: Metadata,
    path: PathBuf,
    kind: FileKind,
    limit: u64,
}

impl HostFile {
    pub(crate) fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Every byte, never more than the limit (files such as those of
    /// `/proc` are larger than their size says).
    pub(crate) fn read_all(self) -> Result<Vec<u8>, FileError> {
        let mut bytes = Vec::with_capacity(self.metadata.len().min(self.limit) as usize);
        (&self.file)
            .take(self.limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|source| FileError::Io {
                what: self.kind.what(),
                path: self.path.clone(),
                source,
            })?;
        if bytes.len() as u64 > self.limit {
            return Err(too_large(&self.path, self.kind, self.limit));
        }
        Ok(bytes)
    }
}

/// Opens `path` under `rules`; blocking (the caller is on a blocking thread).
pub(crate) fn open(path: &Path, kind: FileKind, rules: &FileRules) -> Result<HostFile, FileError> {
    let io = |source| FileError::Io {
        what: kind.what(),
        path: path.to_owned(),
        source,
    };
    let file = match &rules.beneath {
        None => std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(io)?,
        Some(dirs) => open_beneath(path, kind, dirs)?,
    };
    let metadata = file.metadata().map_err(io)?;
    let file_type = metadata.file_type();
    if !file_type.is_file() {
        let kind_of = match () {
            () if file_type.is_dir() => "a directory",
            () if file_type.is_fifo() => "a FIFO",
            () if file_type.is_char_device() || file_type.is_block_device() => "a device",
            () if file_type.is_socket() => "a socket",
            () => "not a file",
        };
        return Err(FileError::NotRegular {
            what: kind.what(),
            path: path.to_owned(),
            kind: kind_of,
        });
    }
    let limit = kind.limit(&rules.limits);
    if metadata.len() > limit {
        return Err(too_large(path, kind, limit));
    }
    Ok(HostFile {
        file,
        metadata,
        path: path.to_owned(),
        kind,
        limit,
    })
}

/// Reads `path` whole under `rules`; blocking.
pub fn read(path: &Path, kind: FileKind, rules: &FileRules) -> Result<Vec<u8>, FileError> {
    open(path, kind, rules)?.read_all()
}

/// Runs blocking file work on a blocking thread, so that no runtime thread
/// ever waits on the disk.
pub(crate) async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .expect("blocking file work panicked")
}

/// Opens `path` relative to the first of `dirs` it lies in. `..` is taken
/// lexically; the open itself resolves beneath that directory, so neither
/// `..` nor a symbolic link can lead out of it.
fn open_beneath(path: &Path, kind: FileKind, dirs: &[PathBuf]) -> Result<File, FileError> {
    let io = |source| FileError::Io {
        what: kind.what(),
        path: path.to_owned(),
        source,
    };
    let wanted = lexically_normal(&std::path::absolute(path).map_err(io)?);
    let mut shown = Vec::new();
    for dir in dirs {
        let Ok(root) = dir.canonicalize() else {
            continue;
        };
        shown.push(root.display().to_string());
        let Ok(inside) = wanted.strip_prefix(&root) else {
            continue;
        };
        let root =
            cap_std::fs::Dir::open_ambient_dir(&root, cap_std::ambient_authority()).map_err(io)?;
        let mut options = cap_std::fs::OpenOptions::new();
        cap_std::fs::OpenOptionsExt::custom_flags(options.read(true), libc::O_NONBLOCK);
        return root
            .open_with(inside, &options)
            .map(cap_std::fs::File::into_std)
            .map_err(io);
    }
    Err(FileError::Outside {
        what: kind.what(),
        path: path.to_owned(),
        dirs: shown.join(", "),
    })
}

/// `path` with `.` dropped and each `..` taking off the name before it.
fn lexically_normal(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

fn too_large(path: &Path, kind: FileKind, limit: u64) -> FileError {
    FileError::TooLarge {
        what: kind.what(),
        path: path.to_owned(),
        limit,
        flag: kind.flag(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beneath(dirs: &[&Path]) -> FileRules {
        FileRules {
            beneath: Some(dirs.iter().map(|d| d.to_path_buf()).collect()),
            ..FileRules::default()
        }
    }

    #[test]
    fn regular_files_are_read_and_others_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        std::fs::write(&file, b"{}").unwrap();
        let rules = FileRules::default();
        assert_eq!(read(&file, FileKind::InitState, &rules).unwrap(), b"{}");
        let err = read(dir.path(), FileKind::Manifest, &rules).unwrap_err();
        assert!(err.to_string().contains("(it is a directory)"), "{err}");
        let err = read(Path::new("/dev/zero"), FileKind::Component, &rules).unwrap_err();
        assert!(err.to_string().contains("(it is a device)"), "{err}");
    }

    #[test]
    fn the_limit_holds_even_when_the_size_lies() {
        let rules = FileRules {
            limits: FileLimits {
                init_state_bytes: 4,
                ..FileLimits::default()
            },
            beneath: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("big");
        std::fs::write(&file, b"12345").unwrap();
        let err = read(&file, FileKind::InitState, &rules).unwrap_err();
        assert!(err.to_string().contains("limit of 4 bytes"), "{err}");
        // /proc files say they are empty.
        let err = read(Path::new("/proc/self/status"), FileKind::InitState, &rules).unwrap_err();
        assert!(err.to_string().contains("limit of 4 bytes"), "{err}");
    }

    #[test]
    fn beneath_its_directories_nothing_leads_out() {
        let area = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(area.path().join("sub")).unwrap();
        std::fs::write(area.path().join("sub/in.json"), b"in").unwrap();
        std::fs::write(outside.path().join("out.json"), b"out").unwrap();
        std::os::unix::fs::symlink(outside.path(), area.path().join("link")).unwrap();
        let rules = beneath(&[area.path()]);
        let read_in = |path: PathBuf| read(&path, FileKind::InitState, &rules);
        assert_eq!(
            read_in(area.path().join("sub/../sub/./in.json")).unwrap(),
            b"in"
        );
        for escape in [
            outside.path().join("out.json"),
            area.path().join("sub/../../out.json"),
        ] {
            let err = read_in(escape).unwrap_err();
            assert!(matches!(err, FileError::Outside { .. }), "{err}");
        }
        let err = read_in(area.path().join("link/out.json")).unwrap_err();
        assert!(matches!(err, FileError::Io { .. }), "{err}");
    }
}
