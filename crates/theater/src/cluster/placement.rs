//! Who owns which actor: the `theater-placement` bucket, changed only by
//! compare-and-set.

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};

use super::{ClusterError, streams};

/// Most ownership records one scan for orphans reads.
pub const MAX_LISTED_ACTORS: usize = 100_000;

/// An actor and its owner, as read at `revision`.
#[derive(Debug, Clone)]
pub struct Orphan {
    pub actor: String,
    pub owner: Owner,
    pub revision: u64,
}

/// The node that owns an actor, and which process of that name claimed it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Owner {
    pub node: String,
    pub instance: String,
    /// For a child, its parent: it goes where its parent goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// Records `owner` for `actor` unless another node owns it: a node that
/// already owns it (say, resuming it after a restart) keeps it.
pub(super) async fn claim(
    placement: &kv::Store,
    actor: &str,
    owner: &Owner,
) -> Result<(), ClusterError> {
    let value = serde_json::to_vec(owner).expect("an owner serializes");
    match placement.create(actor, value.into()).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
            let node = self::owner(placement, actor)
                .await?
                .map_or_else(|| "another node".to_owned(), |o| o.node);
            if node == owner.node {
                return Ok(());
            }
            Err(ClusterError::Owned {
                actor: actor.to_owned(),
                node,
            })
        }
        Err(e) => Err(ClusterError::jetstream("claiming an actor", e)),
    }
}

/// Removes `node`'s ownership of `actor`, at the revision it was read, so
/// that a claim made meanwhile by another node stays.
pub(super) async fn release(
    placement: &kv::Store,
    actor: &str,
    node: &str,
) -> Result<(), ClusterError> {
    let failed = |e: &dyn std::fmt::Display| ClusterError::jetstream("releasing an actor", e);
    let Some(entry) = placement.entry(actor).await.map_err(|e| failed(&e))? else {
        return Ok(());
    };
    let owned = entry.operation == kv::Operation::Put
        && serde_json::from_slice::<Owner>(&entry.value).is_ok_and(|o| o.node == node);
    if owned {
        placement
            .purge_expect_revision(actor, Some(entry.revision))
            .await
            .map_err(|e| failed(&e))?;
    }
    Ok(())
}

/// The owner of `actor`, if a node owns it.
pub(super) async fn owner(
    placement: &kv::Store,
    actor: &str,
) -> Result<Option<Owner>, ClusterError> {
    let entry = placement
        .entry(actor)
        .await
        .map_err(|e| ClusterError::jetstream("reading an actor's owner", e))?;
    Ok(entry
        .filter(|e| e.operation == kv::Operation::Put)
        .and_then(|e| serde_json::from_slice(&e.value).ok()))
}

/// Every actor with an owner (at most [`MAX_LISTED_ACTORS`]).
pub(super) async fn list(placement: &kv::Store) -> Result<Vec<Orphan>, ClusterError> {
    let what = "listing actor owners";
    let entries = streams::latest_entries(placement, MAX_LISTED_ACTORS, what).await?;
    let owned = entries
        .into_iter()
        .filter(|entry| entry.operation == kv::Operation::Put)
        .filter_map(|entry| {
            let owner = serde_json::from_slice(&entry.value).ok()?;
            Some(Orphan {
                actor: entry.key,
                owner,
                revision: entry.revision,
            })
        })
        .collect();
    Ok(owned)
}

/// Replaces `orphan`'s owner with `owner` if the record is still at the
/// revision read; `false` if another node changed it first.
pub(super) async fn take_over(
    placement: &kv::Store,
    orphan: &Orphan,
    owner: &Owner,
) -> Result<bool, ClusterError> {
    let value = serde_json::to_vec(owner).expect("an owner serializes");
    match placement
        .update(&orphan.actor, value.into(), orphan.revision)
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
        Err(e) => Err(ClusterError::jetstream("taking an actor over", e)),
    }
}

/// Makes `owner` the owner of `actor`, which `node` owns, at the revision
/// read; `false` if another node owns it or its record changed first.
pub(super) async fn hand_over(
    placement: &kv::Store,
    actor: &str,
    node: &str,
    owner: &Owner,
) -> Result<bool, ClusterError> {
    let failed = |e: &dyn std::fmt::Display| ClusterError::jetstream("handing an actor over", e);
    let Some(entry) = placement.entry(actor).await.map_err(|e| failed(&e))? else {
        return Ok(false);
    };
    let current = (entry.operation == kv::Operation::Put)
        .then(|| serde_json::from_slice::<Owner>(&entry.value).ok())
        .flatten()
        .filter(|current| current.node == node);
    let Some(current) = current else {
        return Ok(false);
    };
    let owner = Owner {
        parent: current.parent,
        ..owner.clone()
    };
    let value = serde_json::to_vec(&owner).expect("an owner serializes");
    match placement.update(actor, value.into(), entry.revision).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
        Err(e) => Err(failed(&e)),
    }
}
