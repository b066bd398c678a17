//! Cluster DNS on this node: a DNS server on a node-local address (169.254.20.10 by
//! default, NodeLocal DNSCache's), which the node's pods get as their nameserver.
//!
//! # Layout
//! - this file: [`ClusterDns`], the server's sockets and loops, and the address on `lo`.
//! - [`records`]: the cluster's names, from the desired set alone.
//! - `server`: answering one message, and forwarding to the node's resolvers.
//! - [`resolv`]: what a pod's `/etc/resolv.conf` says, by its `dnsPolicy`.
//!
//! # Guarantees
//! - Answers come from the last desired set; nothing asks the control plane.
//! - Names under the cluster domain are answered here or do not exist; every other name
//!   goes to the node's own resolvers, UDP over UDP and TCP over TCP.
//! - Several agents on one host (tests) share the address through `SO_REUSEPORT`.

pub mod records;
pub mod resolv;
mod server;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Semaphore;

use records::{DnsService, Records};
use server::Answering;

/// The cluster DNS a node runs (`--cluster-dns`, `--cluster-domain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    pub address: Ipv4Addr,
    pub port: u16,
    /// The cluster domain, `cluster.local` by default.
    pub domain: String,
}

/// The default node-local address (NodeLocal DNSCache's).
pub const DEFAULT_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 20, 10);
/// The label of the address the agent adds to `lo` (kept apart from the proxy's).
const LABEL: &str = "lo:kdns";
/// Forwarded queries in flight at once; past it new ones wait.
const MAX_FORWARDS: usize = 1024;
/// A TCP client that sends nothing for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);

pub struct ClusterDns {
    settings: DnsSettings,
    records: Arc<RwLock<Arc<Records>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for ClusterDns {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl ClusterDns {
    /// Adds the address to `lo` (when it may), binds UDP and TCP, and serves.
    pub async fn start(settings: DnsSettings) -> anyhow::Result<ClusterDns> {
        add_address(settings.address).await;
        let at = SocketAddr::from((settings.address, settings.port));
        let udp = bind_udp(at)
            .map_err(|e| anyhow::anyhow!("cluster DNS: cannot listen on {at}/udp: {e}"))?;
        let tcp = bind_tcp(at)
            .map_err(|e| anyhow::anyhow!("cluster DNS: cannot listen on {at}/tcp: {e}"))?;
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let upstreams = server::upstreams(&resolv, settings.address);
        if upstreams.is_empty() {
            tracing::warn!(
                "cluster DNS: no nameserver in /etc/resolv.conf; names outside the cluster will fail"
            );
        }
        let records = Arc::new(RwLock::new(Arc::new(Records::build(&settings.domain, &[]))));
        let answering = Arc::new(Answering {
            records: records.clone(),
            upstreams,
        });
        let tasks = vec![
            tokio::spawn(serve_udp(udp, answering.clone())),
            tokio::spawn(serve_tcp(tcp, answering)),
        ];
        tracing::info!(address = %at, domain = %settings.domain, "cluster DNS serving");
        Ok(ClusterDns {
            settings,
            records,
            tasks,
        })
    }

    pub fn settings(&self) -> &DnsSettings {
        &self.settings
    }

    /// Answers from now on from `services`.
    pub fn update(&self, services: &[DnsService]) {
        let built = Arc::new(Records::build(&self.settings.domain, services));
        *self.records.write().unwrap_or_else(PoisonError::into_inner) = built;
    }
}

/// `ip addr add ADDRESS/32 dev lo`: pods reach the node's own addresses through their
/// default route. Without the right to (tests of the agent alone), the address must be
/// there already; said once.
async fn add_address(address: Ipv4Addr) {
    if address.is_loopback() {
        // All of 127/8 is the node's already.
        return;
    }
    let cidr = format!("{address}/32");
    let added = crate::network::command::run(
        "ip",
        &["addr", "replace", &cidr, "dev", "lo", "label", LABEL],
    )
    .await;
    if let Err(e) = added {
        tracing::warn!(%address, error = %e, "cluster DNS: cannot add its address to lo");
    }
}

fn socket(at: SocketAddr, kind: socket2::Type) -> std::io::Result<socket2::Socket> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, kind, None)?;
    s.set_reuse_port(true)?;
    s.set_reuse_address(true)?;
    // The address may be added a moment later (or by someone else).
    s.set_freebind_v4(true)?;
    s.set_nonblocking(true)?;
    s.bind(&at.into())?;
    Ok(s)
}

fn bind_udp(at: SocketAddr) -> std::io::Result<UdpSocket> {
    UdpSocket::from_std(socket(at, socket2::Type::DGRAM)?.into())
}

fn bind_tcp(at: SocketAddr) -> std::io::Result<TcpListener> {
    let s = socket(at, socket2::Type::STREAM)?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

async fn serve_udp(socket: UdpSocket, answering: Arc<Answering>) {
    let socket = Arc::new(socket);
    let forwards = Arc::new(Semaphore::new(MAX_FORWARDS));
    let mut buf = vec![0u8; 65_535];
    loop {
        let Ok((n, client)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let bytes = buf[..n].to_vec();
        let Ok(permit) = forwards.clone().acquire_owned().await else {
            return;
        };
        let (socket, answering) = (socket.clone(), answering.clone());
        tokio::spawn(async move {
            if let Some(answer) = answering.answer(&bytes, false).await {
                let _ = socket.send_to(&answer, client).await;
            }
            drop(permit);
        });
    }
}

async fn serve_tcp(listener: TcpListener, answering: Arc<Answering>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let answering = answering.clone();
        tokio::spawn(async move {
            while let Ok(Ok(bytes)) =
                tokio::time::timeout(TCP_IDLE, server::read_framed(&mut conn)).await
            {
                let Some(answer) = answering.answer(&bytes, true).await else {
                    return;
                };
                if server::write_framed(&mut conn, &answer).await.is_err() {
                    return;
                }
            }
        });
    }
}
