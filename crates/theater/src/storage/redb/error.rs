//! What can go wrong with the chain database: [`StorageError`] for the
//! database as a whole, [`Damage`] for one stored chain that does not
//! verify, [`WriteError`] for one request the writer did not store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::layout::FORMAT;
use crate::chain::{ExportError, VerifyError};
use crate::id::ActorId;
use crate::storage::codec::CodecError;

/// What is wrong with one stored chain, at its first bad event.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    #[error("event {index} cannot be read: {source}")]
    Unreadable { index: u64, source: CodecError },
    #[error("event {index} is missing: the next stored event has sequence number {found}")]
    Missing { index: u64, found: u64 },
    #[error("{0}")]
    Chain(VerifyError),
    #[error("the state stored for event {index} does not match it: {problem}")]
    State { index: u64, problem: StateDamage },
    #[error(
        "the head table records {recorded} events ending in {recorded_head}, but {stored} events are stored ending in {stored_head}"
    )]
    Head {
        recorded: u64,
        recorded_head: String,
        stored: u64,
        stored_head: String,
    },
}

impl Damage {
    /// Index (= sequence number) of the first bad event.
    pub fn first_bad_event(&self) -> u64 {
        match self {
            Self::Unreadable { index, .. }
            | Self::Missing { index, .. }
            | Self::State { index, .. } => *index,
            Self::Chain(error) => error.index() as u64,
            Self::Head {
                recorded, stored, ..
            } => (*recorded)
                .min(*stored)
                .min(recorded.max(stored).saturating_sub(1)),
        }
    }
}

/// Why a kept state does not match the event it is kept with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateDamage {
    #[error("{0}")]
    Reference(CodecError),
    #[error("the chain has only {events} events")]
    BeyondChain { events: usize },
    #[error("it names event {named}, but the event there is {found}")]
    OtherEvent { named: String, found: String },
    #[error("the event's data is not JSON: {0}")]
    DataNotJson(String),
    #[error("the event records no state")]
    NoStateRecorded,
    #[error("the state it names is not stored")]
    NotStored,
    #[error("the stored state does not hash to the digest it is kept under")]
    WrongDigest,
    #[error("the state it names was not read")]
    NotRead,
    #[error("the event records state {recorded}, the stored state is {stored}")]
    Differs { recorded: String, stored: String },
}

/// One damaged chain.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("chain of actor {actor}: {damage}")]
pub struct ChainDamage {
    pub actor: ActorId,
    pub damage: Damage,
}

/// The chain database failed, or holds something that does not verify.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot create the directory of the chain database {}: {source}", path.display())]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the chain database {}: {source}{hint}", path.display())]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
        hint: &'static str,
    },
    #[error(
        "cannot open the chain database {}: the file is damaged ({detail}); move it aside and restore it from a backup or from chain exports",
        path.display()
    )]
    Unreadable { path: PathBuf, detail: String },
    #[error(
        "the chain database {} has layout {found}; this version of Theater reads layout {FORMAT}",
        path.display()
    )]
    Format { path: PathBuf, found: u64 },
    #[error("the chain database {} failed: {source}", path.display())]
    Database { path: PathBuf, source: redb::Error },
    #[error("the chain database {} is damaged: {}", path.display(), list(chains))]
    Damaged {
        path: PathBuf,
        chains: Vec<ChainDamage>,
    },
    #[error("cannot import the chain into {}: {source}", path.display())]
    Import {
        path: PathBuf,
        source: Box<ImportError>,
    },
    #[error("cannot store in {}: cannot start the writer thread: {source}", path.display())]
    WriterStart {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot store in {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: Box<WriteError>,
    },
    #[error("the chain database {} is closed: its writer has stopped", path.display())]
    Closed { path: PathBuf },
}

fn list(chains: &[ChainDamage]) -> String {
    let shown: Vec<String> = chains.iter().map(ToString::to_string).collect();
    shown.join("; ")
}

impl StorageError {
    /// The damaged chains, if this error is about damage.
    pub fn damaged_chains(&self) -> &[ChainDamage] {
        match self {
            Self::Damaged { chains, .. } => chains,
            _ => &[],
        }
    }
}

/// Why an export was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("the export holds no events")]
    Empty,
    #[error("the chain of {actor} does not verify: {source}")]
    Unverified { actor: String, source: VerifyError },
    #[error(transparent)]
    Write(WriteError),
}

/// Why the writer did not store one request; the others of its batch may
/// have been stored.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "cannot append event {event} to the chain of actor {actor} in {}: it links to {links_to} but the chain's head is {head}",
        path.display()
    )]
    Unlinked {
        path: PathBuf,
        actor: ActorId,
        event: String,
        links_to: String,
        head: String,
    },
    #[error("actor {actor} already has a chain, which the imported one does not continue")]
    HasChain { actor: ActorId },
    #[error("the record of actor {actor} cannot be read: {source}")]
    BadRecord {
        actor: ActorId,
        source: serde_json::Error,
    },
    /// The whole batch's transaction failed: nothing of it was stored.
    #[error("{0}")]
    Batch(Arc<StorageError>),
}

/// Wraps redb's errors with the path of the database.
pub(super) fn failed<E: Into<redb::Error>>(path: &Path) -> impl Fn(E) -> StorageError + '_ {
    move |error| StorageError::Database {
        path: path.to_owned(),
        source: error.into(),
    }
}
