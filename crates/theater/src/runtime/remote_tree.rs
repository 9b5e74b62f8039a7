//! Supervision across the nodes of a cluster: a parent on one node, its
//! child on another (say, the child migrated). Both nodes' trees keep the
//! link. The parent's node decides for the child as it would for one of
//! its own: the child's node asks it when the child fails or asks to end,
//! and tells it when the child ended. The parent's operations on the child
//! (stop, restart, state, its siblings' restarts) go to the child's node.
//!
//! Notes go over core NATS request and reply on
//! `theater.node.<name>.supervision`; each node checks that a note names a
//! link its own tree holds before it acts on it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::{Inner, TheaterRuntime};
use crate::actor::{ChildEvent, ChildLink, ChildOp, Decision, Exit};
use crate::cluster::{Answer, Cluster, Orphan};
use crate::error::ActorError;
use crate::id::ActorId;
use crate::storage::ActorRecord;
use crate::wasm::{Bytes, StateBytes};

/// How long a node waits for another's answer to a note: a decision is
/// quick, a stop waits for the child's queued calls.
const NOTE_WAIT: Duration = Duration::from_secs(30);

/// Notes from other nodes handled at once; beyond, they are refused.
const AT_ONCE: usize = 256;

/// What one node tells another about a parent and child that run apart.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Note {
    /// To the child's node: its parent does `op` to it.
    Child {
        parent: ActorId,
        child: ActorId,
        op: ChildOp,
    },
    /// To the parent's node: the child failed with `failed`, or asked to
    /// end (`None`). Answered with the parent's decision.
    Event {
        parent: ActorId,
        child: ActorId,
        failed: Option<String>,
    },
    /// To the parent's node: the child ended, handing it `data`.
    Exited {
        parent: ActorId,
        child: ActorId,
        data: Option<Bytes>,
    },
}

/// A node's answer to a [`Note`].
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Reply {
    Done,
    State(Option<Bytes>),
    /// Restart after the delay; `None`: stop.
    Decision(Option<Duration>),
    Refused(String),
}

impl TheaterRuntime {
    /// Does `op` to `child`, a child of `parent` that runs here or, in a
    /// cluster, on another node.
    pub(super) async fn child_op(
        &self,
        parent: ActorId,
        child: ActorId,
        op: ChildOp,
    ) -> Result<StateBytes, ActorError> {
        if self.parent(child) != Some(parent) {
            return Err(ActorError::UnknownActor(child));
        }
        match (self.actor(child), &self.inner.cluster) {
            (Ok(_), _) => self.child_op_here(child, op).await,
            (Err(_), Some(cluster)) => {
                let note = Note::Child { parent, child, op };
                match self.tell_owner(cluster, child, &note).await? {
                    Reply::Done => Ok(None),
                    Reply::State(state) => Ok(state.map(Vec::from)),
                    _ => Err(ActorError::Remote {
                        node: cluster.node().to_owned(),
                        message: format!("the answer for {child} does not fit its operation"),
                    }),
                }
            }
            (Err(e), None) => Err(e),
        }
    }

    async fn child_op_here(&self, child: ActorId, op: ChildOp) -> Result<StateBytes, ActorError> {
        let handle = self.actor(child)?;
        match op {
            ChildOp::Stop => Box::pin(self.stop(child)).await.map(|()| None),
            ChildOp::Restart => handle.restart().await.map(|()| None),
            ChildOp::RestartAfter(delay) => {
                handle.restart_later(delay);
                Ok(None)
            }
            ChildOp::State => handle.state().await,
        }
    }

    /// The decision of `link`'s parent, which runs on another node, on
    /// `event`; `None` if its node cannot be asked.
    pub(super) async fn ask_parents_node(
        &self,
        cluster: &Cluster,
        link: &ChildLink,
        event: &ChildEvent,
    ) -> Option<Decision> {
        let failed = match event {
            ChildEvent::Failed(error) => Some(error.clone()),
            ChildEvent::ShutdownRequested => None,
        };
        let (parent, child) = (link.parent, link.child);
        let note = Note::Event {
            parent,
            child,
            failed,
        };
        match self.tell_owner(cluster, parent, &note).await {
            Ok(Reply::Decision(Some(delay))) => Some(Decision::Restart(delay)),
            Ok(Reply::Decision(None)) => Some(Decision::Stop),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(actor = %child, %parent, "the parent's node did not decide: {e}");
                None
            }
        }
    }

    /// Tells the node that runs `parent` that its child ended, unless it
    /// runs here or nowhere.
    pub(super) fn tell_parent_exited(&self, exit: &Exit) {
        let (Some(parent), Some(cluster)) = (exit.parent, self.inner.cluster.clone()) else {
            return;
        };
        let note = Note::Exited {
            parent,
            child: exit.actor,
            data: exit.data.clone().map(Bytes),
        };
        let runtime = self.clone();
        tokio::spawn(async move {
            // Not found: the parent stopped too (it may be what stopped
            // the child).
            match runtime.tell_owner(&cluster, parent, &note).await {
                Ok(_) | Err(ActorError::UnknownActor(_)) => {}
                Err(e) => {
                    tracing::warn!(actor = %parent, "cannot tell the parent its child ended: {e}")
                }
            }
        });
    }

    /// Sends `note` to the node that owns `actor` and reads its reply.
    async fn tell_owner(
        &self,
        cluster: &Cluster,
        actor: ActorId,
        note: &Note,
    ) -> Result<Reply, ActorError> {
        let failed = |message: String| ActorError::Remote {
            node: cluster.node().to_owned(),
            message,
        };
        let owner = cluster
            .owner(&actor.to_string())
            .await
            .map_err(|e| failed(e.to_string()))?
            .filter(|owner| owner.node != cluster.node())
            .ok_or(ActorError::UnknownActor(actor))?;
        let bytes = serde_json::to_vec(note).expect("notes serialize");
        let answer = cluster
            .supervise(&owner.node, bytes.into(), NOTE_WAIT)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let reply = serde_json::from_slice(&answer).map_err(|e| ActorError::Remote {
            node: owner.node.clone(),
            message: format!("an unreadable answer: {e}"),
        })?;
        match reply {
            Reply::Refused(message) => Err(ActorError::Remote {
                node: owner.node,
                message,
            }),
            reply => Ok(reply),
        }
    }

    /// Acts on a note another node sent.
    async fn on_note(&self, note: Note) -> Result<Reply, ActorError> {
        let linked = |parent: ActorId, child: ActorId| match self.parent(child) == Some(parent) {
            true => Ok(()),
            false => Err(ActorError::BadActorId(format!(
                "{child} is not a child of {parent} on this node"
            ))),
        };
        match note {
            Note::Child { parent, child, op } => {
                linked(parent, child)?;
                let state = self.child_op_here(child, op).await?;
                Ok(match op {
                    ChildOp::State => Reply::State(state.map(Bytes)),
                    _ => Reply::Done,
                })
            }
            Note::Event {
                parent,
                child,
                failed,
            } => {
                linked(parent, child)?;
                self.actor(parent)?;
                let event = match failed {
                    Some(error) => ChildEvent::Failed(error),
                    None => ChildEvent::ShutdownRequested,
                };
                let link = self.inner.tree.lock().expect("tree lock").link_of(child);
                Ok(Reply::Decision(match self.decide_here(link, event) {
                    Decision::Restart(delay) => Some(delay),
                    Decision::Stop => None,
                }))
            }
            Note::Exited {
                parent,
                child,
                data,
            } => {
                linked(parent, child)?;
                self.inner.tree.lock().expect("tree lock").unlink(child);
                let exit = Exit {
                    actor: child,
                    parent: Some(parent),
                    data: data.map(Vec::from),
                };
                self.inner.handlers.actor_ended(self.services(), &exit);
                Ok(Reply::Done)
            }
        }
    }

    /// Links the children of this node's actors that run on other nodes
    /// and that its tree does not know of yet: their parent came here by
    /// failover, or this node started again. `owned` is the cluster's
    /// placement, as read.
    pub async fn link_remote_children(&self, owned: &[Orphan]) {
        let Some(cluster) = &self.inner.cluster else {
            return;
        };
        for entry in owned.iter().filter(|e| e.owner.node != cluster.node()) {
            let parent = entry.owner.parent.as_deref().and_then(|p| p.parse().ok());
            let (Some(parent), Ok(child)) = (parent, entry.actor.parse::<ActorId>()) else {
                continue;
            };
            if self.parent(child) == Some(parent) {
                continue;
            }
            let Ok(manifest) = self.manifest(parent) else {
                continue;
            };
            // Its record names it; a child that ended meanwhile has none.
            let record = cluster.records().get(&entry.actor).await;
            let Some(record) = record
                .ok()
                .flatten()
                .and_then(|bytes| serde_json::from_slice::<ActorRecord>(&bytes).ok())
            else {
                continue;
            };
            let terms = crate::host::children_terms(&manifest);
            let mut tree = self.inner.tree.lock().expect("tree lock");
            tree.link(parent, child, record.manifest.name, terms);
        }
    }
}

/// Answers other nodes' notes to this node, for as long as it runs.
pub(super) async fn answer(cluster: Cluster, runtime: Weak<Inner>) {
    let mut notes = match cluster.supervision().await {
        Ok(notes) => notes,
        Err(e) => {
            tracing::error!("parents and children on other nodes cannot reach this node: {e}");
            return;
        }
    };
    let at_once = Arc::new(Semaphore::new(AT_ONCE));
    while let Some((bytes, reply)) = notes.next().await {
        let Some(inner) = runtime.upgrade() else {
            return;
        };
        let runtime = TheaterRuntime { inner };
        let Ok(permit) = at_once.clone().try_acquire_owned() else {
            let busy = Reply::Refused(format!(
                "node `{}` is busy with {AT_ONCE} notes from other nodes; retry later",
                cluster.node()
            ));
            reply.answer(Answer::Done(encode(&busy))).await;
            continue;
        };
        tokio::spawn(async move {
            let answer = match serde_json::from_slice(&bytes) {
                Ok(note) => runtime
                    .on_note(note)
                    .await
                    .unwrap_or_else(|e| Reply::Refused(e.to_string())),
                Err(e) => Reply::Refused(format!("an unreadable note: {e}")),
            };
            reply.answer(Answer::Done(encode(&answer))).await;
            drop(permit);
        });
    }
}

fn encode(reply: &Reply) -> bytes::Bytes {
    serde_json::to_vec(reply).expect("replies serialize").into()
}
