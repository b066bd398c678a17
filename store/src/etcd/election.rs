//! Leader election on etcd: a lease key taken by compare-and-swap and kept alive.
//!
//! A candidate grants itself a lease and, in one transaction, creates the election key bound
//! to it if the key is absent. The transaction's revision (the key's `create_revision`) names
//! the term: it is unique, grows with every new leader, and lasts exactly as long as the key.
//! The key vanishes when its lease expires (the leader died or stopped renewing) or is
//! revoked (the leader resigned), and another candidate's next attempt wins.
//!
//! A term is a [`Fence`]: a store [`fenced`](super::EtcdStore::fenced) with it adds
//! `create_revision(key) == term` to each of its transactions, so a leader that was paused
//! past its lease cannot write once anyone else could have won.
//!
//! This module knows nothing of timing policy (how long, how often): the control plane
//! drives it.

use std::time::Duration;

use etcd_client::{Compare, CompareOp, GetOptions, KvClient, LeaseClient, PutOptions, Txn, TxnOp};

use super::EtcdStore;
use crate::{Result, StoreError};

/// A leader's term, as the store checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The election key.
    pub key: String,
    /// The key's `create_revision` when this term won it.
    pub term: i64,
}

impl Fence {
    pub(super) fn compare(&self) -> Compare {
        Compare::create_revision(self.key.clone(), CompareOp::Equal, self.term)
    }
}

/// The outcome of one [`Election::campaign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Campaign {
    /// This candidate leads, under `lease`.
    Won { fence: Fence, lease: i64 },
    /// Someone leads: their record, and their term.
    Held { holder: Vec<u8>, term: i64 },
}

/// One candidate for one election key.
#[derive(Clone)]
pub struct Election {
    kv: KvClient,
    lease: LeaseClient,
    key: String,
    endpoints: String,
}

impl EtcdStore {
    /// The election named `name` (its key is `<prefix>/leader/<name>`).
    pub fn election(&self, name: &str) -> Election {
        Election {
            kv: self.kv.clone(),
            lease: self.lease.clone(),
            key: format!("{}/leader/{name}", self.prefix),
            endpoints: self.endpoints.clone(),
        }
    }
}

impl Election {
    fn err(&self, e: etcd_client::Error) -> StoreError {
        StoreError::Unavailable(format!("etcd at {}: {e}", self.endpoints))
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Who leads now: their record and term, if anyone does.
    pub async fn leader(&self) -> Result<Option<(Vec<u8>, i64)>> {
        let resp = super::again(|| {
            let (mut kv, key) = (self.kv.clone(), self.key.clone());
            async move { kv.get(key, None).await }
        })
        .await
        .map_err(|e| self.err(e))?;
        Ok(resp
            .kvs()
            .first()
            .map(|kv| (kv.value().to_vec(), kv.create_revision())))
    }

    /// One attempt to lead for `ttl`, recording `record` (who this candidate is) as the
    /// key's value.
    pub async fn campaign(&self, record: &[u8], ttl: Duration) -> Result<Campaign> {
        if let Some((holder, term)) = self.leader().await? {
            return Ok(Campaign::Held { holder, term });
        }
        let seconds = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let mut leases = self.lease.clone();
        let lease = super::again(|| {
            let mut leases = leases.clone();
            async move { leases.grant(seconds, None).await }
        })
        .await
        .map_err(|e| self.err(e))?
        .id();
        let take = Txn::new()
            .when([Compare::create_revision(
                self.key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(
                self.key.clone(),
                record.to_vec(),
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(self.key.clone(), None)]);
        let sent = super::again(|| {
            let (mut kv, take) = (self.kv.clone(), take.clone());
            async move { kv.txn(take).await }
        });
        let resp = match sent.await {
            Ok(resp) => resp,
            Err(e) => {
                // Unknown whether the put landed; the lease bounds it either way.
                let _ = leases.revoke(lease).await;
                return Err(self.err(e));
            }
        };
        if resp.succeeded() {
            let term = resp.header().map_or(0, |h| h.revision());
            return Ok(Campaign::Won {
                fence: Fence {
                    key: self.key.clone(),
                    term,
                },
                lease,
            });
        }
        let _ = leases.revoke(lease).await;
        match self.leader().await? {
            Some((holder, term)) => Ok(Campaign::Held { holder, term }),
            // Taken and already gone again: the next attempt may win.
            None => Ok(Campaign::Held {
                holder: Vec::new(),
                term: 0,
            }),
        }
    }

    /// Renews `lease` once and checks the key still holds `fence`'s term. `Ok(false)`: the
    /// term is over (the lease expired or the key is someone else's).
    pub async fn renew(&self, fence: &Fence, lease: i64) -> Result<bool> {
        let reply = super::again(|| {
            let mut leases = self.lease.clone();
            async move {
                let (mut keeper, mut replies) = leases.keep_alive(lease).await?;
                keeper.keep_alive().await?;
                replies.message().await
            }
        })
        .await;
        let alive = match reply {
            Ok(Some(reply)) => reply.ttl() > 0,
            Ok(None) => {
                return Err(StoreError::Unavailable(
                    "lease keep-alive stream ended".into(),
                ));
            }
            // etcd's answer for a lease that expired or was revoked: the term is over, not a
            // trouble to retry.
            Err(e) if e.to_string().contains("lease not found") => false,
            Err(e) => return Err(self.err(e)),
        };
        if !alive {
            return Ok(false);
        }
        let resp = super::again(|| {
            let (mut kv, key) = (self.kv.clone(), self.key.clone());
            async move { kv.get(key, Some(GetOptions::new().with_keys_only())).await }
        })
        .await
        .map_err(|e| self.err(e))?;
        Ok(resp.kvs().first().map(|kv| kv.create_revision()) == Some(fence.term))
    }

    /// Ends the term at once (the key goes with its lease), so a successor need not wait
    /// for the lease to run out.
    pub async fn resign(&self, lease: i64) -> Result<()> {
        self.lease
            .clone()
            .revoke(lease)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}
