//! Replay: runs an actor's recorded calls again, on its component, and
//! checks that each one leaves the state its chain recorded.
//!
//! Host functions are not run again: each import call is answered with the
//! result its `host-call` event recorded (see [`feed`]). WASI is linked for
//! real, sandboxed. Replay does not verify hashes; [`crate::chain::verify`]
//! does. What is replayable is described in `docs/replay.md`.

mod call;
mod feed;
mod session;
mod value;

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::actor::INIT_FUNCTION;
use crate::chain::ChainEvent;
use crate::chain::record::{ACTOR_INIT, ACTOR_RESUME, CALL, CALL_ERROR, HOST_CALL, LOG, REVERT};
use crate::wasm::StateBytes;
use call::{RecordedCall, Replayed};
use feed::Feed;
use session::Session;

/// Where a replay starts.
#[derive(Debug, Clone)]
pub enum ReplayStart {
    /// Before the chain's first event, with the state the actor was spawned
    /// with: the one its first `actor.init` was given. The host calls and
    /// logs of that `init` come first in the chain, then its `actor-init`.
    Spawned { state: StateBytes },
    /// Right after event `index`, with the state that event left.
    After { index: usize, state: StateBytes },
}

impl ReplayStart {
    /// The first event to replay.
    fn first(&self) -> usize {
        match self {
            Self::Spawned { .. } => 0,
            Self::After { index, .. } => index + 1,
        }
    }

    fn into_state(self) -> StateBytes {
        match self {
            Self::Spawned { state } | Self::After { state, .. } => state,
        }
    }
}

/// What a replay did and where it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Events looked at from the start on, up to the one the replay ended at.
    pub events: usize,
    /// Calls re-run that did what the chain says.
    pub calls: usize,
    /// The state after the last event replayed.
    pub state: StateBytes,
    /// The component did something other than what the chain recorded.
    pub divergence: Option<Divergence>,
    /// The chain does not hold what replay needs to go on.
    pub stopped_at: Option<Stop>,
}

/// The first event the replayed component did not reproduce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    pub index: usize,
    /// The event's hash, hex.
    pub hash: String,
    /// The export being replayed.
    pub function: String,
    /// E.g. `state sha256 4b54b113904e… recorded, 6aea6dfe6561… replayed`.
    pub reason: String,
}

/// An event replay could not get past, though nothing diverged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub index: usize,
    pub hash: String,
    /// E.g. a redacted value or a state the chain holds only by digest.
    pub reason: String,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event {} ({}) diverged in {}: {}",
            self.index, self.hash, self.function, self.reason
        )
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replay cannot go past event {} ({}): {}",
            self.index, self.hash, self.reason
        )
    }
}

/// Why a replay could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no events {first}..={until} to replay: the chain has {len} events")]
    OutOfRange {
        first: usize,
        until: usize,
        len: usize,
    },
    #[error("the component cannot be linked for replay: {0}")]
    Link(String),
    #[error("the component cannot be instantiated for replay: {0}")]
    Instantiate(String),
    #[error("event {index} ({hash}) is not readable: {reason}")]
    BadEvent {
        index: usize,
        hash: String,
        reason: String,
    },
}

/// Why a replay ended early, at event `.0`.
enum Problem {
    Diverged(usize, String),
    Stopped(usize, String),
}

impl Problem {
    fn reason(&self) -> &str {
        match self {
            Self::Diverged(_, reason) | Self::Stopped(_, reason) => reason,
        }
    }
}

/// Replays `events` from `start` up to `until` (the last event index to
/// replay, inclusive; the end of the chain by default) on `component`.
pub async fn replay(
    engine: &Engine,
    component: &Component,
    events: &[ChainEvent],
    start: ReplayStart,
    until: Option<usize>,
) -> Result<ReplayReport, ReplayError> {
    let first = start.first();
    let last = until.unwrap_or(events.len().saturating_sub(1));
    // Starting right after `last` is allowed: there is nothing to replay.
    if first > events.len() || last >= events.len() || last + 1 < first {
        return Err(ReplayError::OutOfRange {
            first,
            until: last,
            len: events.len(),
        });
    }
    let mut replay = Replay {
        session: Session::new(engine, component).await?,
        events,
        feed_from: feed_start(events, first),
        kept: revert_targets(events, first, last),
        report: ReplayReport {
            events: 0,
            calls: 0,
            state: start.into_state(),
            divergence: None,
            stopped_at: None,
        },
    };
    if let Some(before) = first.checked_sub(1) {
        replay.keep(before);
    }
    for index in first..=last {
        replay.report.events += 1;
        let ended = match events[index].event_type.as_str() {
            CALL | CALL_ERROR => {
                let call = parse(events, index)?;
                replay.call(index, call).await?
            }
            ACTOR_INIT | ACTOR_RESUME => replay.init(index).await?,
            REVERT => replay.revert(index).await?,
            _ => None,
        };
        if let Some(ended) = ended {
            replay.end(ended);
            break;
        }
        replay.keep(index);
    }
    Ok(replay.report)
}

/// Why the replay ended, in the export being replayed.
type Ended = (Problem, String);

struct Replay<'a> {
    session: Session,
    events: &'a [ChainEvent],
    /// Where the feed of the next call begins.
    feed_from: usize,
    /// The states after the events that later `revert` events go back to.
    kept: HashMap<usize, Option<StateBytes>>,
    report: ReplayReport,
}

impl Replay<'_> {
    async fn call(
        &mut self,
        index: usize,
        call: RecordedCall,
    ) -> Result<Option<Ended>, ReplayError> {
        let feed = Feed::new(self.events, self.feed_from, index, call.trapped())?;
        self.feed_from = index + 1;
        let state = &self.report.state;
        let problem = match call::run(&mut self.session, &call, index, state, feed).await? {
            Replayed::Committed(state) => {
                self.report.state = state;
                self.report.calls += 1;
                None
            }
            Replayed::Failed => {
                self.report.calls += 1;
                None
            }
            Replayed::NotRun => None,
            Replayed::Problem(problem) => Some(problem),
        };
        Ok(problem.map(|problem| (problem, call.function)))
    }

    /// `actor-init` and `actor-resume`: the runtime ran `actor.init` on a
    /// fresh instance, on the state the actor had; its host calls and logs
    /// come before the event.
    async fn init(&mut self, index: usize) -> Result<Option<Ended>, ReplayError> {
        #[derive(Deserialize)]
        struct Started {
            actor_id: Option<String>,
            #[serde(default)]
            state: RecordedState,
        }
        let started: Started = parse(self.events, index)?;
        let Some(id) = started.actor_id.or_else(|| actor_id(self.events)) else {
            let reason = "the chain does not name its actor, whose id `actor.init` takes";
            return Ok(Some((
                Problem::Stopped(index, reason.to_owned()),
                INIT_FUNCTION.to_owned(),
            )));
        };
        self.session.refresh().await?;
        self.call(index, RecordedCall::init(&id, started.state))
            .await
    }

    /// A `revert` sets the state the event it names left: replay goes on
    /// if it replayed that event, on a fresh instance.
    async fn revert(&mut self, index: usize) -> Result<Option<Ended>, ReplayError> {
        let reverted: Reverted = parse(self.events, index)?;
        self.feed_from = index + 1;
        let reason = match self.kept.get(&reverted.index).cloned().flatten() {
            Some(state) => {
                let held = state_digest(&state);
                if held.as_deref() == reverted.state.sha256() {
                    self.report.state = state;
                    self.session.refresh().await?;
                    return Ok(None);
                }
                format!(
                    "it sets state {}, but replay left {} after event {}",
                    show_digest(reverted.state.sha256()),
                    show_digest(held.as_deref()),
                    reverted.index
                )
            }
            None => format!(
                "it goes back to the state of event {}, which this replay did not pass; replay from that state",
                reverted.index
            ),
        };
        Ok(Some((Problem::Stopped(index, reason), String::new())))
    }

    /// Keeps the state after `index` if a `revert` will need it.
    fn keep(&mut self, index: usize) {
        if let Some(slot) = self.kept.get_mut(&index) {
            *slot = Some(self.report.state.clone());
        }
    }

    fn end(&mut self, (problem, function): Ended) {
        let hash = |at: usize| hex::encode(self.events[at].hash);
        match problem {
            Problem::Diverged(index, reason) => {
                self.report.divergence = Some(Divergence {
                    index,
                    hash: hash(index),
                    function,
                    reason,
                });
            }
            Problem::Stopped(index, reason) => {
                self.report.stopped_at = Some(Stop {
                    index,
                    hash: hash(index),
                    reason,
                });
            }
        }
    }
}

#[derive(Deserialize)]
struct Reverted {
    index: usize,
    #[serde(default)]
    state: RecordedState,
}

/// The events that `revert` events in `first..=last` go back to, of those
/// whose state this replay holds: the one before `first` and later ones.
fn revert_targets(
    events: &[ChainEvent],
    first: usize,
    last: usize,
) -> HashMap<usize, Option<StateBytes>> {
    (first..=last)
        .filter(|&index| events[index].event_type == REVERT)
        .filter_map(|index| parse::<Reverted>(events, index).ok())
        .filter(|reverted| reverted.index + 1 >= first)
        .map(|reverted| (reverted.index, None))
        .collect()
}

/// The actor's id, from the chain's `actor-init` event.
fn actor_id(events: &[ChainEvent]) -> Option<String> {
    #[derive(Deserialize)]
    struct Init {
        actor_id: String,
    }
    let init = events.iter().position(|e| e.event_type == ACTOR_INIT)?;
    parse::<Init>(events, init).ok().map(|init| init.actor_id)
}

/// Host calls and logs recorded before `first` belong to the first call
/// from it on.
fn feed_start(events: &[ChainEvent], first: usize) -> usize {
    events[..first]
        .iter()
        .rposition(|e| e.event_type != HOST_CALL && e.event_type != LOG)
        .map_or(0, |at| at + 1)
}

/// A state as events record it: `{"sha256", "size"}`, or null for none.
#[derive(Default, Deserialize)]
#[serde(transparent)]
struct RecordedState(Option<RecordedDigest>);

#[derive(Deserialize)]
struct RecordedDigest {
    sha256: String,
}

impl RecordedState {
    fn sha256(&self) -> Option<&str> {
        self.0.as_ref().map(|digest| digest.sha256.as_str())
    }
}

/// The SHA-256 of a state, lowercase hex, as events record it.
fn state_digest(state: &StateBytes) -> Option<String> {
    state
        .as_ref()
        .map(|bytes| hex::encode(Sha256::digest(bytes)))
}

/// A digest for a message: its first 12 digits.
fn show_digest(digest: Option<&str>) -> String {
    match digest {
        Some(digest) => format!("sha256 {}…", digest.get(..12).unwrap_or(digest)),
        None => "none".to_owned(),
    }
}

fn parse<T: DeserializeOwned>(events: &[ChainEvent], index: usize) -> Result<T, ReplayError> {
    serde_json::from_str(events[index].data.get()).map_err(|e| ReplayError::BadEvent {
        index,
        hash: hex::encode(events[index].hash),
        reason: e.to_string(),
    })
}
