//! The runtime: spawns actors from manifests, keeps the registry of running
//! actors, and owns what they share (engine, component cache, event log).

mod introspect;
mod messaging;
mod supervision;

pub use messaging::{ChannelEvent, ClientChannel, EXTERNAL_CHANNEL_CAPACITY, Sender};
pub use supervision::{CHILD_ERROR, CHILD_EXIT, Restart, Strategy, SupervisionPolicy};
pub(crate) use supervision::{ChildEvent, Decision};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};

use tokio::sync::broadcast;

use crate::actor::{self, ActorEvent, ActorHandle, ActorTemplate, ChainRecorder};
use crate::chain::{ChainEvent, EventLog, LogError, MemoryEventLog};
use crate::error::{ActorError, SpawnError};
use crate::host::HandlerSet;
use crate::id::ActorId;
use crate::manifest::Manifest;
use crate::wasm::{self, ComponentCache};

/// Events a live subscriber may fall behind by before it is told it missed
/// some (`RecvError::Lagged`). Guards the runtime against slow subscribers.
pub const SUBSCRIBER_BUFFER: usize = 4096;

/// How a runtime is set up.
pub struct RuntimeConfig {
    /// Data directory; compiled components are cached under `cache/`.
    /// `None` keeps nothing on disk.
    pub home: Option<PathBuf>,
    pub event_log: Arc<dyn EventLog>,
    pub handlers: HandlerSet,
}

impl RuntimeConfig {
    /// The embedded default: `$THEATER_HOME` (or `~/.theater`), chains in memory.
    pub fn embedded() -> Self {
        Self {
            home: Some(default_home()),
            ..Self::ephemeral()
        }
    }

    /// Nothing on disk at all.
    pub fn ephemeral() -> Self {
        Self {
            home: None,
            event_log: Arc::new(MemoryEventLog::default()),
            handlers: HandlerSet::builtin(),
        }
    }
}

/// `$THEATER_HOME`, else `~/.theater`, else `.theater`.
pub fn default_home() -> PathBuf {
    std::env::var_os("THEATER_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::home_dir().map(|home| home.join(".theater")))
        .unwrap_or_else(|| PathBuf::from(".theater"))
}

/// The runtime could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the runtime: {0}")]
pub struct RuntimeError(String);

/// A reference to a runtime that does not keep it alive; actors hold one.
#[derive(Clone)]
pub struct WeakRuntime(Weak<Inner>);

impl WeakRuntime {
    pub fn upgrade(&self) -> Option<TheaterRuntime> {
        self.0.upgrade().map(|inner| TheaterRuntime { inner })
    }
}

/// A running actor as the registry knows it.
struct ActorEntry {
    handle: ActorHandle,
    manifest: Arc<Manifest>,
}

/// How an actor starts.
pub struct SpawnOptions {
    /// The supervising actor and its policy.
    pub parent: Option<(ActorId, Arc<SupervisionPolicy>)>,
    /// State to start from instead of the manifest's `init_state`.
    pub state: Option<Option<Vec<u8>>>,
}

/// A Theater runtime. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct TheaterRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    home: Option<PathBuf>,
    cache: ComponentCache,
    handlers: HandlerSet,
    log: Arc<dyn EventLog>,
    actors: RwLock<HashMap<ActorId, ActorEntry>>,
    tree: Mutex<supervision::Tree>,
    messaging: messaging::Messaging,
    /// Every chain event, live, for subscribers.
    events: broadcast::Sender<ActorEvent>,
}

impl TheaterRuntime {
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let engine = wasm::new_engine().map_err(|e| RuntimeError(format!("{e:#}")))?;
        let linker = config
            .handlers
            .linker(&engine)
            .map_err(|e| RuntimeError(format!("linking host functions: {e:#}")))?;
        let cache_root = config.home.as_ref().map(|home| home.join("cache"));
        Ok(Self {
            inner: Arc::new(Inner {
                cache: ComponentCache::new(engine, linker, cache_root.as_deref()),
                home: config.home,
                handlers: config.handlers,
                log: config.event_log,
                actors: RwLock::default(),
                tree: Mutex::default(),
                messaging: messaging::Messaging::default(),
                events: broadcast::channel(SUBSCRIBER_BUFFER).0,
            }),
        })
    }

    /// Loads the manifest at `path` and spawns its actor.
    pub async fn spawn_file(&self, path: impl AsRef<Path>) -> Result<ActorHandle, SpawnError> {
        let manifest = Manifest::load(path)?;
        self.spawn(&manifest).await
    }

    /// Spawns an actor: checks its grants and exports, runs `actor.init`,
    /// records the genesis event, and registers it.
    pub async fn spawn(&self, manifest: &Manifest) -> Result<ActorHandle, SpawnError> {
        self.spawn_with(
            manifest,
            SpawnOptions {
                parent: None,
                state: None,
            },
        )
        .await
    }

    /// [`spawn`](Self::spawn) as a supervised child or from a given state.
    pub async fn spawn_with(
        &self,
        manifest: &Manifest,
        options: SpawnOptions,
    ) -> Result<ActorHandle, SpawnError> {
        let grants = self.inner.handlers.grants(manifest)?;
        // Config mistakes are reported before any compilation.
        let extensions = grants.configure()?;
        let compiled = self.inner.cache.load(&manifest.component_path).await?;
        grants.check_imports(&compiled.imports)?;
        compiled.instance_pre()?;
        let template = Arc::new(ActorTemplate {
            name: manifest.name.clone(),
            compiled,
            exports: grants.exports(),
            limits: manifest.limits,
        });
        let id = ActorId::new();
        let recorder = ChainRecorder::new(id, self.inner.log.clone(), self.inner.events.clone());
        let state = options.state.unwrap_or_else(|| manifest.init_state.clone());
        let handle = actor::spawn(recorder, template, state, extensions, self.downgrade()).await?;
        let entry = ActorEntry {
            handle: handle.clone(),
            manifest: Arc::new(manifest.clone()),
        };
        self.inner
            .actors
            .write()
            .expect("registry lock")
            .insert(id, entry);
        if let Some((parent, policy)) = options.parent {
            let mut tree = self.inner.tree.lock().expect("tree lock");
            tree.link(parent, id, manifest.name.clone(), policy);
        }
        tracing::info!(actor = %id, name = %manifest.name, "actor started");
        Ok(handle)
    }

    /// The data directory, `None` for a runtime that keeps nothing on disk.
    pub fn home(&self) -> Option<&Path> {
        self.inner.home.as_deref()
    }

    pub fn downgrade(&self) -> WeakRuntime {
        WeakRuntime(Arc::downgrade(&self.inner))
    }

    /// The running actor `id`.
    pub fn actor(&self, id: ActorId) -> Result<ActorHandle, ActorError> {
        self.inner
            .actors
            .read()
            .expect("registry lock")
            .get(&id)
            .map(|entry| entry.handle.clone())
            .ok_or(ActorError::UnknownActor(id))
    }

    /// The manifest a running actor was started from.
    pub fn manifest(&self, id: ActorId) -> Result<Arc<Manifest>, ActorError> {
        self.inner
            .actors
            .read()
            .expect("registry lock")
            .get(&id)
            .map(|entry| entry.manifest.clone())
            .ok_or(ActorError::UnknownActor(id))
    }

    /// The children an actor supervises, oldest first.
    pub fn children(&self, parent: ActorId) -> Vec<ActorId> {
        self.inner.tree.lock().expect("tree lock").children(parent)
    }

    /// The actor supervising `child`, if any.
    pub fn parent(&self, child: ActorId) -> Option<ActorId> {
        self.inner.tree.lock().expect("tree lock").parent(child)
    }

    /// Ids of the running actors.
    pub fn actor_ids(&self) -> Vec<ActorId> {
        self.inner
            .actors
            .read()
            .expect("registry lock")
            .keys()
            .copied()
            .collect()
    }

    /// Stops an actor and, first, its whole subtree (children before
    /// parents), each after the calls already queued for it.
    pub async fn stop(&self, id: ActorId) -> Result<(), ActorError> {
        let handle = self.actor(id)?;
        for child in self.children(id) {
            // A child may stop on its own meanwhile; that is fine.
            let _ = Box::pin(self.stop(child)).await;
        }
        handle.stop().await
    }

    /// Cleans up after an actor whose task ended: it leaves the registry and
    /// the tree, its channels close on the other side, and its parent hears
    /// of the exit.
    pub(crate) fn actor_exited(&self, id: ActorId, data: Option<Vec<u8>>) {
        self.inner
            .actors
            .write()
            .expect("registry lock")
            .remove(&id);
        // An actor that ends on its own takes its subtree with it.
        let orphans = self.children(id);
        if !orphans.is_empty() {
            let runtime = self.clone();
            tokio::spawn(async move {
                for child in orphans {
                    let _ = runtime.stop(child).await;
                }
            });
        }
        let parent = self.inner.tree.lock().expect("tree lock").unlink(id);
        self.close_channels_of(id);
        if let Some(parent) = parent {
            self.child_exited(parent, id, data);
        }
        tracing::info!(actor = %id, "actor stopped");
    }

    /// Every chain event of every actor from now on, as it becomes durable.
    pub fn subscribe(&self) -> broadcast::Receiver<ActorEvent> {
        self.inner.events.subscribe()
    }

    /// The chain of an actor, running or not, oldest first.
    pub fn chain(&self, id: ActorId) -> Result<Vec<ChainEvent>, LogError> {
        self.inner.log.events(&id)
    }
}
