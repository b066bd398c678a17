//! Batches larger than one etcd transaction: written in chunks behind a recorded intent,
//! which is also a lock, undone on a conflict, finished by whoever meets it next (see the
//! module docs of [`super`]).

use etcd_client::{Compare, CompareOp, DeleteOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{CHUNK_BYTES, CHUNK_OPS, EtcdStore, Op, SIDE_BYTES, UNDO_OPS, backoff, to_json};
use crate::{Batch, Result, StoreError};

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
    /// The sync record written when the batch finishes applied (by whoever finishes it).
    #[serde(default)]
    record: Option<crate::SyncRecord>,
}

/// How a driven batch ended.
enum Outcome {
    Applied(u64),
    Undone(StoreError),
}

impl EtcdStore {
    pub async fn apply_batch(&self, batch: Batch) -> Result<u64> {
        self.apply_batch_until(batch, None).await
    }

    /// [`EtcdStore::apply_batch`], stopping after `stop_after` chunks as if the process had
    /// died there (the intent stays for the next write or [`EtcdStore::connect`] to
    /// finish). For crash tests.
    #[doc(hidden)]
    pub async fn apply_batch_until(&self, batch: Batch, stop_after: Option<usize>) -> Result<u64> {
        crate::codec::check_distinct(&batch)?;
        if batch.ops.is_empty() {
            return self.revision().await;
        }
        // A batch someone left behind comes first: plans are made on finished state.
        self.recover().await?;
        let (planned, _) = self.plan(&batch.ops).await?;
        let chunks = chunk(planned);
        if chunks.len() == 1 && stop_after.is_none() {
            let also = match &batch.record {
                Some(record) => vec![self.history_put(record)?],
                None => Vec::new(),
            };
            let revision = self.commit_unlocked(&chunks[0], &also).await?;
            if batch.record.is_some() {
                self.trim_history_best_effort().await;
            }
            return Ok(revision);
        }
        let head = Head {
            id: uuid::Uuid::new_v4().simple().to_string(),
            label: batch.label.clone(),
            chunks: chunks.len(),
            state: "apply".into(),
            next: 0,
            reason: None,
            record: batch.record.clone(),
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
            Outcome::Applied(revision) => {
                if batch.record.is_some() {
                    self.trim_history_best_effort().await;
                }
                Ok(revision)
            }
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
                            self.kv_put(key.clone(), bytes.clone()).await?;
                        }
                    }
                    recorded.push(RecordedOp {
                        key: op.key.clone(),
                        expect: op.expect,
                        value: value.map(|(p, _)| p),
                        before: before.map(|(p, _)| p),
                    });
                }
                self.kv_put(format!("{data}{i:06}"), to_json(&recorded)?.into_bytes())
                    .await?;
            }
            let resp = self
                .guarded_txn(
                    vec![Compare::create_revision(
                        self.head_key(),
                        CompareOp::Equal,
                        0,
                    )],
                    vec![TxnOp::put(self.head_key(), to_json(head)?, None)],
                )
                .await?;
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
        let resp = self.kv_get(self.head_key(), None).await?;
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
        let data = self.data_prefix(&head.id);
        let mut chunks = Vec::with_capacity(head.chunks);
        for i in 0..head.chunks {
            let key = format!("{data}{i:06}");
            let resp = self.kv_get(key.clone(), None).await?;
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
                let resp = self.kv_get(key.clone(), None).await?;
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
        let conflict_seen = self
            .apply_chunks(&mut head, &mut head_rev, chunks, stop_after)
            .await?;
        self.undo_chunks(&mut head, &mut head_rev, chunks).await?;
        let revision = self.finish_intent(&head, head_rev).await?;
        Ok(if head.state == "apply" {
            Outcome::Applied(revision)
        } else {
            // The conflict itself when this call met it; its description after a restart.
            Outcome::Undone(conflict_seen.unwrap_or_else(|| {
                let reason = head
                    .reason
                    .clone()
                    .unwrap_or_else(|| "a conflicting write".into());
                StoreError::Backend(format!(
                    "batch {:?} was undone after a conflict: {reason}",
                    head.label
                ))
            }))
        })
    }

    /// Writes the chunks not yet written, each with the head's advance in its transaction;
    /// at a conflict, turns the head to undo and returns the conflict.
    async fn apply_chunks(
        &self,
        head: &mut Head,
        head_rev: &mut i64,
        chunks: &[Vec<Op>],
        stop_after: Option<usize>,
    ) -> Result<Option<StoreError>> {
        while head.state == "apply" && head.next < head.chunks {
            if stop_after.is_some_and(|n| head.next >= n) {
                return Err(StoreError::Unavailable(
                    "batch interrupted (test hook)".into(),
                ));
            }
            let ops = &chunks[head.next];
            let mut next = head.clone();
            next.next += 1;
            let mut compares = vec![self.head_at(*head_rev)];
            compares.extend(Self::compares(ops));
            let mut writes = Self::writes(ops);
            writes.push(TxnOp::put(self.head_key(), to_json(&next)?, None));
            let resp = self.guarded_txn(compares, writes).await?;
            if resp.succeeded() {
                *head = next;
                *head_rev = resp.header().map_or(0, |h| h.revision());
                continue;
            }
            let Some(conflict) = self.explain(ops).await? else {
                return Err(StoreError::Backend("batch intent changed under us".into()));
            };
            tracing::warn!(label = %head.label, chunk = head.next, error = %conflict, "batch conflict; undoing applied chunks");
            head.state = "undo".into();
            head.reason = Some(conflict.to_string());
            *head_rev = self.put_head(head, *head_rev).await?;
            return Ok(Some(conflict));
        }
        Ok(None)
    }

    /// Undoes the chunks written, newest first, moving the head back after each.
    async fn undo_chunks(
        &self,
        head: &mut Head,
        head_rev: &mut i64,
        chunks: &[Vec<Op>],
    ) -> Result<()> {
        while head.state == "undo" && head.next > 0 {
            for part in chunks[head.next - 1].chunks(UNDO_OPS) {
                let ops: Vec<TxnOp> = part.iter().map(undo_op).collect();
                self.guarded_txn(Vec::new(), ops).await?;
            }
            head.next -= 1;
            *head_rev = self.put_head(head, *head_rev).await?;
        }
        Ok(())
    }

    /// The head is still at `head_rev` (nobody else moved the batch on).
    fn head_at(&self, head_rev: i64) -> Compare {
        Compare::mod_revision(self.head_key(), CompareOp::Equal, head_rev)
    }

    /// Deletes the head and the intent's data, if the head is still as left; the revision.
    async fn finish_intent(&self, head: &Head, head_rev: i64) -> Result<u64> {
        let mut writes = vec![
            TxnOp::delete(self.head_key(), None),
            TxnOp::delete(
                self.data_prefix(&head.id),
                Some(DeleteOptions::new().with_prefix()),
            ),
        ];
        // Applied: the history says so in the same transaction that ends the batch.
        if let (Some(record), "apply") = (&head.record, head.state.as_str()) {
            writes.push(self.history_put(record)?);
        }
        let resp = self
            .guarded_txn(vec![self.head_at(head_rev)], writes)
            .await?;
        if !resp.succeeded() {
            return Err(StoreError::Backend(
                "batch intent changed before it was finished".into(),
            ));
        }
        Ok(resp
            .header()
            .map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0)))
    }

    async fn put_head(&self, head: &Head, head_rev: i64) -> Result<i64> {
        let resp = self
            .guarded_txn(
                vec![self.head_at(head_rev)],
                vec![TxnOp::put(self.head_key(), to_json(head)?, None)],
            )
            .await?;
        if !resp.succeeded() {
            return Err(StoreError::Backend("batch intent changed under us".into()));
        }
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Finishes a batch left behind (by a process that died, or a caller that gave up).
    ///
    /// Several servers may meet the same batch at once (a restarted server at connect, the
    /// new leader at its next write). Whoever loses a step to another finds the head moved
    /// on or gone: that is the other's progress, not corruption, so it looks again.
    pub(super) async fn recover(&self) -> Result<()> {
        self.recover_pausing(std::future::ready(())).await
    }

    /// [`EtcdStore::recover`], waiting for `pause` once between reading the head and
    /// reading the batch, so a test can let another server move the batch on there.
    #[doc(hidden)]
    pub async fn recover_pausing(
        &self,
        pause: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        let mut pause = Some(pause);
        let mut attempt = 0;
        loop {
            let Some((head, head_rev)) = self.head().await? else {
                return Ok(());
            };
            if let Some(pause) = pause.take() {
                pause.await;
            }
            let outcome = match self.load_chunks(&head).await {
                Ok(chunks) => {
                    tracing::warn!(label = %head.label, state = %head.state, next = head.next, "finishing a batch left half-applied");
                    self.drive(head.id.clone(), chunks, None).await
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(Outcome::Applied(_)) => {
                    tracing::info!(label = %head.label, "interrupted batch completed");
                    return Ok(());
                }
                Ok(Outcome::Undone(e)) => {
                    tracing::warn!(label = %head.label, error = %e, "interrupted batch met a conflict and was undone");
                    return Ok(());
                }
                Err(e) => {
                    let moved = match self.head().await? {
                        None => true,
                        Some((now, now_rev)) => now.id != head.id || now_rev != head_rev,
                    };
                    if !moved || attempt >= 10 {
                        return Err(e);
                    }
                    attempt += 1;
                    tracing::info!(label = %head.label, error = %e, "another server moved the batch on while this one was finishing it; looking again");
                }
            }
        }
    }
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
