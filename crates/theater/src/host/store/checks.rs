//! What a store call may ask for (its limits, and well-formed refs, store
//! ids and labels), and how a call fails.

/// Largest content one call may store. Guards the database, and the actor's
/// chain of calls behind it, against a guest that writes without bound.
pub const MAX_CONTENT_BYTES: usize = 64 * 1024 * 1024;
/// Longest store id. Guards against a guest that keeps its data in store
/// ids, which every content and label of the store repeats in its key.
pub const MAX_STORE_ID_BYTES: usize = 1024;
/// Longest label. Guards against a guest that keeps its data in label names,
/// which every `list-labels` returns whole.
pub const MAX_LABEL_BYTES: usize = 1024;
/// Most refs one label holds. Guards against a guest that labels without
/// end: every label write rewrites the label's whole list.
pub const MAX_REFS_PER_LABEL: usize = 1024;
/// A store call that failed; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a store id must not be empty: name the store, or use the id `store.new()` returns")]
    EmptyStoreId,
    #[error("a store id of {len} bytes is longer than the limit of {MAX_STORE_ID_BYTES} bytes")]
    StoreIdTooLong { len: usize },
    #[error("no content {hash} in store {store}: store it first with `store.store`")]
    UnknownContent { store: String, hash: String },
    #[error("no label `{label}` in store {store}")]
    UnknownLabel { store: String, label: String },
    #[error("label `{label}` in store {store} does not hold content {hash}")]
    NotLabelled {
        store: String,
        label: String,
        hash: String,
    },
    #[error(
        "`{0}` is not a content ref: expected the 64 lowercase hex digits of a SHA-256, as `store.store` returns"
    )]
    BadRef(String),
    #[error(
        "content of {size} bytes is larger than the store's limit of {MAX_CONTENT_BYTES} bytes: store it in smaller pieces"
    )]
    TooLarge { size: usize },
    #[error("a label of {len} bytes is longer than the limit of {MAX_LABEL_BYTES} bytes")]
    LabelTooLong { len: usize },
    #[error(
        "label `{label}` in store {store} already holds {MAX_REFS_PER_LABEL} refs: remove some with `remove-from-label`, or use `replace-at-label`"
    )]
    LabelFull { store: String, label: String },
    #[error("the runtime is shutting down and its content store is closed")]
    ShuttingDown,
    #[error("cannot keep the content store in the Theater home {}: {reason}", home.display())]
    Home {
        home: std::path::PathBuf,
        reason: String,
    },
    #[error("cannot open the content store {location}: {source}{hint}")]
    Open {
        location: String,
        source: redb::DatabaseError,
        hint: &'static str,
    },
    #[error("the content store's database failed: {0}")]
    Database(#[from] redb::Error),
}

/// Turns every redb error into [`StoreError::Database`].
macro_rules! database_errors {
    ($($error:ty),*) => {$(
        impl From<$error> for StoreError {
            fn from(error: $error) -> Self {
                Self::Database(error.into())
            }
        }
    )*};
}
database_errors!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError
);

/// Most characters of a malformed ref an error repeats: a guest may pass
/// any string, and errors are recorded in its chain.
const SHOWN_REF_CHARS: usize = 80;

pub(super) fn checked_ref(hash: &str) -> Result<&str, StoreError> {
    let is_sha256 =
        hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if is_sha256 {
        Ok(hash)
    } else {
        let shown: String = hash.chars().take(SHOWN_REF_CHARS).collect();
        Err(StoreError::BadRef(shown))
    }
}

/// Store ids are names: any non-empty string within the limit.
pub(super) fn checked_store_id(store: &str) -> Result<(), StoreError> {
    if store.is_empty() {
        return Err(StoreError::EmptyStoreId);
    }
    if store.len() > MAX_STORE_ID_BYTES {
        return Err(StoreError::StoreIdTooLong { len: store.len() });
    }
    Ok(())
}

pub(super) fn checked_label(label: &str) -> Result<(), StoreError> {
    if label.len() > MAX_LABEL_BYTES {
        return Err(StoreError::LabelTooLong { len: label.len() });
    }
    Ok(())
}

pub(super) fn unknown_content(store: &str, hash: &str) -> StoreError {
    StoreError::UnknownContent {
        store: store.to_owned(),
        hash: hash.to_owned(),
    }
}

pub(super) fn unknown_label(store: &str, label: &str) -> StoreError {
    StoreError::UnknownLabel {
        store: store.to_owned(),
        label: label.to_owned(),
    }
}
