//! The components the cluster's actors run, kept in the JetStream object
//! store `theater-components` under the SHA-256 (hex) of their bytes, so
//! that a node taking an actor over runs the very component it started
//! with, wherever that node's files are.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, object_store};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::{ClusterError, streams};

/// The object store bucket.
const COMPONENTS_BUCKET: &str = "theater-components";
const OPENING: &str = "opening the component store";

/// The cluster's components.
#[derive(Clone)]
pub struct SharedComponents {
    store: object_store::ObjectStore,
    /// Hashes this node knows the store holds: each is checked once.
    known: Arc<Mutex<HashSet<String>>>,
}

impl SharedComponents {
    /// Opens the bucket, creating it with `replicas` copies if needed.
    pub(super) async fn open(
        js: &jetstream::Context,
        replicas: usize,
    ) -> Result<Self, ClusterError> {
        let failed = |e: &dyn std::fmt::Display| ClusterError::jetstream(OPENING, e);
        if js.get_object_store(COMPONENTS_BUCKET).await.is_err() {
            let config = object_store::Config {
                bucket: COMPONENTS_BUCKET.to_owned(),
                num_replicas: replicas,
                ..Default::default()
            };
            js.create_object_store(config)
                .await
                .map_err(|e| failed(&e))?;
        }
        let mut stream = js
            .get_stream(format!("OBJ_{COMPONENTS_BUCKET}"))
            .await
            .map_err(|e| failed(&e))?;
        streams::read_from_leader(js, &mut stream, OPENING).await?;
        // Opened again, to read as the stream now says.
        let store = js
            .get_object_store(COMPONENTS_BUCKET)
            .await
            .map_err(|e| failed(&e))?;
        Ok(Self {
            store,
            known: Arc::default(),
        })
    }

    /// Notes that the store holds component `hash`.
    fn remember(&self, hash: &str) {
        let mut known = self.known.lock().expect("known lock");
        known.insert(hash.to_owned());
    }

    /// Whether the store holds component `hash` (hex), as this node last
    /// saw; cheap after the first time.
    pub async fn holds(&self, hash: &str) -> Result<bool, ClusterError> {
        if self.known.lock().expect("known lock").contains(hash) {
            return Ok(true);
        }
        match self.store.info(hash).await {
            Ok(_) => {
                self.remember(hash);
                Ok(true)
            }
            Err(e) if e.kind() == object_store::InfoErrorKind::NotFound => Ok(false),
            Err(e) => Err(ClusterError::jetstream("looking up a component", e)),
        }
    }

    /// Keeps `bytes`, whose SHA-256 (hex) is `hash`.
    pub async fn share(&self, hash: &str, bytes: &[u8]) -> Result<(), ClusterError> {
        self.store
            .put(hash, &mut &bytes[..])
            .await
            .map_err(|e| ClusterError::jetstream("keeping a component", e))?;
        self.remember(hash);
        Ok(())
    }

    /// Component `hash` (hex), if the store holds it; refused if it is
    /// larger than `max_bytes` or its bytes do not hash to `hash`.
    pub async fn fetch(&self, hash: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, ClusterError> {
        let failed = |e: &dyn std::fmt::Display| ClusterError::jetstream("reading a component", e);
        let mut object = match self.store.get(hash).await {
            Ok(object) => object,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed(&e)),
        };
        if object.info().size as u64 > max_bytes {
            let size = object.info().size;
            return Err(failed(&format_args!(
                "component {hash} is {size} bytes, more than this node's limit of {max_bytes} (`--max-component-bytes`)"
            )));
        }
        let mut bytes = Vec::with_capacity(object.info().size);
        (&mut object)
            .take(max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| failed(&e))?;
        if bytes.len() as u64 > max_bytes || hex::encode(Sha256::digest(&bytes)) != hash {
            return Err(failed(&format_args!(
                "the store's component {hash} does not hash to its name"
            )));
        }
        self.remember(hash);
        Ok(Some(bytes))
    }
}
