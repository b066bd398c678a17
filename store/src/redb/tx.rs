//! One write transaction: its view of the objects (the committed cache plus its own
//! writes), the change-log record it appends, and the cache and watchers it updates once
//! committed.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ::redb::{ReadableTable, ReadableTableMetadata, Table};
use keel_schema::Object;

use super::log::{ChangeSet, event_byte};
use super::on_disk::on_disk_only;
use super::{
    CHANGES, Inner, MAX_LOGGED_REVISIONS, META, OBJECTS, RedbStore, backend, split_record,
};
use crate::codec::{Prepared, decode, encode, prepare_op};
use crate::encryption::SecretCipher;
use crate::{BatchOp, ObjectKey, Result, StoreError, Stored, WatchEvent, WatchEventType};

/// One write transaction's view: the objects table, the committed state it starts from
/// (the read cache), the revision being written, and the changes made so far.
pub(super) struct Tx<'t, 'c> {
    objects: Table<'t, &'static str, &'static [u8]>,
    committed: &'c BTreeMap<String, Arc<Stored>>,
    /// What earlier ops of this transaction wrote (`None`: deleted). A batch names each key
    /// once, but grouped single writes may touch one key twice: the second then sees the
    /// first (and fails its precondition as it would have a moment later).
    written: HashMap<String, Option<Arc<Stored>>>,
    revision: u64,
    /// Each change, its JSON (for the change log) and the object as written: the one copy
    /// the cache, the watchers and the writer all share.
    events: Vec<(WatchEventType, Vec<u8>, Arc<Stored>)>,
    cipher: Option<&'c SecretCipher>,
    /// A sync record (JSON) to append to the history in this transaction, if it writes.
    pub(super) history: Option<Vec<u8>>,
}

impl Tx<'_, '_> {
    /// The object as this transaction sees it: its own writes, else the committed state
    /// (the cache, or the file for objects not cached).
    fn get(&self, key: &ObjectKey) -> Result<Option<Cow<'_, Stored>>> {
        let path = key.path();
        if let Some(written) = self.written.get(&path) {
            return Ok(written.as_deref().map(Cow::Borrowed));
        }
        if !on_disk_only(&path) {
            return Ok(self.committed.get(&path).map(|s| Cow::Borrowed(&**s)));
        }
        let Some(value) = self.objects.get(path.as_str()).map_err(backend)? else {
            return Ok(None);
        };
        let (revision, json) = split_record(&path, value.value())?;
        Ok(Some(Cow::Owned(decode(
            &path,
            json,
            revision,
            self.cipher,
        )?)))
    }

    fn put(&mut self, mut object: Object, event: WatchEventType) -> Result<()> {
        let key = ObjectKey::of(&object);
        let json = encode(&mut object, self.cipher)?;
        let mut record = self.revision.to_le_bytes().to_vec();
        record.extend_from_slice(&json);
        self.objects
            .insert(key.path().as_str(), record.as_slice())
            .map_err(backend)?;
        object.meta_mut().resource_version = Some(self.revision.to_string());
        let stored = Arc::new(Stored {
            object,
            resource_version: self.revision,
        });
        self.written.insert(key.path(), Some(stored.clone()));
        self.events.push((event, json, stored));
        Ok(())
    }

    pub(super) fn apply(&mut self, op: BatchOp) -> Result<()> {
        let key = op.key();
        let prepared = prepare_op(op, self.get(&key)?.as_deref())?;
        match prepared {
            Prepared::Put(object, event) => self.put(*object, event),
            Prepared::Delete => {
                let old = self
                    .get(&key)?
                    .ok_or_else(|| StoreError::NotFound(key.clone()))?
                    .into_owned();
                let mut object = old.object;
                let json = encode(&mut object, self.cipher)?;
                self.objects.remove(key.path().as_str()).map_err(backend)?;
                self.written.insert(key.path(), None);
                object.meta_mut().resource_version = Some(self.revision.to_string());
                let stored = Arc::new(Stored {
                    object,
                    resource_version: self.revision,
                });
                self.events.push((WatchEventType::Deleted, json, stored));
                Ok(())
            }
        }
    }

    /// The object the last op wrote (for a delete: as it was, at the deletion's revision),
    /// shared: the writer copies it out on its own task, not the committer's.
    pub(super) fn last_written(&self) -> Result<Arc<Stored>> {
        let (_, _, stored) = self
            .events
            .last()
            .ok_or_else(|| backend("no write recorded"))?;
        Ok(stored.clone())
    }
}

impl RedbStore {
    /// Runs `f` in one write transaction at a new revision; commits only if it succeeds,
    /// then tells live watchers. Blocking: call from `spawn_blocking`.
    pub(super) fn write<T>(
        inner: &Inner,
        f: impl FnOnce(&mut Tx<'_, '_>) -> Result<T>,
    ) -> Result<(T, u64)> {
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
                history: None,
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
            changes
                .insert(revision, change_record(&tx.events)?.as_slice())
                .map_err(backend)?;
            trim_changes(&mut changes, &mut meta)?;
            if let Some(record) = tx.history.take() {
                super::append_history(&txn, &record)?;
            }
            let Tx {
                objects,
                events: written,
                ..
            } = tx;
            drop(objects);
            drop(cache);
            // Into a Vec of its own size: `collect` would reuse `written`'s buffer, sized
            // for the JSON too, and the live watchers' ring keeps the last 64 of these.
            let mut events = Vec::with_capacity(written.len());
            events.extend(
                written
                    .into_iter()
                    .map(|(event_type, _, stored)| WatchEvent {
                        event_type,
                        stored,
                        revision,
                    }),
            );
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
        refresh_cache(inner, &events, revision);
        // No receivers is fine: nobody is watching.
        let _ = inner.events.send(Arc::new(ChangeSet { revision, events }));
        Ok((value, revision))
    }
}

/// A transaction's changes as one change-log record: each
/// `[type u8][key len u32][key][json len u32][json]`.
fn change_record(events: &[(WatchEventType, Vec<u8>, Arc<Stored>)]) -> Result<Vec<u8>> {
    let mut record = Vec::new();
    for (event, json, stored) in events {
        let path = ObjectKey::of(&stored.object).path();
        record.push(event_byte(*event));
        record.extend_from_slice(&u32::try_from(path.len()).map_err(backend)?.to_le_bytes());
        record.extend_from_slice(path.as_bytes());
        record.extend_from_slice(&u32::try_from(json.len()).map_err(backend)?.to_le_bytes());
        record.extend_from_slice(json);
    }
    Ok(record)
}

/// The read cache after a commit: it shows what was just committed, at its revision (a
/// poisoned lock means the cache may disagree with the file: every call fails from then).
fn refresh_cache(inner: &Inner, events: &[WatchEvent], revision: u64) {
    let mut cache = inner.cache.write().unwrap_or_else(|p| {
        inner.failed.store(true, Ordering::SeqCst);
        p.into_inner()
    });
    for e in events {
        let path = ObjectKey::of(e.object()).path();
        match e.event_type {
            WatchEventType::Deleted => {
                cache.objects.remove(&path);
            }
            // Read from the file when asked for, never cached.
            WatchEventType::Added | WatchEventType::Modified if on_disk_only(&path) => {}
            // The watchers' copy: one decoded object for the cache and every watcher.
            WatchEventType::Added | WatchEventType::Modified => {
                cache.objects.insert(path, e.stored.clone());
            }
        }
    }
    cache.revision = revision;
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
