//! The store: all live cluster state, behind one interface with two engines.
//!
//! - [`redb`](self::redb) (default): an embedded ACID file, `DATA_DIR/keel.redb`.
//! - [`etcd`](self::etcd): a real etcd cluster, for more than one control-plane machine.
//!
//! Objects are keyed by kind, namespace and name (etcd: `/keel/registry/<kind>/<ns>/<name>`,
//! with an empty namespace for cluster-scoped kinds) and stored as the JSON of
//! [`keel_schema::Object`].
//!
//! # Guarantees
//! - `resourceVersion` is a store-wide monotonic revision: every write transaction bumps it,
//!   every object carries the revision of its last write, and [`Store::list`] returns the
//!   revision it was taken at.
//! - Writes name the version they read: [`Store::update`] and [`Store::delete`] fail with
//!   [`StoreError::Conflict`] when the object changed since; [`Store::create`] fails when it
//!   exists.
//! - A [`Batch`] (one git revision) is applied whole or not at all. On redb it is one
//!   transaction. etcd caps a transaction at 128 operations, so there a batch is written in
//!   chunks behind a recorded intent; a process that dies mid-batch finishes (or, after a
//!   conflict, undoes) it when the store is opened again.
//! - [`Store::watch`] from a revision delivers every later change in order, none lost, or
//!   [`StoreError::Expired`] when that history is gone (as Kubernetes' 410 Gone): relist.
//!
//! # Assumptions
//! - One process owns a redb data dir (a second one gets [`StoreError::Locked`]).
//! - Nothing else writes under the store's etcd prefix.
//!
//! # Caveats
//! - On etcd, watchers see a batch's chunks as consecutive revisions, not one.

mod codec;
pub mod encryption;
pub mod etcd;
pub mod etcd_process;
pub mod redb;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;

use keel_schema::selector::Selector;
use keel_schema::{Kind, Object};
pub use keel_schema::{ObjectKey, SyncRecord, SyncResult};
use serde::{Deserialize, Serialize};

pub use watch::Watcher;

/// An object as stored, with the revision of its last write (also in
/// `metadata.resourceVersion`).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub object: Object,
    pub resource_version: u64,
}

/// The result of a list: the objects, and the store revision the list was taken at (watch
/// from there to follow it).
#[derive(Debug, Clone)]
pub struct ListResult {
    pub items: Vec<Stored>,
    pub revision: u64,
}

/// One page of a walk through a kind ([`Store::list_page`]).
#[derive(Debug, Clone)]
pub struct ObjectPage {
    /// In key order.
    pub items: Vec<Stored>,
    /// Where the next page starts (the last item's key path), when this page was full.
    pub next: Option<String>,
}

/// A list whose objects are shared rather than copied: the embedded store hands out the
/// copies its read cache holds, so a list of 100,000 pods kept for paging, or loaded into
/// the controllers' cache, costs pointers, not pods.
#[derive(Debug, Clone)]
pub struct SharedList {
    pub items: Vec<Arc<Stored>>,
    pub revision: u64,
}

impl SharedList {
    /// The objects copied out, for callers that change or keep them.
    pub fn copied(&self) -> ListResult {
        ListResult {
            items: self.items.iter().map(|s| Stored::clone(s)).collect(),
            revision: self.revision,
        }
    }
}

impl From<ListResult> for SharedList {
    fn from(list: ListResult) -> SharedList {
        SharedList {
            items: list.items.into_iter().map(Arc::new).collect(),
            revision: list.revision,
        }
    }
}

/// One write of a [`Batch`].
#[derive(Debug, Clone)]
pub enum BatchOp {
    /// Fails the batch if the object exists.
    Create(Object),
    /// Fails the batch unless the object is at `expected`.
    Update { object: Object, expected: u64 },
    /// Fails the batch if the object is absent, or not at `expected` when given.
    Delete {
        key: ObjectKey,
        expected: Option<u64>,
    },
}

impl BatchOp {
    pub fn key(&self) -> ObjectKey {
        match self {
            BatchOp::Create(o) | BatchOp::Update { object: o, .. } => ObjectKey::of(o),
            BatchOp::Delete { key, .. } => key.clone(),
        }
    }
}

/// Writes applied as one unit: one git revision is one batch.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// What the batch is, for logs and recovery (`revision 1a2b3c`).
    pub label: String,
    pub ops: Vec<BatchOp>,
    /// The sync history record written in the same transaction as the ops (a git revision's
    /// "applied"), so a crash cannot keep the objects and lose the record.
    pub record: Option<SyncRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchEventType {
    Added,
    Modified,
    Deleted,
}

/// One change, as a watcher sees it. For `Deleted`, the object is the last state before the
/// deletion and `revision` the revision of the deletion.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    pub event_type: WatchEventType,
    /// The object at `revision`. Shared: every watcher of the embedded store gets the one
    /// copy its read cache holds, not a copy each (the controllers' cache keeps it as is).
    pub stored: Arc<Stored>,
    pub revision: u64,
}

impl WatchEvent {
    pub fn new(event_type: WatchEventType, object: Object, revision: u64) -> WatchEvent {
        WatchEvent {
            event_type,
            stored: Arc::new(Stored {
                object,
                resource_version: revision,
            }),
            revision,
        }
    }

    pub fn object(&self) -> &Object {
        &self.stored.object
    }

    /// The object, copied only if someone else holds it too.
    pub fn into_object(self) -> Object {
        Arc::unwrap_or_clone(self.stored).object
    }
}

/// How many sync records are kept.
pub const HISTORY_LIMIT: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    AlreadyExists(ObjectKey),
    #[error("{0} not found")]
    NotFound(ObjectKey),
    #[error("conflict on {key}: expected resourceVersion {expected}, found {}", if *.actual == 0 { "none (deleted)".to_string() } else { .actual.to_string() })]
    Conflict {
        key: ObjectKey,
        expected: u64,
        actual: u64,
    },
    #[error(
        "watch from revision {requested} expired: changes up to revision {compacted} were compacted; list again and watch from the list's revision"
    )]
    Expired { requested: u64, compacted: u64 },
    #[error("data dir {0} is in use by another keel process")]
    Locked(PathBuf),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A write through a leader's fenced store after its term ended (see
    /// [`etcd::election`]): nothing was written.
    #[error("not the leader: {0}")]
    NotLeader(String),
    #[error("corrupt record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("store error: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which engine, from `--store` and `--data-dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// `DATA_DIR/keel.redb`.
    Redb { data_dir: PathBuf },
    /// `etcd://HOST:PORT[,HOST:PORT...]`.
    Etcd { endpoints: Vec<String> },
}

impl StoreSpec {
    /// `--store` as given (`None`: the embedded store in `data_dir`).
    pub fn parse(store: Option<&str>, data_dir: PathBuf) -> Result<Self> {
        let Some(spec) = store.filter(|s| !s.is_empty()) else {
            return Ok(StoreSpec::Redb { data_dir });
        };
        if spec == "redb" {
            return Ok(StoreSpec::Redb { data_dir });
        }
        let Some(rest) = spec.strip_prefix("etcd://") else {
            return Err(StoreError::Invalid(format!(
                "--store {spec:?}: expected `redb` or etcd://HOST:PORT[,HOST:PORT...]"
            )));
        };
        let endpoints: Vec<String> = rest
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| format!("http://{e}"))
            .collect();
        if endpoints.is_empty() {
            return Err(StoreError::Invalid(format!(
                "--store {spec:?} names no etcd endpoint"
            )));
        }
        Ok(StoreSpec::Etcd { endpoints })
    }
}

/// The store, whichever engine holds it. Cheap to clone.
#[derive(Clone)]
pub enum Store {
    Redb(redb::RedbStore),
    // Boxed: the etcd client is large and the redb handle is one pointer.
    Etcd(Box<etcd::EtcdStore>),
}

macro_rules! dispatch {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            Store::Redb($s) => $body,
            Store::Etcd($s) => $body,
        }
    };
}

impl Store {
    pub async fn open(spec: &StoreSpec) -> Result<Store> {
        Self::open_encrypted(spec, None).await
    }

    /// Opens the store, keeping Secrets encrypted with `cipher` when given.
    pub async fn open_encrypted(
        spec: &StoreSpec,
        cipher: Option<std::sync::Arc<encryption::SecretCipher>>,
    ) -> Result<Store> {
        match spec {
            StoreSpec::Redb { data_dir } => Ok(Store::Redb(
                redb::RedbStore::open_encrypted(data_dir, cipher).await?,
            )),
            StoreSpec::Etcd { endpoints } => {
                let store =
                    etcd::EtcdStore::connect_encrypted(endpoints, etcd::DEFAULT_PREFIX, cipher)
                        .await?;
                Ok(Store::Etcd(Box::new(store)))
            }
        }
    }

    pub async fn get(&self, key: &ObjectKey) -> Result<Option<Stored>> {
        Ok(self.get_shared(key).await?.map(Arc::unwrap_or_clone))
    }

    /// [`Store::get`] without copying the object out of the embedded store's cache: for
    /// readers that look before they change anything (most status reports change nothing).
    pub async fn get_shared(&self, key: &ObjectKey) -> Result<Option<Arc<Stored>>> {
        match self {
            Store::Redb(s) => s.get(key).await,
            Store::Etcd(s) => Ok(s.get(key).await?.map(Arc::new)),
        }
    }

    /// Objects of `kind`, optionally in one namespace and matching a label selector.
    pub async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: Option<&Selector>,
    ) -> Result<ListResult> {
        let mut result = match self {
            // Filtered before objects are copied out of its cache.
            Store::Redb(s) => return s.list(kind, namespace, selector).await,
            Store::Etcd(s) => s.list(kind, namespace).await?,
        };
        if let Some(sel) = selector {
            result
                .items
                .retain(|s| sel.matches(s.object.meta().labels()));
        }
        Ok(result)
    }

    /// Up to `limit` objects of `kind` (in `namespace`, or every namespace) whose key paths
    /// come after `after`, in key order: `after` is the `next` of the page before, or none
    /// for the first. The pages are not one snapshot. Whoever walks a large kind this way
    /// (the Events' expiry and their API pages) holds one page decoded at a time, not the
    /// whole kind.
    pub async fn list_page(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ObjectPage> {
        let limit = limit.max(1);
        let items = dispatch!(self, s => s.list_page(kind, namespace, after, limit).await)?;
        let next = (items.len() >= limit)
            .then(|| items.last().map(|s| ObjectKey::of(&s.object).path()))
            .flatten();
        Ok(ObjectPage { items, next })
    }

    /// Every object of every custom kind (those CustomResourceDefinitions declare), at one
    /// revision.
    pub async fn list_custom(&self) -> Result<ListResult> {
        dispatch!(self, s => s.list_custom().await)
    }

    /// Every object of every kind but Events, all at one revision (a consistent snapshot).
    /// Events are written for nearly every change and read by kind ([`Store::list`]); the
    /// embedded store keeps them out of its decoded cache, and whoever lists everything
    /// (the controllers' cache) does not want them.
    pub async fn list_all(&self) -> Result<SharedList> {
        match self {
            Store::Redb(s) => s.list_all().await,
            Store::Etcd(s) => Ok(s.list_all().await?.into()),
        }
    }

    /// [`Store::list`], sharing the objects rather than copying them.
    pub async fn list_shared(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: Option<&Selector>,
    ) -> Result<SharedList> {
        match self {
            Store::Redb(s) => s.list_shared(kind, namespace, selector).await,
            Store::Etcd(_) => Ok(self.list(kind, namespace, selector).await?.into()),
        }
    }

    pub async fn create(&self, object: Object) -> Result<Stored> {
        self.create_shared(object).await.map(Arc::unwrap_or_clone)
    }

    pub async fn update(&self, object: Object, expected: u64) -> Result<Stored> {
        self.update_shared(object, expected)
            .await
            .map(Arc::unwrap_or_clone)
    }

    /// Deletes `key` (when `expected`, only at that version); returns the object as it was,
    /// with the revision the delete was written at.
    pub async fn delete(&self, key: &ObjectKey, expected: Option<u64>) -> Result<Stored> {
        self.delete_shared(key, expected)
            .await
            .map(Arc::unwrap_or_clone)
    }

    /// [`Store::create`], returning the object as written without copying it out of the
    /// embedded store's cache: for writers that only need its revision, as most do (binds,
    /// status reports, Events: several writes per pod).
    pub async fn create_shared(&self, object: Object) -> Result<Arc<Stored>> {
        dispatch!(self, s => s.create(object).await)
    }

    /// [`Store::update`], returning the object as written without copying it.
    pub async fn update_shared(&self, object: Object, expected: u64) -> Result<Arc<Stored>> {
        dispatch!(self, s => s.update(object, expected).await)
    }

    /// [`Store::delete`], returning the object as it was without copying it.
    pub async fn delete_shared(
        &self,
        key: &ObjectKey,
        expected: Option<u64>,
    ) -> Result<Arc<Stored>> {
        dispatch!(self, s => s.delete(key, expected).await)
    }

    /// This store, writing only while the leader term `fence` holds (etcd); redb has one
    /// process and no terms, so there it is the store itself.
    pub fn fenced(&self, fence: Option<etcd::Fence>) -> Store {
        match (self, fence) {
            (Store::Etcd(s), Some(fence)) => Store::Etcd(Box::new(s.fenced(fence))),
            _ => self.clone(),
        }
    }

    /// The leader election named `name`, on etcd; `None` on redb (one process, always
    /// the leader).
    pub fn election(&self, name: &str) -> Option<etcd::Election> {
        match self {
            Store::Etcd(s) => Some(s.election(name)),
            Store::Redb(_) => None,
        }
    }

    /// Applies every op or none; returns the store revision after the batch.
    pub async fn apply_batch(&self, batch: Batch) -> Result<u64> {
        dispatch!(self, s => s.apply_batch(batch).await)
    }

    /// Every change after revision `from` (of `kind`, or of every kind), in order.
    pub async fn watch(&self, kind: Option<Kind>, from: u64) -> Result<Watcher> {
        dispatch!(self, s => s.watch(kind, from).await)
    }

    pub async fn revision(&self) -> Result<u64> {
        dispatch!(self, s => s.revision().await)
    }

    /// Drops the change history up to and including `revision`; watches from before it
    /// then expire.
    pub async fn compact(&self, revision: u64) -> Result<()> {
        dispatch!(self, s => s.compact(revision).await)
    }

    pub async fn record_sync(&self, record: SyncRecord) -> Result<()> {
        dispatch!(self, s => s.record_sync(record).await)
    }

    /// Sync records, newest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<SyncRecord>> {
        dispatch!(self, s => s.history(limit).await)
    }
}
