//! The runtime: spawns actors from manifests, keeps the registry of running
//! actors and the tree of who supervises whom, and owns what they share
//! (engine, component cache, event log). It knows no capability by name:
//! its actors reach it through [`RuntimeServices`], and it tells the
//! capabilities what happens to actors through the hooks of their
//! [`Handler`](crate::host::Handler)s.

mod components;
mod introspect;
mod messaging;
mod persistence;
mod remote_tree;
mod services;
mod tree;

pub use crate::actor::{SpawnOptions, WeakRuntime};
pub use crate::host::messaging::{ChannelEvent, ClientChannel, EXTERNAL_CHANNEL_CAPACITY, Sender};
/// The supervisor capability's policy, where embedders have found it.
pub use crate::host::{
    DEFAULT_MAX_CHILDREN, MAX_MAX_CHILDREN, MAX_MAX_RESTARTS, Restart, Strategy, SupervisionPolicy,
};
pub use introspect::ActorStatus;
pub use persistence::{ForkOptions, HistoryError, Reloaded, ResumeReport};

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};

use crate::actor::{
    self, ActorEvent, ActorHandle, ActorStore, ActorTemplate, ChainRecorder, ChildOp, Ending, Exit,
    RuntimeServices, Shared, Start, now_ms,
};
use crate::chain::{ChainEvent, Hash};
use crate::cluster::Cluster;
use crate::error::{ActorError, SpawnError};
use crate::files::{FileLimits, FileRules};
use crate::host::messaging::remote;
use crate::host::{Grants, HandlerSet};
use crate::id::ActorId;
use crate::manifest::Manifest;
use crate::metrics::{Metrics, MetricsConfig};
use crate::storage::{ActorRecord, EventLog, LogError, MemoryEventLog, SavedActor, VerifyFailure};
use crate::storage::{LogOptions, RedbEventLog};
use crate::tasks::AbortOnDrop;
use crate::telemetry::Traces;
use crate::wasm::{self, ComponentCache};

/// Events a live subscriber may fall behind by before it is told it missed
/// some (`RecvError::Lagged`). Guards the runtime against slow subscribers.
pub const SUBSCRIBER_BUFFER: usize = 4096;

/// The chain database in a runtime's home.
pub const CHAINS_FILE: &str = "chains.redb";

/// Actors a runtime runs at once unless its config says otherwise
/// ([`RuntimeConfig::max_actors`]). Guards the host against spawn loops
/// across many actors and against operators starting without end.
pub const DEFAULT_MAX_ACTORS: usize = 10_000;

/// How a runtime is set up.
pub struct RuntimeConfig {
    /// Data directory; compiled components are cached under `cache/`.
    /// `None` keeps nothing on disk.
    pub home: Option<PathBuf>,
    pub event_log: Arc<dyn EventLog>,
    pub handlers: HandlerSet,
    /// How large a manifest, `init_state` file or component may be.
    pub files: FileLimits,
    /// Actors it runs at once, children included; a spawn beyond is refused.
    pub max_actors: usize,
    /// Count calls, spawns, queues and chains for Prometheus; `None` (the
    /// default) counts nothing.
    pub metrics: Option<MetricsConfig>,
    /// Where each call's and host call's span goes; `None` (the default)
    /// records none.
    pub traces: Option<Traces>,
    /// Whether actor HTTP servers may bind the address they ask for. When
    /// `false` (the default) every actor server binds loopback, whatever
    /// it asks (`theater server --public-http` sets it).
    pub public_http: bool,
    /// Where actor HTTP servers listen, whatever address they ask for:
    /// each node of a cluster on one machine gets its own (127.0.0.2,
    /// 127.0.0.3, …), so an actor that moves keeps its port. `None` (the
    /// default): as [`public_http`](Self::public_http) says.
    pub http_address: Option<std::net::IpAddr>,
    /// The cluster this runtime is a node of: messages to actors that do
    /// not run here go to the node that owns them, and this node answers
    /// the messages other nodes send its actors. `None` (the default): one
    /// process on its own.
    pub cluster: Option<Cluster>,
}

impl RuntimeConfig {
    /// The embedded default: everything under `$THEATER_HOME` (or
    /// `~/.theater`); see [`at`](Self::at).
    pub fn embedded() -> Result<Self, RuntimeError> {
        Self::at(default_home())
    }

    /// Everything under `home`: compiled components in `cache/`, and chains,
    /// actor records and states durable in [`CHAINS_FILE`], so that a later
    /// runtime on the same home can resume the actors. One process at a
    /// time can use a home.
    pub fn at(home: impl Into<PathBuf>) -> Result<Self, RuntimeError> {
        Self::at_with(home, LogOptions::default())
    }

    /// [`at`](Self::at) with the chain database opened with `options`
    /// (durability mode, snapshot interval).
    pub fn at_with(home: impl Into<PathBuf>, options: LogOptions) -> Result<Self, RuntimeError> {
        let home = home.into();
        create_home(&home)
            .map_err(|e| RuntimeError(format!("cannot create the home {}: {e}", home.display())))?;
        let log = RedbEventLog::open_with(home.join(CHAINS_FILE), options)
            .map_err(|e| RuntimeError(e.to_string()))?;
        Ok(Self::with_log(Some(home), Arc::new(log)))
    }

    /// Nothing on disk at all.
    pub fn ephemeral() -> Self {
        Self::with_log(None, Arc::new(MemoryEventLog::default()))
    }

    /// The defaults around a home and an event log.
    fn with_log(home: Option<PathBuf>, event_log: Arc<dyn EventLog>) -> Self {
        Self {
            home,
            event_log,
            handlers: HandlerSet::builtin(),
            files: FileLimits::default(),
            max_actors: DEFAULT_MAX_ACTORS,
            metrics: None,
            traces: None,
            public_http: false,
            http_address: None,
            cluster: None,
        }
    }
}

/// Creates `home`, and any missing parent, readable by its user only: the
/// chains and states in it are the actors' record. An existing directory
/// keeps its permissions.
fn create_home(home: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home)
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

/// A running actor as the registry knows it.
struct ActorEntry {
    handle: ActorHandle,
    manifest: Arc<Manifest>,
    /// What its manifest grants, checked when it was spawned: its children
    /// are compared with it.
    grants: Arc<Grants>,
    /// Its place among the runtime's `max_actors`, given back when it ends.
    _slot: OwnedSemaphorePermit,
}

/// A Theater runtime. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct TheaterRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    /// Itself, for the services its actors reach through a reference.
    me: Weak<Inner>,
    home: Option<PathBuf>,
    cache: ComponentCache<ActorStore>,
    handlers: HandlerSet,
    log: Arc<dyn EventLog>,
    actors: RwLock<HashMap<ActorId, ActorEntry>>,
    tree: Mutex<tree::Tree>,
    /// What capabilities keep for the whole runtime.
    shared: Shared,
    /// Every chain event, live, for subscribers.
    events: broadcast::Sender<ActorEvent>,
    /// Set by [`TheaterRuntime::shutdown`]: actors stopping now stay marked
    /// as running in the log, so the next runtime resumes them.
    shutting_down: AtomicBool,
    files: FileLimits,
    /// One permit per actor it may run.
    slots: Arc<Semaphore>,
    max_actors: usize,
    metrics: Metrics,
    traces: Option<Traces>,
    public_http: bool,
    http_address: Option<std::net::IpAddr>,
    cluster: Option<Cluster>,
    /// Actors stopping here to run on another node.
    moving: Mutex<HashSet<ActorId>>,
    /// Answer other nodes' messages to this runtime's actors, and their
    /// notes about parents and children that run apart.
    _answering: Vec<AbortOnDrop>,
}

impl TheaterRuntime {
    /// A runtime with `config`. One in a cluster must be made inside a
    /// tokio runtime: it starts answering other nodes at once.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let engine = wasm::new_engine().map_err(|e| RuntimeError(format!("{e:#}")))?;
        let linker = config
            .handlers
            .linker(&engine)
            .map_err(|e| RuntimeError(format!("linking host functions: {e:#}")))?;
        let cache_root = config.home.as_ref().map(|home| home.join("cache"));
        let metrics = match config.metrics {
            Some(metrics) => {
                let cluster = config.cluster.clone();
                Metrics::new(metrics, config.event_log.clone(), cluster)
            }
            None => Metrics::disabled(),
        };
        Ok(Self {
            inner: Arc::new_cyclic(|me| Inner {
                me: me.clone(),
                cache: ComponentCache::new(engine, linker, cache_root.as_deref()),
                home: config.home,
                handlers: config.handlers,
                log: config.event_log,
                actors: RwLock::default(),
                tree: Mutex::default(),
                shared: Shared::default(),
                events: broadcast::channel(SUBSCRIBER_BUFFER).0,
                shutting_down: AtomicBool::new(false),
                files: config.files,
                slots: Arc::new(Semaphore::new(config.max_actors)),
                max_actors: config.max_actors,
                metrics,
                traces: config.traces,
                public_http: config.public_http,
                http_address: config.http_address,
                moving: Mutex::default(),
                _answering: config
                    .cluster
                    .iter()
                    .flat_map(|cluster| {
                        let runtime = WeakRuntime::new(me.clone() as Weak<dyn RuntimeServices>);
                        [
                            AbortOnDrop(tokio::spawn(remote::answer(cluster.clone(), runtime))),
                            AbortOnDrop(tokio::spawn(remote_tree::answer(
                                cluster.clone(),
                                me.clone(),
                            ))),
                        ]
                    })
                    .collect(),
                cluster: config.cluster,
            }),
        })
    }

    /// Loads the manifest at `path` and spawns its actor.
    pub async fn spawn_file(&self, path: impl AsRef<Path>) -> Result<ActorHandle, SpawnError> {
        let manifest = Manifest::read(path.as_ref().to_owned(), self.file_rules()).await?;
        self.spawn(&manifest).await
    }

    /// How an operator's manifests and their files are read: wherever this
    /// process may read, within the runtime's file limits.
    pub fn file_rules(&self) -> FileRules {
        FileRules {
            limits: self.inner.files,
            beneath: None,
        }
    }

    /// Spawns an actor: checks its grants and exports, runs `actor.init`,
    /// records the genesis event, and registers it.
    pub async fn spawn(&self, manifest: &Manifest) -> Result<ActorHandle, SpawnError> {
        self.spawn_with(manifest, SpawnOptions::default()).await
    }

    /// [`spawn`](Self::spawn) as a supervised child or from a given state
    /// (see [`SpawnOptions`]).
    pub async fn spawn_with(
        &self,
        manifest: &Manifest,
        options: SpawnOptions,
    ) -> Result<ActorHandle, SpawnError> {
        let slot = self.inner.slots.clone().try_acquire_owned().map_err(|_| {
            SpawnError::TooManyActors {
                limit: self.inner.max_actors,
            }
        })?;
        let grants = self.inner.handlers.grants(manifest)?;
        let (grants, files, manifest) = match (&options.parent, options.by_parent) {
            (Some((parent, _)), Some(files)) => {
                let admitted = self.admit_child(*parent, manifest, grants, files).await?;
                let manifest = match admitted.limits == manifest.limits {
                    true => Cow::Borrowed(manifest),
                    false => Cow::Owned(Manifest {
                        limits: admitted.limits,
                        ..manifest.clone()
                    }),
                };
                (admitted.grants, admitted.files, manifest)
            }
            (_, _) => (grants, self.file_rules(), Cow::Borrowed(manifest)),
        };
        let manifest = manifest.as_ref();
        // Config mistakes are reported before any compilation.
        let extensions = grants.configure()?;
        let compiled = self
            .inner
            .cache
            .load_with(&manifest.component_path, &files)
            .await?;
        grants.check_imports(&compiled.imports)?;
        compiled.instance_pre()?;
        if let (Some(cluster), None) = (&self.inner.cluster, options.resume) {
            let (hash, path) = (&compiled.hash_hex, &manifest.component_path);
            self.share_component(cluster, hash, path, &files).await?;
        }
        let exports = compiled.export_table(grants.export_key(), || grants.exports());
        if let Some([first, second]) = exports.exported_twice() {
            return Err(SpawnError::ExportedTwice {
                first: first.clone(),
                second: second.clone(),
            });
        }
        let template = Arc::new(ActorTemplate {
            name: manifest.name.clone(),
            exports,
            compiled,
            limits: manifest.limits,
        });
        let (id, head) = match options.resume {
            Some((id, head)) => (id, Some(head)),
            None => (ActorId::new(), None),
        };
        if self.actor(id).is_ok() {
            return Err(SpawnError::AlreadyRunning(id));
        }
        let mut recorder =
            ChainRecorder::new(id, self.inner.log.clone(), self.inner.events.clone())
                .counted(self.inner.metrics.clone());
        let start = match head {
            Some(head) => {
                recorder = recorder.continuing(head);
                Start::Resume
            }
            None => Start::New {
                forked_from: options.forked_from,
            },
        };
        let state = options.state.unwrap_or_else(|| manifest.init_state.clone());
        // A new actor's record keeps the state `init` is given, so that a
        // replay can run its chain from the very first event.
        let recorded = head.is_none().then(|| Manifest {
            init_state: state.clone(),
            ..manifest.clone()
        });
        let spawned = actor::spawn(
            recorder,
            template.clone(),
            state,
            extensions,
            self.downgrade(),
            start,
        )
        .await?;
        let handle = spawned.handle.clone();
        if let Some(manifest) = recorded {
            let record = ActorRecord {
                manifest,
                component: template.compiled.hash_hex.clone(),
                parent: options.parent.as_ref().map(|(parent, _)| *parent),
                running: true,
                started_ms: now_ms(),
            };
            // An actor the log cannot resume must not look started.
            if let Err(e) = self.inner.log.save_actor(&id, &record).await {
                let _ = spawned.start().stop().await;
                return Err(e.into());
            }
        }
        let entry = ActorEntry {
            handle: handle.clone(),
            manifest: Arc::new(manifest.clone()),
            grants: Arc::new(grants),
            _slot: slot,
        };
        self.inner
            .actors
            .write()
            .expect("registry lock")
            .insert(id, entry);
        // Its children that run here already (it ran on another node
        // until now) are under its policy from now on.
        if !self.children(id).is_empty() {
            let terms = crate::host::children_terms(manifest);
            let mut tree = self.inner.tree.lock().expect("tree lock");
            tree.supervise_under(id, &terms);
        }
        if let Some((parent, terms)) = options.parent {
            self.inner.tree.lock().expect("tree lock").link(
                parent,
                id,
                manifest.name.clone(),
                terms,
            );
            // In a cluster a child is found, and failed over, where its
            // parent is.
            if let Some(cluster) = &self.inner.cluster
                && let Err(e) = cluster
                    .claim_child(&id.to_string(), &parent.to_string())
                    .await
            {
                let _ = spawned.start().stop().await;
                return Err(SpawnError::Cluster(e.to_string()));
            }
        }
        self.inner.metrics.spawned();
        tracing::info!(actor = %id, name = %manifest.name, "actor started");
        Ok(spawned.start())
    }

    /// Whether actor HTTP servers may bind the address they ask for
    /// ([`RuntimeConfig::public_http`]).
    pub fn public_http(&self) -> bool {
        self.inner.public_http
    }

    /// The cluster this runtime's node belongs to, if it is in one.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.as_ref()
    }

    /// The runtime's metrics (disabled unless its config asked for them).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Where this runtime's spans go, if anywhere.
    pub fn traces(&self) -> Option<&Traces> {
        self.inner.traces.as_ref()
    }

    /// The data directory, `None` for a runtime that keeps nothing on disk.
    pub fn home(&self) -> Option<&Path> {
        self.inner.home.as_deref()
    }

    pub fn downgrade(&self) -> WeakRuntime {
        let weak: Weak<dyn RuntimeServices> = Arc::downgrade(&self.inner) as Weak<Inner>;
        WeakRuntime::new(weak)
    }

    /// The runtime as its actors and their capabilities see it.
    pub fn services(&self) -> &dyn RuntimeServices {
        &*self.inner
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

    /// What a running actor's manifest grants it.
    pub(crate) fn grants(&self, id: ActorId) -> Result<Arc<Grants>, ActorError> {
        self.inner
            .actors
            .read()
            .expect("registry lock")
            .get(&id)
            .map(|entry| entry.grants.clone())
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
    /// parents), each after the calls already queued for it. A child that
    /// runs on another node of the cluster is stopped there.
    pub async fn stop(&self, id: ActorId) -> Result<(), ActorError> {
        let handle = match (self.actor(id), self.parent(id)) {
            (Ok(handle), _) => handle,
            (Err(_), Some(parent)) => {
                return self.child_op(parent, id, ChildOp::Stop).await.map(drop);
            }
            (Err(e), None) => return Err(e),
        };
        for child in self.children(id) {
            // A child may stop on its own meanwhile; that is fine.
            let _ = Box::pin(self.stop(child)).await;
        }
        handle.stop().await
    }

    /// Stops an actor that will run on another node: its parent, if it
    /// runs here, keeps it as a child there and hears of no exit; its
    /// children go on running where they are, its children still.
    pub async fn move_out(&self, id: ActorId) -> Result<(), ActorError> {
        let handle = self.actor(id)?;
        self.inner.moving.lock().expect("moving lock").insert(id);
        let stopped = handle.stop().await;
        if stopped.is_err() {
            self.inner.moving.lock().expect("moving lock").remove(&id);
        }
        stopped
    }

    /// Cleans up after an actor whose task ended: it leaves the registry and
    /// the tree, its channels close on the other side, and its parent hears
    /// of the exit.
    pub(crate) async fn actor_exited(&self, id: ActorId, ending: Ending) {
        self.inner
            .actors
            .write()
            .expect("registry lock")
            .remove(&id);
        let moving = self.inner.moving.lock().expect("moving lock").remove(&id);
        let shutting_down = self.inner.shutting_down.load(Ordering::Relaxed);
        // An actor that ends takes its subtree with it; one that moves to
        // another node goes on supervising its children from there.
        let orphans = self.children(id);
        if !orphans.is_empty() && !moving {
            let runtime = self.clone();
            tokio::spawn(async move {
                for child in orphans {
                    let _ = runtime.stop(child).await;
                }
            });
        }
        // Before a stop is answered, so a restarted runtime will not resume
        // the actor; not while the runtime shuts down, so that it will,
        // unless the actor chose to end.
        let (by_itself, data) = match ending {
            Ending::Stopped => (false, None),
            Ending::ByItself(data) => (true, data),
        };
        let ended = (by_itself || !shutting_down) && !moving;
        if (by_itself || !shutting_down)
            && let Err(e) = self.inner.log.set_running(&id, false).await
        {
            tracing::error!(actor = %id, "cannot mark the actor stopped: {e}");
        }
        // What it was sent and did not run never will (an actor that moves
        // runs it on its new node).
        if let Some(cluster) = &self.inner.cluster
            && ended
            && let Err(e) = cluster.inboxes().drop_before(&id.to_string(), None).await
        {
            tracing::warn!(actor = %id, "cannot empty the actor's inbox in the cluster: {e}");
        }
        let parent = self.parent(id);
        let parent_here = parent.is_some_and(|parent| self.actor(parent).is_ok());
        if moving {
            // Its links to the actors that run here stay: the child of a
            // parent here, the parent of children here. The node it goes
            // to links the others.
            let children = self.children(id).into_iter();
            let elsewhere: Vec<ActorId> = children.filter(|c| self.actor(*c).is_err()).collect();
            let mut tree = self.inner.tree.lock().expect("tree lock");
            for actor in elsewhere.into_iter().chain((!parent_here).then_some(id)) {
                tree.unlink_from_parent(actor);
            }
        } else {
            self.inner.tree.lock().expect("tree lock").unlink(id);
        }
        // A child that ends leaves the cluster's placement with its log
        // record (a top-level actor's node is given up by who stops it).
        if let (Some(cluster), Some(_)) = (&self.inner.cluster, parent)
            && !moving
            && !shutting_down
            && let Err(e) = cluster.release(&id.to_string()).await
        {
            tracing::warn!(actor = %id, "the cluster still names this node as the child's owner: {e}");
        }
        let mut exit = Exit {
            actor: id,
            parent: parent.filter(|_| !moving),
            data,
        };
        // A parent on another node hears of it there.
        if exit.parent.is_some() && !parent_here && self.inner.cluster.is_some() {
            if !shutting_down {
                self.tell_parent_exited(&exit);
            }
            exit.parent = None;
        }
        self.inner.handlers.actor_ended(self.services(), &exit);
        self.inner.metrics.stopped();
        tracing::info!(actor = %id, "actor stopped");
    }

    /// Every chain event of every actor from now on, as it becomes durable.
    pub fn subscribe(&self) -> broadcast::Receiver<ActorEvent> {
        self.inner.events.subscribe()
    }

    /// Every actor the log has a record of, running or not, oldest first.
    pub fn saved_actors(&self) -> Result<Vec<SavedActor>, LogError> {
        self.inner.log.saved_actors()
    }

    /// Reads an actor's chain back from the log and checks every hash,
    /// link and kept state; the error names the first bad event. Runs on a
    /// blocking thread (see [`read_log`](Self::read_log)).
    pub async fn verify(&self, id: ActorId) -> Result<(), VerifyFailure> {
        self.read_log(move |log| log.verify(&id)).await
    }

    /// The chain of an actor, running or not, oldest first, read on the
    /// calling thread; async code reads with [`chain_from`](Self::chain_from).
    pub fn chain(&self, id: ActorId) -> Result<Vec<ChainEvent>, LogError> {
        self.inner.log.events(&id)
    }

    /// Up to `limit` events of an actor's chain from index `start` on, and
    /// how many events the chain has, read on a blocking thread.
    pub async fn chain_page(
        &self,
        id: ActorId,
        start: u64,
        limit: usize,
    ) -> Result<(Vec<ChainEvent>, u64), LogError> {
        self.read_log(move |log| log.events_page(&id, start, limit))
            .await
    }

    /// The events of an actor's chain from index `start` on, read on a
    /// blocking thread.
    pub async fn chain_from(&self, id: ActorId, start: u64) -> Result<Vec<ChainEvent>, LogError> {
        self.read_log(move |log| log.events_from(&id, start)).await
    }

    /// How many events an actor's chain has and the newest one's hash.
    pub async fn chain_head(&self, id: ActorId) -> Result<Option<(u64, Hash)>, LogError> {
        self.read_log(move |log| log.chain_head(&id)).await
    }

    /// The ids of every actor the log has a record of, without their states.
    pub async fn saved_ids(&self) -> Result<Vec<ActorId>, LogError> {
        self.read_log(|log| log.saved_ids()).await
    }

    /// Runs `read` against the log on tokio's blocking threads: reading and
    /// checking a long history takes a while, and the runtime's own threads
    /// must keep running the other actors meanwhile.
    pub(crate) async fn read_log<T: Send + 'static>(
        &self,
        read: impl FnOnce(&dyn EventLog) -> T + Send + 'static,
    ) -> T {
        let log = self.inner.log.clone();
        match tokio::task::spawn_blocking(move || read(&*log)).await {
            Ok(value) => value,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
}
