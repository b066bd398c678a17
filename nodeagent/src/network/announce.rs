//! LoadBalancer addresses this node answers for: held as /32 addresses on the interface that
//! carries the node's own address, so that the kernel answers its neighbours' ARP for them
//! and their traffic arrives here, where the Service table translates it. The control plane
//! names one Ready node per address; when that node stops being Ready another is named, and
//! clients find it when their ARP entry expires.
//!
//! The addresses carry this agent's label (as the userspace proxy's ClusterIPs do), so it
//! removes exactly what it added, its earlier runs' leftovers included.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_proxy::HostAddresses;
use tokio::sync::watch;

/// How often the addresses are checked again when nothing changed.
const RESYNC: Duration = Duration::from_secs(30);

/// Hands the announced set to the task that keeps the interface matching it.
#[derive(Clone)]
pub struct Announcer {
    tx: watch::Sender<Option<BTreeSet<Ipv4Addr>>>,
    node_ip: Ipv4Addr,
    owner: String,
    /// Set on clean shutdown: nothing is announced any more.
    withdrawn: Arc<AtomicBool>,
}

impl Announcer {
    /// Starts converging the addresses on the interface holding `node_ip`, labelled with
    /// `owner` (this agent's tag).
    pub fn start(node_ip: Ipv4Addr, owner: String) -> (Announcer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(None);
        let withdrawn = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(node_ip, owner.clone(), rx, withdrawn.clone()));
        (
            Announcer {
                tx,
                node_ip,
                owner,
                withdrawn,
            },
            task,
        )
    }

    /// Clean shutdown: the addresses go, so that the node stops drawing traffic it would no
    /// longer translate, and the control plane names another node once this one is not
    /// Ready.
    pub async fn withdraw(&self) {
        self.withdrawn.store(true, Ordering::SeqCst);
        if let Ok(Some((name, _))) = super::links::interface_of(self.node_ip).await
            && let Ok(host) = HostAddresses::new(&name, &self.owner)
            && let Err(e) = host.reconcile(&BTreeSet::new()).await
        {
            tracing::warn!("cannot withdraw LoadBalancer addresses: {e}");
        }
    }

    pub fn update(&self, addresses: &[Ipv4Addr]) {
        let wanted: BTreeSet<Ipv4Addr> = addresses.iter().copied().collect();
        self.tx.send_if_modified(|current| {
            let changed = current.as_ref() != Some(&wanted);
            *current = Some(wanted);
            changed
        });
    }
}

async fn run(
    node_ip: Ipv4Addr,
    owner: String,
    mut rx: watch::Receiver<Option<BTreeSet<Ipv4Addr>>>,
    withdrawn: Arc<AtomicBool>,
) {
    let mut host: Option<HostAddresses> = None;
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(RESYNC) => {}
        }
        // Until the first desired set, what an earlier run left stays.
        let Some(wanted) = rx.borrow_and_update().clone() else {
            continue;
        };
        if host.is_none() {
            host = match super::links::interface_of(node_ip).await {
                Ok(Some((name, _))) => HostAddresses::new(&name, &owner)
                    .map_err(|e| tracing::warn!("LoadBalancer addresses cannot be announced: {e}"))
                    .ok(),
                Ok(None) => {
                    tracing::warn!(%node_ip, "no interface holds this node's address; LoadBalancer addresses are not announced");
                    None
                }
                Err(e) => {
                    tracing::warn!("LoadBalancer addresses are not announced: {e}");
                    None
                }
            };
        }
        let Some(host) = &host else {
            continue;
        };
        if withdrawn.load(Ordering::SeqCst) {
            return;
        }
        match host.reconcile(&wanted).await {
            Ok(()) => {
                if last_error.take().is_some() || !wanted.is_empty() {
                    tracing::debug!(addresses = wanted.len(), "LoadBalancer addresses announced");
                }
            }
            Err(e) => {
                let text = e.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!("cannot announce LoadBalancer addresses: {text}");
                }
                last_error = Some(text);
            }
        }
    }
}
