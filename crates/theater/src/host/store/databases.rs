//! Which database holds the stores of a runtime: `<home>/store.redb`, or
//! one in memory for a runtime without a home.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use super::checks::StoreError;
use super::content::ContentStore;

/// The database file under a runtime's home.
pub const STORE_FILE: &str = "store.redb";

/// Database files open in this process. A file can be open only once at a
/// time, so runtimes that share a home share its database; the runtimes
/// hold it open, this only finds it.
static OPEN_FILES: LazyLock<Mutex<HashMap<PathBuf, Weak<ContentStore>>>> =
    LazyLock::new(Mutex::default);

/// The databases one store handler uses, by runtime home (`None`: the
/// runtime has none). Each stays open as long as the handler, that is the
/// runtime, lives.
#[derive(Default)]
pub struct Databases {
    open: Mutex<HashMap<Option<PathBuf>, Arc<ContentStore>>>,
}

impl Databases {
    /// The database of the runtime whose home is `home`, opened on first use.
    /// Blocks: opening a file may have to repair it.
    pub fn for_home(&self, home: Option<&Path>) -> Result<Arc<ContentStore>, StoreError> {
        let key = home.map(Path::to_owned);
        let mut open = self.open.lock().expect("store databases lock");
        if let Some(db) = open.get(&key) {
            return Ok(db.clone());
        }
        let db = match home {
            Some(home) => shared_file(home)?,
            None => Arc::new(ContentStore::in_memory()?),
        };
        open.insert(key, db.clone());
        Ok(db)
    }
}

/// The database file of `home`, opened once per process.
fn shared_file(home: &Path) -> Result<Arc<ContentStore>, StoreError> {
    let path = std::fs::create_dir_all(home)
        .and_then(|()| home.canonicalize())
        .map_err(|e| StoreError::Home {
            home: home.to_owned(),
            reason: e.to_string(),
        })?
        .join(STORE_FILE);
    let mut files = OPEN_FILES.lock().expect("open store files lock");
    let closing = match files.get(&path) {
        Some(known) => match known.upgrade() {
            Some(db) => return Ok(db),
            None => true,
        },
        None => false,
    };
    let db = Arc::new(open_file(&path, closing)?);
    files.insert(path, Arc::downgrade(&db));
    Ok(db)
}

/// How long to wait for a database this process is still closing (its
/// last user is gone, its file lock not yet released) before reporting it
/// as open elsewhere. Covers a runtime restarted in the same process.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How often to try again meanwhile.
const CLOSE_POLL: Duration = Duration::from_millis(10);

/// Opens the file at `path`; if this process was `closing` it, tries again
/// until the close has released the file.
fn open_file(path: &Path, closing: bool) -> Result<ContentStore, StoreError> {
    let started = Instant::now();
    loop {
        match ContentStore::open(path) {
            Err(StoreError::Open {
                source: redb::DatabaseError::DatabaseAlreadyOpen,
                ..
            }) if closing && started.elapsed() < CLOSE_WAIT => std::thread::sleep(CLOSE_POLL),
            opened => return opened,
        }
    }
}
