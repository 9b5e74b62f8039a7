//! What a server says of the cluster its node belongs to, and which
//! node answers an operation: a start goes to the node it is placed on,
//! an operation on an actor to the node that runs it, and `list` asks
//! every node.

use std::time::{Duration, Instant};

use super::{Answer, actor_error, answer, bad_request, internal, spawn_error};
use crate::chain;
use crate::cluster::{Cluster, ClusterError, NodeStatus};
use crate::id::ActorId;
use crate::manifest::Manifest;
use crate::server::connection::Connection;
use crate::server::failover;
use crate::server::protocol::{ActorList, ErrorBody, ErrorKind, ListedActor, Migrated, Nodes, Op};
use crate::storage::{Replicated, VerifyFailure};

/// How long another node may take over an operation: a start compiles
/// its component, an answer for `list` is quick or missing.
const OPERATION_WAIT: Duration = Duration::from_secs(60);
const LIST_WAIT: Duration = Duration::from_secs(5);

/// How long this server remembers where it placed actors: longer than any
/// heartbeat, after which the node's own count includes them.
const PLACED_MEMORY: Duration = Duration::from_secs(60);

impl Connection {
    /// The cluster this server's node belongs to.
    fn cluster(&self) -> Result<&Cluster, ErrorBody> {
        self.shared.config.cluster.as_ref().ok_or_else(|| {
            bad_request(
                "this server is not in a cluster; start it with `theater server --cluster nats://HOST:PORT --node NAME`",
            )
        })
    }

    /// `nodes`: the cluster's live nodes.
    pub(super) async fn nodes(&self) -> Answer {
        let cluster = self.cluster()?;
        let nodes = cluster
            .nodes()
            .await
            .map_err(|e| internal("the cluster's nodes", e))?;
        answer(Nodes {
            node: cluster.node().to_owned(),
            nodes,
        })
    }

    /// This server's node, in a cluster.
    pub(super) fn node(&self) -> Option<String> {
        let cluster = self.shared.config.cluster.as_ref()?;
        Some(cluster.node().to_owned())
    }

    /// The actor `text` names: one running here (by id or prefix), or by
    /// its full id one that a node of the cluster owns.
    pub(super) async fn in_cluster(
        &self,
        cluster: &Cluster,
        text: &str,
    ) -> Result<ActorId, ErrorBody> {
        let unknown = match self.running(text) {
            Ok(handle) => return Ok(handle.id()),
            Err(unknown) => unknown,
        };
        let Ok(id) = text.trim().parse::<ActorId>() else {
            return Err(unknown);
        };
        let owner = cluster
            .owner(&id.to_string())
            .await
            .map_err(|e| internal("the actor's owner", e))?;
        owner.map(|_| id).ok_or(unknown)
    }

    /// Gives up the cluster's record that this node owns `actor`, which
    /// it no longer runs.
    pub(super) async fn release(&self, actor: ActorId) {
        if let Some(cluster) = &self.shared.config.cluster
            && let Err(e) = cluster.release(&actor.to_string()).await
        {
            tracing::warn!(%actor, "the cluster still names this node as the actor's owner: {e}");
        }
    }
}

/// The actor an operation names, for the operations its node answers.
fn named_actor(op: &Op) -> Option<&str> {
    match op {
        Op::Stop { actor }
        | Op::Restart { actor }
        | Op::State { actor }
        | Op::Events { actor, .. }
        | Op::Verify { actor }
        | Op::Inspect { actor }
        | Op::Migrate { actor, .. } => Some(actor),
        _ => None,
    }
}

impl Connection {
    /// The cluster, for an operation this server may hand to another node
    /// (not one another node handed it).
    fn routing(&self) -> Option<&Cluster> {
        match self.forwarded {
            true => None,
            false => self.shared.config.cluster.as_ref(),
        }
    }

    /// The other node that should run `op`, if another should: a start's
    /// placement, or the node that runs the actor an operation names by
    /// its full id (a prefix is resolved among this node's actors).
    pub(super) async fn elsewhere(&self, op: &Op) -> Result<Option<String>, ErrorBody> {
        let Some(cluster) = self.routing() else {
            return Ok(None);
        };
        if let Op::Start { node, .. } = op {
            return self.placement(cluster, node.as_deref()).await;
        }
        let Some(Ok(id)) = named_actor(op).map(|text| text.trim().parse::<ActorId>()) else {
            return Ok(None);
        };
        if self.shared.runtime.actor(id).is_ok() {
            return Ok(None);
        }
        let owner = cluster
            .owner(&id.to_string())
            .await
            .map_err(|e| internal("the actor's owner", e))?;
        Ok(owner
            .map(|owner| owner.node)
            .filter(|node| node != cluster.node()))
    }

    /// Where a new actor runs: on the node asked for, else on the live
    /// node with the fewest actors (this one on a tie). `None`: here.
    async fn placement(
        &self,
        cluster: &Cluster,
        asked: Option<&str>,
    ) -> Result<Option<String>, ErrorBody> {
        if cluster.is_fenced() {
            let fenced = ClusterError::Fenced(cluster.node().to_owned());
            return Err(ErrorBody::new(ErrorKind::SpawnFailed, fenced.to_string()));
        }
        let nodes = cluster
            .nodes()
            .await
            .map_err(|e| internal("the cluster's nodes", e))?;
        let here = cluster.node();
        let chosen = match asked {
            Some(asked) if nodes.iter().any(|n| n.node == asked) => asked.to_owned(),
            Some(asked) => {
                return Err(bad_request(format!(
                    "no live node `{asked}` in the cluster; `theater nodes` lists them"
                )));
            }
            None => {
                let load = |node: &NodeStatus| match node.node == here {
                    true => self.shared.runtime.actor_count(),
                    false => node.info.actors + self.placed_since(node),
                };
                nodes
                    .iter()
                    .min_by_key(|n| (load(n), n.node != here, n.node.clone()))
                    .map_or_else(|| here.to_owned(), |n| n.node.clone())
            }
        };
        Ok((chosen != here).then_some(chosen))
    }

    /// Actors this server placed on `node` after its last heartbeat, which
    /// its count does not show yet.
    fn placed_since(&self, node: &NodeStatus) -> usize {
        let since = Instant::now() - Duration::from_millis(node.seen_ms_ago);
        let placed = self.shared.placed.lock().expect("placed lock");
        placed
            .iter()
            .filter(|(on, at)| *on == node.node && *at >= since)
            .count()
    }

    /// In a cluster, checks `id`'s replicated chain: every event readable,
    /// hashed and linked, and this node's chain a beginning of it. How many
    /// events it has, or what is wrong.
    pub(super) async fn verify_replicated(
        &self,
        id: ActorId,
    ) -> Option<Result<u64, VerifyFailure>> {
        let cluster = self.shared.config.cluster.as_ref()?;
        Some(self.check_replicated(cluster, id).await)
    }

    async fn check_replicated(&self, cluster: &Cluster, id: ActorId) -> Result<u64, VerifyFailure> {
        let bad = |at: Option<usize>, message: String| VerifyFailure {
            first_bad_event: at.map(|at| at as u64),
            message,
        };
        let (entries, _) = cluster
            .chains()
            .read(&id.to_string())
            .await
            .map_err(|e| bad(None, format!("reading the replicated chain: {e}")))?;
        let events = entries
            .iter()
            .enumerate()
            .map(|(at, bytes)| {
                let entry = Replicated::decode(bytes);
                entry
                    .map(|entry| entry.event)
                    .map_err(|e| bad(Some(at), format!("replicated event {at}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        chain::verify(&events)
            .map_err(|e| bad(Some(e.index()), format!("the replicated chain: {e}")))?;
        let local = self
            .chain_from(id, 0)
            .await
            .map_err(|e| bad(None, e.message))?;
        let parted = local
            .iter()
            .zip(&events)
            .position(|(here, there)| here.hash != there.hash);
        if let Some(at) = parted {
            let why = format!("this node's chain and the replicated one part at event {at}");
            return Err(bad(Some(at), why));
        }
        if local.len() > events.len() {
            let why = "this node's chain has events the replicated one lacks".to_owned();
            return Err(bad(Some(events.len()), why));
        }
        Ok(events.len() as u64)
    }

    /// `migrate`: moves `actor`, which runs here, to node `to`. It
    /// finishes its queued calls and stops here; `to` becomes its owner
    /// and starts it from its replicated chain. If `to` cannot, it runs
    /// here again. A child stays its parent's child across nodes, and a
    /// parent its children's parent.
    pub(super) async fn migrate(&self, actor: &str, to: &str) -> Answer {
        let cluster = self.cluster()?;
        let id = self.running(actor)?.id();
        let runtime = &self.shared.runtime;
        let here = cluster.node();
        if to == here {
            return Err(bad_request(format!(
                "actor {id} runs on node `{to}` already"
            )));
        }
        let nodes = cluster
            .nodes()
            .await
            .map_err(|e| internal("the cluster's nodes", e))?;
        let Some(target) = nodes.iter().find(|n| n.node == to) else {
            return Err(bad_request(format!(
                "no live node `{to}` in the cluster; `theater nodes` lists them"
            )));
        };
        let name = id.to_string();
        let failed = |e: ClusterError| ErrorBody::new(ErrorKind::Internal, e.to_string());
        // Stopping forgets the cluster's record of the actor; `to` needs it.
        let record = cluster.records().get(&name).await.map_err(failed)?;
        let record =
            record.ok_or_else(|| internal("the actor's record", "the cluster keeps none"))?;
        runtime.move_out(id).await.map_err(actor_error)?;
        cluster.records().put(&name, record).await.map_err(failed)?;
        let handed = cluster
            .hand_over(&name, here, target)
            .await
            .map_err(failed)?;
        let adopted = match handed {
            true => {
                self.forward_via(
                    cluster,
                    to,
                    &Op::Adopt {
                        actor: name.clone(),
                    },
                )
                .await
            }
            false => Err(internal(
                "the actor's owner",
                "it changed while the actor stopped",
            )),
        };
        match adopted {
            Ok(_) => answer(Migrated {
                actor: id,
                from: here.to_owned(),
                to: to.to_owned(),
            }),
            Err(e) => Err(self.take_back(cluster, id, e).await),
        }
    }

    /// After a migration that failed: the actor runs here again, and the
    /// error says so.
    async fn take_back(&self, cluster: &Cluster, id: ActorId, e: ErrorBody) -> ErrorBody {
        let name = id.to_string();
        let here = cluster
            .nodes()
            .await
            .ok()
            .and_then(|nodes| nodes.into_iter().find(|n| n.node == cluster.node()));
        let owner = cluster.owner(&name).await.ok().flatten();
        let back = match (here, owner) {
            (Some(here), Some(owner)) if owner.node != cluster.node() => {
                // The target owns it but did not start it: hand it back.
                let from = owner.node;
                match cluster.hand_over(&name, &from, &here).await {
                    Ok(true) => failover::start_here(cluster, &self.shared.runtime, &name).await,
                    Ok(false) => Err(format!("node `{from}` no longer owns it")),
                    Err(e) => Err(e.to_string()),
                }
            }
            _ => failover::start_here(cluster, &self.shared.runtime, &name).await,
        };
        let message = match back {
            Ok(_) => format!("{}; actor {id} runs on this node again", e.message),
            Err(why) => format!("{}; and it could not start here again: {why}", e.message),
        };
        ErrorBody::new(ErrorKind::SpawnFailed, message)
    }

    /// `adopt`, from the node an actor migrates from: starts it here.
    pub(super) async fn adopt(&self, actor: &str) -> Answer {
        if !self.forwarded {
            return Err(bad_request(
                "`adopt` passes between the nodes of a cluster; use `migrate`",
            ));
        }
        let cluster = self.cluster()?;
        let spawn_failed = |why: String| ErrorBody::new(ErrorKind::SpawnFailed, why);
        let runtime = &self.shared.runtime;
        let started = failover::start_here(cluster, runtime, actor).await;
        if !started.map_err(spawn_failed)? {
            return Err(spawn_failed("the cluster keeps no record of it".into()));
        }
        // Its children, which stayed on the nodes they ran on, are its
        // children here at once.
        match cluster.owned().await {
            Ok(owned) => runtime.link_remote_children(&owned).await,
            Err(e) => tracing::warn!(%actor, "its children are linked on the next heartbeat: {e}"),
        }
        answer(Migrated {
            actor: actor.parse().map_err(|_| bad_request("not an actor id"))?,
            from: String::new(),
            to: cluster.node().to_owned(),
        })
    }

    /// Starts `manifest`'s actor on `node`, with the component this node
    /// read: it goes to the cluster's store from here.
    pub(super) async fn place_on(&self, node: &str, manifest: Manifest) -> Answer {
        let runtime = &self.shared.runtime;
        let shared = runtime.share_component_file(&manifest.component_path);
        let component = shared.await.map_err(spawn_error)?;
        let manifest = Box::new(manifest);
        self.forward(
            node,
            &Op::Place {
                manifest,
                component,
            },
        )
        .await
    }

    /// `place`, from the node a `start` was asked of: starts the actor
    /// here, running the component from the cluster's store.
    pub(super) async fn place(&self, mut manifest: Manifest, component: &str) -> Answer {
        if !self.forwarded {
            return Err(bad_request(
                "`place` passes between the nodes of a cluster; use `start --node`",
            ));
        }
        let cluster = self.cluster()?;
        let runtime = &self.shared.runtime;
        let copy = runtime.local_component(cluster, component).await;
        if let Some(copy) = copy.map_err(spawn_error)? {
            manifest.component_path = copy;
        }
        self.start_actor(manifest).await
    }

    /// Runs `op` on `node` and hands back its answer.
    pub(super) async fn forward(&self, node: &str, op: &Op) -> Answer {
        let cluster = self.routing().expect("forwarded only in a cluster");
        self.forward_via(cluster, node, op).await
    }

    async fn forward_via(&self, cluster: &Cluster, node: &str, op: &Op) -> Answer {
        let bytes = serde_json::to_vec(op).expect("operations serialize");
        let wait = match op {
            Op::List { .. } => LIST_WAIT,
            _ => OPERATION_WAIT,
        };
        let reply = cluster
            .forward(node, bytes.into(), wait)
            .await
            .map_err(|e| ErrorBody::new(ErrorKind::Internal, e.to_string()))?;
        let answer: Answer = serde_json::from_slice(&reply)
            .map_err(|e| internal(&format!("node `{node}`'s answer"), e))?;
        if matches!(op, Op::Place { .. }) && answer.is_ok() {
            let mut placed = self.shared.placed.lock().expect("placed lock");
            placed.retain(|(_, at)| at.elapsed() < PLACED_MEMORY);
            placed.push_back((node.to_owned(), Instant::now()));
        }
        answer
    }

    /// Every other live node's answer to `list`, and the nodes that did
    /// not answer.
    pub(super) async fn list_elsewhere(&self, all: bool) -> (Vec<ListedActor>, Vec<String>) {
        let Some(cluster) = self.routing() else {
            return (Vec::new(), Vec::new());
        };
        let nodes = match cluster.nodes().await {
            Ok(nodes) => nodes,
            Err(e) => return (Vec::new(), vec![format!("the node list: {e}")]),
        };
        let op = Op::List { all };
        let others = nodes.iter().filter(|n| n.node != cluster.node());
        let answers = futures::future::join_all(others.map(|n| async {
            let listed = self.forward(&n.node, &op).await.and_then(|list| {
                serde_json::from_value::<ActorList>(list)
                    .map_err(|e| internal("another node's list", e))
            });
            (n.node.clone(), listed)
        }))
        .await;
        let (mut actors, mut unanswered) = (Vec::new(), Vec::new());
        for (node, listed) in answers {
            match listed {
                Ok(list) => actors.extend(list.actors),
                Err(e) => unanswered.push(format!("{node}: {}", e.message)),
            }
        }
        (actors, unanswered)
    }
}
