//! Failover: a cluster node takes on the actors of nodes that are gone.
//!
//! Every heartbeat the node looks for actors whose owner is no longer in
//! the node list. It takes each over by compare-and-set on its ownership
//! record, so that one survivor wins, reads the actor's record and its
//! replicated chain, and starts it here from the state its newest
//! transition left, under the same id, its chain going on.
//!
//! Channels to a node that is gone are closed at their end here.
//!
//! A child goes where its parent goes: the node that took its parent over
//! takes it over next, and its parent supervises it again. A parent's
//! children that run on other nodes are linked to it again where it runs.
//!
//! A node that finds itself fenced (counted as gone while it was paused or
//! cut off) stops its actors instead: the survivors run them now. It
//! leaves them marked as running, so their records stay in the cluster.

use std::hash::{DefaultHasher, Hash as _, Hasher};

use futures::StreamExt;

use crate::cluster::{Cluster, Orphan};
use crate::id::ActorId;
use crate::runtime::TheaterRuntime;
use crate::storage::{ActorRecord, Replicated};

/// Actors one node starts at once while taking over.
const AT_ONCE: usize = 16;

/// Takes on the actors of gone nodes, for as long as it runs.
pub(super) async fn run(cluster: Cluster, runtime: TheaterRuntime) {
    let mut tick = tokio::time::interval(cluster.heartbeat());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if cluster.is_fenced() {
            tracing::error!("this node lost its place in the cluster: stopping its actors");
            runtime.shutdown().await;
            return;
        }
        let live: Vec<String> = match cluster.nodes().await {
            Ok(live) => live.into_iter().map(|n| n.node).collect(),
            Err(e) => {
                tracing::warn!("reading the node list: {e}");
                continue;
            }
        };
        runtime.close_channels_to_gone_nodes(&live);
        let owned = match cluster.owned().await {
            Ok(owned) => owned,
            Err(e) => {
                tracing::warn!("looking for actors of nodes that are gone: {e}");
                continue;
            }
        };
        let orphans = cluster.orphans(&owned, &live);
        // Top-level actors first; then, generation by generation, the
        // children of the ones this node runs now: a child goes where its
        // parent went.
        let (roots, mut children): (Vec<Orphan>, Vec<Orphan>) = orphans
            .into_iter()
            .partition(|orphan| orphan.owner.parent.is_none());
        let mut generation = in_this_nodes_order(roots, cluster.node());
        loop {
            take_on_all(&cluster, &runtime, generation).await;
            let runs_here = |orphan: &Orphan| {
                let parent = orphan.owner.parent.as_deref().and_then(|p| p.parse().ok());
                parent.is_some_and(|parent| runtime.actor(parent).is_ok())
            };
            (generation, children) = children.into_iter().partition(runs_here);
            if generation.is_empty() {
                break;
            }
        }
        runtime.link_remote_children(&owned).await;
    }
}

/// Takes on `orphans`, [`AT_ONCE`] at a time.
async fn take_on_all(cluster: &Cluster, runtime: &TheaterRuntime, orphans: Vec<Orphan>) {
    futures::stream::iter(orphans)
        .for_each_concurrent(AT_ONCE, |orphan| async move {
            match take_on(cluster, runtime, &orphan).await {
                Ok(true) => tracing::info!(
                    actor = %orphan.actor,
                    from = %orphan.owner.node,
                    "took over an actor of a node that is gone"
                ),
                Ok(false) => {}
                Err(e) => tracing::error!(
                    actor = %orphan.actor,
                    from = %orphan.owner.node,
                    "cannot take over the actor (it stays this node's): {e}"
                ),
            }
        })
        .await;
}

/// Each survivor goes through the orphans in its own order, so that they
/// share them out instead of all racing for the same one first.
fn in_this_nodes_order(mut orphans: Vec<Orphan>, node: &str) -> Vec<Orphan> {
    orphans.sort_by_cached_key(|orphan| {
        let mut hasher = DefaultHasher::new();
        (node, &orphan.actor).hash(&mut hasher);
        hasher.finish()
    });
    orphans
}

/// Takes `orphan` over and starts it here; `false` if another node took
/// it first or it was stopped before its node went.
async fn take_on(
    cluster: &Cluster,
    runtime: &TheaterRuntime,
    orphan: &Orphan,
) -> Result<bool, String> {
    if !cluster.take_over(orphan).await.map_err(|e| e.to_string())? {
        return Ok(false);
    }
    start_here(cluster, runtime, &orphan.actor).await
}

/// Starts `actor`, which this node owns now, from its record and its
/// replicated chain in the cluster; `false` if the cluster keeps no
/// record of it (it was stopped), and this node gives it up.
pub(super) async fn start_here(
    cluster: &Cluster,
    runtime: &TheaterRuntime,
    actor: &str,
) -> Result<bool, String> {
    let text = |e: &dyn std::fmt::Display| e.to_string();
    let Some(record) = cluster.records().get(actor).await.map_err(|e| text(&e))? else {
        cluster.release(actor).await.map_err(|e| text(&e))?;
        return Ok(false);
    };
    let id: ActorId = actor.parse().map_err(|e| text(&e))?;
    let record: ActorRecord = serde_json::from_slice(&record)
        .map_err(|e| format!("its record in the cluster is unreadable: {e}"))?;
    let (messages, _) = cluster.chains().read(actor).await.map_err(|e| text(&e))?;
    let entries = messages
        .iter()
        .map(|bytes| Replicated::decode(bytes))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("its replicated chain is unreadable: {e}"))?;
    let state = entries
        .iter()
        .rev()
        .find_map(|entry| entry.state.clone())
        .ok_or("its replicated chain holds no state")?;
    let events = entries.into_iter().map(|entry| entry.event).collect();
    runtime
        .adopt(id, record, events, state)
        .await
        .map_err(|e| text(&e))?;
    Ok(true)
}
