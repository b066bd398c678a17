//! The node's Service data path, whichever mode runs it: the kernel's (nftables, the
//! default) or the userspace proxy (the fallback where nftables cannot be used).

use crate::model::ProxiedService;
use crate::nftables::NftablesProxy;
use crate::proxy::Proxy;

pub enum ServiceProxy {
    Nftables(NftablesProxy),
    Userspace(Proxy),
}

impl ServiceProxy {
    /// Hands over the node's full Service set; returns at once.
    pub fn update(&self, services: Vec<ProxiedService>) {
        match self {
            ServiceProxy::Nftables(p) => {
                p.update(services);
            }
            ServiceProxy::Userspace(p) => {
                p.update(services);
            }
        }
    }

    pub fn mode(&self) -> &'static str {
        match self {
            ServiceProxy::Nftables(_) => "nftables",
            ServiceProxy::Userspace(_) => "userspace",
        }
    }

    /// Clean shutdown: the nftables table is removed; the userspace proxy's listeners close
    /// with the process.
    pub async fn shutdown(&self) {
        if let ServiceProxy::Nftables(p) = self {
            match p.remove().await {
                Ok(()) => tracing::info!(table = crate::nftables::TABLE, "Service table removed"),
                Err(e) => tracing::warn!("cannot remove the Service table: {e}"),
            }
        }
    }
}
