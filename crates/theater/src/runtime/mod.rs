//! The runtime: spawns actors from manifests, keeps the registry of running
//! actors, and owns what they share (engine, component cache, event log).

mod messaging;

pub use messaging::{ChannelEvent, ClientChannel, EXTERNAL_CHANNEL_CAPACITY, Sender};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};

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
    actors: RwLock<HashMap<ActorId, ActorHandle>>,
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
        let grants = self.inner.handlers.grants(manifest)?;
        let compiled = self.inner.cache.load(&manifest.component_path).await?;
        grants.check_imports(&compiled.imports)?;
        let template = Arc::new(ActorTemplate {
            name: manifest.name.clone(),
            compiled,
            exports: grants.exports(),
            limits: manifest.limits,
        });
        let extensions = grants.configure()?;
        let id = ActorId::new();
        let recorder = ChainRecorder::new(id, self.inner.log.clone(), self.inner.events.clone());
        let handle = actor::spawn(
            recorder,
            template,
            manifest.init_state.clone(),
            extensions,
            self.downgrade(),
        )
        .await?;
        self.inner
            .actors
            .write()
            .expect("registry lock")
            .insert(id, handle.clone());
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
            .cloned()
            .ok_or(ActorError::UnknownActor(id))
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

    /// Stops an actor after the calls already queued for it.
    pub async fn stop(&self, id: ActorId) -> Result<(), ActorError> {
        let handle = self
            .inner
            .actors
            .write()
            .expect("registry lock")
            .remove(&id)
            .ok_or(ActorError::UnknownActor(id))?;
        handle.stop().await
    }

    /// Cleans up after an actor whose task ended: it leaves the registry and
    /// its channels close on the other side.
    pub(crate) fn actor_exited(&self, id: ActorId) {
        self.inner
            .actors
            .write()
            .expect("registry lock")
            .remove(&id);
        self.close_channels_of(id);
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
