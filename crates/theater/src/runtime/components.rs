//! In a cluster, the component a new actor runs goes to the cluster's
//! store as it starts, and a node that takes an actor over runs it from
//! there: nodes need not keep the same files at the same paths, and an
//! actor that moves runs the very bytes it ran before.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::TheaterRuntime;
use crate::cluster::Cluster;
use crate::error::SpawnError;
use crate::files::{self, FileKind, FileRules};

/// Where a node keeps the components it fetched, under its home.
const COMPONENTS_DIR: &str = "components";

fn shared_failed(e: impl std::fmt::Display) -> SpawnError {
    SpawnError::Cluster(format!("its component: {e}"))
}

/// The component file at `path`, read off the runtime's threads.
async fn read_component(path: &Path, rules: &FileRules) -> Result<Vec<u8>, SpawnError> {
    let (path, rules) = (path.to_owned(), rules.clone());
    files::off_thread(move || files::read(&path, FileKind::Component, &rules))
        .await
        .map_err(|e| SpawnError::Component(e.into()))
}

impl TheaterRuntime {
    /// Keeps the component at `path`, compiled as `hash` (hex), in the
    /// cluster's store unless it holds it already. The file is read again
    /// under `rules`; one that changed since it was compiled is refused.
    pub(super) async fn share_component(
        &self,
        cluster: &Cluster,
        hash: &str,
        path: &Path,
        rules: &FileRules,
    ) -> Result<(), SpawnError> {
        let store = cluster.components();
        if store.holds(hash).await.map_err(shared_failed)? {
            return Ok(());
        }
        let bytes = read_component(path, rules).await?;
        if hex::encode(Sha256::digest(&bytes)) != hash {
            return Err(shared_failed(
                "the file changed while it started; start it again",
            ));
        }
        store.share(hash, &bytes).await.map_err(shared_failed)
    }

    /// Puts the component file at `path` in the cluster's store, for
    /// another node to start an actor from; its SHA-256 (hex). The file is
    /// read as an operator's manifest names it.
    pub async fn share_component_file(&self, path: &Path) -> Result<String, SpawnError> {
        let Some(cluster) = &self.inner.cluster else {
            return Err(SpawnError::Cluster("this node is in no cluster".into()));
        };
        let bytes = read_component(path, &self.file_rules()).await?;
        let hash = hex::encode(Sha256::digest(&bytes));
        let store = cluster.components();
        if !store.holds(&hash).await.map_err(shared_failed)? {
            store.share(&hash, &bytes).await.map_err(shared_failed)?;
        }
        Ok(hash)
    }

    /// This node's copy of component `hash` (hex), fetched from the
    /// cluster's store if it has none yet; `None` if the store holds no
    /// such component or this runtime keeps nothing on disk (the actor
    /// runs the file its manifest names).
    pub async fn local_component(
        &self,
        cluster: &Cluster,
        hash: &str,
    ) -> Result<Option<PathBuf>, SpawnError> {
        let Some(home) = self.home() else {
            return Ok(None);
        };
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(shared_failed(format_args!("`{hash}` is not a SHA-256")));
        }
        let dir = home.join(COMPONENTS_DIR);
        let copy = dir.join(format!("{hash}.wasm"));
        let exists = copy.clone();
        if files::off_thread(move || exists.is_file()).await {
            return Ok(Some(copy));
        }
        let limit = self.inner.files.component_bytes;
        let fetched = cluster.components().fetch(hash, limit).await;
        let Some(bytes) = fetched.map_err(shared_failed)? else {
            return Ok(None);
        };
        // Written whole under another name first: a node killed meanwhile
        // leaves no half a component under its hash.
        let partial = dir.join(format!("{hash}.wasm.{}", uuid::Uuid::new_v4()));
        let path = copy.clone();
        files::off_thread(move || {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&partial, bytes)?;
            std::fs::rename(&partial, &path)
        })
        .await
        .map_err(shared_failed)?;
        Ok(Some(copy))
    }
}
