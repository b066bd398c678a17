//! The embedded engine: one redb file, `DATA_DIR/keel.redb`.
//!
//! Every write is one redb transaction, durable when it returns (fsync on commit), so a
//! `kill -9` at any moment leaves the last committed transaction and nothing half-written.
//! The store revision is a counter in the file; each transaction bumps it once. Changes are
//! also appended to a log table, which watchers replay from any retained revision, and
//! broadcast in process for live watchers.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use ::redb::{
    Database, DatabaseError, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table,
    TableDefinition,
};
use keel_schema::{Kind, Object};
use tokio::sync::{broadcast, mpsc};

use super::codec::{Prepared, decode, encode, kind_matches, prepare_op};
use super::encryption::SecretCipher;
use super::watch::{WATCH_BUFFER, Watcher};
use super::{
    Batch, BatchOp, HISTORY_LIMIT, ListResult, ObjectKey, Result, StoreError, Stored, SyncRecord,
    WatchEvent, WatchEventType,
};

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
}

/// Single writes waiting to be committed, and whether a committer is running.
#[derive(Default)]
struct PendingWrites {
    ops: Vec<(BatchOp, tokio::sync::oneshot::Sender<Result<Stored>>)>,
    committing: bool,
}

/// The most single writes one group-commit transaction takes.
const MAX_GROUP: usize = 1024;

#[derive(Default)]
struct Cache {
    objects: BTreeMap<String, Stored>,
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

/// The changes of one committed transaction.
struct ChangeSet {
    revision: u64,
    events: Vec<WatchEvent>,
}

#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn event_byte(t: WatchEventType) -> u8 {
    match t {
        WatchEventType::Added => 0,
        WatchEventType::Modified => 1,
        WatchEventType::Deleted => 2,
    }
}

fn byte_event(b: u8) -> WatchEventType {
    match b {
        0 => WatchEventType::Added,
        1 => WatchEventType::Modified,
        _ => WatchEventType::Deleted,
    }
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

/// One write transaction's view: the objects table, the committed state it starts from
/// (the read cache), the revision being written, and the changes made so far.
struct Tx<'t, 'c> {
    objects: Table<'t, &'static str, &'static [u8]>,
    committed: &'c BTreeMap<String, Stored>,
    /// What earlier ops of this transaction wrote (`None`: deleted). A batch names each key
    /// once, but grouped single writes may touch one key twice: the second then sees the
    /// first (and fails its precondition as it would have a moment later).
    written: HashMap<String, Option<Stored>>,
    revision: u64,
    events: Vec<(WatchEventType, Vec<u8>, Object)>,
    cipher: Option<&'c SecretCipher>,
}

impl Tx<'_, '_> {
    /// The object as this transaction sees it: its own writes, else the committed state.
    fn get(&self, key: &ObjectKey) -> Option<&Stored> {
        let path = key.path();
        match self.written.get(&path) {
            Some(written) => written.as_ref(),
            None => self.committed.get(&path),
        }
    }

    fn put(&mut self, mut object: Object, event: WatchEventType) -> Result<()> {
        let key = ObjectKey::of(&object);
        let json = encode(&object, self.cipher)?;
        let mut record = self.revision.to_le_bytes().to_vec();
        record.extend_from_slice(&json);
        self.objects
            .insert(key.path().as_str(), record.as_slice())
            .map_err(backend)?;
        object.meta_mut().resource_version = Some(self.revision.to_string());
        self.written.insert(
            key.path(),
            Some(Stored {
                object: object.clone(),
                resource_version: self.revision,
            }),
        );
        self.events.push((event, json, object));
        Ok(())
    }

    fn apply(&mut self, op: &BatchOp) -> Result<()> {
        let key = op.key();
        match prepare_op(op, self.get(&key))? {
            Prepared::Put(object, event) => self.put(*object, event),
            Prepared::Delete => {
                let old = self
                    .get(&key)
                    .ok_or_else(|| StoreError::NotFound(key.clone()))?;
                let json = encode(&old.object, self.cipher)?;
                let mut object = old.object.clone();
                self.objects.remove(key.path().as_str()).map_err(backend)?;
                self.written.insert(key.path(), None);
                object.meta_mut().resource_version = Some(self.revision.to_string());
                self.events.push((WatchEventType::Deleted, json, object));
                Ok(())
            }
        }
    }

    /// The object the last op wrote (for a delete: as it was, at the deletion's revision).
    fn last_written(&self) -> Result<Stored> {
        let (_, _, object) = self
            .events
            .last()
            .ok_or_else(|| backend("no write recorded"))?;
        Ok(Stored {
            object: object.clone(),
            resource_version: self.revision,
        })
    }
}

impl RedbStore {
    /// Opens (creating if needed) `data_dir/keel.redb`.
    pub async fn open(data_dir: &Path) -> Result<Self> {
        Self::open_encrypted(data_dir, None).await
    }

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
        let db = Database::create(&path).map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(data_dir.to_path_buf()),
            other => StoreError::Unavailable(format!("cannot open {}: {other}", path.display())),
        })?;
        let txn = db.begin_write().map_err(backend)?;
        {
            txn.open_table(OBJECTS).map_err(backend)?;
            txn.open_table(META).map_err(backend)?;
            txn.open_table(CHANGES).map_err(backend)?;
            txn.open_table(HISTORY).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        let cache = load_cache(&db, cipher.as_deref())?;
        let (events, _) = broadcast::channel(256);
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
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` in one write transaction at a new revision; commits only if it succeeds,
    /// then tells live watchers. Blocking: call from `spawn_blocking`.
    fn write<T>(inner: &Inner, f: impl FnOnce(&mut Tx<'_, '_>) -> Result<T>) -> Result<(T, u64)> {
        let _guard = inner.write.lock().unwrap_or_else(|p| p.into_inner());
        inner.check()?;
        let txn = inner.db.begin_write().map_err(backend)?;
        let (value, revision, events) = {
            let mut meta = txn.open_table(META).map_err(backend)?;
            let revision = meta
                .get("revision")
                .map_err(backend)?
                .map(|v| v.value())
                .unwrap_or(0)
                + 1;
            // Writers hold the write lock, so the cache is the committed state throughout.
            let cache = inner.cache.read().unwrap_or_else(|p| p.into_inner());
            let mut tx = Tx {
                objects: txn.open_table(OBJECTS).map_err(backend)?,
                committed: &cache.objects,
                written: HashMap::new(),
                revision,
                events: Vec::new(),
                cipher: inner.cipher.as_deref(),
            };
            // On error the transaction is dropped uncommitted: nothing is written.
            let value = f(&mut tx)?;
            if tx.events.is_empty() {
                // Nothing written (an empty batch, or grouped writes that all failed their
                // preconditions): no new revision.
                return Ok((value, revision - 1));
            }
            meta.insert("revision", revision).map_err(backend)?;
            let mut changes = txn.open_table(CHANGES).map_err(backend)?;
            let mut record = Vec::new();
            for (event, json, object) in &tx.events {
                let path = ObjectKey::of(object).path();
                record.push(event_byte(*event));
                record
                    .extend_from_slice(&u32::try_from(path.len()).map_err(backend)?.to_le_bytes());
                record.extend_from_slice(path.as_bytes());
                record
                    .extend_from_slice(&u32::try_from(json.len()).map_err(backend)?.to_le_bytes());
                record.extend_from_slice(json);
            }
            changes
                .insert(revision, record.as_slice())
                .map_err(backend)?;
            trim_changes(&mut changes, &mut meta)?;
            let Tx {
                objects,
                events: written,
                ..
            } = tx;
            drop(objects);
            drop(cache);
            let events: Vec<WatchEvent> = written
                .into_iter()
                .map(|(event_type, _, object)| WatchEvent {
                    event_type,
                    object,
                    revision,
                })
                .collect();
            (value, revision, events)
        };
        if let Err(e) = txn.commit() {
            // The commit may or may not have reached the disk: stop trusting the cache.
            inner.failed.store(true, Ordering::SeqCst);
            return Err(StoreError::Unavailable(format!(
                "commit to {} failed: {e}; restart keel",
                inner.path.display()
            )));
        }
        {
            let mut cache = inner.cache.write().unwrap_or_else(|p| {
                inner.failed.store(true, Ordering::SeqCst);
                p.into_inner()
            });
            for e in &events {
                let path = ObjectKey::of(&e.object).path();
                match e.event_type {
                    WatchEventType::Deleted => {
                        cache.objects.remove(&path);
                    }
                    WatchEventType::Added | WatchEventType::Modified => {
                        cache.objects.insert(
                            path,
                            Stored {
                                object: e.object.clone(),
                                resource_version: revision,
                            },
                        );
                    }
                }
            }
            cache.revision = revision;
        }
        // No receivers is fine: nobody is watching.
        let _ = inner.events.send(Arc::new(ChangeSet { revision, events }));
        Ok((value, revision))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(backend)?
    }

    pub async fn get(&self, key: &ObjectKey) -> Result<Option<Stored>> {
        let cache = self.inner.read_cache()?;
        Ok(cache.objects.get(&key.path()).cloned())
    }

    pub async fn list(&self, kind: Kind, namespace: Option<&str>) -> Result<ListResult> {
        let prefix = match namespace {
            Some(ns) => format!("{kind}/{ns}/"),
            None => format!("{kind}/"),
        };
        let cache = self.inner.read_cache()?;
        let items = cache
            .objects
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .map(|(_, stored)| stored.clone())
            .collect();
        Ok(ListResult {
            items,
            revision: cache.revision,
        })
    }

    /// Every object of every kind, at one revision.
    pub async fn list_all(&self) -> Result<ListResult> {
        let cache = self.inner.read_cache()?;
        Ok(ListResult {
            items: cache.objects.values().cloned().collect(),
            revision: cache.revision,
        })
    }

    pub async fn create(&self, object: Object) -> Result<Stored> {
        self.write_one(BatchOp::Create(object)).await
    }

    pub async fn update(&self, object: Object, expected: u64) -> Result<Stored> {
        self.write_one(BatchOp::Update { object, expected }).await
    }

    pub async fn delete(&self, key: &ObjectKey, expected: Option<u64>) -> Result<Stored> {
        let key = key.clone();
        self.write_one(BatchOp::Delete { key, expected }).await
    }

    /// One op, returning what it wrote (a delete: the last state). Single writes are
    /// group-committed: while one transaction commits, the writes that arrive meanwhile
    /// queue up and the next transaction takes them all, each op checked on its own (one
    /// failing precondition fails only that op). Each caller still returns only after its
    /// write is durable; many concurrent writers then cost one fsync, not one each.
    async fn write_one(&self, op: BatchOp) -> Result<Stored> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let lead = {
            let mut queue = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
            queue.ops.push((op, tx));
            !std::mem::replace(&mut queue.committing, true)
        };
        if lead {
            let inner = self.inner.clone();
            tokio::task::spawn_blocking(move || Self::commit_pending(&inner));
        }
        rx.await
            .map_err(|_| backend("the store's committer stopped"))?
    }

    /// Commits queued single writes, a group per transaction, until the queue is empty.
    fn commit_pending(inner: &Inner) {
        /// Should a commit panic, the next writer becomes the committer (and the writes
        /// queued now fail) rather than all writers waiting for ever.
        struct Release<'a>(&'a Inner);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    let mut queue = self.0.pending.lock().unwrap_or_else(|p| p.into_inner());
                    queue.committing = false;
                    for (_, reply) in queue.ops.drain(..) {
                        let _ = reply.send(Err(backend("the store's committer failed")));
                    }
                }
            }
        }
        let _release = Release(inner);
        loop {
            let group = {
                let mut queue = inner.pending.lock().unwrap_or_else(|p| p.into_inner());
                if queue.ops.is_empty() {
                    queue.committing = false;
                    return;
                }
                let take = queue.ops.len().min(MAX_GROUP);
                queue.ops.drain(..take).collect::<Vec<_>>()
            };
            let outcome = Self::write(inner, |tx| {
                let mut results = Vec::with_capacity(group.len());
                for (op, _) in &group {
                    match tx.apply(op).and_then(|()| tx.last_written()) {
                        // The engine itself failed: nothing of this group is committed.
                        Err(e @ StoreError::Backend(_)) => return Err(e),
                        result => results.push(result),
                    }
                }
                Ok(results)
            });
            match outcome {
                Ok((results, _)) => {
                    for ((_, reply), result) in group.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for (_, reply) in group {
                        let _ = reply.send(Err(match &e {
                            StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
                            _ => StoreError::Backend(message.clone()),
                        }));
                    }
                }
            }
        }
    }

    pub async fn apply_batch(&self, batch: Batch) -> Result<u64> {
        super::codec::check_distinct(&batch)?;
        self.blocking(move |inner| {
            let (_, revision) = Self::write(inner, |tx| {
                for op in &batch.ops {
                    tx.apply(op)?;
                }
                Ok(())
            })?;
            Ok(revision)
        })
        .await
    }

    pub async fn revision(&self) -> Result<u64> {
        self.blocking(|inner| read_meta(inner, "revision")).await
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
            {
                let mut history = txn.open_table(HISTORY).map_err(backend)?;
                let next = history
                    .last()
                    .map_err(backend)?
                    .map(|(k, _)| k.value() + 1)
                    .unwrap_or(1);
                history.insert(next, json.as_slice()).map_err(backend)?;
                while history.len().map_err(backend)? > HISTORY_LIMIT as u64 {
                    history.pop_first().map_err(backend)?;
                }
            }
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

    pub async fn watch(&self, kind: Option<Kind>, from: u64) -> Result<Watcher> {
        // Subscribe before replaying the log, so nothing committed in between is missed;
        // revisions seen twice are skipped.
        let mut live = self.inner.events.subscribe();
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let store = self.clone();
        let compacted = self.blocking(|inner| read_meta(inner, "compacted")).await?;
        if from < compacted {
            return Err(StoreError::Expired {
                requested: from,
                compacted,
            });
        }
        let task = tokio::spawn(async move {
            let mut last = from;
            let mut replay = true;
            loop {
                while replay {
                    match store.replay(kind, last, from).await {
                        Ok((events, upto, current)) => {
                            for e in events {
                                if tx.send(Ok(e)).await.is_err() {
                                    return;
                                }
                            }
                            last = last.max(upto);
                            replay = upto < current;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    }
                }
                match live.recv().await {
                    Ok(set) if set.revision <= last => {}
                    Ok(set) => {
                        for e in &set.events {
                            if kind_matches(kind, &ObjectKey::of(&e.object))
                                && tx.send(Ok(e.clone())).await.is_err()
                            {
                                return;
                            }
                        }
                        last = set.revision;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => replay = true,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Watcher::new(rx, task))
    }

    /// One page of logged changes after `after`: the events, the revision they run up
    /// to, and the store's current revision.
    async fn replay(
        &self,
        kind: Option<Kind>,
        after: u64,
        requested: u64,
    ) -> Result<(Vec<WatchEvent>, u64, u64)> {
        self.blocking(move |inner| {
            let txn = inner.db.begin_read().map_err(backend)?;
            let meta = txn.open_table(META).map_err(backend)?;
            let get = |k: &str| -> Result<u64> {
                Ok(meta
                    .get(k)
                    .map_err(backend)?
                    .map(|v| v.value())
                    .unwrap_or(0))
            };
            let (revision, compacted) = (get("revision")?, get("compacted")?);
            if after < compacted {
                return Err(StoreError::Expired {
                    requested,
                    compacted,
                });
            }
            let changes = txn.open_table(CHANGES).map_err(backend)?;
            let mut events = Vec::new();
            let mut upto = revision;
            for entry in changes.range(after + 1..).map_err(backend)? {
                let (k, v) = entry.map_err(backend)?;
                let rev = k.value();
                // One page at a time: a far-behind watcher never holds the whole log.
                if events.len() >= REPLAY_PAGE_EVENTS {
                    upto = rev - 1;
                    break;
                }
                for (event_type, path, json) in ChangeRecord(v.value()) {
                    let Some(key) = ObjectKey::from_path(path) else {
                        continue;
                    };
                    if kind_matches(kind, &key) {
                        events.push(WatchEvent {
                            event_type,
                            object: decode(path, json, rev, inner.cipher.as_deref())?.object,
                            revision: rev,
                        });
                    }
                }
            }
            Ok((events, upto, revision))
        })
        .await
    }
}

/// Decodes every stored object, for the read cache.
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
        let (rev, json) = split_record(path, v.value())?;
        cache
            .objects
            .insert(path.to_string(), decode(path, json, rev, cipher)?);
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

/// Keeps the change log under [`MAX_LOGGED_REVISIONS`], dropping the oldest transactions
/// and recording the newest revision dropped as `compacted`.
fn trim_changes(
    changes: &mut Table<'_, u64, &'static [u8]>,
    meta: &mut Table<'_, &'static str, u64>,
) -> Result<()> {
    let len = changes.len().map_err(backend)?;
    if len <= MAX_LOGGED_REVISIONS {
        return Ok(());
    }
    let mut compacted = meta
        .get("compacted")
        .map_err(backend)?
        .map(|v| v.value())
        .unwrap_or(0);
    for _ in 0..(len - MAX_LOGGED_REVISIONS) {
        let Some((k, _)) = changes.pop_first().map_err(backend)? else {
            break;
        };
        compacted = compacted.max(k.value());
    }
    meta.insert("compacted", compacted).map_err(backend)?;
    Ok(())
}

/// The entries of one change-log record. A malformed tail ends the iteration (records are
/// only ever written whole, inside the transaction that made them).
struct ChangeRecord<'a>(&'a [u8]);

impl<'a> Iterator for ChangeRecord<'a> {
    type Item = (WatchEventType, &'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        fn take<'b>(bytes: &mut &'b [u8], n: usize) -> Option<&'b [u8]> {
            let (head, tail) = (bytes.get(..n)?, bytes.get(n..)?);
            *bytes = tail;
            Some(head)
        }
        fn len(bytes: &mut &[u8]) -> Option<usize> {
            let raw: [u8; 4] = take(bytes, 4)?.try_into().ok()?;
            usize::try_from(u32::from_le_bytes(raw)).ok()
        }
        let bytes = &mut self.0;
        let t = *take(bytes, 1)?.first()?;
        let path_len = len(bytes)?;
        let path = std::str::from_utf8(take(bytes, path_len)?).ok()?;
        let json_len = len(bytes)?;
        let json = take(bytes, json_len)?;
        Some((byte_event(t), path, json))
    }
}
