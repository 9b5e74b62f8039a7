//! Parents and children: who supervises whom, a child admitted within what
//! its parent holds, and the hook that asks the supervising capability what
//! a child's task does next. Which capability supervises, and by what
//! policy, is the capability's business: the tree keeps its terms unread.

use std::collections::HashMap;
use std::time::Duration;

use super::TheaterRuntime;
use crate::actor::{ChildEvent, ChildLink, Decision, Terms};
use crate::error::SpawnError;
use crate::files::{self, FileRules};
use crate::host::Grants;
use crate::id::ActorId;
use crate::manifest::{Limits, Manifest};

struct Link {
    parent: ActorId,
    name: String,
    terms: Terms,
}

/// Who supervises whom.
#[derive(Default)]
pub(super) struct Tree {
    links: HashMap<ActorId, Link>,
    /// Children in the order they were started.
    children: HashMap<ActorId, Vec<ActorId>>,
}

impl Tree {
    /// Links `child` to `parent`, in place of any link it had: a child that
    /// comes back (from another node, say) is linked again.
    pub fn link(&mut self, parent: ActorId, child: ActorId, name: String, terms: Terms) {
        self.unlink_from_parent(child);
        self.links.insert(
            child,
            Link {
                parent,
                name,
                terms,
            },
        );
        self.children.entry(parent).or_default().push(child);
    }

    /// Forgets an actor; returns its parent, if it had one.
    pub fn unlink(&mut self, actor: ActorId) -> Option<ActorId> {
        self.children.remove(&actor);
        self.unlink_from_parent(actor)
    }

    /// Forgets that `actor` has a parent, keeping its own children.
    pub fn unlink_from_parent(&mut self, actor: ActorId) -> Option<ActorId> {
        let link = self.links.remove(&actor)?;
        if let Some(siblings) = self.children.get_mut(&link.parent) {
            siblings.retain(|c| *c != actor);
            if siblings.is_empty() {
                self.children.remove(&link.parent);
            }
        }
        Some(link.parent)
    }

    /// Puts every child of `parent` under `terms`.
    pub fn supervise_under(&mut self, parent: ActorId, terms: &Terms) {
        for child in self.children.get(&parent).into_iter().flatten() {
            if let Some(link) = self.links.get_mut(child) {
                link.terms = terms.clone();
            }
        }
    }

    pub fn children(&self, parent: ActorId) -> Vec<ActorId> {
        self.children.get(&parent).cloned().unwrap_or_default()
    }

    pub fn parent(&self, child: ActorId) -> Option<ActorId> {
        self.links.get(&child).map(|l| l.parent)
    }

    pub fn link_of(&self, child: ActorId) -> Option<ChildLink> {
        let link = self.links.get(&child)?;
        Some(ChildLink {
            child,
            parent: link.parent,
            name: link.name.clone(),
            terms: link.terms.clone(),
        })
    }
}

/// A child let in: its grants, its limits and the rules its component is
/// read under.
pub(super) struct Admitted {
    pub grants: Grants,
    pub limits: Limits,
    pub files: FileRules,
}

impl TheaterRuntime {
    /// Admits a child `parent` asks to spawn, with grants and limits within
    /// the parent's (limits the child's manifest leaves unset are lowered
    /// to the parent's); its component is read under `files`.
    pub(super) async fn admit_child(
        &self,
        parent: ActorId,
        child: &Manifest,
        grants: Grants,
        files: FileRules,
    ) -> Result<Admitted, SpawnError> {
        let parent_manifest = self
            .manifest(parent)
            .map_err(|_| SpawnError::ParentStopped(parent))?;
        let held = self
            .grants(parent)
            .map_err(|_| SpawnError::ParentStopped(parent))?;
        // Handlers may resolve directories: off the runtime's threads.
        let grants = files::off_thread(move || grants.within(&held).map(|()| grants)).await?;
        let set = |key: &str| child.line_of(&format!("limits.{key}")).is_some();
        let limits = child.limits.inherited(&parent_manifest.limits, set);
        limits
            .within(&parent_manifest.limits)
            .map_err(|(key, reason)| SpawnError::BeyondParent {
                manifest: child.source.clone(),
                line: child.line_of(&format!("limits.{key}")).unwrap_or(0),
                what: "`limits`".to_owned(),
                reason,
            })?;
        Ok(Admitted {
            grants,
            limits,
            files,
        })
    }

    /// What a child's task does after `event`: the supervising capability
    /// decides for a linked child, on the node its parent runs on. Actors
    /// without a parent, or whose parent no capability supervises them
    /// for, restart at once after a failure and stop when they ask to.
    pub(super) async fn supervise(&self, child: ActorId, event: ChildEvent) -> Decision {
        let link = self.inner.tree.lock().expect("tree lock").link_of(child);
        if let (Some(link), Some(cluster)) = (&link, &self.inner.cluster)
            && self.actor(link.parent).is_err()
            && let Some(decision) = self.ask_parents_node(cluster, link, &event).await
        {
            return decision;
        }
        self.decide_here(link, event)
    }

    /// [`supervise`](Self::supervise) with the parent here, if any.
    pub(super) fn decide_here(&self, link: Option<ChildLink>, event: ChildEvent) -> Decision {
        let decided = link.and_then(|link| {
            self.inner
                .handlers
                .child_event(self.services(), &link, &event)
        });
        decided.unwrap_or_else(|| {
            let decision = match event {
                ChildEvent::Failed(_) => Decision::Restart(Duration::ZERO),
                ChildEvent::ShutdownRequested => Decision::Stop,
            };
            self.inner.metrics.decision(decision.name());
            decision
        })
    }
}
