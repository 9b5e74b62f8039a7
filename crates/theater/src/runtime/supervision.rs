//! Supervision trees: parents spawn children, hear about their failures and
//! exits, and decide — by the policy in the parent's manifest — whether a
//! failed child is restarted, in the spirit of OTP supervisors.
//!
//! A child *fails* when a call traps or hits a limit. Its state lives in the
//! host, so a restart is a fresh instance with the state it had. A child
//! *exits* when it is stopped or asks to shut down.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::TheaterRuntime;
use crate::chain::record;
use crate::error::SpawnError;
use crate::files::{self, FileRules};
use crate::host::config::{self, ConfigError, MAX_DURATION_MS};
use crate::host::{Grants, HandlerConfig};
use crate::id::ActorId;
use crate::manifest::{Limits, Manifest};

/// Export a parent may provide to hear of a child's failure.
pub const CHILD_ERROR: &str = "ntwk:theater/supervisor-handlers.handle-child-error";
/// Export a parent may provide to hear of a child's exit.
pub const CHILD_EXIT: &str = "ntwk:theater/supervisor-handlers.handle-child-exit";

/// Which children restart when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Only the failed child.
    OneForOne,
    /// Every child of the parent.
    OneForAll,
    /// The failed child and those started after it.
    RestForOne,
}

/// When a child is restarted. A child that asks to shut down is never
/// restarted, whatever the policy: it chose to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Never: a failed child is stopped.
    Never,
    /// After a failure (trap or limit).
    OnError,
    /// The same as [`OnError`](Self::OnError); kept for the manifests that
    /// say `always`.
    Always,
}

/// Default restarts allowed within [`DEFAULT_WINDOW`] before the parent fails.
pub const DEFAULT_MAX_RESTARTS: usize = 3;
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(5);
/// First restart delay; each further restart in the window doubles it.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(10);
/// Longest restart delay. Bounds how long a child's queue waits.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Children one actor may have at once unless its supervisor config says
/// otherwise (`max_children`). Guards the runtime against an actor that
/// spawns in a loop.
pub const DEFAULT_MAX_CHILDREN: usize = 64;
/// Most children a supervisor config may allow.
pub const MAX_MAX_CHILDREN: usize = 65_536;
/// Most restarts within the window a supervisor config may allow.
pub const MAX_MAX_RESTARTS: usize = 1000;

/// A parent's policy, from its `supervisor` handler config.
#[derive(Debug, Clone)]
pub struct SupervisionPolicy {
    pub strategy: Strategy,
    /// For children not named in `children`.
    pub restart: Restart,
    /// Per child, by manifest `name`.
    pub children: HashMap<String, Restart>,
    pub max_restarts: usize,
    pub window: Duration,
    pub backoff: Duration,
    pub backoff_max: Duration,
    /// Children it may have at once.
    pub max_children: usize,
    /// Directories, besides its manifest's own, whose manifests,
    /// components and state files it may spawn children from; relative to
    /// its manifest's directory.
    pub spawn_from: Vec<PathBuf>,
}

impl Default for SupervisionPolicy {
    fn default() -> Self {
        Self {
            strategy: Strategy::OneForOne,
            restart: Restart::OnError,
            children: HashMap::new(),
            max_restarts: DEFAULT_MAX_RESTARTS,
            window: DEFAULT_WINDOW,
            backoff: DEFAULT_BACKOFF,
            backoff_max: DEFAULT_BACKOFF_MAX,
            max_children: DEFAULT_MAX_CHILDREN,
            spawn_from: Vec::new(),
        }
    }
}

const KEYS: &[&str] = &[
    "strategy",
    "restart",
    "children",
    "max_restarts",
    "window_s",
    "backoff_ms",
    "backoff_max_ms",
    "max_children",
    "spawn_from",
];

impl HandlerConfig for SupervisionPolicy {
    /// Reads `strategy`, `restart`, `children`, `max_restarts`, `window_s`,
    /// `backoff_ms`, `backoff_max_ms`, `max_children` and `spawn_from`;
    /// anything else is an error.
    fn from_table(table: &toml::Table) -> Result<Self, ConfigError> {
        config::known_keys(table, KEYS)?;
        let defaults = Self::default();
        let strategy = match config::string(table, "strategy", STRATEGIES)? {
            None | Some("one-for-one") => Strategy::OneForOne,
            Some("one-for-all") => Strategy::OneForAll,
            Some("rest-for-one") => Strategy::RestForOne,
            Some(_) => {
                return Err(ConfigError::at(
                    "strategy",
                    format!("`strategy` must be {STRATEGIES}"),
                ));
            }
        };
        let restart = match table.get("restart") {
            None => defaults.restart,
            Some(value) => parse_restart(value).map_err(|e| ConfigError::at("restart", e))?,
        };
        let mut children = HashMap::new();
        if let Some(value) = table.get("children") {
            let wrong = || {
                ConfigError::at(
                    "children",
                    "`children` must be a table of child name = restart policy",
                )
            };
            for (name, restart) in value.as_table().ok_or_else(wrong)? {
                let restart = parse_restart(restart).map_err(|e| ConfigError::at("children", e))?;
                children.insert(name.clone(), restart);
            }
        }
        let ms = |key: &str, default| config::duration(table, key, 0..=MAX_DURATION_MS, default);
        let window_s = config::integer(
            table,
            "window_s",
            0..=MAX_DURATION_MS / 1000,
            defaults.window.as_secs(),
        )?;
        let spawn_from =
            config::strings(table, "spawn_from", "of directories, like [\"../actors\"]")?;
        Ok(Self {
            strategy,
            restart,
            children,
            max_restarts: config::integer(
                table,
                "max_restarts",
                0..=MAX_MAX_RESTARTS as u64,
                defaults.max_restarts as u64,
            )? as usize,
            window: Duration::from_secs(window_s),
            backoff: ms("backoff_ms", defaults.backoff)?,
            backoff_max: ms("backoff_max_ms", defaults.backoff_max)?,
            max_children: config::integer(
                table,
                "max_children",
                0..=MAX_MAX_CHILDREN as u64,
                defaults.max_children as u64,
            )? as usize,
            spawn_from: spawn_from
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect(),
        })
    }
}

impl SupervisionPolicy {
    /// The directories a supervisor whose manifest lies in `manifest_dir`
    /// may spawn children from: that directory and its `spawn_from`.
    pub fn spawn_area(&self, manifest_dir: &Path) -> Vec<PathBuf> {
        std::iter::once(manifest_dir.to_owned())
            .chain(self.spawn_from.iter().map(|dir| manifest_dir.join(dir)))
            .collect()
    }

    /// Fails unless this policy (a child's, whose manifest lies in
    /// `dir`) allows no more than `parent`'s: no more children, no more
    /// restarts, no directory to spawn from outside the parent's. Blocking.
    pub fn within(&self, dir: &Path, parent: &Self, parent_dir: &Path) -> Result<(), ConfigError> {
        config::at_most(
            "max_children",
            self.max_children as u64,
            parent.max_children as u64,
        )?;
        config::at_most(
            "max_restarts",
            self.max_restarts as u64,
            parent.max_restarts as u64,
        )?;
        let parent_area = parent.spawn_area(parent_dir);
        for dir in self.spawn_area(dir) {
            config::dir_within("spawn_from", &dir, &parent_area)?;
        }
        Ok(())
    }

    fn restart_for(&self, child_name: &str) -> Restart {
        self.children
            .get(child_name)
            .copied()
            .unwrap_or(self.restart)
    }

    /// Delay before the `n`th restart in the window (n ≥ 1).
    fn backoff_for(&self, n: usize) -> Duration {
        let factor = 1u32
            .checked_shl((n.saturating_sub(1)).min(31) as u32)
            .unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(self.backoff_max)
    }
}

fn parse_restart(value: &toml::Value) -> Result<Restart, String> {
    match value.as_str() {
        Some("never") => Ok(Restart::Never),
        Some("on-error") => Ok(Restart::OnError),
        Some("always") => Ok(Restart::Always),
        _ => Err("a restart policy must be \"never\", \"on-error\" or \"always\"".into()),
    }
}

const STRATEGIES: &str = "\"one-for-one\", \"one-for-all\" or \"rest-for-one\"";

/// A child let in: its grants, its limits and the rules its component is
/// read under.
pub(crate) struct Admitted {
    pub grants: Grants,
    pub limits: Limits,
    pub files: FileRules,
}

/// What happened to a child.
#[derive(Debug)]
pub(crate) enum ChildEvent {
    /// A call trapped or hit a limit.
    Failed(String),
    /// The child asked to shut down.
    ShutdownRequested,
}

/// What the child's task does next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Continue with a fresh instance after this delay.
    Restart(Duration),
    /// End the actor.
    Stop,
}

impl Decision {
    /// Its `decision` label in the metrics.
    fn name(&self) -> &'static str {
        match self {
            Decision::Restart(_) => "restart",
            Decision::Stop => "stop",
        }
    }
}

struct Link {
    parent: ActorId,
    name: String,
    policy: Arc<SupervisionPolicy>,
}

/// Who supervises whom, and each parent's recent restarts.
#[derive(Default)]
pub(crate) struct Tree {
    links: HashMap<ActorId, Link>,
    /// Children in the order they were started.
    children: HashMap<ActorId, Vec<ActorId>>,
    restarts: HashMap<ActorId, VecDeque<Instant>>,
}

impl Tree {
    pub fn link(
        &mut self,
        parent: ActorId,
        child: ActorId,
        name: String,
        policy: Arc<SupervisionPolicy>,
    ) {
        self.links.insert(
            child,
            Link {
                parent,
                name,
                policy,
            },
        );
        self.children.entry(parent).or_default().push(child);
    }

    /// Forgets an actor; returns its parent, if it had one.
    pub fn unlink(&mut self, actor: ActorId) -> Option<ActorId> {
        self.children.remove(&actor);
        self.restarts.remove(&actor);
        let link = self.links.remove(&actor)?;
        if let Some(siblings) = self.children.get_mut(&link.parent) {
            siblings.retain(|c| *c != actor);
        }
        Some(link.parent)
    }

    pub fn children(&self, parent: ActorId) -> Vec<ActorId> {
        self.children.get(&parent).cloned().unwrap_or_default()
    }

    pub fn parent(&self, child: ActorId) -> Option<ActorId> {
        self.links.get(&child).map(|l| l.parent)
    }
}

impl TheaterRuntime {
    /// The rules the files of a spawn a parent asks for are read under:
    /// only beneath the directories its policy lets it spawn from.
    pub(crate) fn spawn_rules(&self, parent: &Manifest, policy: &SupervisionPolicy) -> FileRules {
        FileRules {
            limits: self.inner.files,
            beneath: Some(policy.spawn_area(parent.base_dir()).into()),
        }
    }

    /// Admits a child `parent` asks to spawn: under the parent's limit of
    /// children, with grants and limits within the parent's (limits the
    /// child's manifest leaves unset are lowered to the parent's).
    pub(crate) async fn admit_child(
        &self,
        parent: ActorId,
        policy: &SupervisionPolicy,
        child: &Manifest,
        grants: Grants,
    ) -> Result<Admitted, SpawnError> {
        let parent_manifest = self
            .manifest(parent)
            .map_err(|_| SpawnError::ParentStopped(parent))?;
        if self.children(parent).len() >= policy.max_children {
            return Err(SpawnError::TooManyChildren {
                parent,
                limit: policy.max_children,
            });
        }
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
            files: self.spawn_rules(&parent_manifest, policy),
        })
    }

    /// Decides what a child's task does after `event`, tells the parent, and
    /// records the decision in the parent's chain. Actors without a parent
    /// restart at once after a failure and stop when they ask to.
    pub(crate) fn supervise(&self, child: ActorId, event: ChildEvent) -> Decision {
        let mut tree = self.inner.tree.lock().expect("tree lock");
        let Some(link) = tree.links.get(&child) else {
            let decision = match event {
                ChildEvent::Failed(_) => Decision::Restart(Duration::ZERO),
                ChildEvent::ShutdownRequested => Decision::Stop,
            };
            self.inner.metrics.decision(decision.name());
            return decision;
        };
        let (parent, policy) = (link.parent, link.policy.clone());
        let mode = policy.restart_for(&link.name);
        let restart = matches!(event, ChildEvent::Failed(_)) && mode != Restart::Never;
        if let ChildEvent::Failed(error) = &event {
            self.notify(parent, CHILD_ERROR, (child.to_string(), error.clone()));
        }
        if !restart {
            self.inner.metrics.decision("stop");
            self.record_decision(parent, child, "stop", &event, None);
            return Decision::Stop;
        }

        let now = Instant::now();
        let history = tree.restarts.entry(parent).or_default();
        history.retain(|at| now.duration_since(*at) <= policy.window);
        history.push_back(now);
        let recent = history.len();
        if recent > policy.max_restarts {
            self.inner.metrics.decision("escalate");
            self.record_decision(parent, child, "escalate", &event, None);
            drop(tree);
            let runtime = self.clone();
            let reason = format!(
                "restart intensity exceeded: {recent} restarts within {} s (max_restarts = {})",
                policy.window.as_secs(),
                policy.max_restarts
            );
            tokio::spawn(async move { runtime.fail(parent, reason).await });
            return Decision::Stop;
        }

        let delay = policy.backoff_for(recent);
        let siblings = tree.children(parent);
        let position = siblings.iter().position(|c| *c == child).unwrap_or(0);
        let also: Vec<ActorId> = match policy.strategy {
            Strategy::OneForOne => Vec::new(),
            Strategy::OneForAll => siblings.iter().copied().filter(|c| *c != child).collect(),
            Strategy::RestForOne => siblings[position + 1..].to_vec(),
        };
        drop(tree);
        for sibling in &also {
            if let Ok(handle) = self.actor(*sibling) {
                handle.restart_later(delay);
            }
        }
        self.inner.metrics.decision("restart");
        self.record_decision(parent, child, "restart", &event, Some((delay, &also)));
        Decision::Restart(delay)
    }

    /// A parent whose children fail too often fails itself: its subtree is
    /// stopped and its own parent hears of the failure.
    async fn fail(&self, actor: ActorId, reason: String) {
        tracing::warn!(actor = %actor, "{reason}");
        let parent = self.inner.tree.lock().expect("tree lock").parent(actor);
        if let Some(parent) = parent {
            self.notify(parent, CHILD_ERROR, (actor.to_string(), reason.clone()));
        }
        if let Err(e) = self.stop(actor).await {
            tracing::debug!(actor = %actor, "already gone while failing: {e}");
        }
    }

    /// Tells a parent one of its children ended (stopped or shut down).
    pub(crate) fn child_exited(&self, parent: ActorId, child: ActorId, data: Option<Vec<u8>>) {
        let record = json!({ "child": child.to_string(), "decision": "exited" });
        self.record_in(parent, record, format!("child {} exited", child.short()));
        self.notify(parent, CHILD_EXIT, (child.to_string(), data));
    }

    fn record_decision(
        &self,
        parent: ActorId,
        child: ActorId,
        decision: &str,
        event: &ChildEvent,
        restart: Option<(Duration, &[ActorId])>,
    ) {
        let cause = match event {
            ChildEvent::Failed(error) => json!({ "failed": error }),
            ChildEvent::ShutdownRequested => json!("shutdown"),
        };
        let mut record =
            json!({ "child": child.to_string(), "cause": cause, "decision": decision });
        if let Some((delay, also)) = restart {
            record["delay_ms"] = json!(delay.as_millis() as u64);
            record["also_restarted"] =
                json!(also.iter().map(ActorId::to_string).collect::<Vec<_>>());
        }
        self.record_in(
            parent,
            record,
            format!("child {} {decision}", child.short()),
        );
    }

    /// Appends a `supervision` event to `actor`'s chain, in order with its calls.
    fn record_in(&self, actor: ActorId, data: serde_json::Value, description: String) {
        if let Ok(handle) = self.actor(actor) {
            handle.record_later(record::SUPERVISION, record::encode(&data), description);
        }
    }

    /// Queues a call to a supervisor export, if the parent has it.
    fn notify<P: serde::Serialize>(&self, parent: ActorId, function: &str, params: P) {
        if let Ok(handle) = self.actor(parent)
            && let Err(e) = handle.cast_function(None, function, params)
        {
            tracing::warn!(actor = %parent, "cannot notify supervisor: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = SupervisionPolicy {
            backoff: Duration::from_millis(10),
            backoff_max: Duration::from_millis(50),
            ..Default::default()
        };
        let delays: Vec<u128> = (1..=5).map(|n| policy.backoff_for(n).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 50, 50]);
    }

    #[test]
    fn config_is_read_and_checked() {
        let config: toml::Table = toml::from_str(
            "strategy = \"rest-for-one\"\nrestart = \"never\"\nmax_restarts = 2\nwindow_s = 10\nchildren = { worker = \"always\" }",
        )
        .unwrap();
        let policy = SupervisionPolicy::from_table(&config).unwrap();
        assert_eq!(policy.strategy, Strategy::RestForOne);
        assert_eq!(policy.restart_for("worker"), Restart::Always);
        assert_eq!(policy.restart_for("other"), Restart::Never);
        assert_eq!((policy.max_restarts, policy.window.as_secs()), (2, 10));

        assert_eq!(policy.max_children, DEFAULT_MAX_CHILDREN);

        for (bad, key) in [
            ("strategy = \"all-for-none\"", "strategy"),
            ("retries = 3", "retries"),
            ("window_s = 99999999999", "window_s"),
            ("max_children = -1", "max_children"),
            ("spawn_from = \"..\"", "spawn_from"),
        ] {
            let bad: toml::Table = toml::from_str(bad).unwrap();
            let err = SupervisionPolicy::from_table(&bad).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{err}");
        }
    }

    #[test]
    fn a_child_supervises_with_no_more_than_its_parent() {
        let area = tempfile::tempdir().unwrap();
        let (parent_dir, sibling) = (area.path().join("parent"), area.path().join("sibling"));
        std::fs::create_dir(&parent_dir).unwrap();
        std::fs::create_dir(&sibling).unwrap();
        let parent = SupervisionPolicy {
            spawn_from: vec!["..".into()],
            max_children: 4,
            ..Default::default()
        };
        let child = |spawn_from: &str, max_children| SupervisionPolicy {
            spawn_from: vec![spawn_from.into()],
            max_children,
            ..Default::default()
        };
        assert!(child(".", 4).within(&sibling, &parent, &parent_dir).is_ok());
        let err = child(".", 5)
            .within(&sibling, &parent, &parent_dir)
            .unwrap_err();
        assert_eq!(err.key.as_deref(), Some("max_children"));
        let err = child("../..", 1)
            .within(&sibling, &parent, &parent_dir)
            .unwrap_err();
        assert_eq!(err.key.as_deref(), Some("spawn_from"));
    }
}
