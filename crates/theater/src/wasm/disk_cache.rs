//! Compiled components on disk, loaded only if this user wrote them.
//!
//! A compiled artifact is native code that wasmtime maps and runs as it is
//! (`Component::deserialize` is `unsafe` for that reason): whoever can
//! write one that the runtime loads can run code as the runtime. So the
//! cache directory must belong to the user running Theater and be writable
//! by nobody else (it is created `0700`), and every entry carries an
//! HMAC-SHA256 tag under a random key of this home (`key`, created `0600`
//! and checked the same way), over the engine, the component's hash and the
//! artifact. An entry whose tag does not match — changed, or another
//! component's artifact put in its place — is ignored with a warning naming
//! it, and the component is compiled and stored again.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use cap_std::fs::{Dir, DirBuilder, DirBuilderExt, File, MetadataExt, OpenOptions, OpenOptionsExt};
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::chain::Hash;

/// The file, in the cache directory, that holds this home's key.
pub const KEY_FILE: &str = "key";
/// Bytes of the key, and of each entry's tag.
const KEY_BYTES: usize = 32;
/// Largest entry read back: a file that big is not a compiled component
/// this runtime wrote, and reading it whole would cost that much memory.
pub const MAX_ARTIFACT_BYTES: u64 = 1024 * 1024 * 1024;
/// What the tag says the bytes are, so a tag made for anything else never
/// fits.
const TAG_CONTEXT: &[u8] = b"theater compiled component v1\0";

type Tagger = Hmac<Sha256>;

/// The verified cache directory of one engine, and the key of its home.
pub struct DiskCache {
    /// `<cache>/<engine fingerprint>`, opened once checked.
    dir: Dir,
    /// Where it is, for messages.
    shown: PathBuf,
    fingerprint: String,
    key: [u8; KEY_BYTES],
}

impl DiskCache {
    /// Opens (creating it if need be) `root/fingerprint`, after checking
    /// that `root` and it belong to this user and nobody else may write
    /// them, and reads (or makes) the key in `root`. An error says why the
    /// cache cannot be trusted and what to do.
    pub fn open(root: &Path, fingerprint: &str) -> Result<Self, String> {
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(root)
            .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
        let root_dir = Dir::open_ambient_dir(root, cap_std::ambient_authority())
            .map_err(|e| format!("cannot open {}: {e}", root.display()))?;
        check_private(&root_dir, root)?;
        let key = key_of(&root_dir, &root.join(KEY_FILE))?;
        let shown = root.join(fingerprint);
        match root_dir.create_dir_with(fingerprint, DirBuilder::new().mode(0o700)) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(format!("cannot create {}: {e}", shown.display()));
            }
            _ => {}
        }
        let dir = root_dir
            .open_dir(fingerprint)
            .map_err(|e| format!("cannot open {}: {e}", shown.display()))?;
        check_private(&dir, &shown)?;
        Ok(Self {
            dir,
            shown,
            fingerprint: fingerprint.to_owned(),
            key,
        })
    }

    /// The component stored for `hash`, if its entry is there and its tag
    /// proves this home wrote it for this engine and this component.
    pub fn load(&self, engine: &Engine, hash: &Hash) -> Option<Component> {
        let name = entry_name(hash);
        let shown = self.shown.join(&name);
        let entry = match self.read_entry(&name) {
            Ok(Some(entry)) => entry,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(artifact = %shown.display(), "ignoring cached compiled code: {e}; compiling again");
                return None;
            }
        };
        let Some(artifact) = self.verified(hash, &entry) else {
            tracing::warn!(
                artifact = %shown.display(),
                "ignoring cached compiled code: its tag does not match (changed, or not written by this Theater home for this component); compiling again"
            );
            return None;
        };
        // SAFETY: the bytes are the ones the tag was checked on, read once
        // into memory; a matching tag means this home's runtime serialized
        // them with this engine for this component (only it knows the key).
        match unsafe { Component::deserialize(engine, artifact) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(artifact = %shown.display(), "ignoring unreadable cached compiled code: {e:#}; compiling again");
                None
            }
        }
    }

    /// Stores `component`, tagged, for `hash`. Best effort: a cache that
    /// cannot be written only costs a compilation next time.
    pub fn store(&self, component: &Component, hash: &Hash) {
        let name = entry_name(hash);
        let write = || -> io::Result<()> {
            let artifact = component.serialize().map_err(io::Error::other)?;
            let tag = self.tag(hash, &artifact);
            // Write then rename, so a crash never leaves a torn entry.
            let tmp = format!("{name}.tmp{:016x}", rand::rng().next_u64());
            let mut file = self.dir.open_with(&tmp, &private_new_file())?;
            file.write_all(&tag)?;
            file.write_all(&artifact)?;
            drop(file);
            self.dir.rename(&tmp, &self.dir, &name)
        };
        if let Err(e) = write() {
            let shown = self.shown.join(&name);
            tracing::warn!(artifact = %shown.display(), "cannot cache compiled component: {e}");
        }
    }

    /// The entry's bytes, `None` if there is none; at most
    /// [`MAX_ARTIFACT_BYTES`] of a regular file.
    fn read_entry(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        let mut file = match self.dir.open(name) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if !meta.is_file() || meta.len() > MAX_ARTIFACT_BYTES {
            return Err(io::Error::other(format!(
                "it is not a regular file of at most {MAX_ARTIFACT_BYTES} bytes"
            )));
        }
        let mut entry = Vec::with_capacity(meta.len() as usize);
        Read::by_ref(&mut file)
            .take(MAX_ARTIFACT_BYTES)
            .read_to_end(&mut entry)?;
        Ok(Some(entry))
    }

    /// The artifact of `entry` if its tag is right for `hash`.
    fn verified<'a>(&self, hash: &Hash, entry: &'a [u8]) -> Option<&'a [u8]> {
        let (tag, artifact) = entry.split_at_checked(KEY_BYTES)?;
        self.tagger(hash, artifact).verify_slice(tag).ok()?;
        Some(artifact)
    }

    fn tag(&self, hash: &Hash, artifact: &[u8]) -> [u8; KEY_BYTES] {
        self.tagger(hash, artifact).finalize().into_bytes().into()
    }

    fn tagger(&self, hash: &Hash, artifact: &[u8]) -> Tagger {
        let mut tagger = Tagger::new_from_slice(&self.key).expect("HMAC takes any key length");
        tagger.update(TAG_CONTEXT);
        tagger.update(self.fingerprint.as_bytes());
        tagger.update(b"\0");
        tagger.update(hash);
        tagger.update(artifact);
        tagger
    }
}

fn entry_name(hash: &Hash) -> String {
    format!("{}.cwasm", hex::encode(hash))
}

/// Options that create a new file only its owner may read and write.
fn private_new_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    options
}

/// The id of the user the runtime runs as.
fn current_user() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Refuses a directory that is not this user's, or that others may write.
fn check_private(dir: &Dir, shown: &Path) -> Result<(), String> {
    let meta = dir
        .dir_metadata()
        .map_err(|e| format!("cannot check {}: {e}", shown.display()))?;
    if meta.uid() != current_user() {
        return Err(format!(
            "{} belongs to user {}, not to the user running Theater ({}): anyone who owns it could put native code there; remove it, or give it to this user",
            shown.display(),
            meta.uid(),
            current_user()
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "{} may be written by other users (mode {mode:o}): they could put native code there; run `chmod 700 {}`",
            shown.display(),
            shown.display()
        ));
    }
    Ok(())
}

/// This home's key, read from `key` in `dir`, made on first use.
fn key_of(dir: &Dir, shown: &Path) -> Result<[u8; KEY_BYTES], String> {
    let opened = match dir.open(KEY_FILE) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_key(dir).map_err(|e| format!("cannot create {}: {e}", shown.display()))?;
            dir.open(KEY_FILE)
        }
        opened => opened,
    };
    let file = opened.map_err(|e| format!("cannot open {}: {e}", shown.display()))?;
    read_key(file, shown)
}

/// Writes a new random key under a temporary name, then links it into
/// place: another process making one at the same time wins or loses
/// whole, and nobody ever reads half a key.
fn create_key(dir: &Dir) -> io::Result<()> {
    let mut key = [0u8; KEY_BYTES];
    rand::rng().fill_bytes(&mut key);
    let tmp = format!("{KEY_FILE}.tmp{:016x}", rand::rng().next_u64());
    let mut file = dir.open_with(&tmp, &private_new_file())?;
    file.write_all(&key)?;
    file.sync_all()?;
    drop(file);
    let linked = dir.hard_link(&tmp, dir, KEY_FILE);
    dir.remove_file(&tmp)?;
    match linked {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// The key in `file`, if it is this user's, private and whole.
fn read_key(mut file: File, shown: &Path) -> Result<[u8; KEY_BYTES], String> {
    let cannot = |e: io::Error| format!("cannot read {}: {e}", shown.display());
    let meta = file.metadata().map_err(cannot)?;
    let mode = meta.mode() & 0o777;
    if meta.uid() != current_user() || mode & 0o077 != 0 {
        return Err(format!(
            "{} must belong to the user running Theater and be readable by nobody else (it is user {}'s, mode {mode:o}): whoever reads it can forge cached code; delete it (a new one is made)",
            shown.display(),
            meta.uid()
        ));
    }
    if !meta.is_file() || meta.len() != KEY_BYTES as u64 {
        return Err(format!(
            "{} is not a key of {KEY_BYTES} bytes; delete it (a new one is made)",
            shown.display()
        ));
    }
    let mut key = [0u8; KEY_BYTES];
    file.read_exact(&mut key).map_err(cannot)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn engine() -> Engine {
        Engine::new(wasmtime::Config::new().wasm_component_model(true)).unwrap()
    }

    /// The empty component: its header alone.
    fn component(engine: &Engine) -> Component {
        Component::from_binary(engine, b"\0asm\x0d\0\x01\0").unwrap()
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn the_cache_and_its_key_are_created_private() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("cache");
        DiskCache::open(&root, "engine-a").unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("engine-a")), 0o700);
        assert_eq!(mode(&root.join(KEY_FILE)), 0o600);
        assert_eq!(std::fs::read(root.join(KEY_FILE)).unwrap().len(), KEY_BYTES);
        // A second open keeps the key.
        let key = std::fs::read(root.join(KEY_FILE)).unwrap();
        DiskCache::open(&root, "engine-b").unwrap();
        assert_eq!(std::fs::read(root.join(KEY_FILE)).unwrap(), key);
    }

    #[test]
    fn a_cache_others_may_write_or_a_readable_key_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("cache");
        DiskCache::open(&root, "engine").unwrap();

        chmod(&root, 0o777);
        let err = DiskCache::open(&root, "engine").err().unwrap();
        assert!(
            err.contains("may be written by other users (mode 777)"),
            "{err}"
        );
        assert!(err.contains("chmod 700"), "{err}");
        chmod(&root, 0o700);
        chmod(&root.join("engine"), 0o775);
        let err = DiskCache::open(&root, "engine").err().unwrap();
        assert!(
            err.contains("engine may be written by other users"),
            "{err}"
        );
        chmod(&root.join("engine"), 0o700);

        chmod(&root.join(KEY_FILE), 0o644);
        let err = DiskCache::open(&root, "engine").err().unwrap();
        assert!(err.contains("readable by nobody else"), "{err}");
        chmod(&root.join(KEY_FILE), 0o600);
        std::fs::write(root.join(KEY_FILE), b"short").unwrap();
        let err = DiskCache::open(&root, "engine").err().unwrap();
        assert!(err.contains("is not a key of 32 bytes"), "{err}");
    }

    #[test]
    fn only_entries_tagged_for_this_component_load() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join("cache");
        let engine = engine();
        let cache = DiskCache::open(&root, "engine").unwrap();
        let (a, b) = ([1; 32], [2; 32]);
        cache.store(&component(&engine), &a);
        cache.store(&component(&engine), &b);
        assert!(cache.load(&engine, &a).is_some());
        assert!(cache.load(&engine, &[3; 32]).is_none());

        // b's entry in a's place: valid code, but not a's.
        let entry = |hash: &Hash| root.join("engine").join(entry_name(hash));
        std::fs::copy(entry(&b), entry(&a)).unwrap();
        assert!(cache.load(&engine, &a).is_none());
        // One flipped byte.
        let mut bytes = std::fs::read(entry(&b)).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(entry(&b), &bytes).unwrap();
        assert!(cache.load(&engine, &b).is_none());
        // Tagged under another home's key.
        let other = tempfile::tempdir().unwrap();
        let elsewhere = DiskCache::open(&other.path().join("cache"), "engine").unwrap();
        elsewhere.store(&component(&engine), &b);
        std::fs::copy(
            other.path().join("cache/engine").join(entry_name(&b)),
            entry(&b),
        )
        .unwrap();
        assert!(cache.load(&engine, &b).is_none());
        // Rewritten, it loads again.
        cache.store(&component(&engine), &b);
        assert!(cache.load(&engine, &b).is_some());
    }
}
