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
//! Caveat: one process should apply batches at a time (leader election comes with running
//! several control planes); two would take turns through the lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType as EtcdEventType,
    GetOptions, KeyValue, KvClient, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse, WatchClient,
    WatchOptions,
};
use keel_schema::{Kind, Object};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::codec::{Prepared, decode, encode, prepare_op};
use super::encryption::SecretCipher;
use super::watch::{WATCH_BUFFER, Watcher};
use super::{
    Batch, BatchOp, HISTORY_LIMIT, ListResult, ObjectKey, Result, StoreError, Stored, SyncRecord,
    WatchEvent, WatchEventType,
};

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
    prefix: String,
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

/// An [`Op`] as recorded in the intent.
#[derive(Debug, Serialize, Deserialize)]
struct RecordedOp {
    key: String,
    expect: i64,
    value: Option<Payload>,
    before: Option<Payload>,
}

/// A value in the intent: inline JSON (no escaping), or the key holding a large one.
#[derive(Debug, Serialize, Deserialize)]
enum Payload {
    Inline(Box<RawValue>),
    Side(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Head {
    id: String,
    label: String,
    chunks: usize,
    /// `apply` or `undo`.
    state: String,
    /// The next chunk to apply, or (undoing) the number of chunks still applied.
    next: usize,
    /// Why the batch is being undone, for the error returned at the end.
    reason: Option<String>,
}

/// How a driven batch ended.
enum Outcome {
    Applied(u64),
    Undone(StoreError),
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.min(5))).min(Duration::from_secs(5))
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
        let compactor = tokio::spawn(compact_forever(kv.clone(), shown.clone()));
        let store = Self {
            kv,
            watch,
            prefix: prefix.trim_end_matches('/').to_string(),
            endpoints: shown,
            _compactor: Arc::new(AbortOnDrop(Some(compactor))),
            cipher,
        };
        store.recover().await?;
        Ok(store)
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
        let mut kv = self.kv.clone();
        let resp = kv
            .get(self.object_key(key), None)
            .await
            .map_err(|e| self.err(e))?;
        resp.kvs().first().map(|kv| self.decode_kv(kv)).transpose()
    }

    pub async fn list(&self, kind: Kind, namespace: Option<&str>) -> Result<ListResult> {
        let prefix = match namespace {
            Some(ns) => format!("{}{kind}/{ns}/", self.registry()),
            None => format!("{}{kind}/", self.registry()),
        };
        self.list_under(&prefix).await
    }

    /// Every object of every kind, at one revision.
    pub async fn list_all(&self) -> Result<ListResult> {
        self.list_under(&self.registry()).await
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
        let mut kv = self.kv.clone();
        let end = prefix_end(prefix);
        let mut out = Vec::new();
        let mut start = prefix.as_bytes().to_vec();
        let mut revision = 0;
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let resp = kv
                .get(start.clone(), Some(options))
                .await
                .map_err(|e| self.err(e))?;
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
        let mut kv = self.kv.clone();
        let resp = kv
            .get(self.registry(), Some(GetOptions::new().with_count_only()))
            .await
            .map_err(|e| self.err(e))?;
        Ok(resp
            .header()
            .map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0)))
    }

    /// The current value and revisions of `keys`, read in transactions of gets.
    async fn read_many(&self, keys: &[String]) -> Result<HashMap<String, KeyValue>> {
        let mut kv = self.kv.clone();
        let mut found = HashMap::new();
        for chunk in keys.chunks(CHUNK_OPS) {
            let ops: Vec<TxnOp> = chunk.iter().map(|k| TxnOp::get(k.clone(), None)).collect();
            let resp = kv
                .txn(Txn::new().and_then(ops))
                .await
                .map_err(|e| self.err(e))?;
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

    pub async fn create(&self, object: Object) -> Result<Stored> {
        self.apply_single(BatchOp::Create(object)).await
    }

    pub async fn update(&self, object: Object, expected: u64) -> Result<Stored> {
        self.apply_single(BatchOp::Update { object, expected })
            .await
    }

    pub async fn delete(&self, key: &ObjectKey, expected: Option<u64>) -> Result<Stored> {
        self.apply_single(BatchOp::Delete {
            key: key.clone(),
            expected,
        })
        .await
    }

    /// One op in one transaction, returning the object as written (for a delete: as it
    /// was). A delete without a precondition is retried when it races another writer.
    async fn apply_single(&self, op: BatchOp) -> Result<Stored> {
        let retry_races = matches!(op, BatchOp::Delete { expected: None, .. });
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (planned, results) = self.plan(std::slice::from_ref(&op)).await?;
            match self.commit_unlocked(&planned).await {
                Ok(revision) => {
                    let mut stored = results
                        .into_iter()
                        .next()
                        .ok_or_else(|| StoreError::Backend("empty plan".into()))?;
                    if !matches!(op, BatchOp::Delete { .. }) {
                        stored.resource_version = revision;
                        stored.object.meta_mut().resource_version = Some(revision.to_string());
                    }
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
            let (value, stored) = match prepare_op(op, old.as_ref())? {
                Prepared::Put(object, _) => (
                    Some(encode(&object, self.cipher.as_deref())?),
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
    async fn commit_unlocked(&self, ops: &[Op]) -> Result<u64> {
        let mut kv = self.kv.clone();
        for _ in 0..5 {
            let mut compares = vec![Compare::create_revision(
                self.head_key(),
                CompareOp::Equal,
                0,
            )];
            compares.extend(Self::compares(ops));
            let txn = Txn::new().when(compares).and_then(Self::writes(ops));
            let resp = kv.txn(txn).await.map_err(|e| self.err(e))?;
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

    pub async fn apply_batch(&self, batch: Batch) -> Result<u64> {
        self.apply_batch_until(batch, None).await
    }

    /// [`EtcdStore::apply_batch`], stopping after `stop_after` chunks as if the process had
    /// died there (the intent stays for the next write or [`EtcdStore::connect`] to
    /// finish). For crash tests.
    #[doc(hidden)]
    pub async fn apply_batch_until(&self, batch: Batch, stop_after: Option<usize>) -> Result<u64> {
        super::codec::check_distinct(&batch)?;
        if batch.ops.is_empty() {
            return self.revision().await;
        }
        // A batch someone left behind comes first: plans are made on finished state.
        self.recover().await?;
        let (planned, _) = self.plan(&batch.ops).await?;
        let chunks = chunk(planned);
        if chunks.len() == 1 && stop_after.is_none() {
            return self.commit_unlocked(&chunks[0]).await;
        }
        let head = Head {
            id: uuid::Uuid::new_v4().simple().to_string(),
            label: batch.label.clone(),
            chunks: chunks.len(),
            state: "apply".into(),
            next: 0,
            reason: None,
        };
        self.write_intent(&head, &chunks).await?;
        tracing::debug!(label = %batch.label, chunks = chunks.len(), "batch intent recorded");
        // Driven on its own task: a caller that stops waiting does not leave it half-done.
        let store = self.clone();
        let driven =
            tokio::spawn(async move { store.drive(head.id.clone(), chunks, stop_after).await });
        match driven
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??
        {
            Outcome::Applied(revision) => Ok(revision),
            Outcome::Undone(conflict) => Err(conflict),
        }
    }

    async fn write_intent(&self, head: &Head, chunks: &[Vec<Op>]) -> Result<()> {
        let mut kv = self.kv.clone();
        let data = self.data_prefix(&head.id);
        let written = async {
            for (i, c) in chunks.iter().enumerate() {
                let mut recorded = Vec::with_capacity(c.len());
                for (j, op) in c.iter().enumerate() {
                    let payload =
                        |bytes: &Option<Vec<u8>>,
                         side: &str|
                         -> Result<Option<(Payload, Option<Vec<u8>>)>> {
                            let Some(bytes) = bytes else { return Ok(None) };
                            if bytes.len() > SIDE_BYTES {
                                let key = format!("{data}side/{i:06}-{j:03}-{side}");
                                return Ok(Some((Payload::Side(key), Some(bytes.clone()))));
                            }
                            let text = String::from_utf8(bytes.clone())
                                .map_err(|e| StoreError::Backend(e.to_string()))?;
                            let raw = RawValue::from_string(text)
                                .map_err(|e| StoreError::Backend(e.to_string()))?;
                            Ok(Some((Payload::Inline(raw), None)))
                        };
                    let value = payload(&op.value, "new")?;
                    let before = payload(&op.before, "old")?;
                    for (p, bytes) in [&value, &before].into_iter().flatten() {
                        if let (Payload::Side(key), Some(bytes)) = (p, bytes) {
                            kv.put(key.clone(), bytes.clone(), None)
                                .await
                                .map_err(|e| self.err(e))?;
                        }
                    }
                    recorded.push(RecordedOp {
                        key: op.key.clone(),
                        expect: op.expect,
                        value: value.map(|(p, _)| p),
                        before: before.map(|(p, _)| p),
                    });
                }
                kv.put(format!("{data}{i:06}"), to_json(&recorded)?, None)
                    .await
                    .map_err(|e| self.err(e))?;
            }
            let txn = Txn::new()
                .when([Compare::create_revision(
                    self.head_key(),
                    CompareOp::Equal,
                    0,
                )])
                .and_then([TxnOp::put(self.head_key(), to_json(head)?, None)]);
            let resp = kv.txn(txn).await.map_err(|e| self.err(e))?;
            if resp.succeeded() {
                Ok(())
            } else {
                Err(StoreError::Unavailable(
                    "another batch is being applied to this etcd prefix; try again".into(),
                ))
            }
        }
        .await;
        if written.is_err() {
            // Without a head nothing refers to this data; remove it rather than leak it.
            let _ = kv
                .delete(data, Some(DeleteOptions::new().with_prefix()))
                .await;
        }
        written
    }

    async fn head(&self) -> Result<Option<(Head, i64)>> {
        let mut kv = self.kv.clone();
        let resp = kv
            .get(self.head_key(), None)
            .await
            .map_err(|e| self.err(e))?;
        let Some(found) = resp.kvs().first() else {
            return Ok(None);
        };
        let head: Head = serde_json::from_slice(found.value()).map_err(|e| self.corrupt(e))?;
        let valid_state = head.state == "apply" || head.state == "undo";
        if !valid_state || head.next > head.chunks {
            return Err(StoreError::Corrupt {
                key: self.head_key(),
                reason: format!(
                    "state {:?} at chunk {} of {}",
                    head.state, head.next, head.chunks
                ),
            });
        }
        Ok(Some((head, found.mod_revision())))
    }

    fn corrupt(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            key: self.head_key(),
            reason: e.to_string(),
        }
    }

    /// Reads an intent's chunks back (one key per get, so no reply is huge).
    async fn load_chunks(&self, head: &Head) -> Result<Vec<Vec<Op>>> {
        let mut kv = self.kv.clone();
        let data = self.data_prefix(&head.id);
        let mut chunks = Vec::with_capacity(head.chunks);
        for i in 0..head.chunks {
            let key = format!("{data}{i:06}");
            let resp = kv.get(key.clone(), None).await.map_err(|e| self.err(e))?;
            let found = resp.kvs().first().ok_or_else(|| StoreError::Corrupt {
                key: key.clone(),
                reason: "intent chunk missing".into(),
            })?;
            let recorded: Vec<RecordedOp> =
                serde_json::from_slice(found.value()).map_err(|e| self.corrupt(e))?;
            let mut ops = Vec::with_capacity(recorded.len());
            for r in recorded {
                ops.push(Op {
                    key: r.key,
                    expect: r.expect,
                    value: self.resolve(r.value).await?,
                    before: self.resolve(r.before).await?,
                });
            }
            chunks.push(ops);
        }
        Ok(chunks)
    }

    async fn resolve(&self, payload: Option<Payload>) -> Result<Option<Vec<u8>>> {
        match payload {
            None => Ok(None),
            Some(Payload::Inline(raw)) => Ok(Some(raw.get().as_bytes().to_vec())),
            Some(Payload::Side(key)) => {
                let mut kv = self.kv.clone();
                let resp = kv.get(key.clone(), None).await.map_err(|e| self.err(e))?;
                let found = resp.kvs().first().ok_or_else(|| StoreError::Corrupt {
                    key,
                    reason: "intent value missing".into(),
                })?;
                Ok(Some(found.value().to_vec()))
            }
        }
    }

    /// Runs the intent `id` to its end, retrying transient failures: applies the remaining
    /// chunks, or undoes the applied ones after a conflict.
    async fn drive(
        &self,
        id: String,
        chunks: Vec<Vec<Op>>,
        stop_after: Option<usize>,
    ) -> Result<Outcome> {
        let mut attempt = 0;
        loop {
            match self.drive_once(&id, &chunks, stop_after).await {
                Err(StoreError::Unavailable(msg)) if attempt < 5 && stop_after.is_none() => {
                    attempt += 1;
                    tracing::warn!(error = %msg, attempt, "etcd trouble while applying a batch; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn drive_once(
        &self,
        id: &str,
        chunks: &[Vec<Op>],
        stop_after: Option<usize>,
    ) -> Result<Outcome> {
        let (mut head, mut head_rev) = match self.head().await? {
            Some((h, rev)) if h.id == id => (h, rev),
            _ => return Err(StoreError::Backend("batch intent vanished".into())),
        };
        if chunks.len() != head.chunks {
            return Err(self.corrupt(format!(
                "intent names {} chunks, {} found",
                head.chunks,
                chunks.len()
            )));
        }
        let mut kv = self.kv.clone();
        let mut conflict_seen = None;
        while head.state == "apply" && head.next < head.chunks {
            if stop_after.is_some_and(|n| head.next >= n) {
                return Err(StoreError::Unavailable(
                    "batch interrupted (test hook)".into(),
                ));
            }
            let ops = &chunks[head.next];
            let mut next = head.clone();
            next.next += 1;
            let mut compares = vec![Compare::mod_revision(
                self.head_key(),
                CompareOp::Equal,
                head_rev,
            )];
            compares.extend(Self::compares(ops));
            let mut writes = Self::writes(ops);
            writes.push(TxnOp::put(self.head_key(), to_json(&next)?, None));
            let resp = kv
                .txn(Txn::new().when(compares).and_then(writes))
                .await
                .map_err(|e| self.err(e))?;
            if resp.succeeded() {
                head = next;
                head_rev = resp.header().map_or(0, |h| h.revision());
                continue;
            }
            let Some(conflict) = self.explain(ops).await? else {
                return Err(StoreError::Backend("batch intent changed under us".into()));
            };
            tracing::warn!(label = %head.label, chunk = head.next, error = %conflict, "batch conflict; undoing applied chunks");
            head.state = "undo".into();
            head.reason = Some(conflict.to_string());
            head_rev = self.put_head(&head, head_rev).await?;
            conflict_seen = Some(conflict);
        }
        while head.state == "undo" && head.next > 0 {
            for part in chunks[head.next - 1].chunks(UNDO_OPS) {
                let ops: Vec<TxnOp> = part.iter().map(undo_op).collect();
                kv.txn(Txn::new().and_then(ops))
                    .await
                    .map_err(|e| self.err(e))?;
            }
            head.next -= 1;
            head_rev = self.put_head(&head, head_rev).await?;
        }
        let finish = Txn::new()
            .when([Compare::mod_revision(
                self.head_key(),
                CompareOp::Equal,
                head_rev,
            )])
            .and_then([
                TxnOp::delete(self.head_key(), None),
                TxnOp::delete(
                    self.data_prefix(&head.id),
                    Some(DeleteOptions::new().with_prefix()),
                ),
            ]);
        let resp = kv.txn(finish).await.map_err(|e| self.err(e))?;
        if !resp.succeeded() {
            return Err(StoreError::Backend(
                "batch intent changed before it was finished".into(),
            ));
        }
        let revision = resp
            .header()
            .map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0));
        Ok(if head.state == "apply" {
            Outcome::Applied(revision)
        } else {
            // The conflict itself when this call met it; its description after a restart.
            Outcome::Undone(conflict_seen.unwrap_or_else(|| {
                let reason = head.reason.unwrap_or_else(|| "a conflicting write".into());
                StoreError::Backend(format!(
                    "batch {:?} was undone after a conflict: {reason}",
                    head.label
                ))
            }))
        })
    }

    async fn put_head(&self, head: &Head, head_rev: i64) -> Result<i64> {
        let mut kv = self.kv.clone();
        let txn = Txn::new()
            .when([Compare::mod_revision(
                self.head_key(),
                CompareOp::Equal,
                head_rev,
            )])
            .and_then([TxnOp::put(self.head_key(), to_json(head)?, None)]);
        let resp = kv.txn(txn).await.map_err(|e| self.err(e))?;
        if !resp.succeeded() {
            return Err(StoreError::Backend("batch intent changed under us".into()));
        }
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Finishes a batch left behind (by a process that died, or a caller that gave up).
    async fn recover(&self) -> Result<()> {
        let Some((head, _)) = self.head().await? else {
            return Ok(());
        };
        tracing::warn!(label = %head.label, state = %head.state, next = head.next, "finishing a batch left half-applied");
        let chunks = self.load_chunks(&head).await?;
        match self.drive(head.id.clone(), chunks, None).await? {
            Outcome::Applied(_) => {
                tracing::info!(label = %head.label, "interrupted batch completed")
            }
            Outcome::Undone(e) => {
                tracing::warn!(label = %head.label, error = %e, "interrupted batch met a conflict and was undone")
            }
        }
        Ok(())
    }

    pub async fn watch(&self, kind: Option<Kind>, from: u64) -> Result<Watcher> {
        let prefix = match kind {
            Some(k) => format!("{}{k}/", self.registry()),
            None => self.registry(),
        };
        let options = |after: u64| {
            let start = i64::try_from(after).unwrap_or(i64::MAX).saturating_add(1);
            WatchOptions::new()
                .with_prefix()
                .with_start_revision(start)
                .with_prev_key()
        };
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let mut client = self.watch.clone();
        let mut stream = client
            .watch(prefix.clone(), Some(options(from)))
            .await
            .map_err(|e| self.err(e))?;
        // The first response confirms the watch or reports compaction.
        let first = stream.message().await.map_err(|e| self.err(e))?;
        if let Some(resp) = &first {
            if resp.compact_revision() > 0 {
                return Err(StoreError::Expired {
                    requested: from,
                    compacted: u64::try_from(resp.compact_revision().saturating_sub(1))
                        .unwrap_or(0),
                });
            }
            if resp.canceled() {
                return Err(StoreError::Unavailable(format!(
                    "etcd refused the watch: {}",
                    resp.cancel_reason()
                )));
            }
        }
        let store = self.clone();
        let task =
            tokio::spawn(async move {
                let mut last = from;
                let mut pending = first;
                let mut failures = 0u32;
                loop {
                    let message = match pending.take() {
                        Some(r) => Ok(Some(r)),
                        None => stream.message().await,
                    };
                    let resp = match message {
                        Ok(Some(resp)) if !resp.canceled() || resp.compact_revision() > 0 => resp,
                        // A broken stream, an end, or a cancel: resume from the last revision
                        // delivered, with backoff, and give up loudly after a few tries.
                        broken => {
                            failures += 1;
                            let why = match broken {
                                Err(e) => e.to_string(),
                                Ok(Some(r)) => format!("canceled: {}", r.cancel_reason()),
                                Ok(None) => "stream ended".to_string(),
                            };
                            if failures > 5 {
                                let _ = tx
                                    .send(Err(StoreError::Unavailable(format!(
                                        "etcd watch lost: {why}"
                                    ))))
                                    .await;
                                return;
                            }
                            tracing::warn!(reason = %why, failures, "etcd watch broke; resuming");
                            tokio::time::sleep(backoff(failures)).await;
                            let mut client = store.watch.clone();
                            if let Ok(s) = client.watch(prefix.clone(), Some(options(last))).await {
                                stream = s;
                            }
                            continue;
                        }
                    };
                    if resp.compact_revision() > 0 {
                        let _ = tx
                            .send(Err(StoreError::Expired {
                                requested: last,
                                compacted: u64::try_from(resp.compact_revision().saturating_sub(1))
                                    .unwrap_or(0),
                            }))
                            .await;
                        return;
                    }
                    if !resp.events().is_empty() {
                        failures = 0;
                    }
                    for event in resp.events() {
                        let Some(kv) = event.kv() else { continue };
                        let revision = u64::try_from(kv.mod_revision()).unwrap_or(0);
                        let (event_type, source) = match event.event_type() {
                            EtcdEventType::Put if kv.create_revision() == kv.mod_revision() => {
                                (WatchEventType::Added, Some(kv))
                            }
                            EtcdEventType::Put => (WatchEventType::Modified, Some(kv)),
                            EtcdEventType::Delete => (WatchEventType::Deleted, event.prev_kv()),
                        };
                        let Some(source) = source else {
                            // A deletion whose previous state is compacted away: the watcher
                            // cannot know what went; it must relist.
                            let _ = tx
                                .send(Err(StoreError::Expired {
                                    requested: last,
                                    compacted: revision,
                                }))
                                .await;
                            return;
                        };
                        let key = String::from_utf8_lossy(source.key()).to_string();
                        let item = decode(&key, source.value(), revision, store.cipher.as_deref())
                            .map(|s| WatchEvent {
                                event_type,
                                object: s.object,
                                revision,
                            });
                        if tx.send(item).await.is_err() {
                            return;
                        }
                        last = last.max(revision);
                    }
                }
            });
        Ok(Watcher::new(rx, task))
    }

    pub async fn compact(&self, revision: u64) -> Result<()> {
        let current = self.revision().await?;
        let target = i64::try_from(revision.min(current)).unwrap_or(i64::MAX);
        let mut kv = self.kv.clone();
        kv.compact(target, None).await.map_err(|e| self.err(e))?;
        Ok(())
    }

    fn history_prefix(&self) -> String {
        format!("{}/history/", self.prefix)
    }

    pub async fn record_sync(&self, record: SyncRecord) -> Result<()> {
        let mut kv = self.kv.clone();
        // Time first so keys sort by age; the random tail keeps concurrent records apart.
        let key = format!(
            "{}{:020}-{}",
            self.history_prefix(),
            record.time.timestamp_micros().max(0),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        kv.put(key, to_json(&record)?, None)
            .await
            .map_err(|e| self.err(e))?;
        let resp = kv
            .get(
                self.history_prefix(),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_keys_only()
                        .with_sort(SortTarget::Key, SortOrder::Ascend),
                ),
            )
            .await
            .map_err(|e| self.err(e))?;
        let excess = resp.kvs().len().saturating_sub(HISTORY_LIMIT);
        for old in resp.kvs().iter().take(excess) {
            kv.delete(old.key().to_vec(), None)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    pub async fn history(&self, limit: usize) -> Result<Vec<SyncRecord>> {
        let mut kv = self.kv.clone();
        let resp = kv
            .get(
                self.history_prefix(),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_sort(SortTarget::Key, SortOrder::Descend)
                        .with_limit(i64::try_from(limit).unwrap_or(i64::MAX)),
                ),
            )
            .await
            .map_err(|e| self.err(e))?;
        resp.kvs()
            .iter()
            .map(|kv| {
                serde_json::from_slice(kv.value()).map_err(|e| StoreError::Corrupt {
                    key: String::from_utf8_lossy(kv.key()).to_string(),
                    reason: e.to_string(),
                })
            })
            .collect()
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

/// Splits a plan into chunks that fit one etcd transaction each (large values travel in
/// intent keys of their own, so they do not count towards a chunk's bytes).
fn chunk(planned: Vec<Op>) -> Vec<Vec<Op>> {
    let inline = |b: &Option<Vec<u8>>| {
        b.as_ref()
            .map_or(0, |v| if v.len() > SIDE_BYTES { 0 } else { v.len() })
    };
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for p in planned {
        let size = inline(&p.value) + inline(&p.before);
        if !current.is_empty() && (current.len() >= CHUNK_OPS || bytes + size > CHUNK_BYTES) {
            chunks.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(p);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Restores one key to its value before the batch, if it still holds what the batch wrote.
fn undo_op(p: &Op) -> TxnOp {
    let still_ours = match &p.value {
        Some(v) => Compare::value(p.key.clone(), CompareOp::Equal, v.clone()),
        None => Compare::create_revision(p.key.clone(), CompareOp::Equal, 0),
    };
    let restore = match &p.before {
        Some(before) => TxnOp::put(p.key.clone(), before.clone(), None),
        None => TxnOp::delete(p.key.clone(), None),
    };
    TxnOp::txn(Txn::new().when([still_ours]).and_then([restore]))
}
