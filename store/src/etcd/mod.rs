//! The distributed engine: a real etcd cluster through etcd-client.
//!
//! Objects live at `<prefix>/registry/<kind>/<ns>/<name>`; an object's `mod_revision` is its
//! resourceVersion and etcd's revision is the store revision. Compare-and-swap is an etcd
//! transaction comparing `mod_revision` (or `create_revision == 0` for "must not exist").
//!
//! etcd caps a transaction at 128 operations and a request at 1.5 MiB, so a large batch is
//! written in chunks behind an intent, which is also a lock:
//! 1. every chunk's operations (new value, expected revision, previous value) are written
//!    under `<prefix>/intent/data/<id>/` (values over [`SIDE_BYTES`] in keys of their own),
//!    then the head `<prefix>/intent/head` names them;
//! 2. each chunk is one transaction that also checks every expected revision and advances
//!    the head;
//! 3. the head and data are deleted at the end.
//!
//! While a head exists no other write succeeds (every write compares that the head is
//! absent), so nothing is built on a half-applied revision and an undo restores everything.
//! If a chunk meets a conflict, the chunks already written are undone and the batch fails
//! naming the conflicting object. A batch is driven on its own task, so a caller that gives
//! up does not abandon it; a process that dies anywhere in between leaves the head, and the
//! next write or [`EtcdStore::connect`] finishes the batch (or its undo) first.
//!
//! Several control planes share one etcd through [`election`]: one leader writes, and a
//! store handle [`fenced`](EtcdStore::fenced) with its term makes every transaction also
//! compare the election key, so a leader that lost its lease (paused, partitioned) has
//! every later write refused with [`StoreError::NotLeader`]. Unfenced handles (API writes,
//! which any server may make) take turns with the leader through the batch lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, KvClient, LeaseClient, Txn,
    TxnOp, TxnOpResponse, TxnResponse, WatchClient,
};
use keel_schema::{Kind, Object};
use serde::Serialize;

mod batch;
pub mod election;
mod history;
mod retry;
mod watch;

pub use election::{Campaign, Election, Fence};
use retry::again;
#[cfg(test)]
use retry::{REFUSED_RETRIES, UNSENT_RETRIES, refused_for_load, unsent};

use super::codec::{Prepared, decode, encode, prepare_op};
use super::encryption::SecretCipher;
use super::{BatchOp, ListResult, ObjectKey, Result, StoreError, Stored};

pub const DEFAULT_PREFIX: &str = "/keel";
/// Operations per chunk transaction (etcd's default limit is 128; the head's update and
/// compare take one more each).
const CHUNK_OPS: usize = 100;
/// Inline value bytes per chunk (etcd's default request limit is 1.5 MiB).
const CHUNK_BYTES: usize = 600 * 1024;
/// Values larger than this go to intent keys of their own.
pub const SIDE_BYTES: usize = 256 * 1024;
/// Keys per page when listing.
const PAGE: i64 = 500;
/// Undo operations per transaction (each is a nested transaction).
const UNDO_OPS: usize = 40;
/// Largest gRPC reply accepted (tonic's default of 4 MiB is too small for a page of large
/// objects or a watch catching up).
const MAX_MESSAGE: usize = 256 * 1024 * 1024;
/// Revisions of history kept by the background compactor, and how often it runs.
const KEEP_REVISIONS: i64 = 100_000;
const COMPACT_EVERY: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    lease: LeaseClient,
    prefix: String,
    /// When set, every transaction also requires this leader term to still hold.
    fence: Option<Fence>,
    endpoints: String,
    _compactor: Arc<AbortOnDrop>,
    /// Encrypts Secrets at rest (`--encryption-key-file`).
    cipher: Option<Arc<SecretCipher>>,
}

/// Stops the background compactor when the last handle to the store goes.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// One planned write of a batch, in memory.
#[derive(Debug, Clone)]
struct Op {
    key: String,
    /// The key's expected `mod_revision`; 0 means it must not exist.
    expect: i64,
    /// The new value; `None` deletes.
    value: Option<Vec<u8>>,
    /// The value before the batch, to undo with.
    before: Option<Vec<u8>>,
}

fn backoff(attempt: u32) -> Duration {
    retry::doubling(Duration::from_millis(200), Duration::from_secs(5), attempt)
}

impl EtcdStore {
    /// Connects (retrying with backoff for a few seconds), then finishes any batch a previous
    /// process left half-written, and starts the history compactor.
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<Self> {
        Self::connect_encrypted(endpoints, prefix, None).await
    }

    /// Connects, encrypting Secrets with `cipher` when given.
    pub async fn connect_encrypted(
        endpoints: &[String],
        prefix: &str,
        cipher: Option<Arc<SecretCipher>>,
    ) -> Result<Self> {
        let shown = endpoints.join(",");
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(30));
        let mut attempt = 0;
        let client = loop {
            attempt += 1;
            let tried = async {
                let mut client = Client::connect(endpoints, Some(options.clone())).await?;
                client
                    .get("/", Some(GetOptions::new().with_count_only()))
                    .await?;
                Ok::<_, etcd_client::Error>(client)
            }
            .await;
            match tried {
                Ok(client) => break client,
                Err(e) if attempt < 6 => {
                    tracing::warn!(etcd = %shown, attempt, error = %e, "etcd unreachable; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => {
                    return Err(StoreError::Unavailable(format!(
                        "etcd at {shown} is unreachable after {attempt} attempts: {e}"
                    )));
                }
            }
        };
        let kv = client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let watch = client.watch_client().max_decoding_message_size(MAX_MESSAGE);
        let lease = client.lease_client();
        let compactor = tokio::spawn(compact_forever(kv.clone(), shown.clone()));
        let store = Self {
            kv,
            watch,
            lease,
            prefix: prefix.trim_end_matches('/').to_string(),
            fence: None,
            endpoints: shown,
            _compactor: Arc::new(AbortOnDrop(Some(compactor))),
            cipher,
        };
        store.recover().await?;
        Ok(store)
    }

    /// This store, writing only while `fence` (a leader's term) holds.
    pub fn fenced(&self, fence: Fence) -> EtcdStore {
        EtcdStore {
            fence: Some(fence),
            ..self.clone()
        }
    }

    /// A transaction of `compares` then `ops`, plus the fence's compare when fenced. A
    /// transaction that failed because the term ended is [`StoreError::NotLeader`]; any
    /// other failure is returned for the caller to explain.
    async fn guarded_txn(
        &self,
        mut compares: Vec<Compare>,
        ops: Vec<TxnOp>,
    ) -> Result<TxnResponse> {
        if let Some(fence) = &self.fence {
            compares.push(fence.compare());
        }
        let resp = self.kv_txn(Txn::new().when(compares).and_then(ops)).await?;
        if !resp.succeeded() {
            self.check_fence().await?;
        }
        Ok(resp)
    }

    /// [`StoreError::NotLeader`] when this handle is fenced and its term has ended.
    async fn check_fence(&self) -> Result<()> {
        let Some(fence) = &self.fence else {
            return Ok(());
        };
        let resp = self.kv_get(fence.key.clone(), None).await?;
        let holder = resp.kvs().first().map_or(0, KeyValue::create_revision);
        if holder == fence.term {
            return Ok(());
        }
        Err(StoreError::NotLeader(format!(
            "the leader term {} on {} has ended{}; nothing was written",
            fence.term,
            fence.key,
            if holder == 0 {
                " (no leader now)".to_string()
            } else {
                format!(" (term {holder} holds it now)")
            }
        )))
    }

    fn err(&self, e: etcd_client::Error) -> StoreError {
        StoreError::Unavailable(format!("etcd at {}: {e}", self.endpoints))
    }

    fn registry(&self) -> String {
        format!("{}/registry/", self.prefix)
    }

    fn object_key(&self, key: &ObjectKey) -> String {
        format!("{}{}", self.registry(), key.path())
    }

    fn key_of(&self, etcd_key: &str) -> Result<ObjectKey> {
        etcd_key
            .strip_prefix(&self.registry())
            .and_then(ObjectKey::from_path)
            .ok_or_else(|| StoreError::Corrupt {
                key: etcd_key.to_string(),
                reason: "not the key of an object of a known kind".into(),
            })
    }

    fn head_key(&self) -> String {
        format!("{}/intent/head", self.prefix)
    }

    fn data_prefix(&self, id: &str) -> String {
        format!("{}/intent/data/{id}/", self.prefix)
    }

    fn decode_kv(&self, kv: &KeyValue) -> Result<Stored> {
        let key = String::from_utf8_lossy(kv.key()).to_string();
        let revision = u64::try_from(kv.mod_revision()).unwrap_or(0);
        decode(&key, kv.value(), revision, self.cipher.as_deref())
    }

    pub async fn get(&self, key: &ObjectKey) -> Result<Option<Stored>> {
        let resp = self.kv_get(self.object_key(key), None).await?;
        resp.kvs().first().map(|kv| self.decode_kv(kv)).transpose()
    }

    pub async fn list(&self, kind: Kind, namespace: Option<&str>) -> Result<ListResult> {
        let kind = kind.key_segment();
        let prefix = match namespace {
            Some(ns) => format!("{}{kind}/{ns}/", self.registry()),
            None => format!("{}{kind}/", self.registry()),
        };
        self.list_under(&prefix).await
    }

    /// [`crate::Store::list_page`]: up to `limit` objects of `kind` after the key path `after`.
    pub async fn list_page(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Stored>> {
        let kind = kind.key_segment();
        let prefix = match namespace {
            Some(ns) => format!("{}{kind}/{ns}/", self.registry()),
            None => format!("{}{kind}/", self.registry()),
        };
        let start = match after.map(|a| format!("{}{a}", self.registry())) {
            // The smallest key after `after`; a cursor before the kind starts at its first.
            Some(a) if a >= prefix => format!("{a}\0").into_bytes(),
            _ => prefix.clone().into_bytes(),
        };
        let options = GetOptions::new()
            .with_range(prefix_end(&prefix))
            .with_limit(i64::try_from(limit).unwrap_or(PAGE));
        let resp = self.kv_get(start, Some(options)).await?;
        resp.kvs().iter().map(|kv| self.decode_kv(kv)).collect()
    }

    /// Every object of every custom kind, at one revision.
    pub async fn list_custom(&self) -> Result<ListResult> {
        let prefix = format!(
            "{}{}",
            self.registry(),
            keel_schema::kinds::custom::KEY_PREFIX
        );
        self.list_under(&prefix).await
    }

    /// Every object of every kind but Events (list those by kind), at one revision.
    pub async fn list_all(&self) -> Result<ListResult> {
        let registry = self.registry();
        let events = format!("{registry}{}/", Kind::Event.as_str());
        let (kvs, revision) = self.range_all(&registry).await?;
        let items = kvs
            .iter()
            .filter(|kv| !kv.key().starts_with(events.as_bytes()))
            .map(|kv| self.decode_kv(kv))
            .collect::<Result<Vec<_>>>()?;
        Ok(ListResult {
            items,
            revision: u64::try_from(revision).unwrap_or(0),
        })
    }

    /// The objects under `prefix`, decoded, at one revision.
    async fn list_under(&self, prefix: &str) -> Result<ListResult> {
        let (kvs, revision) = self.range_all(prefix).await?;
        let items = kvs
            .iter()
            .map(|kv| self.decode_kv(kv))
            .collect::<Result<Vec<_>>>()?;
        Ok(ListResult {
            items,
            revision: u64::try_from(revision).unwrap_or(0),
        })
    }

    /// Every key under `prefix`, page by page at one revision.
    async fn range_all(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64)> {
        let end = prefix_end(prefix);
        let mut out = Vec::new();
        let mut start = prefix.as_bytes().to_vec();
        let mut revision = 0;
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let resp = self.kv_get(start.clone(), Some(options)).await?;
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            let kvs = resp.kvs();
            let more = resp.more();
            if let Some(last) = kvs.last() {
                start = last.key().to_vec();
                start.push(0);
            }
            out.extend(kvs.iter().cloned());
            if !more || kvs.is_empty() {
                break;
            }
        }
        Ok((out, revision))
    }

    pub async fn revision(&self) -> Result<u64> {
        let resp = self
            .kv_get(self.registry(), Some(GetOptions::new().with_count_only()))
            .await?;
        Ok(resp
            .header()
            .map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0)))
    }

    /// The current value and revisions of `keys`, read in transactions of gets.
    async fn read_many(&self, keys: &[String]) -> Result<HashMap<String, KeyValue>> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(CHUNK_OPS) {
            let ops: Vec<TxnOp> = chunk.iter().map(|k| TxnOp::get(k.clone(), None)).collect();
            let resp = self.kv_txn(Txn::new().and_then(ops)).await?;
            for r in resp.op_responses() {
                if let TxnOpResponse::Get(g) = r {
                    for kv in g.kvs() {
                        found.insert(String::from_utf8_lossy(kv.key()).to_string(), kv.clone());
                    }
                }
            }
        }
        Ok(found)
    }

    pub async fn create(&self, object: Object) -> Result<Arc<Stored>> {
        self.apply_single(BatchOp::Create(object))
            .await
            .map(Arc::new)
    }

    pub async fn update(&self, object: Object, expected: u64) -> Result<Arc<Stored>> {
        self.apply_single(BatchOp::Update { object, expected })
            .await
            .map(Arc::new)
    }

    pub async fn delete(&self, key: &ObjectKey, expected: Option<u64>) -> Result<Arc<Stored>> {
        self.apply_single(BatchOp::Delete {
            key: key.clone(),
            expected,
        })
        .await
        .map(Arc::new)
    }

    /// One op in one transaction, returning the object as written (for a delete: as it
    /// was), at the revision the transaction committed, as redb answers. A delete without a
    /// precondition is retried when it races another writer.
    async fn apply_single(&self, op: BatchOp) -> Result<Stored> {
        let retry_races = matches!(op, BatchOp::Delete { expected: None, .. });
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (planned, results) = self.plan(std::slice::from_ref(&op)).await?;
            match self.commit_unlocked(&planned, &[]).await {
                Ok(revision) => {
                    let mut stored = results
                        .into_iter()
                        .next()
                        .ok_or_else(|| StoreError::Backend("empty plan".into()))?;
                    stored.resource_version = revision;
                    stored.object.meta_mut().resource_version = Some(revision.to_string());
                    return Ok(stored);
                }
                Err(StoreError::Conflict { .. }) if retry_races && attempt < 5 => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Checks every op against the current state and computes what to write. Returns the
    /// plan and, per op, the object as it will be stored (for a delete: as it was).
    async fn plan(&self, ops: &[BatchOp]) -> Result<(Vec<Op>, Vec<Stored>)> {
        let keys: Vec<String> = ops.iter().map(|op| self.object_key(&op.key())).collect();
        let current = self.read_many(&keys).await?;
        let mut planned = Vec::with_capacity(ops.len());
        let mut results = Vec::with_capacity(ops.len());
        for (op, etcd_key) in ops.iter().zip(&keys) {
            let found = current.get(etcd_key);
            let old = found.map(|kv| self.decode_kv(kv)).transpose()?;
            // A race retries the plan with the same ops: each attempt prepares its own copy.
            let (value, stored) = match prepare_op(op.clone(), old.as_ref())? {
                Prepared::Put(mut object, _) => (
                    Some(encode(&mut object, self.cipher.as_deref())?),
                    Stored {
                        object: *object,
                        resource_version: 0,
                    },
                ),
                Prepared::Delete => (
                    None,
                    old.clone().ok_or_else(|| StoreError::NotFound(op.key()))?,
                ),
            };
            planned.push(Op {
                key: etcd_key.clone(),
                expect: found.map_or(0, KeyValue::mod_revision),
                value,
                before: found.map(|kv| kv.value().to_vec()),
            });
            results.push(stored);
        }
        Ok((planned, results))
    }

    fn compares(ops: &[Op]) -> Vec<Compare> {
        ops.iter()
            .map(|p| {
                if p.expect == 0 {
                    Compare::create_revision(p.key.clone(), CompareOp::Equal, 0)
                } else {
                    Compare::mod_revision(p.key.clone(), CompareOp::Equal, p.expect)
                }
            })
            .collect()
    }

    fn writes(ops: &[Op]) -> Vec<TxnOp> {
        ops.iter()
            .map(|p| match &p.value {
                Some(v) => TxnOp::put(p.key.clone(), v.clone(), None),
                None => TxnOp::delete(p.key.clone(), None),
            })
            .collect()
    }

    /// Writes a plan that fits one transaction, provided no batch holds the lock. A batch
    /// left by someone else is finished first.
    /// Commits `ops` in one transaction, with `also` (a history record) written with them.
    async fn commit_unlocked(&self, ops: &[Op], also: &[TxnOp]) -> Result<u64> {
        for _ in 0..5 {
            let mut compares = vec![Compare::create_revision(
                self.head_key(),
                CompareOp::Equal,
                0,
            )];
            compares.extend(Self::compares(ops));
            let mut writes = Self::writes(ops);
            writes.extend(also.iter().cloned());
            let resp = self.guarded_txn(compares, writes).await?;
            if resp.succeeded() {
                return Ok(resp
                    .header()
                    .map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0)));
            }
            if let Some(conflict) = self.explain(ops).await? {
                return Err(conflict);
            }
            // Nothing of ours conflicts: a batch holds the lock. Finish it, then try again.
            self.recover().await?;
        }
        Err(StoreError::Unavailable(
            "another batch keeps the store locked; try again".into(),
        ))
    }

    /// Which op of `ops` no longer holds, as the error to report; `None` if all hold.
    async fn explain(&self, ops: &[Op]) -> Result<Option<StoreError>> {
        let keys: Vec<String> = ops.iter().map(|p| p.key.clone()).collect();
        let current = self.read_many(&keys).await?;
        for p in ops {
            let actual = current.get(&p.key).map_or(0, KeyValue::mod_revision);
            if actual != p.expect {
                let key = self.key_of(&p.key)?;
                return Ok(Some(if p.expect == 0 {
                    StoreError::AlreadyExists(key)
                } else {
                    StoreError::Conflict {
                        key,
                        expected: u64::try_from(p.expect).unwrap_or(0),
                        actual: u64::try_from(actual).unwrap_or(0),
                    }
                }));
            }
        }
        Ok(None)
    }

    pub async fn compact(&self, revision: u64) -> Result<()> {
        let current = self.revision().await?;
        let target = i64::try_from(revision.min(current)).unwrap_or(i64::MAX);
        let mut kv = self.kv.clone();
        kv.compact(target, None).await.map_err(|e| self.err(e))?;
        Ok(())
    }
}

/// Keeps etcd's history bounded, as kube-apiserver does: without compaction etcd grows
/// until its space quota stops every write.
async fn compact_forever(mut kv: KvClient, endpoints: String) {
    loop {
        tokio::time::sleep(COMPACT_EVERY).await;
        let current = match kv.get("/", Some(GetOptions::new().with_count_only())).await {
            Ok(resp) => resp.header().map_or(0, |h| h.revision()),
            Err(e) => {
                tracing::warn!(etcd = %endpoints, error = %e, "cannot read etcd revision for compaction");
                continue;
            }
        };
        if current > KEEP_REVISIONS
            && let Err(e) = kv.compact(current - KEEP_REVISIONS, None).await
        {
            tracing::warn!(etcd = %endpoints, error = %e, "etcd compaction failed");
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.to_string()))
}

/// The first key after every key starting with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests;
