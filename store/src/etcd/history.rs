//! The sync history in etcd: one key per record under `PREFIX/history/`, sorted by time,
//! trimmed to the newest [`HISTORY_LIMIT`]. A batch's record travels in its transaction
//! (see [`EtcdStore::history_put`]).

use etcd_client::{GetOptions, SortOrder, SortTarget, TxnOp};

use super::{EtcdStore, to_json};
use crate::{HISTORY_LIMIT, Result, StoreError, SyncRecord};

impl EtcdStore {
    fn history_prefix(&self) -> String {
        format!("{}/history/", self.prefix)
    }

    /// The put of `record` into the history: time first, so keys sort by age; the random
    /// tail keeps concurrent records apart.
    pub(super) fn history_put(&self, record: &SyncRecord) -> Result<TxnOp> {
        let key = format!(
            "{}{:020}-{}",
            self.history_prefix(),
            record.time.timestamp_micros().max(0),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Ok(TxnOp::put(key, to_json(record)?, None))
    }

    pub async fn record_sync(&self, record: SyncRecord) -> Result<()> {
        let resp = self
            .guarded_txn(Vec::new(), vec![self.history_put(&record)?])
            .await?;
        if !resp.succeeded() {
            return Err(StoreError::Backend(
                "the sync record was not written".into(),
            ));
        }
        self.trim_history_best_effort().await;
        Ok(())
    }

    /// [`EtcdStore::trim_history`] after a batch has committed: a failure is logged, never
    /// turned into the batch's (it was applied, and its record written).
    pub(super) async fn trim_history_best_effort(&self) {
        if let Err(e) = self.trim_history().await {
            tracing::warn!(error = %e, "cannot trim the sync history; the next record tries again");
        }
    }

    /// Drops the oldest records past the limit (best effort: a crash leaves a few extra).
    pub(super) async fn trim_history(&self) -> Result<()> {
        let mut kv = self.kv.clone();
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
