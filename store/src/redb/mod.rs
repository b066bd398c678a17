//! The embedded engine: one redb file, `DATA_DIR/keel.redb`.
//!
//! Every write is one redb transaction, durable when it returns (fsync on commit), so a
//! `kill -9` at any moment leaves the last committed transaction and nothing half-written.
//! The store revision is a counter in the file; each transaction bumps it once. Changes are
//! also appended to a log table, which watchers replay from any retained revision, and
//! broadcast in process for live watchers.

mod group;
mod log;
mod on_disk;
mod tx;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use ::redb::{
    Database, DatabaseError, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};
use keel_schema::selector::Selector;
use keel_schema::{Kind, Object};
use tokio::sync::broadcast;

use super::codec::decode;
use super::encryption::SecretCipher;
use super::{
    Batch, BatchOp, HISTORY_LIMIT, ListResult, ObjectKey, Result, SharedList, StoreError, Stored,
    SyncRecord,
};
use group::PendingWrites;
use log::ChangeSet;

/// `kind/namespace/name` → revision (8 bytes, little-endian) followed by the object's JSON.
const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
/// `revision` (the store revision) and `compacted` (the newest revision no longer in the log).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// revision → the transaction's changes, each `[type u8][key len u32][key][json len u32][json]`
/// (one record per transaction keeps a 10,000-object batch one insert, not 10,000).
const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
/// sequence → a sync record as JSON.
const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");

/// Events read per replay page.
const REPLAY_PAGE_EVENTS: usize = 10_000;

/// Transactions kept in the change log for watchers that fall behind (oldest trimmed first).
pub const MAX_LOGGED_REVISIONS: u64 = 10_000;

pub const FILE_NAME: &str = "keel.redb";

/// Committed transactions held for live watchers (each up to a group commit's 1,024
/// changes). A watcher further behind replays from the change log instead; a longer ring
/// would keep that many superseded objects alive in memory for nothing.
const LIVE_TRANSACTIONS: usize = 64;

/// redb's page cache. Reads are served from the decoded cache of every object (below), so
/// pages are read back only to write and to replay the change log: redb's default of 1 GiB
/// would hold the whole file (objects and the log's 10,000 transactions) resident for
/// nothing.
const PAGE_CACHE_BYTES: usize = 16 << 20;

struct Inner {
    db: Database,
    path: PathBuf,
    /// Serialises commit-and-broadcast so live watchers see revisions in order.
    write: Mutex<()>,
    events: broadcast::Sender<Arc<ChangeSet>>,
    /// Every object, decoded, as of `revision`: reads are served from here (as Kubernetes'
    /// API server serves them from its watch cache). Updated right after each commit, under
    /// the write lock, so it is always the committed state.
    cache: RwLock<Cache>,
    /// Set when a commit failed or the cache may be inconsistent: the file and the cache
    /// can no longer be trusted to agree, so every call fails until keel restarts (which
    /// reloads both from the file).
    failed: AtomicBool,
    /// Single writes waiting for the next group commit.
    pending: Mutex<PendingWrites>,
    /// Encrypts Secrets at rest (`--encryption-key-file`).
    cipher: Option<Arc<SecretCipher>>,
    /// Work on the file other than group commits (reads of Events, batches) runs
    /// [`BLOCKING_AT_ONCE`] calls at a time.
    blocking: tokio::sync::Semaphore,
}

/// How many calls work on the file at once, each on a thread of its own. A burst of Event
/// reads (5,000 agents registering again after a restart, each node's `RegisteredNode`
/// already there to be counted up) started a thread for each read, ~100 at once; every
/// thread kept its own partly used pages of the objects it made, and the control plane's
/// RSS settled 150-200 MiB higher than with a few. The reads are short and the machine has
/// few cores: waiting for a slot costs less than a thread each.
const BLOCKING_AT_ONCE: usize = 4;

#[derive(Default)]
struct Cache {
    objects: BTreeMap<String, Arc<Stored>>,
    revision: u64,
}

impl Inner {
    fn check(&self) -> Result<()> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(format!(
                "the store at {} failed earlier and may not match its cache; restart keel",
                self.path.display()
            )));
        }
        Ok(())
    }

    fn read_cache(&self) -> Result<RwLockReadGuard<'_, Cache>> {
        self.check()?;
        self.cache.read().map_err(|_| {
            self.failed.store(true, Ordering::SeqCst);
            StoreError::Unavailable("the store's cache was left inconsistent; restart keel".into())
        })
    }
}

#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn split_record<'b>(key: &str, bytes: &'b [u8]) -> Result<(u64, &'b [u8])> {
    if bytes.len() < 8 {
        return Err(StoreError::Corrupt {
            key: key.to_string(),
            reason: "record shorter than its header".into(),
        });
    }
    let (rev, json) = bytes.split_at(8);
    let mut raw = [0u8; 8];
    raw.copy_from_slice(rev);
    Ok((u64::from_le_bytes(raw), json))
}

impl RedbStore {
    /// Opens the store, encrypting Secrets with `cipher` when given.
    pub async fn open_encrypted(
        data_dir: &Path,
        cipher: Option<Arc<SecretCipher>>,
    ) -> Result<Self> {
        let data_dir = data_dir.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(&data_dir, cipher))
            .await
            .map_err(backend)?
    }

    fn open_blocking(data_dir: &Path, cipher: Option<Arc<SecretCipher>>) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot create data dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(FILE_NAME);
        let db = ::redb::Builder::new()
            .set_cache_size(PAGE_CACHE_BYTES)
            .create(&path)
            .map_err(|e| match e {
                DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(data_dir.to_path_buf()),
                other => {
                    StoreError::Unavailable(format!("cannot open {}: {other}", path.display()))
                }
            })?;
        // Secrets are in this file (sealed only with --encryption-key-file): the owner's
        // alone, however the umask made it or an older keel left it.
        for (p, mode) in [(data_dir, 0o700), (path.as_path(), 0o600)] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(|e| {
                StoreError::Unavailable(format!("cannot make {} private: {e}", p.display()))
            })?;
        }
        let txn = db.begin_write().map_err(backend)?;
        {
            txn.open_table(OBJECTS).map_err(backend)?;
            txn.open_table(META).map_err(backend)?;
            txn.open_table(CHANGES).map_err(backend)?;
            txn.open_table(HISTORY).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        let cache = load_cache(&db, cipher.as_deref())?;
        let (events, _) = broadcast::channel(LIVE_TRANSACTIONS);
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                path,
                write: Mutex::new(()),
                events,
                cache: RwLock::new(cache),
                failed: AtomicBool::new(false),
                pending: Mutex::default(),
                cipher,
                blocking: tokio::sync::Semaphore::new(BLOCKING_AT_ONCE),
            }),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        let _slot = self
            .inner
            .blocking
            .acquire()
            .await
            .map_err(|_| backend("the store is closed"))?;
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(backend)?
    }

    /// The object at `key`: the cache's copy itself, or (for kinds kept only on disk) one
    /// read from the file.
    pub async fn get(&self, key: &ObjectKey) -> Result<Option<Arc<Stored>>> {
        let path = key.path();
        if on_disk::on_disk_only(&path) {
            return self
                .blocking(move |inner| on_disk::read_one(inner, &path))
                .await
                .map(|found| found.map(Arc::new));
        }
        let cache = self.inner.read_cache()?;
        Ok(cache.objects.get(&path).cloned())
    }

    /// The objects of `kind` (in `namespace`) that `selector` matches: only those are copied
    /// out, so a list of the few git-managed objects among 100,000 pods copies the few.
    pub async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: Option<&Selector>,
    ) -> Result<ListResult> {
        let prefix = prefix_of(kind, namespace);
        if on_disk::on_disk_only(&prefix) {
            return self.read_from_disk(prefix, selector).await;
        }
        Ok(self.list_under(prefix, selector)?.copied())
    }

    /// [`RedbStore::list`], sharing the cache's copies.
    pub async fn list_shared(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: Option<&Selector>,
    ) -> Result<SharedList> {
        let prefix = prefix_of(kind, namespace);
        if on_disk::on_disk_only(&prefix) {
            return Ok(self.read_from_disk(prefix, selector).await?.into());
        }
        self.list_under(prefix, selector)
    }

    /// [`crate::Store::list_page`]: up to `limit` objects of `kind` after the key path `after`.
    pub async fn list_page(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Stored>> {
        let prefix = prefix_of(kind, namespace);
        let after = after.map(str::to_string);
        if on_disk::on_disk_only(&prefix) {
            return self
                .blocking(move |inner| on_disk::read_page(inner, &prefix, after.as_deref(), limit))
                .await;
        }
        let cache = self.inner.read_cache()?;
        let start = match &after {
            Some(a) if *a >= prefix => std::ops::Bound::Excluded(a.clone()),
            _ => std::ops::Bound::Included(prefix.clone()),
        };
        Ok(cache
            .objects
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|(path, _)| path.starts_with(&prefix))
            .take(limit)
            .map(|(_, stored)| Stored::clone(stored))
            .collect())
    }

    async fn read_from_disk(
        &self,
        prefix: String,
        selector: Option<&Selector>,
    ) -> Result<ListResult> {
        let selector = selector.cloned();
        self.blocking(move |inner| on_disk::read_under(inner, &prefix, selector.as_ref()))
            .await
    }

    /// Every object of every custom kind, at one revision.
    pub async fn list_custom(&self) -> Result<ListResult> {
        Ok(self
            .list_under(keel_schema::kinds::custom::KEY_PREFIX.to_string(), None)?
            .copied())
    }

    fn list_under(&self, prefix: String, selector: Option<&Selector>) -> Result<SharedList> {
        let cache = self.inner.read_cache()?;
        let items = cache
            .objects
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .filter(|(_, stored)| selector.is_none_or(|s| s.matches(stored.object.meta().labels())))
            .map(|(_, stored)| stored.clone())
            .collect();
        Ok(SharedList {
            items,
            revision: cache.revision,
        })
    }

    /// Every object of every kind but Events (they are not cached; list them by kind), at
    /// one revision.
    pub async fn list_all(&self) -> Result<SharedList> {
        let cache = self.inner.read_cache()?;
        Ok(SharedList {
            items: cache.objects.values().cloned().collect(),
            revision: cache.revision,
        })
    }

    pub async fn create(&self, object: Object) -> Result<Arc<Stored>> {
        self.write_one(BatchOp::Create(object)).await
    }

    pub async fn update(&self, object: Object, expected: u64) -> Result<Arc<Stored>> {
        self.write_one(BatchOp::Update { object, expected }).await
    }

    pub async fn delete(&self, key: &ObjectKey, expected: Option<u64>) -> Result<Arc<Stored>> {
        let key = key.clone();
        self.write_one(BatchOp::Delete { key, expected }).await
    }

    pub async fn apply_batch(&self, batch: Batch) -> Result<u64> {
        super::codec::check_distinct(&batch)?;
        let record = batch
            .record
            .as_ref()
            .map(serde_json::to_vec)
            .transpose()
            .map_err(backend)?;
        self.blocking(move |inner| {
            let (_, revision) = Self::write(inner, |tx| {
                for op in batch.ops {
                    tx.apply(op)?;
                }
                tx.history = record;
                Ok(())
            })?;
            Ok(revision)
        })
        .await
    }

    /// The committed revision, as reads see it (the cache follows each commit).
    pub async fn revision(&self) -> Result<u64> {
        Ok(self.inner.read_cache()?.revision)
    }

    pub async fn compact(&self, upto: u64) -> Result<()> {
        self.blocking(move |inner| {
            let _guard = inner.write.lock().unwrap_or_else(|p| p.into_inner());
            let txn = inner.db.begin_write().map_err(backend)?;
            {
                let mut changes = txn.open_table(CHANGES).map_err(backend)?;
                let mut meta = txn.open_table(META).map_err(backend)?;
                // Never past the present: a future mark would expire every fresh watch.
                let current = meta
                    .get("revision")
                    .map_err(backend)?
                    .map(|v| v.value())
                    .unwrap_or(0);
                let upto = upto.min(current);
                loop {
                    let oldest = changes.first().map_err(backend)?.map(|(k, _)| k.value());
                    match oldest {
                        Some(rev) if rev <= upto => {
                            changes.pop_first().map_err(backend)?;
                        }
                        _ => break,
                    }
                }
                let compacted = meta
                    .get("compacted")
                    .map_err(backend)?
                    .map(|v| v.value())
                    .unwrap_or(0);
                meta.insert("compacted", compacted.max(upto))
                    .map_err(backend)?;
            }
            txn.commit().map_err(backend)
        })
        .await
    }

    pub async fn record_sync(&self, record: SyncRecord) -> Result<()> {
        let json = serde_json::to_vec(&record).map_err(backend)?;
        self.blocking(move |inner| {
            let _guard = inner.write.lock().unwrap_or_else(|p| p.into_inner());
            let txn = inner.db.begin_write().map_err(backend)?;
            append_history(&txn, &json)?;
            txn.commit().map_err(backend)
        })
        .await
    }

    pub async fn history(&self, limit: usize) -> Result<Vec<SyncRecord>> {
        self.blocking(move |inner| {
            let txn = inner.db.begin_read().map_err(backend)?;
            let history = txn.open_table(HISTORY).map_err(backend)?;
            let mut out = Vec::new();
            for entry in history.iter().map_err(backend)?.rev().take(limit) {
                let (k, v) = entry.map_err(backend)?;
                let record =
                    serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt {
                        key: format!("history/{}", k.value()),
                        reason: e.to_string(),
                    })?;
                out.push(record);
            }
            Ok(out)
        })
        .await
    }
}

/// Where the keys of `kind` (in `namespace`) start.
fn prefix_of(kind: Kind, namespace: Option<&str>) -> String {
    let kind = kind.key_segment();
    match namespace {
        Some(ns) => format!("{kind}/{ns}/"),
        None => format!("{kind}/"),
    }
}

/// Decodes every stored object but those read from the file when asked for, for the read
/// cache.
fn load_cache(db: &Database, cipher: Option<&SecretCipher>) -> Result<Cache> {
    let txn = db.begin_read().map_err(backend)?;
    let meta = txn.open_table(META).map_err(backend)?;
    let revision = meta
        .get("revision")
        .map_err(backend)?
        .map(|v| v.value())
        .unwrap_or(0);
    let objects = txn.open_table(OBJECTS).map_err(backend)?;
    let mut cache = Cache {
        objects: BTreeMap::new(),
        revision,
    };
    for entry in objects.iter().map_err(backend)? {
        let (k, v) = entry.map_err(backend)?;
        let path = k.value();
        if on_disk::on_disk_only(path) {
            continue;
        }
        let (rev, json) = split_record(path, v.value())?;
        cache
            .objects
            .insert(path.to_string(), Arc::new(decode(path, json, rev, cipher)?));
    }
    Ok(cache)
}

fn read_meta(inner: &Inner, key: &str) -> Result<u64> {
    let txn = inner.db.begin_read().map_err(backend)?;
    let meta = txn.open_table(META).map_err(backend)?;
    Ok(meta
        .get(key)
        .map_err(backend)?
        .map(|v| v.value())
        .unwrap_or(0))
}

/// Appends a sync record to the history in `txn`, dropping the oldest past the limit.
pub(super) fn append_history(txn: &::redb::WriteTransaction, json: &[u8]) -> Result<()> {
    let mut history = txn.open_table(HISTORY).map_err(backend)?;
    let next = history
        .last()
        .map_err(backend)?
        .map(|(k, _)| k.value() + 1)
        .unwrap_or(1);
    history.insert(next, json).map_err(backend)?;
    while history.len().map_err(backend)? > HISTORY_LIMIT as u64 {
        history.pop_first().map_err(backend)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A burst of calls on the file waits for slots instead of starting a thread for each.
    #[tokio::test]
    async fn calls_on_the_file_run_a_few_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open_encrypted(dir.path(), None).await.unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let (store, running, most) = (store.clone(), running.clone(), most.clone());
            calls.spawn(async move {
                store
                    .blocking(move |_| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
            });
        }
        while let Some(done) = calls.join_next().await {
            done.unwrap().unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!(most <= BLOCKING_AT_ONCE, "{most} at once");
        assert!(most > 1, "they still run side by side");
    }
}
