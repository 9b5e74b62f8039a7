//! `start`, and what the server knows of actors: `list`, `state`,
//! `events`, `verify`, `inspect` and `tree`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::{Answer, actor_error, answer, bad_request, internal, spawn_error};
use crate::actor::{ActorHandle, now_ms};
use crate::id::ActorId;
use crate::manifest::Manifest;
use crate::runtime::TheaterRuntime;
use crate::server::Started as StartedHere;
use crate::server::connection::Connection;
use crate::server::protocol::{
    ActorBytes, ActorList, ActorState, ChainHead, Counters, Ending, ErrorBody, ErrorKind, Events,
    Inspected, ListedActor, Started, Tree, TreeNode, Verified,
};

impl Connection {
    /// The manifest a `start` names, read here, with its `state` if given.
    pub(super) async fn read_manifest(
        &self,
        manifest_path: Option<String>,
        manifest_text: Option<String>,
        base_dir: Option<String>,
        state: Option<Value>,
    ) -> Result<Manifest, ErrorBody> {
        // Read on a blocking thread: a manifest may name a slow or hostile file.
        let rules = self.shared.runtime.file_rules();
        let mut manifest = match (manifest_path, manifest_text) {
            (Some(path), None) => Manifest::read(path.into(), rules).await,
            (None, Some(text)) => {
                let base = base_dir.as_deref().map_or_else(
                    || std::env::current_dir().unwrap_or_default(),
                    PathBuf::from,
                );
                Manifest::read_text(text, base.join("<inline>"), base, rules).await
            }
            _ => {
                return Err(bad_request(
                    "give the manifest as `manifest_path` or as `manifest` text (with `base_dir`), one of them",
                ));
            }
        }
        .map_err(|e| ErrorBody::new(ErrorKind::SpawnFailed, e.to_string()))?;
        if let Some(state) = state {
            manifest.init_state = Some(serde_json::to_vec(&state).expect("JSON values serialize"));
        }
        Ok(manifest)
    }

    /// Starts `manifest`'s actor here, owned by this node in a cluster.
    pub(super) async fn start_actor(&self, manifest: Manifest) -> Answer {
        let handle = self
            .shared
            .runtime
            .spawn(&manifest)
            .await
            .map_err(spawn_error)?;
        if let Some(cluster) = &self.shared.config.cluster
            && let Err(e) = cluster.claim(&handle.id().to_string()).await
        {
            // Not owned here, so not run here.
            let _ = self.shared.runtime.stop(handle.id()).await;
            return Err(ErrorBody::new(ErrorKind::SpawnFailed, e.to_string()));
        }
        self.started(handle.id());
        answer(Started {
            actor: handle.id(),
            short: handle.id().short(),
            name: manifest.name,
            warnings: manifest.warnings,
            node: self.node(),
        })
    }

    /// Remembers that this server started `id`, now.
    pub(super) fn started(&self, id: ActorId) {
        let started = StartedHere {
            started_ms: now_ms(),
        };
        self.shared
            .started
            .lock()
            .expect("started lock")
            .insert(id, started);
    }

    /// When this server started `id`, if it did.
    fn started_ms(&self, id: ActorId) -> Option<u64> {
        let started = self.shared.started.lock().expect("started lock");
        started.get(&id).map(|s| s.started_ms)
    }

    /// The running actors, oldest first; with `all`, then every other
    /// actor the log knows, with how it ended.
    pub(super) async fn list(&self, all: bool) -> Answer {
        let mut actors = self.shared.runtime.actors();
        actors.sort_by_cached_key(|h| (self.started_ms(h.id()).unwrap_or(0), h.id()));
        let mut listed: Vec<ListedActor> = actors
            .iter()
            .map(|h| {
                let counters = counters(h);
                ListedActor {
                    id: h.id(),
                    short: h.id().short(),
                    name: h.name().to_owned(),
                    ending: ending_of(h),
                    queue_depth: Some(h.queue_depth()),
                    calls_ok: Some(counters.calls_ok),
                    calls_failed: Some(counters.calls_failed),
                    node: self.node(),
                }
            })
            .collect();
        if all {
            let running: Vec<ActorId> = actors.iter().map(ActorHandle::id).collect();
            let stopped = self
                .saved_actors()
                .await?
                .into_iter()
                .filter(|saved| !running.contains(&saved.id));
            for saved in stopped {
                listed.push(ListedActor {
                    id: saved.id,
                    short: saved.id.short(),
                    name: saved.record.manifest.name,
                    ending: self.ending(saved.id).await?,
                    queue_depth: None,
                    calls_ok: None,
                    calls_failed: None,
                    node: None,
                });
            }
        }
        let (elsewhere, unanswered) = self.list_elsewhere(all).await;
        listed.extend(elsewhere);
        answer(ActorList {
            actors: listed,
            unanswered,
        })
    }

    /// How an actor that is not running ended, read from its chain.
    async fn ending(&self, id: ActorId) -> Result<Ending, ErrorBody> {
        let status = self.shared.runtime.status(id).await;
        status
            .map(Ending::from)
            .map_err(|e| internal("the chain", e))
    }

    /// The state of a running actor, or the newest stored state of one
    /// that is not.
    pub(super) async fn state(&self, actor: &str) -> Answer {
        let (id, state) = match self.running(actor) {
            Ok(handle) => (handle.id(), handle.state().await.map_err(actor_error)?),
            Err(e) if e.kind == ErrorKind::UnknownActor => {
                let saved = self.saved(actor).await?;
                (saved.id, saved.latest.and_then(|latest| latest.state))
            }
            Err(e) => return Err(e),
        };
        answer(ActorState {
            actor: id,
            state: ActorBytes::new(state),
        })
    }

    /// The actor's chain; with `limit`, only the last `limit` events.
    pub(super) async fn events(&self, actor: &str, limit: Option<usize>) -> Answer {
        let id = self.any_actor(actor).await?;
        // Only the events asked for are read, off the runtime's threads.
        let total = self.chain_head(id).await?.events;
        let start = limit.map_or(0, |limit| total.saturating_sub(limit as u64));
        let events = self.chain_from(id, start).await?;
        answer(Events {
            actor: id,
            total: start + events.len() as u64,
            start,
            events,
        })
    }

    pub(super) async fn verify(&self, actor: &str) -> Answer {
        let id = self.any_actor(actor).await?;
        let ChainHead { events, head } = self.chain_head(id).await?;
        // Read back from where the log keeps it, states included.
        let mut failure = self.shared.runtime.verify(id).await.err();
        let replicated = self.verify_replicated(id).await;
        let replicated_events = match replicated {
            Some(Ok(events)) => Some(events),
            Some(Err(bad)) => {
                failure = failure.or(Some(bad));
                None
            }
            None => None,
        };
        answer(Verified {
            actor: id,
            events,
            head,
            replicated_events,
            verified: failure.is_none(),
            first_bad_event: failure.as_ref().and_then(|f| f.first_bad_event),
            error: failure.map(|f| f.message),
        })
    }

    pub(super) async fn inspect(&self, actor: &str) -> Answer {
        let handle = match self.running(actor) {
            Ok(handle) => handle,
            Err(e) if e.kind == ErrorKind::UnknownActor => {
                return self.inspect_stopped(actor).await;
            }
            Err(e) => return Err(e),
        };
        let id = handle.id();
        let runtime = &self.shared.runtime;
        answer(Inspected {
            id,
            short: id.short(),
            name: handle.name().to_owned(),
            ending: ending_of(&handle),
            manifest: runtime
                .manifest(id)
                .ok()
                .map(|m| m.source.display().to_string()),
            started_ms: self.started_ms(id),
            limits: *handle.limits(),
            queue_depth: Some(handle.queue_depth()),
            counters: Some(counters(&handle)),
            chain: self.chain_head(id).await?,
        })
    }

    /// `inspect` of an actor that is not running, from its stored record.
    async fn inspect_stopped(&self, actor: &str) -> Answer {
        let saved = self.saved(actor).await?;
        let manifest = &saved.record.manifest;
        answer(Inspected {
            id: saved.id,
            short: saved.id.short(),
            name: manifest.name.clone(),
            ending: self.ending(saved.id).await?,
            manifest: Some(manifest.source.display().to_string()),
            started_ms: Some(saved.record.started_ms),
            limits: manifest.limits,
            queue_depth: None,
            counters: None,
            chain: self.chain_head(saved.id).await?,
        })
    }

    /// The running actors as supervision trees, roots sorted by name.
    pub(super) fn tree(&self) -> Answer {
        let runtime = &self.shared.runtime;
        let mut roots: Vec<TreeNode> = runtime
            .actor_ids()
            .into_iter()
            .filter(|id| runtime.parent(*id).is_none())
            .map(|id| tree_node(runtime, id))
            .collect();
        roots.sort_by(|a, b| a.name.cmp(&b.name));
        answer(Tree { roots })
    }
}

/// A running actor's counters, read now.
fn counters(handle: &ActorHandle) -> Counters {
    let counters = handle.counters();
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    Counters {
        calls_ok: load(&counters.calls_ok),
        calls_failed: load(&counters.calls_failed),
        queue_full: load(&counters.queue_full),
    }
}

/// Whether a handle's actor still runs; the server found it running.
fn ending_of(handle: &ActorHandle) -> Ending {
    if handle.is_running() {
        Ending::RUNNING
    } else {
        Ending::STOPPED
    }
}

/// An actor and, below it, the children it supervises.
fn tree_node(runtime: &TheaterRuntime, id: ActorId) -> TreeNode {
    let name = runtime
        .actor(id)
        .map(|h| h.name().to_owned())
        .unwrap_or_default();
    let children = runtime
        .children(id)
        .into_iter()
        .map(|c| tree_node(runtime, c))
        .collect();
    TreeNode {
        id,
        short: id.short(),
        name,
        children,
    }
}
