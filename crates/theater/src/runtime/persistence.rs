//! What outlives the process: resuming the actors a log marks as running,
//! shutting down so that they stay marked, and going back to the state of
//! an earlier event (fork, revert).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::future::join_all;

use super::{SpawnOptions, TheaterRuntime};
use crate::actor::ActorHandle;
use crate::actor::Terms;
use crate::chain::record::Origin;
use crate::chain::{ChainEvent, Hash};
use crate::error::{ActorError, SpawnError};
use crate::host::EPHEMERAL_PORTS;
use crate::id::ActorId;
use crate::manifest::{HandlerEntry, Manifest};
use crate::replay::{self, ReplayReport, ReplayStart};
use crate::storage::{Accepted, ActorRecord, LogError, SavedActor};
use crate::wasm::StateBytes;

/// A parent and the terms it supervises its children under.
type Supervisor = (ActorId, Terms);

/// What an actor's inbox holds: accepted messages with their numbers.
type Inbox = Vec<(u64, Accepted)>;

/// What [`TheaterRuntime::resume`] did.
#[derive(Debug, Default)]
pub struct ResumeReport {
    /// Actors running again, parents before their children.
    pub resumed: Vec<ActorId>,
    /// Actors that could not be resumed, with why; they stay marked as
    /// running, so a later resume tries again.
    pub failed: Vec<(ActorId, String)>,
    /// Messages the resumed actors had accepted and not run, queued again.
    pub redelivered: usize,
}

impl TheaterRuntime {
    /// Starts again every actor the log marks as running, as
    /// [`resume`](Self::resume) does.
    pub async fn resume_all(&self) -> Result<ResumeReport, LogError> {
        self.resume(|_| true).await
    }

    /// Starts again the running actors of the log that have no parent and
    /// match `roots`, each with its subtree: same ids, the newest state of
    /// each chain, and each chain going on from its head with an
    /// `actor-resume` event (`actor.init` runs on that state, as for the
    /// supervisor's `resume`). Parents start before their children, which
    /// are linked to them again under their parent's policy.
    pub async fn resume(
        &self,
        roots: impl Fn(&SavedActor) -> bool,
    ) -> Result<ResumeReport, LogError> {
        let (saved, stopped): (Vec<SavedActor>, Vec<SavedActor>) = self
            .read_log(|log| log.saved_actors())
            .await?
            .into_iter()
            .partition(|actor| actor.record.running);
        self.drop_stale_inboxes(&stopped).await?;
        // Read before any actor runs: what is accepted from now on is
        // queued as it is accepted, and must not be queued twice.
        let ids = saved.iter().map(|actor| actor.id).collect();
        let mut inboxes: HashMap<ActorId, Inbox> = self.inboxes(ids).await?.into_iter().collect();
        let mut children: HashMap<ActorId, Vec<&SavedActor>> = HashMap::new();
        for actor in &saved {
            if let Some(parent) = actor.record.parent {
                children.entry(parent).or_default().push(actor);
            }
        }
        let mut report = ResumeReport::default();
        // One generation at a time, parents before their children; the
        // actors of a generation start together, so their first events
        // share commits.
        let mut generation: Vec<(&SavedActor, Option<Supervisor>)> = saved
            .iter()
            .filter(|actor| actor.record.parent.is_none() && roots(actor))
            .map(|actor| (actor, None))
            .collect();
        while !generation.is_empty() {
            let started = join_all(
                generation
                    .iter()
                    .map(|(actor, parent)| self.resume_one(actor, parent.clone())),
            )
            .await;
            let mut next = Vec::new();
            for ((actor, _), outcome) in generation.into_iter().zip(started) {
                let kids = children.remove(&actor.id).unwrap_or_default();
                match outcome {
                    Ok(()) => {
                        report.resumed.push(actor.id);
                        if let Some(inbox) = inboxes.remove(&actor.id) {
                            report.redelivered += self.redeliver(actor.id, inbox).await;
                        }
                        let policy = crate::host::children_terms(&actor.record.manifest);
                        next.extend(
                            kids.into_iter()
                                .map(|kid| (kid, Some((actor.id, policy.clone())))),
                        );
                    }
                    Err(reason) => {
                        tracing::error!(actor = %actor.id, "cannot resume: {reason}");
                        report.failed.push((actor.id, reason));
                        // The whole subtree stays down with it.
                        let mut orphans: Vec<_> =
                            kids.into_iter().map(|kid| (kid, actor.id)).collect();
                        while let Some((orphan, parent)) = orphans.pop() {
                            let reason = format!("its parent {parent} could not be resumed");
                            report.failed.push((orphan.id, reason));
                            let kids = children.remove(&orphan.id).unwrap_or_default();
                            orphans.extend(kids.into_iter().map(|kid| (kid, orphan.id)));
                        }
                    }
                }
            }
            generation = next;
        }
        Ok(report)
    }

    /// Queues again, oldest first, the messages `id` accepted before the
    /// runtime stopped and did not run: each leaves the inbox with the
    /// event of its call. Returns how many.
    async fn redeliver(&self, id: ActorId, inbox: Inbox) -> usize {
        let Ok(handle) = self.actor(id) else {
            return 0;
        };
        let count = inbox.len();
        for (number, message) in inbox {
            handle.redeliver(number, message).await;
        }
        count
    }

    /// Empties the inboxes of actors that are not running: a message
    /// accepted while such an actor was being stopped can never run.
    async fn drop_stale_inboxes(&self, stopped: &[SavedActor]) -> Result<(), LogError> {
        let ids = stopped.iter().map(|actor| actor.id).collect();
        for (id, _) in self.inboxes(ids).await? {
            self.inner.log.set_running(&id, false).await?;
        }
        Ok(())
    }

    /// The actors of `actors` whose inbox holds messages, with them; read
    /// in one go off the runtime's threads.
    async fn inboxes(&self, actors: Vec<ActorId>) -> Result<Vec<(ActorId, Inbox)>, LogError> {
        self.read_log(move |log| {
            let mut found = Vec::new();
            for id in actors {
                let inbox = log.inbox(&id)?;
                if !inbox.is_empty() {
                    found.push((id, inbox));
                }
            }
            Ok(found)
        })
        .await
    }

    /// Starts `id`, an actor another runtime ran (a cluster node that
    /// died), here: its chain `events` (which must verify) go to this
    /// runtime's log, then it resumes from `state`, the state its newest
    /// transition left, as [`resume`](Self::resume) would, its chain going
    /// on with an `actor-resume` event. The messages its log's inbox keeps
    /// for it run next. A child is linked to its parent again, here or on
    /// another node of the cluster.
    pub async fn adopt(
        &self,
        id: ActorId,
        mut record: ActorRecord,
        events: Vec<ChainEvent>,
        state: StateBytes,
    ) -> Result<ActorHandle, SpawnError> {
        let Some(head) = events.last().map(|event| event.hash) else {
            return Err(SpawnError::Adopt(format!("actor {id} has no chain")));
        };
        // A child is linked to its parent here, under its policy, or on
        // another node of the cluster, whose node decides for it.
        let parent = match record.parent {
            None => None,
            Some(parent) => match (self.manifest(parent), &self.inner.cluster) {
                (Ok(manifest), _) => Some((parent, crate::host::children_terms(&manifest))),
                (Err(_), Some(_)) => Some((parent, Arc::new(()) as Terms)),
                (Err(_), None) => {
                    let why = format!("actor {id}'s parent {parent} does not run here");
                    return Err(SpawnError::Adopt(why));
                }
            },
        };
        // It runs the component it started with, from the cluster's store.
        if let Some(cluster) = &self.inner.cluster
            && let Some(copy) = self.local_component(cluster, &record.component).await?
        {
            record.manifest.component_path = copy;
        }
        self.inner.log.import_chain(&id, events).await?;
        record.running = true;
        self.inner.log.save_actor(&id, &record).await?;
        // Read before it runs, as a resume reads it: what is accepted from
        // then on is queued as it is accepted.
        let inbox = self.read_log(move |log| log.inbox(&id)).await?;
        let options = SpawnOptions {
            parent,
            by_parent: None,
            state: Some(state),
            resume: Some((id, head)),
            forked_from: None,
        };
        let handle = self.spawn_with(&record.manifest, options).await?;
        self.redeliver(id, inbox).await;
        Ok(handle)
    }

    async fn resume_one(
        &self,
        actor: &SavedActor,
        parent: Option<Supervisor>,
    ) -> Result<(), String> {
        let (Some(head), Some(latest)) = (actor.head, &actor.latest) else {
            return Err("its chain holds no state to resume from".to_owned());
        };
        // A child comes back as it was admitted when its parent spawned it.
        let options = SpawnOptions {
            parent,
            by_parent: None,
            state: Some(latest.state.clone()),
            resume: Some((actor.id, head)),
            forked_from: None,
        };
        self.spawn_with(&actor.record.manifest, options)
            .await
            .map(|_| tracing::info!(actor = %actor.id, "actor resumed"))
            .map_err(|e| e.to_string())
    }

    /// Stops every actor, subtrees first, leaving them marked as running in
    /// the log, so that a runtime started later on the same home resumes
    /// them. For a process that is about to exit.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Relaxed);
        let roots: Vec<ActorId> = self
            .actor_ids()
            .into_iter()
            .filter(|id| self.parent(*id).is_none())
            .collect();
        for id in roots {
            if let Err(e) = self.stop(id).await {
                tracing::debug!(actor = %id, "stopping at shutdown: {e}");
            }
        }
    }
}

/// The handler type whose servers a fork may move to free ports.
const HTTP_FRAMEWORK: &str = "http-framework";

/// How a fork starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForkOptions {
    /// Every HTTP server of the fork listens on a free port, whatever port
    /// its state asks for (the `http-framework` setting `ephemeral_ports`):
    /// the original may still hold the ports its state names.
    pub ephemeral_ports: bool,
}

/// How [`TheaterRuntime::reload`] started an actor again.
#[derive(Debug)]
pub struct Reloaded {
    pub actor: ActorHandle,
    /// Why the state it had could not be kept, if it could not: its new
    /// `init` refused it, so it started from the manifest's `init_state`.
    pub state_reset: Option<String>,
}

impl TheaterRuntime {
    /// Stops `actor`, if it runs, and starts it again from `manifest` (the
    /// component as it is now on disk) under the same id, its chain going
    /// on with an `actor-resume` event, with the state it had; if the new
    /// `init` refuses that state, with the manifest's `init_state`. For
    /// rebuilding an actor during development; its children stop with it.
    pub async fn reload(
        &self,
        actor: ActorId,
        manifest: &Manifest,
    ) -> Result<Reloaded, HistoryError> {
        let state = match self.actor(actor) {
            Ok(handle) => {
                let state = handle.state().await?;
                self.stop(actor).await?;
                state
            }
            Err(_) => match self.saved_actor(actor).await?.latest {
                Some(latest) => latest.state,
                None => manifest.init_state.clone(),
            },
        };
        let again = |state: StateBytes| -> Result<SpawnOptions, HistoryError> {
            let head = self.chain(actor)?.last().map(|event| event.hash);
            Ok(SpawnOptions {
                resume: head.map(|head| (actor, head)),
                state: Some(state),
                ..SpawnOptions::default()
            })
        };
        match self.spawn_with(manifest, again(state)?).await {
            Ok(handle) => Ok(Reloaded {
                actor: handle,
                state_reset: None,
            }),
            Err(SpawnError::Init(reason)) => {
                let options = again(manifest.init_state.clone())?;
                let handle = self.spawn_with(manifest, options).await?;
                Ok(Reloaded {
                    actor: handle,
                    state_reset: Some(reason),
                })
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Why a replay, fork, revert or reload could not be done.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("no actor {0} is known to this runtime's log")]
    UnknownActor(ActorId),
    #[error("event {event} is not in the chain of actor {actor}")]
    UnknownEvent { actor: ActorId, event: String },
    #[error("the state at event {index} of actor {actor} cannot be rebuilt: {reason}")]
    NoState {
        actor: ActorId,
        index: usize,
        reason: String,
    },
    #[error(
        "the fork of actor {actor} did not start: its `init` ran again on the state it was forked from and failed: {reason}{hint}"
    )]
    ForkStart {
        actor: ActorId,
        reason: String,
        hint: &'static str,
    },
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error(transparent)]
    Actor(#[from] ActorError),
}

impl TheaterRuntime {
    /// Starts a new actor from the state `actor` had at event `at`, from the
    /// same manifest; its first event names that actor and event.
    pub async fn fork(&self, actor: ActorId, at: Hash) -> Result<ActorHandle, HistoryError> {
        self.fork_with(actor, at, ForkOptions::default()).await
    }

    /// [`fork`](Self::fork) with `options`. The fork runs `init` again on
    /// the state it starts from; an `init` that fails (an HTTP server on a
    /// port the original still holds, say) is a [`HistoryError::ForkStart`]
    /// that says what to do.
    pub async fn fork_with(
        &self,
        actor: ActorId,
        at: Hash,
        options: ForkOptions,
    ) -> Result<ActorHandle, HistoryError> {
        let saved = self.saved_actor(actor).await?;
        let (_, state) = self.state_at(&saved, at).await?;
        let mut manifest = saved.record.manifest.clone();
        let serves_http = |entry: &&mut HandlerEntry| entry.kind == HTTP_FRAMEWORK;
        if options.ephemeral_ports {
            for entry in manifest.handlers.iter_mut().filter(serves_http) {
                entry.config.insert(EPHEMERAL_PORTS.into(), true.into());
            }
        }
        let spawn = SpawnOptions {
            state: Some(state),
            forked_from: Some(Origin {
                actor: actor.to_string(),
                event: hex::encode(at),
            }),
            ..SpawnOptions::default()
        };
        match self.spawn_with(&manifest, spawn).await {
            Ok(handle) => Ok(handle),
            Err(SpawnError::Init(reason)) => Err(HistoryError::ForkStart {
                actor,
                hint: match (
                    options.ephemeral_ports,
                    manifest.handlers.iter().any(|h| h.kind == HTTP_FRAMEWORK),
                ) {
                    (false, true) => {
                        "; if it listens on a port its original still holds (`Address already in use`), fork with ephemeral ports (`theater fork --ephemeral-ports`) or stop the original first"
                    }
                    _ => "",
                },
                reason,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets the running `actor` back to the state it had at event `to`,
    /// recorded as a `revert` event (the chain is never rewritten). Returns
    /// that event's hash.
    pub async fn revert(&self, actor: ActorId, to: Hash) -> Result<Hash, HistoryError> {
        let handle = self.actor(actor)?;
        let saved = self.saved_actor(actor).await?;
        let (index, state) = self.state_at(&saved, to).await?;
        Ok(handle.revert(to, index as u64, state).await?)
    }

    /// Replays `actor`'s whole chain on its component, from the state it
    /// was spawned with, checking that every call, its first `actor.init`
    /// included, leaves the state its chain recorded (see [`crate::replay`]).
    pub async fn replay(&self, actor: ActorId) -> Result<ReplayReport, HistoryError> {
        let saved = self.saved_actor(actor).await?;
        let events = self.chain_from(actor, 0).await?;
        let start = spawned(&saved);
        self.replay_from(&saved, &events, start, None).await
    }

    async fn replay_from(
        &self,
        saved: &SavedActor,
        events: &[ChainEvent],
        start: ReplayStart,
        until: Option<usize>,
    ) -> Result<ReplayReport, HistoryError> {
        let no_state = |reason: String| HistoryError::NoState {
            actor: saved.id,
            index: until.unwrap_or(events.len().saturating_sub(1)),
            reason,
        };
        let compiled = self
            .inner
            .cache
            .load_with(&saved.record.manifest.component_path, &self.file_rules())
            .await
            .map_err(|e| no_state(e.to_string()))?;
        let component = &compiled.component;
        replay::replay(component.engine(), component, events, start, until)
            .await
            .map_err(|e| no_state(e.to_string()))
    }

    async fn saved_actor(&self, actor: ActorId) -> Result<SavedActor, HistoryError> {
        self.read_log(move |log| log.saved_actor(&actor))
            .await?
            .ok_or(HistoryError::UnknownActor(actor))
    }

    /// The state right after event `at`: the newest snapshot at or before
    /// it, brought forward by replaying the calls in between.
    async fn state_at(
        &self,
        saved: &SavedActor,
        at: Hash,
    ) -> Result<(usize, StateBytes), HistoryError> {
        let actor = saved.id;
        let events = self.chain_from(actor, 0).await?;
        let index = events
            .iter()
            .position(|event| event.hash == at)
            .ok_or_else(|| HistoryError::UnknownEvent {
                actor,
                event: hex::encode(at),
            })?;
        let no_state = |reason: String| HistoryError::NoState {
            actor,
            index,
            reason,
        };
        // Every state change is stored with its event, so from the newest
        // one on the state is that one: nothing to replay.
        if let Some(latest) = saved.latest.as_ref().filter(|l| l.index as usize <= index) {
            return Ok((index, latest.state.clone()));
        }
        // Before the first snapshot (the events `init` recorded before the
        // chain's `actor-init`), from the state the actor was spawned with.
        let snapshot = self
            .read_log(move |log| log.snapshot(&actor, index as u64))
            .await?;
        let start = match snapshot {
            Some(snapshot) if snapshot.index as usize == index => {
                return Ok((index, snapshot.state));
            }
            Some(snapshot) => ReplayStart::After {
                index: snapshot.index as usize,
                state: snapshot.state,
            },
            None => spawned(saved),
        };
        let report = self.replay_from(saved, &events, start, Some(index)).await?;
        if let Some(divergence) = report.divergence {
            return Err(no_state(divergence.to_string()));
        }
        if let Some(stop) = report.stopped_at {
            return Err(no_state(stop.to_string()));
        }
        Ok((index, report.state))
    }
}

/// The start of a replay of `saved`'s whole chain: the state its first
/// `actor.init` was given, which its record keeps.
fn spawned(saved: &SavedActor) -> ReplayStart {
    ReplayStart::Spawned {
        state: saved.record.manifest.init_state.clone(),
    }
}
