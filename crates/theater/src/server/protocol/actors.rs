//! Answers about actors: starting and stopping them, and what the server
//! knows of them (`list`, `state`, `events`, `verify`, `inspect`, `tree`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::bytes::{ActorBytes, StateField};
use super::request::present;
use crate::chain::ChainEvent;
use crate::id::ActorId;
use crate::manifest::Limits;
use crate::runtime::ActorStatus;

/// `ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    pub pong: bool,
}

/// `start`: the new actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Started {
    pub actor: ActorId,
    pub short: String,
    pub name: String,
    /// Manifest keys this version does not know or does not act on.
    pub warnings: Vec<String>,
    /// In a cluster, the node it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// `stop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stopped {
    pub actor: ActorId,
    pub stopped: bool,
}

/// `migrate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Migrated {
    pub actor: ActorId,
    pub from: String,
    pub to: String,
}

/// `restart`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restarted {
    pub actor: ActorId,
    pub restarted: bool,
}

/// Whether an actor runs and, if not, how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    #[serde(rename = "running")]
    Running,
    /// Stopped by an operator, its parent or the runtime, or failed for good.
    #[serde(rename = "stopped")]
    Stopped,
    /// It called `shutdown`.
    #[serde(rename = "stopped by itself")]
    StoppedByItself,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::StoppedByItself => "stopped by itself",
        }
    }
}

/// How an actor that is not running ended: its [`Status`] and, when it
/// stopped itself, what it passed to `shutdown`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ending {
    pub status: Status,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub shutdown_data: Option<Value>,
}

impl Ending {
    pub const RUNNING: Self = Self {
        status: Status::Running,
        shutdown_data: None,
    };
    pub const STOPPED: Self = Self {
        status: Status::Stopped,
        shutdown_data: None,
    };
}

impl From<ActorStatus> for Ending {
    fn from(status: ActorStatus) -> Self {
        match status {
            ActorStatus::Running => Self::RUNNING,
            ActorStatus::Stopped => Self::STOPPED,
            ActorStatus::StoppedByItself { data } => Self {
                status: Status::StoppedByItself,
                shutdown_data: Some(data),
            },
        }
    }
}

/// `list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActorList {
    pub actors: Vec<ListedActor>,
    /// In a cluster, the nodes that did not answer, each with why: their
    /// actors are missing from the list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unanswered: Vec<String>,
}

/// One row of `list`. An actor that is not running has no queue or
/// counters (`null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListedActor {
    pub id: ActorId,
    pub short: String,
    pub name: String,
    #[serde(flatten)]
    pub ending: Ending,
    pub queue_depth: Option<usize>,
    pub calls_ok: Option<u64>,
    pub calls_failed: Option<u64>,
    /// The node that runs it, in a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// `state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActorState {
    pub actor: ActorId,
    #[serde(flatten)]
    pub state: ActorBytes<StateField>,
}

/// `events`: the chain from event number `start` on, of `total` events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Events {
    pub actor: ActorId,
    pub total: u64,
    pub start: u64,
    pub events: Vec<ChainEvent>,
}

/// `verify`. `first_bad_event` and `error` are there when it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    pub actor: ActorId,
    pub events: u64,
    /// The newest event's hash, hex.
    pub head: Option<String>,
    /// In a cluster, the events of the actor's replicated chain, which
    /// was verified too and begins with this node's chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicated_events: Option<u64>,
    pub verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bad_event: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `inspect`. An actor that is not running is answered from its stored
/// record, without queue or counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inspected {
    pub id: ActorId,
    pub short: String,
    pub name: String,
    #[serde(flatten)]
    pub ending: Ending,
    /// The manifest file it started from; `None` when unknown.
    pub manifest: Option<String>,
    /// When this server started it; `None` for actors it did not start.
    pub started_ms: Option<u64>,
    pub limits: Limits,
    pub queue_depth: Option<usize>,
    pub counters: Option<Counters>,
    pub chain: ChainHead,
}

/// What a running actor counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub calls_ok: u64,
    pub calls_failed: u64,
    /// Calls refused because the queue was full.
    pub queue_full: u64,
}

/// A chain's length and newest event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub events: u64,
    /// The newest event's hash, hex.
    pub head: Option<String>,
}

/// `tree`: the supervision trees of the running actors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub roots: Vec<TreeNode>,
}

/// An actor and the children it supervises, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeNode {
    pub id: ActorId,
    pub short: String,
    pub name: String,
    pub children: Vec<TreeNode>,
}

/// `nodes`: the cluster's live nodes, as the answering node sees them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nodes {
    /// The node that answered.
    pub node: String,
    pub nodes: Vec<crate::cluster::NodeStatus>,
}
