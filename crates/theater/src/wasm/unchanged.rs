//! Knowing without touching the disk that a component file read before is
//! unchanged, so that spawning from it again needs no blocking thread.
//!
//! Before a file is opened, the kernel is asked (inotify) to report any
//! change to it and to every directory on its path, as written and as
//! resolved. A file read under those watches is trusted until an event
//! arrives; each lookup first reads pending events without blocking, and
//! any event forgets everything trusted. A symbolic link swapped, a
//! directory renamed, the file rewritten, moved or its permissions changed:
//! each is an event, so a trusted file opens under the same rules to the
//! same bytes. Where inotify is missing or a watch cannot be added, files
//! are simply not trusted.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::chain::Hash;

/// What a trusted file is known by: its path, the directories it had to
/// be beneath and the most bytes it could have.
pub(crate) type Key = (PathBuf, Option<Arc<[PathBuf]>>, u64);

/// Changes to the file that make it untrustworthy.
#[cfg(target_os = "linux")]
const FILE_CHANGES: u32 = libc::IN_ATTRIB
    | libc::IN_MODIFY
    | libc::IN_CLOSE_WRITE
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF;
/// Changes to a directory on its path: names coming, going or moving, and
/// permissions. Writes to other files in it do not count.
#[cfg(target_os = "linux")]
const DIRECTORY_CHANGES: u32 = libc::IN_ATTRIB
    | libc::IN_MOVE
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF;

pub(crate) struct Unchanged {
    events: Arc<OwnedFd>,
    trusted: HashMap<Key, Hash>,
    watches: Vec<i32>,
    /// Bumped whenever events forget what was trusted: a file read before
    /// a bump is not trusted after it.
    generation: u64,
}

/// Most watches kept at once; beyond, everything is forgotten, so that
/// no run of spawns can take all of this user's inotify watches.
const MAX_WATCHES: usize = 4096;

/// Watches set up for one read, to be trusted with [`Unchanged::trust`];
/// dropped untrusted (the read failed), they are removed.
pub(crate) struct Watched {
    events: Arc<OwnedFd>,
    generation: u64,
    watches: Vec<i32>,
}

/// The kernel keeps one watch per file or directory and descriptor, so a
/// watch removed here may be one a trusted file relies on too: its removal
/// is an event (`IN_IGNORED`), which forgets every trusted file.
impl Drop for Watched {
    fn drop(&mut self) {
        for wd in self.watches.drain(..) {
            unwatch(&self.events, wd);
        }
    }
}

impl Unchanged {
    /// `None`: there is no inotify here.
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn new() -> Option<Self> {
        None
    }

    /// `None` where inotify is unavailable.
    #[cfg(target_os = "linux")]
    pub(crate) fn new() -> Option<Self> {
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        Some(Self {
            events: Arc::new(unsafe { OwnedFd::from_raw_fd(fd) }),
            trusted: HashMap::new(),
            watches: Vec::new(),
            generation: 0,
        })
    }

    /// The hash of `key`'s file, if it is trusted and nothing changed.
    pub(crate) fn get(&mut self, key: &Key) -> Option<Hash> {
        self.catch_up();
        self.trusted.get(key).copied()
    }

    /// What a read about to start needs to watch with: call before
    /// [`watch`], then open and read the file.
    pub(crate) fn begin(&mut self) -> (Arc<OwnedFd>, u64) {
        self.catch_up();
        (self.events.clone(), self.generation)
    }

    /// Trusts `key`'s file to hold `hash`, if it was read under `watched`
    /// and nothing changed since.
    pub(crate) fn trust(&mut self, key: Key, hash: Hash, mut watched: Watched) {
        self.watches.append(&mut watched.watches);
        self.catch_up();
        if self.watches.len() > MAX_WATCHES {
            self.forget();
        }
        if self.generation == watched.generation {
            self.trusted.insert(key, hash);
        }
    }

    /// Reads pending events without blocking; any event forgets every
    /// trusted file and drops the watches.
    fn catch_up(&mut self) {
        if changed(&self.events) {
            self.forget();
        }
    }

    fn forget(&mut self) {
        self.trusted.clear();
        self.generation += 1;
        for wd in self.watches.drain(..) {
            unwatch(&self.events, wd);
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn watch(_: &Arc<OwnedFd>, _: &Path, _: u64) -> Option<Watched> {
    None
}

/// Watches `path` (following links) and every directory on it, as
/// written and as resolved; blocking (it looks paths up). `None` if any
/// watch cannot be added: then the file must not be trusted.
#[cfg(target_os = "linux")]
pub(crate) fn watch(events: &Arc<OwnedFd>, path: &Path, generation: u64) -> Option<Watched> {
    let written = std::path::absolute(path).ok()?;
    let resolved = std::fs::canonicalize(&written).ok()?;
    // Dropped on a failure, it removes the watches added so far.
    let mut watched = Watched {
        events: events.clone(),
        generation,
        watches: Vec::new(),
    };
    let mut add = |target: &Path, mask: u32| {
        let name = CString::new(target.as_os_str().as_bytes()).ok()?;
        let wd = unsafe { libc::inotify_add_watch(events.as_raw_fd(), name.as_ptr(), mask) };
        (wd >= 0).then(|| watched.watches.push(wd))
    };
    add(&written, FILE_CHANGES)?;
    let dirs = written.ancestors().skip(1);
    for dir in dirs.chain(resolved.ancestors().skip(1)) {
        add(dir, DIRECTORY_CHANGES)?;
    }
    Some(watched)
}

#[cfg(target_os = "linux")]
fn unwatch(events: &OwnedFd, wd: i32) {
    unsafe { libc::inotify_rm_watch(events.as_raw_fd(), wd) };
}

#[cfg(not(target_os = "linux"))]
fn unwatch(_: &OwnedFd, _: i32) {}

#[cfg(not(target_os = "linux"))]
fn changed(_: &OwnedFd) -> bool {
    false
}

/// Whether any event is pending; reads them all, without blocking. A
/// removed watch's event counts: the watch may have been a trusted file's.
#[cfg(target_os = "linux")]
fn changed(events: &OwnedFd) -> bool {
    let mut buffer = [0u8; 4096];
    let mut changed = false;
    // Until nothing is pending (EAGAIN) or the descriptor fails.
    while unsafe { libc::read(events.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) } > 0 {
        changed = true;
    }
    changed
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    const HASH: Hash = [7; 32];

    fn key(path: &Path) -> Key {
        (path.to_owned(), None, u64::MAX)
    }

    /// Tries `check` until it holds, a few times: other tests create and
    /// remove their directories in the same temporary directory, an
    /// ancestor of every path here, and each such event rightly forgets
    /// all trusted files. A check that never holds fails.
    fn holds_within_a_few_tries(mut check: impl FnMut() -> bool) {
        assert!((0..50).any(|_| check()), "never held in 50 tries");
    }

    /// Watches and reads `path` as a load does, then trusts it; whether
    /// it is still trusted right after.
    fn trust(unchanged: &mut Unchanged, path: &Path) -> bool {
        let (events, generation) = unchanged.begin();
        let watched = watch(&events, path, generation).expect("watches added");
        unchanged.trust(key(path), HASH, watched);
        unchanged.get(&key(path)) == Some(HASH)
    }

    fn trusted(unchanged: &mut Unchanged, path: &Path) {
        holds_within_a_few_tries(|| trust(unchanged, path));
    }

    #[test]
    fn a_rewritten_file_is_no_longer_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.wasm");
        std::fs::write(&file, b"one").unwrap();
        let mut unchanged = Unchanged::new().unwrap();
        trusted(&mut unchanged, &file);
        std::fs::write(&file, b"two").unwrap();
        assert_eq!(unchanged.get(&key(&file)), None);
        // Trusted again once read again.
        trusted(&mut unchanged, &file);
    }

    #[test]
    fn a_swapped_link_or_a_renamed_directory_is_a_change_and_a_written_neighbour_is_not() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("area");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("real.wasm"), b"one").unwrap();
        std::fs::write(dir.join("other.wasm"), b"two").unwrap();
        std::fs::write(dir.join("neighbour.log"), b"").unwrap();
        let link = dir.join("a.wasm");
        std::os::unix::fs::symlink(dir.join("real.wasm"), &link).unwrap();
        let mut unchanged = Unchanged::new().unwrap();

        holds_within_a_few_tries(|| {
            trust(&mut unchanged, &link);
            std::fs::write(dir.join("neighbour.log"), b"a line").unwrap();
            unchanged.get(&key(&link)) == Some(HASH)
        });

        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(dir.join("other.wasm"), &link).unwrap();
        assert_eq!(unchanged.get(&key(&link)), None);

        trusted(&mut unchanged, &link);
        std::fs::rename(&dir, root.path().join("moved")).unwrap();
        assert_eq!(unchanged.get(&key(&link)), None);
    }

    #[test]
    fn a_file_changed_while_it_was_read_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.wasm");
        std::fs::write(&file, b"one").unwrap();
        let mut unchanged = Unchanged::new().unwrap();
        let (events, generation) = unchanged.begin();
        let watched = watch(&events, &file, generation).unwrap();
        // Changed after the watch, before the read was trusted; another
        // lookup took the event in between.
        std::fs::write(&file, b"two").unwrap();
        assert_eq!(unchanged.get(&key(dir.path())), None);
        unchanged.trust(key(&file), HASH, watched);
        assert_eq!(unchanged.get(&key(&file)), None);
    }

    #[test]
    fn watches_dropped_by_a_failed_read_forget_the_files_that_shared_them() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.wasm"), dir.path().join("b.wasm"));
        std::fs::write(&a, b"one").unwrap();
        std::fs::write(&b, b"two").unwrap();
        let mut unchanged = Unchanged::new().unwrap();
        trusted(&mut unchanged, &a);
        // b's read fails after its watches (its directories are a's) were
        // added: they are removed, and a is trusted no longer.
        let (events, generation) = unchanged.begin();
        drop(watch(&events, &b, generation).unwrap());
        assert_eq!(unchanged.get(&key(&a)), None);
    }

    #[test]
    fn a_missing_file_is_never_watched() {
        let dir = tempfile::tempdir().unwrap();
        let unchanged = Unchanged::new().unwrap();
        assert!(watch(&unchanged.events, &dir.path().join("nothing.wasm"), 0).is_none());
    }
}
