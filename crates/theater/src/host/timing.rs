//! `ntwk:theater/timing`: the time, and sleeps that make the actor wait
//! without holding up the runtime. Every value and outcome an actor gets is
//! recorded in its chain. See `docs/timing.md`.

use std::time::Duration;

use wasmtime::StoreContextMut;
use wasmtime::component::Linker;

use super::config::{self, ConfigError, MAX_DURATION_MS};
use super::recorded::{off_clock, recorded, whole};
use super::{Granted, Handler, HandlerConfig, HostFunctions};
use crate::actor::{ActorStore, now_ms};
use crate::packages::Package;

const INTERFACE: &str = "ntwk:theater/timing";
const NOW: &str = "ntwk:theater/timing.now";
const SLEEP: &str = "ntwk:theater/timing.sleep";
const DEADLINE: &str = "ntwk:theater/timing.deadline";

const MAX_KEY: &str = "max_sleep_duration";
const MIN_KEY: &str = "min_sleep_duration";

/// Longest sleep (or wait for a deadline) unless the manifest says
/// otherwise. Guards against a guest that parks itself, and every call
/// queued behind it, for good.
pub const DEFAULT_MAX_SLEEP_MS: u64 = 60 * 60 * 1000;
/// Shortest sleep unless the manifest says otherwise: none.
pub const DEFAULT_MIN_SLEEP_MS: u64 = 0;

/// `type = "timing"`, config `{ max_sleep_duration, min_sleep_duration }`
/// in milliseconds.
pub struct TimingHandler;

impl Handler for TimingHandler {
    const NAME: &'static str = "timing";
    const IMPORTS: &'static [&'static str] = &[INTERFACE];
    type Config = SleepLimits;

    /// A child may sleep no longer, and no shorter, than its parent.
    fn within(
        &self,
        child: &Granted<'_, SleepLimits>,
        parent: &Granted<'_, SleepLimits>,
    ) -> Result<(), ConfigError> {
        let (child, parent) = (child.config, parent.config);
        config::at_most(MAX_KEY, child.max_ms, parent.max_ms)?;
        config::at_least(MIN_KEY, child.min_ms, parent.min_ms)
    }
}

impl HostFunctions for TimingHandler {
    fn add_to_linker(
        &self,
        linker: &mut Linker<ActorStore>,
        package: Package,
    ) -> wasmtime::Result<()> {
        let mut timing = linker.instance(&package.name_of(INTERFACE))?;
        timing.func_wrap_async("now", |mut store, (): ()| {
            Box::new(async move { recorded(&mut store, NOW, (), now_ms(), whole).await })
        })?;
        timing.func_wrap_async("sleep", |mut store, (duration,): (u64,)| {
            Box::new(async move {
                let result = limits(&store)?.check_sleep(duration);
                if result.is_ok() {
                    wait(&mut store, duration).await;
                }
                recorded(&mut store, SLEEP, (duration,), result, Clone::clone).await
            })
        })?;
        timing.func_wrap_async("deadline", |mut store, (timestamp,): (u64,)| {
            Box::new(async move {
                let result = limits(&store)?.check_deadline(timestamp, now_ms());
                if let Ok(remaining) = result {
                    wait(&mut store, remaining).await;
                }
                let result = result.map(|_| ());
                recorded(&mut store, DEADLINE, (timestamp,), result, Clone::clone).await
            })
        })?;
        Ok(())
    }
}

/// An actor's sleep limits, from its manifest.
#[derive(Debug, Clone, Copy)]
pub struct SleepLimits {
    max_ms: u64,
    min_ms: u64,
}

impl HandlerConfig for SleepLimits {
    fn from_table(config: &toml::Table) -> Result<Self, ConfigError> {
        config::known_keys(config, &[MAX_KEY, MIN_KEY])?;
        let limits = SleepLimits {
            max_ms: config::integer(config, MAX_KEY, 0..=MAX_DURATION_MS, DEFAULT_MAX_SLEEP_MS)?,
            min_ms: config::integer(config, MIN_KEY, 0..=MAX_DURATION_MS, DEFAULT_MIN_SLEEP_MS)?,
        };
        if limits.min_ms > limits.max_ms {
            return Err(ConfigError::at(
                MIN_KEY,
                format!(
                    "`{MIN_KEY}` ({}) is larger than `{MAX_KEY}` ({}): no sleep could pass",
                    limits.min_ms, limits.max_ms
                ),
            ));
        }
        Ok(limits)
    }
}

impl SleepLimits {
    fn check_sleep(&self, duration: u64) -> Result<(), String> {
        if duration > self.max_ms {
            return Err(format!(
                "a sleep of {duration} ms is longer than this actor's limit of {} ms (`{MAX_KEY}` of its timing handler): sleep in shorter steps or raise the limit in its manifest",
                self.max_ms
            ));
        }
        if duration < self.min_ms {
            return Err(format!(
                "a sleep of {duration} ms is shorter than this actor's minimum of {} ms (`{MIN_KEY}` of its timing handler)",
                self.min_ms
            ));
        }
        Ok(())
    }

    /// How long to wait for `deadline` (ms since the epoch) from `now`; a
    /// deadline already passed needs no wait.
    fn check_deadline(&self, deadline: u64, now: u64) -> Result<u64, String> {
        let remaining = deadline.saturating_sub(now);
        if remaining > self.max_ms {
            return Err(format!(
                "the deadline {deadline} is {remaining} ms away, longer than this actor's limit of {} ms (`{MAX_KEY}` of its timing handler): wait in shorter steps or raise the limit in its manifest",
                self.max_ms
            ));
        }
        Ok(remaining)
    }
}

fn limits(store: &StoreContextMut<'_, ActorStore>) -> wasmtime::Result<SleepLimits> {
    store
        .data()
        .extensions
        .get::<SleepLimits>()
        .copied()
        .ok_or_else(|| wasmtime::Error::msg("timing was not configured for this actor"))
}

/// Sleeps `ms`; the time waited does not count against the call's time limit.
async fn wait(store: &mut StoreContextMut<'_, ActorStore>, ms: u64) {
    off_clock(store, tokio::time::sleep(Duration::from_millis(ms))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(config: &str) -> Result<SleepLimits, String> {
        SleepLimits::from_table(&toml::from_str(config).unwrap()).map_err(|e| e.message)
    }

    #[test]
    fn limits_default_and_validate() {
        let limits = configured("").unwrap();
        assert_eq!(limits.max_ms, DEFAULT_MAX_SLEEP_MS);
        assert_eq!(limits.min_ms, DEFAULT_MIN_SLEEP_MS);
        let limits = configured("max_sleep_duration = 500\nmin_sleep_duration = 10").unwrap();
        assert_eq!((limits.max_ms, limits.min_ms), (500, 10));
        let err = configured("max_sleep_duration = 5\nmin_sleep_duration = 10").unwrap_err();
        assert!(err.contains("`min_sleep_duration` (10) is larger"), "{err}");
        let err = configured("max_sleep_duration = -1").unwrap_err();
        assert!(
            err.contains("`max_sleep_duration` must be a whole number"),
            "{err}"
        );
        let err = configured("max_sleep_duration = \"1s\"").unwrap_err();
        assert!(err.contains("not `\"1s\"`"), "{err}");
    }

    #[test]
    fn sleeps_and_deadlines_within_limits() {
        let limits = SleepLimits {
            max_ms: 100,
            min_ms: 5,
        };
        assert!(limits.check_sleep(100).is_ok());
        assert!(
            limits
                .check_sleep(101)
                .unwrap_err()
                .contains("limit of 100 ms")
        );
        assert!(
            limits
                .check_sleep(4)
                .unwrap_err()
                .contains("minimum of 5 ms")
        );
        assert_eq!(limits.check_deadline(1_000, 2_000), Ok(0));
        assert_eq!(limits.check_deadline(1_050, 1_000), Ok(50));
        assert!(limits.check_deadline(1_101, 1_000).is_err());
    }
}
