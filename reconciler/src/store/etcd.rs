//! The distributed engine: a real etcd cluster through etcd-client.
//!
//! Objects live at `<prefix>/registry/<kind>/<ns>/<name>`; an object's `mod_revision` is its
//! resourceVersion and etcd's revision is the store revision. Compare-and-swap is an etcd
//! transaction comparing `mod_revision` (or `create_revision == 0` for "must not exist").
//!
//! etcd caps a transaction at 128 operations and a request at 1.5 MiB, so a large batch is
//! written in chunks behind an intent:
//! 1. every chunk's operations (new value, expected revision, previous value) are written
//!    under `<prefix>/intent/data/<id>/`, then the head `<prefix>/intent/head` names them;
//! 2. each chunk is one transaction that also checks every expected revision and advances
//!    the head;
//! 3. the head and data are deleted at the end.
//!
//! If a chunk meets a conflict, the chunks already written are undone (each key restored
//! only if it still holds what the batch wrote) and the batch fails with the conflict. A
//! process that dies anywhere in between leaves the head; [`EtcdStore::connect`] finds it and
//! finishes the batch (or the undo), so no half-applied revision survives a restart.

use std::collections::HashMap;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType as EtcdEventType,
    GetOptions, KeyValue, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use keel_schema::Object;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::codec::{Prepared, decode, encode, prepare_op};
use super::watch::{WATCH_BUFFER, Watcher};
use super::{
    Batch, BatchOp, EventType, HISTORY_LIMIT, ListResult, ObjectKey, Result, StoreError, Stored,
    SyncRecord, WatchEvent,
};

pub const DEFAULT_PREFIX: &str = "/keel";
/// Operations per chunk transaction (etcd's default limit is 128, and the head's own
/// update and compare take one more each).
const CHUNK_OPS: usize = 100;
/// Bytes of values per chunk (etcd's default request limit is 1.5 MiB; the intent data for a
/// chunk holds both new and previous values).
const CHUNK_BYTES: usize = 600 * 1024;
/// Keys per page when listing.
const PAGE: i64 = 1000;
/// Undo operations per transaction (each is a nested transaction).
const UNDO_OPS: usize = 40;

#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    prefix: String,
    endpoints: String,
}

fn unavailable(endpoints: &str, e: &etcd_client::Error) -> StoreError {
    StoreError::Unavailable(format!("etcd at {endpoints}: {e}"))
}

/// One planned write of a batch, as recorded in the intent.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Planned {
    key: String,
    /// The new value; `None` deletes.
    value: Option<String>,
    /// The key's expected `mod_revision`; 0 means it must not exist.
    expect: i64,
    /// The value before the batch, to undo with.
    before: Option<String>,
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
}

/// A chunk transaction's outcome.
enum ChunkResult {
    Applied(i64),
    Conflict,
}

impl EtcdStore {
    /// Connects (retrying with backoff for a few seconds), then finishes any batch a previous
    /// process left half-written.
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<Self> {
        let shown = endpoints.join(",");
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(10));
        let mut delay = Duration::from_millis(200);
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
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    return Err(StoreError::Unavailable(format!(
                        "etcd at {shown} is unreachable after {attempt} attempts: {e}"
                    )));
                }
            }
        };
        let store = Self {
            client,
            prefix: prefix.trim_end_matches('/').to_string(),
            endpoints: shown,
        };
        store.recover().await?;
        Ok(store)
    }

    fn err(&self, e: etcd_client::Error) -> StoreError {
        unavailable(&self.endpoints, &e)
    }

    fn registry(&self) -> String {
        format!("{}/registry/", self.prefix)
    }

    fn object_key(&self, key: &ObjectKey) -> String {
        format!("{}{}", self.registry(), key.path())
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
        decode(&key, kv.value(), revision)
    }

    pub async fn get(&self, key: &ObjectKey) -> Result<Option<Stored>> {
        let mut client = self.client.clone();
        let resp = client
            .get(self.object_key(key), None)
            .await
            .map_err(|e| self.err(e))?;
        resp.kvs().first().map(|kv| self.decode_kv(kv)).transpose()
    }

    pub async fn list(&self, kind: &str, namespace: Option<&str>) -> Result<ListResult> {
        let prefix = match namespace {
            Some(ns) => format!("{}{kind}/{ns}/", self.registry()),
            None => format!("{}{kind}/", self.registry()),
        };
        let (kvs, revision) = self.range_all(&prefix).await?;
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
        let mut client = self.client.clone();
        let end = prefix_end(prefix);
        let mut out = Vec::new();
        let mut start = prefix.as_bytes().to_vec();
        let mut revision = 0;
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let resp = client
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
        let mut client = self.client.clone();
        let resp = client
            .get(self.registry(), Some(GetOptions::new().with_count_only()))
            .await
            .map_err(|e| self.err(e))?;
        Ok(resp
            .header()
            .map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0)))
    }

    /// The current value and revisions of `keys`, read in transactions of up to
    /// [`CHUNK_OPS`] gets.
    async fn read_many(&self, keys: &[String]) -> Result<HashMap<String, KeyValue>> {
        let mut client = self.client.clone();
        let mut found = HashMap::new();
        for chunk in keys.chunks(CHUNK_OPS) {
            let ops: Vec<TxnOp> = chunk.iter().map(|k| TxnOp::get(k.clone(), None)).collect();
            let resp = client
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

    /// One op as a one-transaction batch, returning the object as written (or, for a
    /// delete, as it was).
    async fn apply_single(&self, op: BatchOp) -> Result<Stored> {
        let (planned, results) = self.plan(std::slice::from_ref(&op)).await?;
        let revision = match self.try_single_txn(&planned).await? {
            ChunkResult::Applied(rev) => rev,
            ChunkResult::Conflict => {
                return Err(self.explain_conflict(std::slice::from_ref(&op)).await);
            }
        };
        let mut stored = results
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Backend("empty plan".into()))?;
        if !matches!(op, BatchOp::Delete { .. }) {
            stored.resource_version = u64::try_from(revision).unwrap_or(0);
            stored.object.meta_mut().resource_version = Some(stored.resource_version.to_string());
        }
        Ok(stored)
    }

    /// Checks every op against the current state and computes what to write. Returns the
    /// plan and, per op, the object as it will be stored (for a delete: as it was).
    async fn plan(&self, ops: &[BatchOp]) -> Result<(Vec<Planned>, Vec<Stored>)> {
        let keys: Vec<String> = ops.iter().map(|op| self.object_key(&op.key())).collect();
        let current = self.read_many(&keys).await?;
        let mut planned = Vec::with_capacity(ops.len());
        let mut results = Vec::with_capacity(ops.len());
        super::codec::check_distinct(&Batch {
            label: String::new(),
            ops: ops.to_vec(),
        })?;
        for (op, etcd_key) in ops.iter().zip(&keys) {
            let old = current
                .get(etcd_key)
                .map(|kv| self.decode_kv(kv))
                .transpose()?;
            let before = current
                .get(etcd_key)
                .map(|kv| String::from_utf8_lossy(kv.value()).to_string());
            let old_rev = old.as_ref().map_or(0, |s| s.resource_version);
            let (value, stored) = match prepare_op(op, old.as_ref())? {
                Prepared::Put(object, _) => (
                    Some(encode(&object)?),
                    Stored {
                        object: *object,
                        resource_version: 0,
                    },
                ),
                Prepared::Delete => {
                    let old = old.clone().ok_or_else(|| StoreError::NotFound(op.key()))?;
                    (None, old)
                }
            };
            planned.push(Planned {
                key: etcd_key.clone(),
                value: value.map(|v| String::from_utf8_lossy(&v).to_string()),
                expect: i64::try_from(old_rev).unwrap_or(i64::MAX),
                before,
            });
            results.push(stored);
        }
        Ok((planned, results))
    }

    fn compares(planned: &[Planned]) -> Vec<Compare> {
        planned
            .iter()
            .map(|p| {
                if p.expect == 0 {
                    Compare::create_revision(p.key.clone(), CompareOp::Equal, 0)
                } else {
                    Compare::mod_revision(p.key.clone(), CompareOp::Equal, p.expect)
                }
            })
            .collect()
    }

    fn writes(planned: &[Planned]) -> Vec<TxnOp> {
        planned
            .iter()
            .map(|p| match &p.value {
                Some(v) => TxnOp::put(p.key.clone(), v.clone(), None),
                None => TxnOp::delete(p.key.clone(), None),
            })
            .collect()
    }

    async fn try_single_txn(&self, planned: &[Planned]) -> Result<ChunkResult> {
        let mut client = self.client.clone();
        let txn = Txn::new()
            .when(Self::compares(planned))
            .and_then(Self::writes(planned));
        let resp = client.txn(txn).await.map_err(|e| self.err(e))?;
        Ok(if resp.succeeded() {
            ChunkResult::Applied(resp.header().map_or(0, |h| h.revision()))
        } else {
            ChunkResult::Conflict
        })
    }

    /// After a failed compare: which op conflicts, and with what.
    async fn explain_conflict(&self, ops: &[BatchOp]) -> StoreError {
        match self.plan(ops).await {
            Err(e) => e,
            Ok(_) => StoreError::Conflict {
                key: ops
                    .first()
                    .map(BatchOp::key)
                    .unwrap_or_else(|| ObjectKey::new("", "", "")),
                expected: 0,
                actual: 0,
            },
        }
    }

    pub async fn apply_batch(&self, batch: Batch) -> Result<u64> {
        self.apply_batch_until(batch, None).await
    }

    /// [`EtcdStore::apply_batch`], stopping after `stop_after` chunks as if the process had
    /// died there (the intent stays for [`EtcdStore::connect`] to finish). For crash tests.
    #[doc(hidden)]
    pub async fn apply_batch_until(&self, batch: Batch, stop_after: Option<usize>) -> Result<u64> {
        if batch.ops.is_empty() {
            return self.revision().await;
        }
        let (planned, _) = self.plan(&batch.ops).await?;
        let chunks = chunk(planned);
        if chunks.len() == 1 && stop_after.is_none() {
            return match self.try_single_txn(&chunks[0]).await? {
                ChunkResult::Applied(rev) => Ok(u64::try_from(rev).unwrap_or(0)),
                ChunkResult::Conflict => Err(self.explain_conflict(&batch.ops).await),
            };
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let head = Head {
            id: id.clone(),
            label: batch.label.clone(),
            chunks: chunks.len(),
            state: "apply".into(),
            next: 0,
        };
        self.write_intent(&head, &chunks).await?;
        tracing::debug!(label = %batch.label, chunks = chunks.len(), "batch intent recorded");
        match self.drive(head, chunks, stop_after).await? {
            Some(rev) => Ok(rev),
            None => Err(self.explain_conflict(&batch.ops).await),
        }
    }

    async fn write_intent(&self, head: &Head, chunks: &[Vec<Planned>]) -> Result<()> {
        let mut client = self.client.clone();
        for (i, c) in chunks.iter().enumerate() {
            let data = serde_json::to_string(c).map_err(|e| StoreError::Backend(e.to_string()))?;
            client
                .put(format!("{}{i:06}", self.data_prefix(&head.id)), data, None)
                .await
                .map_err(|e| self.err(e))?;
        }
        let head_json =
            serde_json::to_string(head).map_err(|e| StoreError::Backend(e.to_string()))?;
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.head_key(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(self.head_key(), head_json, None)]);
        let resp = client.txn(txn).await.map_err(|e| self.err(e))?;
        if !resp.succeeded() {
            client
                .delete(
                    self.data_prefix(&head.id),
                    Some(DeleteOptions::new().with_prefix()),
                )
                .await
                .map_err(|e| self.err(e))?;
            return Err(StoreError::Unavailable(
                "another batch is being applied to this etcd prefix; try again".into(),
            ));
        }
        Ok(())
    }

    async fn head(&self) -> Result<Option<(Head, i64)>> {
        let mut client = self.client.clone();
        let resp = client
            .get(self.head_key(), None)
            .await
            .map_err(|e| self.err(e))?;
        let Some(kv) = resp.kvs().first() else {
            return Ok(None);
        };
        let head: Head = serde_json::from_slice(kv.value()).map_err(|e| StoreError::Corrupt {
            key: self.head_key(),
            reason: e.to_string(),
        })?;
        Ok(Some((head, kv.mod_revision())))
    }

    /// Runs an intent to its end: applies the remaining chunks, or undoes the applied ones
    /// after a conflict. `Some(revision)` when the batch is applied, `None` when undone.
    async fn drive(
        &self,
        head: Head,
        chunks: Vec<Vec<Planned>>,
        stop_after: Option<usize>,
    ) -> Result<Option<u64>> {
        let (mut head, mut head_rev) = match self.head().await? {
            Some((h, rev)) if h.id == head.id => (h, rev),
            _ => return Err(StoreError::Backend("batch intent vanished".into())),
        };
        let mut client = self.client.clone();
        while head.state == "apply" && head.next < head.chunks {
            if stop_after.is_some_and(|n| head.next >= n) {
                return Err(StoreError::Unavailable(
                    "batch interrupted (test hook)".into(),
                ));
            }
            let planned = &chunks[head.next];
            let mut next = head.clone();
            next.next += 1;
            let mut compares = vec![Compare::mod_revision(
                self.head_key(),
                CompareOp::Equal,
                head_rev,
            )];
            compares.extend(Self::compares(planned));
            let mut ops = Self::writes(planned);
            ops.push(TxnOp::put(self.head_key(), to_json(&next)?, None));
            let resp = client
                .txn(Txn::new().when(compares).and_then(ops))
                .await
                .map_err(|e| self.err(e))?;
            if resp.succeeded() {
                head = next;
                head_rev = resp.header().map_or(0, |h| h.revision());
                continue;
            }
            // A conflict (or the head moved): undo what this batch wrote.
            tracing::warn!(label = %head.label, chunk = head.next, "batch conflict; undoing applied chunks");
            head.state = "undo".into();
            head_rev = self.put_head(&head, head_rev).await?;
        }
        while head.state == "undo" && head.next > 0 {
            let planned = &chunks[head.next - 1];
            for part in planned.chunks(UNDO_OPS) {
                let ops: Vec<TxnOp> = part.iter().map(undo_op).collect();
                client
                    .txn(Txn::new().and_then(ops))
                    .await
                    .map_err(|e| self.err(e))?;
            }
            head.next -= 1;
            head_rev = self.put_head(&head, head_rev).await?;
        }
        let applied = head.state == "apply";
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
        let resp = client.txn(finish).await.map_err(|e| self.err(e))?;
        let revision = resp
            .header()
            .map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0));
        Ok(applied.then_some(revision))
    }

    async fn put_head(&self, head: &Head, head_rev: i64) -> Result<i64> {
        let mut client = self.client.clone();
        let txn = Txn::new()
            .when([Compare::mod_revision(
                self.head_key(),
                CompareOp::Equal,
                head_rev,
            )])
            .and_then([TxnOp::put(self.head_key(), to_json(head)?, None)]);
        let resp = client.txn(txn).await.map_err(|e| self.err(e))?;
        if !resp.succeeded() {
            return Err(StoreError::Backend("batch intent changed under us".into()));
        }
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Finishes a batch a previous process left behind.
    async fn recover(&self) -> Result<()> {
        let Some((head, _)) = self.head().await? else {
            return Ok(());
        };
        tracing::warn!(label = %head.label, state = %head.state, next = head.next, "finishing a batch a previous run left half-applied");
        let (kvs, _) = self.range_all(&self.data_prefix(&head.id)).await?;
        let mut chunks = Vec::with_capacity(head.chunks);
        for kv in &kvs {
            let c: Vec<Planned> =
                serde_json::from_slice(kv.value()).map_err(|e| StoreError::Corrupt {
                    key: String::from_utf8_lossy(kv.key()).to_string(),
                    reason: e.to_string(),
                })?;
            chunks.push(c);
        }
        if chunks.len() != head.chunks {
            return Err(StoreError::Corrupt {
                key: self.head_key(),
                reason: format!(
                    "intent names {} chunks, {} found",
                    head.chunks,
                    chunks.len()
                ),
            });
        }
        let outcome = self.drive(head.clone(), chunks, None).await?;
        match outcome {
            Some(_) => tracing::info!(label = %head.label, "interrupted batch completed"),
            None => {
                tracing::warn!(label = %head.label, "interrupted batch met a conflict and was undone")
            }
        }
        Ok(())
    }

    pub async fn watch(&self, kind: Option<&str>, from: u64) -> Result<Watcher> {
        let prefix = match kind {
            Some(k) => format!("{}{k}/", self.registry()),
            None => self.registry(),
        };
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let mut client = self.client.clone();
        let start = i64::try_from(from).unwrap_or(i64::MAX).saturating_add(1);
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(start)
            .with_prev_key();
        let mut stream = client
            .watch(prefix.clone(), Some(options))
            .await
            .map_err(|e| self.err(e))?;
        // The first response confirms the watch or reports compaction.
        let first = stream.message().await.map_err(|e| self.err(e))?;
        if let Some(resp) = &first
            && (resp.compact_revision() > 0 || resp.canceled())
        {
            return Err(StoreError::Expired {
                requested: from,
                compacted: u64::try_from(resp.compact_revision().saturating_sub(1)).unwrap_or(0),
            });
        }
        let store = self.clone();
        let task = tokio::spawn(async move {
            let mut last = from;
            let mut pending = first;
            loop {
                let resp = match pending.take() {
                    Some(r) => Some(r),
                    None => match stream.message().await {
                        Ok(r) => r,
                        Err(e) => {
                            // Connection trouble: resume from the last revision delivered.
                            tracing::warn!(error = %e, "etcd watch broke; resuming");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            let options = WatchOptions::new()
                                .with_prefix()
                                .with_start_revision(i64::try_from(last).unwrap_or(i64::MAX) + 1)
                                .with_prev_key();
                            let mut client = store.client.clone();
                            match client.watch(prefix.clone(), Some(options)).await {
                                Ok(s) => {
                                    stream = s;
                                    continue;
                                }
                                Err(e) => {
                                    let _ = tx.send(Err(store.err(e))).await;
                                    return;
                                }
                            }
                        }
                    },
                };
                let Some(resp) = resp else { return };
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
                for event in resp.events() {
                    let Some(kv) = event.kv() else { continue };
                    let revision = u64::try_from(kv.mod_revision()).unwrap_or(0);
                    let (event_type, source) = match event.event_type() {
                        EtcdEventType::Put if kv.create_revision() == kv.mod_revision() => {
                            (EventType::Added, Some(kv))
                        }
                        EtcdEventType::Put => (EventType::Modified, Some(kv)),
                        EtcdEventType::Delete => (EventType::Deleted, event.prev_kv()),
                    };
                    let Some(source) = source else { continue };
                    let key = String::from_utf8_lossy(source.key()).to_string();
                    let item = decode(&key, source.value(), revision).map(|s| WatchEvent {
                        event_type,
                        object: s.object,
                        revision,
                    });
                    if tx.send(item).await.is_err() {
                        return;
                    }
                    last = last.max(revision);
                }
                if resp.canceled() {
                    return;
                }
            }
        });
        Ok(Watcher::new(rx, task))
    }

    pub async fn compact(&self, revision: u64) -> Result<()> {
        let current = self.revision().await?;
        let target = i64::try_from(revision.min(current)).unwrap_or(i64::MAX);
        let mut client = self.client.clone();
        client
            .compact(target, None)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn history_prefix(&self) -> String {
        format!("{}/history/", self.prefix)
    }

    pub async fn record_sync(&self, record: SyncRecord) -> Result<()> {
        let mut client = self.client.clone();
        // Time first so keys sort by age; the random tail keeps concurrent records apart.
        let key = format!(
            "{}{:020}-{}",
            self.history_prefix(),
            record.time.timestamp_micros().max(0),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        client
            .put(key, to_json(&record)?, None)
            .await
            .map_err(|e| self.err(e))?;
        let resp = client
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
        for kv in resp.kvs().iter().take(excess) {
            client
                .delete(kv.key().to_vec(), None)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    pub async fn history(&self, limit: usize) -> Result<Vec<SyncRecord>> {
        let mut client = self.client.clone();
        let resp = client
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

/// Splits a plan into chunks that fit one etcd transaction each.
fn chunk(planned: Vec<Planned>) -> Vec<Vec<Planned>> {
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for p in planned {
        let size =
            p.value.as_ref().map_or(0, String::len) + p.before.as_ref().map_or(0, String::len);
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

/// Restores one key to its value before the batch, but only if it still holds what the
/// batch wrote (a later writer's change is kept).
fn undo_op(p: &Planned) -> TxnOp {
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
