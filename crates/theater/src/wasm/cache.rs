//! Components compiled once per SHA-256 of their bytes: kept in memory, and
//! on disk as precompiled artifacts so a restart skips compilation (only
//! artifacts this home's runtime wrote are loaded: see `disk_cache`).

use std::collections::HashMap;
use std::hash::{Hash as _, Hasher};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre, Linker};

use super::adapter::{ExportRegistry, ExportTable};
use super::disk_cache::DiskCache;
use super::unchanged::{self, Key, Unchanged, Watched};
use crate::chain::Hash;
use crate::files::{self, FileError, FileKind, FileRules};

/// The handlers that built an export registry, each with whether its
/// manifest lists it: equal keys build equal registries.
pub type ExportKey = Vec<(&'static str, bool)>;

/// A component ready to instantiate in a store holding `T`.
pub struct CompiledComponent<T: 'static> {
    /// SHA-256 of the component's bytes.
    pub hash: Hash,
    /// `hash` in hex, as chain events and actor records name the component.
    pub hash_hex: String,
    pub component: Component,
    /// Names of the interfaces it imports, e.g. `ntwk:theater/runtime`.
    pub imports: Vec<String>,
    /// Linked once; an error says which import the runtime cannot satisfy.
    /// Kept as a result so that callers can first explain missing grants.
    linked: Result<InstancePre<T>, String>,
    path: PathBuf,
    /// Export tables already built, one per key.
    export_tables: Mutex<Vec<(ExportKey, Arc<ExportTable<T>>)>>,
}

impl<T: Send + 'static> CompiledComponent<T> {
    /// The component linked against every host function, ready to instantiate.
    pub fn instance_pre(&self) -> Result<&InstancePre<T>, ComponentError> {
        self.linked.as_ref().map_err(|reason| ComponentError::Link {
            path: self.path.clone(),
            reason: reason.clone(),
        })
    }

    /// The exports `registry` builds, looked up in this component; built
    /// once per `key`, so later spawns skip building and looking them up.
    pub(crate) fn export_table(
        &self,
        key: ExportKey,
        registry: impl FnOnce() -> ExportRegistry<T>,
    ) -> Arc<ExportTable<T>> {
        let mut tables = self.export_tables.lock().expect("export table lock");
        if let Some((_, table)) = tables.iter().find(|(built, _)| *built == key) {
            return table.clone();
        }
        let table = Arc::new(ExportTable::new(&self.component, registry()));
        tables.push((key, table.clone()));
        table
    }
}

/// One load's use of the kernel's file watches ([`Unchanged`]).
struct Watch {
    key: Key,
    /// The watches' descriptor and generation, where there are watches.
    begun: Option<(Arc<OwnedFd>, u64)>,
    watched: Option<Watched>,
}

impl Watch {
    fn new<T>(cache: &ComponentCache<T>, path: &Path, rules: &FileRules) -> Self {
        let mut unchanged = cache.watches.lock().expect("cache lock");
        Self {
            key: (
                path.to_owned(),
                rules.beneath.clone(),
                rules.limits.component_bytes,
            ),
            // A relative path names another file once the working
            // directory changes, which no watch sees.
            begun: unchanged
                .as_mut()
                .filter(|_| path.is_absolute())
                .map(Unchanged::begin),
            watched: None,
        }
    }

    /// The compiled component, if its file is trusted unchanged.
    fn trusted<T>(&self, cache: &ComponentCache<T>) -> Option<Arc<CompiledComponent<T>>> {
        let hash = cache
            .watches
            .lock()
            .expect("cache lock")
            .as_mut()?
            .get(&self.key)?;
        cache.loaded.lock().expect("cache lock").get(&hash).cloned()
    }

    /// Watches `path` before it is read; blocking.
    fn start(mut self, path: &Path) -> Self {
        if let Some((events, generation)) = &self.begun {
            self.watched = unchanged::watch(events, path, *generation);
        }
        self
    }

    /// The file read under the watches held `hash`.
    fn trust<T>(self, cache: &ComponentCache<T>, hash: Hash) {
        let mut unchanged = cache.watches.lock().expect("cache lock");
        if let (Some(unchanged), Some(watched)) = (unchanged.as_mut(), self.watched) {
            unchanged.trust(self.key, hash, watched);
        }
    }
}

/// The component file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error(transparent)]
    Read(#[from] FileError),
    #[error("{path} is not a WebAssembly file (it does not start with `\\0asm`)")]
    NotWasm { path: PathBuf },
    #[error(
        "{path} is a core WebAssembly module, not a component; build for wasm32-wasip2 or turn it into a component with wit-component (`wasm-tools component new`)"
    )]
    CoreModule { path: PathBuf },
    #[error("{path} is not a valid component: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path} cannot be linked: {reason}")]
    Link { path: PathBuf, reason: String },
}

/// Compiles and caches components for one engine and linker, whose
/// stores hold `T`.
pub struct ComponentCache<T: 'static> {
    engine: Engine,
    linker: Arc<Linker<T>>,
    /// Precompiled artifacts for this exact engine build and configuration.
    disk: Arc<Disk>,
    loaded: Mutex<HashMap<Hash, Arc<CompiledComponent<T>>>>,
    /// What each path held when last read, so that spawning from an
    /// unchanged file skips reading and hashing it again.
    seen: Mutex<HashMap<PathBuf, (FileStamp, Hash)>>,
    /// Files the kernel watches for changes, so that spawning from one
    /// unchanged since skips the blocking thread too.
    watches: Mutex<Option<Unchanged>>,
}

/// Size and modification time (ns) of a file: when both are unchanged the
/// file is taken to be unchanged.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            len: meta.len(),
            modified: meta.modified().ok(),
        }
    }
}

impl<T: Send + 'static> ComponentCache<T> {
    /// `cache_root` holds artifacts in a subdirectory per engine fingerprint,
    /// so a new wasmtime or configuration never reads stale code. It is
    /// opened (and checked) when the first component is compiled.
    pub fn new(engine: Engine, linker: Linker<T>, cache_root: Option<&Path>) -> Self {
        let disk = Disk {
            root: cache_root.map(Path::to_owned),
            fingerprint: engine_fingerprint(&engine),
            opened: OnceLock::new(),
        };
        Self {
            engine,
            linker: Arc::new(linker),
            disk: Arc::new(disk),
            loaded: Mutex::default(),
            seen: Mutex::default(),
            watches: Mutex::new(Unchanged::new()),
        }
    }

    /// Loads the component at `path`, compiling it only if no cache has it.
    pub async fn load(&self, path: &Path) -> Result<Arc<CompiledComponent<T>>, ComponentError> {
        self.load_with(path, &FileRules::default()).await
    }

    /// [`load`](Self::load), reading the file under `rules`.
    pub async fn load_with(
        &self,
        path: &Path,
        rules: &FileRules,
    ) -> Result<Arc<CompiledComponent<T>>, ComponentError> {
        let watch = Watch::new(self, path, rules);
        if let Some(hit) = watch.trusted(self) {
            return Ok(hit);
        }
        let (owned, rules) = (path.to_owned(), rules.clone());
        let (file, watch) = files::off_thread(move || {
            // Watched before it is opened: a change while it is read shows.
            let watch = watch.start(&owned);
            files::open(&owned, FileKind::Component, &rules).map(|file| (file, watch))
        })
        .await?;
        let stamp = FileStamp::of(file.metadata());
        if let Some(hit) = self.unchanged(path, stamp) {
            watch.trust(self, hit.hash);
            return Ok(hit);
        }
        let bytes = files::off_thread(move || file.read_all()).await?;
        let hash: Hash = Sha256::digest(&bytes).into();
        watch.trust(self, hash);
        self.seen
            .lock()
            .expect("cache lock")
            .insert(path.to_owned(), (stamp, hash));
        if let Some(hit) = self.loaded.lock().expect("cache lock").get(&hash) {
            return Ok(hit.clone());
        }
        check_magic(path, &bytes)?;
        let (engine, linker, disk, path_owned) = (
            self.engine.clone(),
            self.linker.clone(),
            self.disk.clone(),
            path.to_owned(),
        );
        // Compilation is CPU-heavy: keep it off the async workers.
        let compiled = tokio::task::spawn_blocking(move || {
            compile(&engine, &linker, disk.get(), &path_owned, &bytes, hash)
        })
        .await
        .expect("compile task panicked")?;
        let compiled = Arc::new(compiled);
        self.loaded
            .lock()
            .expect("cache lock")
            .entry(hash)
            .or_insert(compiled.clone());
        Ok(compiled)
    }

    /// The compiled component of `path` if the file has not changed since
    /// it was last read.
    fn unchanged(&self, path: &Path, stamp: FileStamp) -> Option<Arc<CompiledComponent<T>>> {
        let hash = match self.seen.lock().expect("cache lock").get(path) {
            Some((seen, hash)) if *seen == stamp => *hash,
            _ => return None,
        };
        self.loaded.lock().expect("cache lock").get(&hash).cloned()
    }
}

fn check_magic(path: &Path, bytes: &[u8]) -> Result<(), ComponentError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(ComponentError::NotWasm {
            path: path.to_owned(),
        });
    }
    // Bytes 6..8 are the layer: 0 for core modules, 1 for components.
    if bytes[6..8] == [0, 0] {
        return Err(ComponentError::CoreModule {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// The on-disk cache of one engine: where, and once opened, whether it can
/// be trusted.
struct Disk {
    root: Option<PathBuf>,
    fingerprint: String,
    opened: OnceLock<Option<DiskCache>>,
}

impl Disk {
    /// The checked cache, opened on first use; `None` without a home or if
    /// it cannot be trusted (said once, with what to do).
    fn get(&self) -> Option<&DiskCache> {
        self.opened
            .get_or_init(|| {
                let root = self.root.as_deref()?;
                DiskCache::open(root, &self.fingerprint)
                    .inspect_err(|e| {
                        tracing::warn!("not using the compiled-code cache: {e}; components are compiled on every start until this is fixed");
                    })
                    .ok()
            })
            .as_ref()
    }
}

fn compile<T: Send + 'static>(
    engine: &Engine,
    linker: &Linker<T>,
    disk: Option<&DiskCache>,
    path: &Path,
    bytes: &[u8],
    hash: Hash,
) -> Result<CompiledComponent<T>, ComponentError> {
    let component = match disk.and_then(|disk| disk.load(engine, &hash)) {
        Some(component) => component,
        None => {
            let component = Component::new(engine, bytes).map_err(|e| ComponentError::Invalid {
                path: path.to_owned(),
                reason: format!("{e:#}"),
            })?;
            if let Some(disk) = disk {
                disk.store(&component, &hash);
            }
            component
        }
    };
    let imports = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let linked = linker
        .instantiate_pre(&component)
        .map_err(|e| format!("{e:#}"));
    Ok(CompiledComponent {
        hash,
        hash_hex: hex::encode(hash),
        component,
        imports,
        linked,
        path: path.to_owned(),
        export_tables: Mutex::default(),
    })
}

fn engine_fingerprint(engine: &Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("wasmtime-{:016x}", hasher.finish())
}
