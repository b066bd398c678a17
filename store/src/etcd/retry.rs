//! Calls that did nothing, tried again:
//! - calls that never reached etcd: its client balances over the members without skipping
//!   one it cannot connect to, so with a member down a share of calls fail before they are
//!   sent;
//! - calls etcd refused for load ("too many requests"), after a pause.
//!
//! Either did nothing, so repeating it is safe whatever it does.

use std::time::Duration;

use etcd_client::{GetOptions, Txn, TxnResponse};

use super::EtcdStore;
use crate::Result;

/// How many more members a call that could not be sent is tried on.
pub(super) const UNSENT_RETRIES: u32 = 4;

/// Whether a call failed before it reached any member: etcd's client balances over the
/// members without skipping one it cannot connect to, so with a member down a share of
/// calls fail that way ("tcp connect error"). Such a call did nothing, so repeating it is
/// safe whatever it does, and the balancer picks again.
pub(super) fn unsent(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            s.code() == tonic::Code::Unavailable
                && (s.message().contains("tcp connect error")
                    || s.message().contains("Connection refused"))
        }
        etcd_client::Error::TransportError(_) => true,
        _ => false,
    }
}

/// How many times a call etcd refused for load is tried again, and the first and longest
/// pause before it is. Thousands of single writes at once (a big rollout's status reports
/// and binds) find etcd that far behind for a moment; the pauses (doubling, each with up to
/// half again at random, so the refused calls do not all come back together) add up to
/// 21-32 s before the call fails.
pub(super) const REFUSED_RETRIES: u32 = 12;
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const LONGEST_PAUSE: Duration = Duration::from_secs(4);

/// Whether etcd refused the call for load: it had committed more than 5,000 entries it had
/// not applied yet ("etcdserver: too many requests"). It refuses before proposing anything,
/// so the call did nothing.
pub(super) fn refused_for_load(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => s.message().contains("etcdserver: too many requests"),
        _ => false,
    }
}

/// `first`, doubled `attempt` times, at most `longest`: the store's backoffs.
pub(super) fn doubling(first: Duration, longest: Duration, attempt: u32) -> Duration {
    first.saturating_mul(1 << attempt.min(16)).min(longest)
}

/// The pause before try `n` (1: the first retry) of a call refused for load.
fn pause(n: u32) -> Duration {
    let base = doubling(FIRST_PAUSE, LONGEST_PAUSE, n.saturating_sub(1));
    let mut byte = [0u8];
    // No randomness to be had: no jitter, the pause still holds.
    let _ = getrandom::fill(&mut byte);
    base + base.mul_f64(f64::from(byte[0]) / 510.0)
}

/// Runs `call` again, up to [`UNSENT_RETRIES`] more times while it fails before it was
/// sent ([`unsent`]), and up to [`REFUSED_RETRIES`] more times, pausing, while etcd refuses
/// it for load ([`refused_for_load`]).
pub(super) async fn again<T, F, Fut>(mut call: F) -> std::result::Result<T, etcd_client::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
{
    let (mut unsent_tries, mut refused_tries) = (0, 0);
    loop {
        match call().await {
            Err(e) if unsent(&e) && unsent_tries < UNSENT_RETRIES => unsent_tries += 1,
            Err(e) if refused_for_load(&e) && refused_tries < REFUSED_RETRIES => {
                refused_tries += 1;
                tokio::time::sleep(pause(refused_tries)).await;
            }
            other => return other,
        }
    }
}

impl EtcdStore {
    /// A range read, tried again on another pick of member when the first could not be
    /// reached ([`unsent`]).
    pub(super) async fn kv_get(
        &self,
        key: impl Into<Vec<u8>>,
        options: Option<GetOptions>,
    ) -> Result<etcd_client::GetResponse> {
        let key: Vec<u8> = key.into();
        again(|| {
            let (mut kv, key, options) = (self.kv.clone(), key.clone(), options.clone());
            async move { kv.get(key, options).await }
        })
        .await
        .map_err(|e| self.err(e))
    }

    /// A put, tried again when it could not be sent ([`unsent`]).
    pub(super) async fn kv_put(&self, key: String, value: Vec<u8>) -> Result<()> {
        again(|| {
            let (mut kv, key, value) = (self.kv.clone(), key.clone(), value.clone());
            async move { kv.put(key, value, None).await }
        })
        .await
        .map(drop)
        .map_err(|e| self.err(e))
    }

    /// A transaction, tried again when it could not be sent ([`unsent`]).
    pub(super) async fn kv_txn(&self, txn: Txn) -> Result<TxnResponse> {
        again(|| {
            let (mut kv, txn) = (self.kv.clone(), txn.clone());
            async move { kv.txn(txn).await }
        })
        .await
        .map_err(|e| self.err(e))
    }
}
