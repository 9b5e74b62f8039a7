//! How each actor of the cluster was started, kept in the `theater-actors`
//! bucket, so that any node can start it again from its chain. The bytes
//! are the actor's record as the runtime writes it; this module does not
//! look inside.

use async_nats::jetstream::kv;
use bytes::Bytes;

use super::{ClusterError, actor_token};

/// The cluster's actor records.
#[derive(Clone)]
pub struct ActorRecords {
    kv: kv::Store,
}

impl ActorRecords {
    pub(super) fn new(kv: kv::Store) -> Self {
        Self { kv }
    }

    /// Keeps (or replaces) `actor`'s record.
    pub async fn put(&self, actor: &str, record: Bytes) -> Result<(), ClusterError> {
        self.kv
            .put(actor_token(actor)?, record)
            .await
            .map(|_| ())
            .map_err(|e| ClusterError::jetstream("keeping an actor's record", e))
    }

    /// `actor`'s record, if the cluster keeps one.
    pub async fn get(&self, actor: &str) -> Result<Option<Bytes>, ClusterError> {
        self.kv
            .get(actor_token(actor)?)
            .await
            .map_err(|e| ClusterError::jetstream("reading an actor's record", e))
    }

    /// Forgets `actor`'s record: it will not be started again.
    pub async fn delete(&self, actor: &str) -> Result<(), ClusterError> {
        self.kv
            .purge(actor_token(actor)?)
            .await
            .map_err(|e| ClusterError::jetstream("forgetting an actor's record", e))
    }
}
