//! What outlives the process: resuming the actors a log marks as running,
//! shutting down so that they stay marked, and going back to the state of
//! an earlier event (fork, revert).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::future::join_all;

use super::{SpawnOptions, SupervisionPolicy, TheaterRuntime};
use crate::actor::ActorHandle;
use crate::chain::record::{self, Origin};
use crate::chain::{ChainEvent, Hash, LogError, SavedActor, Snapshot};
use crate::error::{ActorError, SpawnError};
use crate::id::ActorId;
use crate::manifest::Manifest;
use crate::replay::{self, ReplayReport, ReplayStart};
use crate::wasm::StateBytes;

/// A parent and the policy it supervises its children under.
type Supervisor = (ActorId, Arc<SupervisionPolicy>);

/// What [`TheaterRuntime::resume`] did.
#[derive(Debug, Default)]
pub struct ResumeReport {
    /// Actors running again, parents before their children.
    pub resumed: Vec<ActorId>,
    /// Actors that could not be resumed, with why; they stay marked as
    /// running, so a later resume tries again.
    pub failed: Vec<(ActorId, String)>,
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
        let saved: Vec<SavedActor> = self
            .inner
            .log
            .saved_actors()?
            .into_iter()
            .filter(|actor| actor.record.running)
            .collect();
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
                        let policy = Arc::new(policy_of(&actor.record.manifest));
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
            by_parent: false,
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

/// Why a replay, fork or revert could not be done; nothing changed.
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
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error(transparent)]
    Actor(#[from] ActorError),
}

impl TheaterRuntime {
    /// Starts a new actor from the state `actor` had at event `at`, from the
    /// same manifest; its first event names that actor and event.
    pub async fn fork(&self, actor: ActorId, at: Hash) -> Result<ActorHandle, HistoryError> {
        let saved = self.saved_actor(actor)?;
        let (_, state) = self.state_at(&saved, at).await?;
        let options = SpawnOptions {
            state: Some(state),
            forked_from: Some(Origin {
                actor: actor.to_string(),
                event: hex::encode(at),
            }),
            ..SpawnOptions::default()
        };
        Ok(self.spawn_with(&saved.record.manifest, options).await?)
    }

    /// Sets the running `actor` back to the state it had at event `to`,
    /// recorded as a `revert` event (the chain is never rewritten). Returns
    /// that event's hash.
    pub async fn revert(&self, actor: ActorId, to: Hash) -> Result<Hash, HistoryError> {
        let handle = self.actor(actor)?;
        let saved = self.saved_actor(actor)?;
        let (index, state) = self.state_at(&saved, to).await?;
        Ok(handle.revert(to, index as u64, state).await?)
    }

    /// Replays `actor`'s whole chain on its component, from the state its
    /// `actor-init` event left, checking that every call leaves the state
    /// its chain recorded (see [`crate::replay`]).
    pub async fn replay(&self, actor: ActorId) -> Result<ReplayReport, HistoryError> {
        let saved = self.saved_actor(actor)?;
        let events = self.chain(actor)?;
        // What `init` logged comes before its event, which is the first to
        // leave a state.
        let init = events
            .iter()
            .position(|e| e.event_type == record::ACTOR_INIT)
            .unwrap_or(0);
        let first = self
            .inner
            .log
            .snapshot(&actor, init as u64)?
            .ok_or_else(|| HistoryError::NoState {
                actor,
                index: init,
                reason: "the log holds no state of its first event".to_owned(),
            })?;
        self.replay_from(&saved, &events, first, None).await
    }

    async fn replay_from(
        &self,
        saved: &SavedActor,
        events: &[ChainEvent],
        from: Snapshot,
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
        let start = ReplayStart {
            index: from.index as usize,
            state: from.state,
        };
        let component = &compiled.component;
        replay::replay(component.engine(), component, events, start, until)
            .await
            .map_err(|e| no_state(e.to_string()))
    }

    fn saved_actor(&self, actor: ActorId) -> Result<SavedActor, HistoryError> {
        self.saved_actors()?
            .into_iter()
            .find(|saved| saved.id == actor)
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
        let events = self.chain(actor)?;
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
        let snapshot = self
            .inner
            .log
            .snapshot(&actor, index as u64)?
            .ok_or_else(|| no_state("the log holds no state at or before it".to_owned()))?;
        if snapshot.index as usize == index {
            return Ok((index, snapshot.state));
        }
        let report = self
            .replay_from(saved, &events, snapshot, Some(index))
            .await?;
        if let Some(divergence) = report.divergence {
            return Err(no_state(divergence.to_string()));
        }
        if let Some(stop) = report.stopped_at {
            return Err(no_state(stop.to_string()));
        }
        Ok((index, report.state))
    }
}

/// The supervision policy a manifest gives its children.
fn policy_of(manifest: &Manifest) -> SupervisionPolicy {
    manifest
        .handlers
        .iter()
        .find(|entry| entry.kind == "supervisor")
        .and_then(|entry| SupervisionPolicy::from_config(&entry.config).ok())
        .unwrap_or_default()
}
