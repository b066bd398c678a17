//! Calls that never reached etcd, tried again: etcd's client balances over the members
//! without skipping one it cannot connect to, so with a member down a share of calls fail
//! before they are sent. Such a call did nothing, so repeating it is safe whatever it does.

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

/// Runs `call` again, up to [`UNSENT_RETRIES`] more times, while it fails before it was
/// sent ([`unsent`]).
pub(super) async fn again<T, F, Fut>(mut call: F) -> std::result::Result<T, etcd_client::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
{
    let mut tries = 0;
    loop {
        match call().await {
            Err(e) if unsent(&e) && tries < UNSENT_RETRIES => tries += 1,
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
