//! Whole chains in and out of the database: export in the portable form
//! of [`ChainExport`], and import of a verified export under a new actor.

use super::RedbEventLog;
use super::error::{ImportError, StorageError};
use super::layout::key_of;
use super::writer::Request;
use crate::chain::{self, ChainExport};
use crate::id::ActorId;
use crate::storage::codec;

impl RedbEventLog {
    /// `actor`'s stored chain in the portable export format.
    pub fn export(&self, actor: &ActorId) -> Result<ChainExport, StorageError> {
        Ok(ChainExport::new(
            actor.to_string(),
            self.stored_events(actor)?,
        ))
    }

    /// Verifies `export` and stores its chain under a fresh actor id, which
    /// it returns. New events for that id link to the imported head. The
    /// id the chain itself vouches for (in its `actor-init` data) stays the
    /// original one.
    pub fn import(
        &self,
        export: &ChainExport,
    ) -> impl Future<Output = Result<ActorId, StorageError>> + Send + use<> {
        let actor = ActorId::new();
        let stored = self.import_as(actor, export);
        async move { stored.await.map(|()| actor) }
    }

    /// [`import`](Self::import) from the JSON text of an export.
    pub fn import_json(
        &self,
        json: &str,
    ) -> impl Future<Output = Result<ActorId, StorageError>> + Send + use<> {
        let stored = match ChainExport::from_json(json) {
            Ok(export) => Ok(self.import(&export)),
            Err(error) => Err(self.import_error(error.into())),
        };
        async move { stored?.await }
    }

    /// Verifies `export` and stores its chain as `actor`'s, which must have
    /// no chain yet.
    pub fn import_as(
        &self,
        actor: ActorId,
        export: &ChainExport,
    ) -> impl Future<Output = Result<(), StorageError>> + Send + use<> {
        let checked = check(export).map_err(|error| self.import_error(error));
        let answer = checked.map(|()| {
            let events = export
                .events
                .iter()
                .map(|event| (event.hash, codec::encode(event)))
                .collect();
            self.submit(|reply| Request::Import {
                actor: key_of(&actor),
                events,
                reply,
            })
        });
        let path = self.shared.path.clone();
        async move {
            answer?.wait().await?.map_err(|error| StorageError::Import {
                path,
                source: Box::new(ImportError::Write(error)),
            })
        }
    }

    fn import_error(&self, source: ImportError) -> StorageError {
        StorageError::Import {
            path: self.shared.path.clone(),
            source: Box::new(source),
        }
    }
}

/// Whether `export` may be imported: a format this version reads, at
/// least one event, and a chain that verifies.
fn check(export: &ChainExport) -> Result<(), ImportError> {
    export.check_format()?;
    if export.events.is_empty() {
        return Err(ImportError::Empty);
    }
    chain::verify(&export.events).map_err(|source| ImportError::Unverified {
        actor: export.actor_id.clone(),
        source,
    })
}
