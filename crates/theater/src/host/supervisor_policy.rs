//! A supervisor's policy, the config of its `supervisor` grant: how its
//! children restart, how many it may have, where it may spawn them from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::HandlerConfig;
use super::config::{self, ConfigError, MAX_DURATION_MS};

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

    pub(crate) fn restart_for(&self, child_name: &str) -> Restart {
        self.children
            .get(child_name)
            .copied()
            .unwrap_or(self.restart)
    }

    /// Delay before the `n`th restart in the window (n ≥ 1).
    pub(crate) fn backoff_for(&self, n: usize) -> Duration {
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
