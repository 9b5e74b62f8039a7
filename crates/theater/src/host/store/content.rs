//! The content store's data in one redb database: content addressed by
//! SHA-256 and labels naming it, kept apart per store id.
//!
//! Every call runs in one transaction, so a failed call changes nothing and
//! concurrent callers see each other's calls whole or not at all. redb is
//! blocking: call these from a blocking thread.

use std::path::Path;

use redb::backends::InMemoryBackend;
use redb::{
    Builder, Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, Value, WriteTransaction,
};
use sha2::{Digest, Sha256};

use super::checks::{
    MAX_CONTENT_BYTES, MAX_REFS_PER_LABEL, StoreError, checked_label, checked_ref,
    checked_store_id, unknown_content, unknown_label,
};

/// Memory redb may use to cache pages of one database. Guards the host
/// against a few large contents filling its memory with cache.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Content bytes by (store id, hash).
const CONTENT: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("content");
/// Content sizes by (store id, hash): existence checks, listings and totals
/// read these and never the bytes.
const SIZES: TableDefinition<(&str, &str), u64> = TableDefinition::new("content-sizes");
/// The hashes a label holds by (store id, label), oldest first.
const LABELS: TableDefinition<(&str, &str), Vec<&str>> = TableDefinition::new("labels");

/// One database of stores.
pub struct ContentStore {
    db: Database,
}

impl ContentStore {
    /// Opens (or creates) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = builder().create(path).map_err(|source| StoreError::Open {
            location: format!("at {}", path.display()),
            hint: match source {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    " (another process has it open: give each running Theater its own home)"
                }
                _ => "",
            },
            source,
        })?;
        Self::with_tables(db)
    }

    /// A database that lives in memory only.
    pub fn in_memory() -> Result<Self, StoreError> {
        let db = builder()
            .create_with_backend(InMemoryBackend::new())
            .map_err(|source| StoreError::Open {
                location: "in memory".into(),
                source,
                hint: "",
            })?;
        Self::with_tables(db)
    }

    /// Creates every table, so that read transactions always find them.
    fn with_tables(db: Database) -> Result<Self, StoreError> {
        let tx = db.begin_write()?;
        tx.open_table(CONTENT)?;
        tx.open_table(SIZES)?;
        tx.open_table(LABELS)?;
        tx.commit()?;
        Ok(Self { db })
    }

    /// A new store's id: a name no one has used. Every name is a store,
    /// empty until first written, so there is nothing to record.
    pub fn create_store(&self) -> Result<String, StoreError> {
        Ok(uuid::Uuid::new_v4().to_string())
    }

    /// Stores `content` and returns its hash; storing it again changes nothing.
    pub fn store(&self, store: &str, content: &[u8]) -> Result<String, StoreError> {
        self.write(store, |tx| put(tx, store, content))
    }

    pub fn get(&self, store: &str, hash: &str) -> Result<Vec<u8>, StoreError> {
        let hash = checked_ref(hash)?;
        self.read(store, |tx| {
            let content = tx.open_table(CONTENT)?;
            let bytes = content
                .get((store, hash))?
                .ok_or_else(|| unknown_content(store, hash))?;
            Ok(bytes.value().to_vec())
        })
    }

    pub fn exists(&self, store: &str, hash: &str) -> Result<bool, StoreError> {
        let hash = checked_ref(hash)?;
        self.read(store, |tx| {
            Ok(tx.open_table(SIZES)?.get((store, hash))?.is_some())
        })
    }

    /// Adds `hash` to `label` as its newest ref (moving it there if the
    /// label already holds it).
    pub fn label(&self, store: &str, label: &str, hash: &str) -> Result<(), StoreError> {
        let hash = checked_ref(hash)?;
        checked_label(label)?;
        self.write(store, |tx| {
            require_content(tx, store, hash)?;
            add_to_label(tx, store, label, hash)
        })
    }

    /// The newest ref of `label`.
    pub fn get_by_label(&self, store: &str, label: &str) -> Result<Option<String>, StoreError> {
        self.read(store, |tx| {
            let labels = tx.open_table(LABELS)?;
            let newest = labels
                .get((store, label))?
                .and_then(|refs| refs.value().last().map(|hash| hash.to_string()));
            Ok(newest)
        })
    }

    pub fn remove_label(&self, store: &str, label: &str) -> Result<(), StoreError> {
        self.write(store, |tx| {
            tx.open_table(LABELS)?
                .remove((store, label))?
                .map(|_| ())
                .ok_or_else(|| unknown_label(store, label))
        })
    }

    /// Takes `hash` off `label`; a label left with no ref is removed.
    pub fn remove_from_label(
        &self,
        store: &str,
        label: &str,
        hash: &str,
    ) -> Result<(), StoreError> {
        let hash = checked_ref(hash)?;
        self.write(store, |tx| {
            let mut refs =
                label_refs(tx, store, label)?.ok_or_else(|| unknown_label(store, label))?;
            let at =
                refs.iter()
                    .position(|r| r == hash)
                    .ok_or_else(|| StoreError::NotLabelled {
                        store: store.to_owned(),
                        label: label.to_owned(),
                        hash: hash.to_owned(),
                    })?;
            refs.remove(at);
            set_label(tx, store, label, &refs)
        })
    }

    /// Stores `content` and puts its ref at `label` as `at` says.
    pub fn store_at_label(
        &self,
        store: &str,
        label: &str,
        content: &[u8],
        at: AtLabel,
    ) -> Result<String, StoreError> {
        checked_label(label)?;
        self.write(store, |tx| {
            let hash = put(tx, store, content)?;
            match at {
                AtLabel::Add => add_to_label(tx, store, label, &hash)?,
                AtLabel::Replace => set_label(tx, store, label, &[hash.as_str()])?,
            }
            Ok(hash)
        })
    }

    /// Makes `hash` the only ref of `label`.
    pub fn replace_at_label(&self, store: &str, label: &str, hash: &str) -> Result<(), StoreError> {
        let hash = checked_ref(hash)?;
        checked_label(label)?;
        self.write(store, |tx| {
            require_content(tx, store, hash)?;
            set_label(tx, store, label, &[hash])
        })
    }

    /// Every label of the store, in order.
    pub fn list_labels(&self, store: &str) -> Result<Vec<String>, StoreError> {
        self.read(store, |tx| {
            scan(&tx.open_table(LABELS)?, store, |label, _| label.to_owned())
        })
    }

    /// The hash of every content of the store, in order.
    pub fn list_all_content(&self, store: &str) -> Result<Vec<String>, StoreError> {
        self.read(store, |tx| {
            scan(&tx.open_table(SIZES)?, store, |hash, _| hash.to_owned())
        })
    }

    /// The bytes of all content of the store, each content counted once.
    pub fn total_size(&self, store: &str) -> Result<u64, StoreError> {
        self.read(store, |tx| {
            let sizes = scan(&tx.open_table(SIZES)?, store, |_, size| size)?;
            Ok(sizes.into_iter().sum())
        })
    }

    /// Runs `f` in a read transaction on the store named `store`.
    fn read<T>(
        &self,
        store: &str,
        f: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        checked_store_id(store)?;
        f(&self.db.begin_read()?)
    }

    /// Runs `f` in a write transaction on the store named `store`, and
    /// commits only if it succeeds.
    fn write<T>(
        &self,
        store: &str,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        checked_store_id(store)?;
        let tx = self.db.begin_write()?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }
}

fn builder() -> Builder {
    let mut builder = Builder::new();
    builder.set_cache_size(CACHE_BYTES);
    builder
}

/// Stores `content` unless the store has it; returns its hash.
fn put(tx: &WriteTransaction, store: &str, content: &[u8]) -> Result<String, StoreError> {
    if content.len() > MAX_CONTENT_BYTES {
        return Err(StoreError::TooLarge {
            size: content.len(),
        });
    }
    let hash = hex::encode(Sha256::digest(content));
    let mut sizes = tx.open_table(SIZES)?;
    if sizes.get((store, hash.as_str()))?.is_none() {
        sizes.insert((store, hash.as_str()), content.len() as u64)?;
        tx.open_table(CONTENT)?
            .insert((store, hash.as_str()), content)?;
    }
    Ok(hash)
}

fn require_content(tx: &WriteTransaction, store: &str, hash: &str) -> Result<(), StoreError> {
    match tx.open_table(SIZES)?.get((store, hash))? {
        Some(_) => Ok(()),
        None => Err(unknown_content(store, hash)),
    }
}

fn label_refs(
    tx: &WriteTransaction,
    store: &str,
    label: &str,
) -> Result<Option<Vec<String>>, StoreError> {
    let labels = tx.open_table(LABELS)?;
    let refs = labels
        .get((store, label))?
        .map(|refs| refs.value().into_iter().map(str::to_owned).collect());
    Ok(refs)
}

/// Where [`ContentStore::store_at_label`] puts the new ref.
#[derive(Debug, Clone, Copy)]
pub enum AtLabel {
    /// Beside the label's others, as its newest.
    Add,
    /// In place of the label's others.
    Replace,
}

fn add_to_label(
    tx: &WriteTransaction,
    store: &str,
    label: &str,
    hash: &str,
) -> Result<(), StoreError> {
    let mut refs = label_refs(tx, store, label)?.unwrap_or_default();
    refs.retain(|r| r != hash);
    if refs.len() >= MAX_REFS_PER_LABEL {
        return Err(StoreError::LabelFull {
            store: store.to_owned(),
            label: label.to_owned(),
        });
    }
    refs.push(hash.to_owned());
    set_label(tx, store, label, &refs)
}

/// Sets the refs of `label`; no refs removes it.
fn set_label(
    tx: &WriteTransaction,
    store: &str,
    label: &str,
    refs: &[impl AsRef<str>],
) -> Result<(), StoreError> {
    let mut labels = tx.open_table(LABELS)?;
    if refs.is_empty() {
        labels.remove((store, label))?;
    } else {
        let refs: Vec<&str> = refs.iter().map(AsRef::as_ref).collect();
        labels.insert((store, label), refs)?;
    }
    Ok(())
}

/// Maps each entry of `store` in a table keyed by (store id, name).
fn scan<V: Value + 'static, T>(
    table: &ReadOnlyTable<(&'static str, &'static str), V>,
    store: &str,
    mut each: impl FnMut(&str, V::SelfType<'_>) -> T,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for entry in table.range((store, "")..)? {
        let (key, value) = entry?;
        let (owner, name) = key.value();
        if owner != store {
            break;
        }
        out.push(each(name, value.value()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::store::checks::{MAX_LABEL_BYTES, MAX_STORE_ID_BYTES};

    fn sha(content: &[u8]) -> String {
        hex::encode(Sha256::digest(content))
    }

    #[test]
    fn content_is_addressed_by_sha256_and_kept_per_store() {
        let db = ContentStore::in_memory().unwrap();
        let a = db.create_store().unwrap();
        let b = db.create_store().unwrap();
        let hash = db.store(&a, b"hello").unwrap();
        assert_eq!(hash, sha(b"hello"));
        assert_eq!(db.store(&a, b"hello").unwrap(), hash);
        assert_eq!(db.get(&a, &hash).unwrap(), b"hello");
        assert!(db.exists(&a, &hash).unwrap());
        assert!(!db.exists(&b, &hash).unwrap());
        assert!(matches!(
            db.get(&b, &hash),
            Err(StoreError::UnknownContent { .. })
        ));
        db.store(&a, b"hi").unwrap();
        assert_eq!(db.total_size(&a).unwrap(), 7);
        let mut all = vec![sha(b"hello"), sha(b"hi")];
        all.sort();
        assert_eq!(db.list_all_content(&a).unwrap(), all);
        assert!(db.list_all_content(&b).unwrap().is_empty());
    }

    #[test]
    fn labels_hold_refs_newest_last() {
        let db = ContentStore::in_memory().unwrap();
        let s = db.create_store().unwrap();
        let one = db.store_at_label(&s, "doc", b"1", AtLabel::Add).unwrap();
        let two = db.store_at_label(&s, "doc", b"2", AtLabel::Add).unwrap();
        assert_eq!(db.get_by_label(&s, "doc").unwrap(), Some(two.clone()));
        db.label(&s, "doc", &one).unwrap();
        assert_eq!(db.get_by_label(&s, "doc").unwrap(), Some(one.clone()));
        db.remove_from_label(&s, "doc", &one).unwrap();
        assert_eq!(db.get_by_label(&s, "doc").unwrap(), Some(two.clone()));
        assert!(matches!(
            db.remove_from_label(&s, "doc", &one),
            Err(StoreError::NotLabelled { .. })
        ));
        db.remove_from_label(&s, "doc", &two).unwrap();
        assert_eq!(db.get_by_label(&s, "doc").unwrap(), None);
        assert!(db.list_labels(&s).unwrap().is_empty());

        let three = db.store_at_label(&s, "b", b"3", AtLabel::Replace).unwrap();
        db.label(&s, "b", &one).unwrap();
        db.replace_at_label(&s, "b", &three).unwrap();
        db.remove_from_label(&s, "b", &three).unwrap();
        assert_eq!(db.get_by_label(&s, "b").unwrap(), None);
        db.label(&s, "a", &one).unwrap();
        db.label(&s, "c", &one).unwrap();
        assert_eq!(db.list_labels(&s).unwrap(), ["a", "c"]);
        db.remove_label(&s, "a").unwrap();
        assert!(matches!(
            db.remove_label(&s, "a"),
            Err(StoreError::UnknownLabel { .. })
        ));
    }

    #[test]
    fn bad_input_is_refused_and_changes_nothing() {
        let db = ContentStore::in_memory().unwrap();
        let s = db.create_store().unwrap();
        assert!(matches!(db.store("", b"x"), Err(StoreError::EmptyStoreId)));
        let long = "s".repeat(MAX_STORE_ID_BYTES + 1);
        assert!(matches!(
            db.list_labels(&long),
            Err(StoreError::StoreIdTooLong { .. })
        ));
        assert!(matches!(db.get(&s, "abc"), Err(StoreError::BadRef(_))));
        let missing = sha(b"never stored");
        assert!(matches!(
            db.label(&s, "l", &missing),
            Err(StoreError::UnknownContent { .. })
        ));
        let long = "x".repeat(MAX_LABEL_BYTES + 1);
        assert!(matches!(
            db.store_at_label(&s, &long, b"x", AtLabel::Add),
            Err(StoreError::LabelTooLong { .. })
        ));
        let big = vec![0; MAX_CONTENT_BYTES + 1];
        assert!(matches!(
            db.store_at_label(&s, "big", &big, AtLabel::Add),
            Err(StoreError::TooLarge { .. })
        ));
        assert!(db.list_labels(&s).unwrap().is_empty());
        assert_eq!(db.total_size(&s).unwrap(), 0);
    }

    #[test]
    fn a_store_id_is_a_name_and_the_store_exists_from_its_first_use() {
        let db = ContentStore::in_memory().unwrap();
        assert!(db.list_labels("docs").unwrap().is_empty());
        assert_eq!(db.get_by_label("docs", "readme").unwrap(), None);
        assert_eq!(db.total_size("docs").unwrap(), 0);
        let hash = db
            .store_at_label("docs", "guide/intro", b"hi", AtLabel::Add)
            .unwrap();
        assert_eq!(db.get("docs", &hash).unwrap(), b"hi");
        assert_eq!(db.list_labels("docs").unwrap(), ["guide/intro"]);
        assert!(db.list_labels("doc").unwrap().is_empty());
        // Ids `new` makes name stores no one else uses.
        assert_ne!(db.create_store().unwrap(), db.create_store().unwrap());
    }

    #[test]
    fn a_label_holds_a_bounded_number_of_refs() {
        let db = ContentStore::in_memory().unwrap();
        let s = db.create_store().unwrap();
        for i in 0..MAX_REFS_PER_LABEL {
            db.store_at_label(&s, "many", i.to_string().as_bytes(), AtLabel::Add)
                .unwrap();
        }
        assert!(matches!(
            db.store_at_label(&s, "many", b"one more", AtLabel::Add),
            Err(StoreError::LabelFull { .. })
        ));
        // Moving a ref it holds to the newest place is no growth.
        let first = sha(b"0");
        db.label(&s, "many", &first).unwrap();
        assert_eq!(db.get_by_label(&s, "many").unwrap(), Some(first));
    }

    #[test]
    fn data_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let (s, hash) = {
            let db = ContentStore::open(&path).unwrap();
            let s = db.create_store().unwrap();
            (
                s.clone(),
                db.store_at_label(&s, "k", b"kept", AtLabel::Add).unwrap(),
            )
        };
        let db = ContentStore::open(&path).unwrap();
        assert_eq!(db.get_by_label(&s, "k").unwrap(), Some(hash.clone()));
        assert_eq!(db.get(&s, &hash).unwrap(), b"kept");
    }
}
