//! Between nodes: each other node's pod range routed to it, from the node list the control
//! plane sends with every desired set, and masquerade for pod traffic leaving the cluster.
//!
//! Two backends, as flannel has them:
//! - `vxlan` (default): a VXLAN device (VNI 1, UDP 8472) whose MTU is the node link's minus
//!   the 50 bytes of VXLAN's headers; per remote node a route to its range through the
//!   device, a permanent neighbour entry for its gateway address (the range's first address,
//!   which that node's device holds) and an FDB entry sending that MAC to the node's IP.
//!   A device's MAC is derived from its node's range, so nodes need to exchange nothing but
//!   what the control plane already sends.
//! - `host-gw`: one route per remote range via that node's IP; nodes must share one L2
//!   segment.
//!
//! Level-triggered: [`Overlay::converge`] computes what should exist, reads what does, and
//! adds and removes the difference; it runs on every change and every [`RESYNC`].
//!
//! # Layout
//! - this file: backends, peers, the converge loop.
//! - `plan`: what should exist for a set of peers (pure).
//! - [`masquerade`]: the nftables table and the forward rules.

pub mod masquerade;
mod plan;

use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::sync::watch;

use super::NodeNetwork;
use super::command::{self, CommandError};
use super::links;
pub use plan::{Peer, Plan, vtep_mac};

/// The routing protocol number the agent's routes carry (`ip route … proto 77`), so it
/// lists, and removes, only its own.
pub const ROUTE_PROTOCOL: u8 = 77;
/// The VXLAN device's name.
pub const VXLAN_DEVICE: &str = "keel.vxlan";
/// Flannel's VNI and port, so firewalls written for flannel fit keel too.
pub const VXLAN_ID: u32 = 1;
pub const VXLAN_PORT: u16 = 8472;
/// Bytes VXLAN adds to each packet (outer IPv4, UDP, VXLAN and Ethernet headers).
pub const VXLAN_OVERHEAD: u32 = 50;
/// How often the overlay converges when nothing changed.
pub const RESYNC: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Vxlan,
    HostGw,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Vxlan => "vxlan",
            Backend::HostGw => "host-gw",
        }
    }

    /// The pods' MTU on a node link of `link_mtu`.
    pub fn pod_mtu(self, link_mtu: u32) -> u32 {
        match self {
            Backend::Vxlan => link_mtu.saturating_sub(VXLAN_OVERHEAD),
            Backend::HostGw => link_mtu,
        }
    }
}

/// The node's overlay: its backend, its own address, and the peers it routes to.
pub struct Overlay {
    pub node: String,
    pub backend: Backend,
    pub node_ip: Ipv4Addr,
    pub network: NodeNetwork,
    pub peers: watch::Receiver<Vec<Peer>>,
}

impl Overlay {
    /// Converges on every change of the node's range or peers and every [`RESYNC`], until
    /// the task is aborted.
    pub async fn run(mut self) {
        let mut assignment = self.network.subscribe();
        let mut failures = 0u32;
        loop {
            match self.converge().await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!("the pod network's routes are converged again");
                    }
                    failures = 0;
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(10) {
                        tracing::error!(error = %e, "cannot converge the pod network's routes; pods on other nodes may be unreachable");
                    }
                }
            }
            let wait = if failures > 0 {
                Duration::from_secs(u64::from(failures.min(5)))
            } else {
                RESYNC
            };
            tokio::select! {
                r = self.peers.changed() => if r.is_err() { return },
                r = assignment.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One pass: masquerade, then the device, FDB and neighbour entries, and routes.
    pub async fn converge(&self) -> Result<(), CommandError> {
        let Some(assignment) = self.network.current() else {
            return Ok(());
        };
        // Egress first: it needs nothing from the other nodes.
        masquerade::converge(assignment.cluster_cidr).await?;
        let peers = self.peers.borrow().clone();
        let link = links::interface_of(self.node_ip).await?;
        let plan = Plan::new(
            &self.node,
            self.backend,
            assignment.pod_cidr,
            self.node_ip,
            link.as_ref().map(|l| l.0.as_str()),
            &peers,
        )
        .map_err(|detail| CommandError::Failed {
            command: "overlay".into(),
            detail,
        })?;
        match &plan.vxlan {
            Some(device) => {
                let link_mtu = link.as_ref().map_or(1500, |l| l.1);
                ensure_vxlan(device, self.backend.pod_mtu(link_mtu)).await?;
                converge_fdb(&plan).await?;
                converge_neighbours(&plan).await?;
            }
            None => remove_vxlan().await?,
        }
        converge_routes(&plan).await
    }
}

/// The VXLAN device as the plan wants it: made (or made again when its VNI, local address,
/// port or link differ), with its MAC, MTU and the range's gateway address, up.
async fn ensure_vxlan(device: &plan::VxlanDevice, mtu: u32) -> Result<(), CommandError> {
    let current = links::link(VXLAN_DEVICE).await?;
    let fits = current.as_ref().is_some_and(|l| {
        l.linkinfo.as_ref().is_some_and(|i| {
            i.info_kind == "vxlan"
                && i.info_data.as_ref().is_some_and(|d| {
                    d.id == VXLAN_ID
                        && d.port == VXLAN_PORT
                        && d.local == device.local.to_string()
                        && d.link == device.link
                })
        })
    });
    if current.is_some() && !fits {
        command::run("ip", &["link", "del", VXLAN_DEVICE]).await?;
    }
    if !fits {
        let (id, port, local) = (
            VXLAN_ID.to_string(),
            VXLAN_PORT.to_string(),
            device.local.to_string(),
        );
        command::run(
            "ip",
            &[
                "link",
                "add",
                VXLAN_DEVICE,
                "type",
                "vxlan",
                "id",
                &id,
                "local",
                &local,
                "dev",
                &device.link,
                "dstport",
                &port,
                "nolearning",
            ],
        )
        .await?;
    }
    let mtu = mtu.to_string();
    command::run(
        "ip",
        &[
            "link",
            "set",
            "dev",
            VXLAN_DEVICE,
            "address",
            &device.mac,
            "mtu",
            &mtu,
            "up",
        ],
    )
    .await?;
    let want = format!("{}/32", device.address);
    let have: Vec<String> = links::link(VXLAN_DEVICE)
        .await?
        .map(|l| {
            l.addr_info
                .iter()
                .filter(|a| a.family == "inet")
                .map(|a| format!("{}/{}", a.local, a.prefixlen))
                .collect()
        })
        .unwrap_or_default();
    for stale in have.iter().filter(|a| **a != want) {
        command::run("ip", &["addr", "del", stale, "dev", VXLAN_DEVICE]).await?;
    }
    if !have.contains(&want) {
        command::run("ip", &["addr", "add", &want, "dev", VXLAN_DEVICE]).await?;
    }
    Ok(())
}

async fn remove_vxlan() -> Result<(), CommandError> {
    if links::link(VXLAN_DEVICE).await?.is_some() {
        command::run("ip", &["link", "del", VXLAN_DEVICE]).await?;
    }
    Ok(())
}

async fn converge_fdb(plan: &Plan) -> Result<(), CommandError> {
    let have = links::fdb(VXLAN_DEVICE).await?;
    for e in &have {
        // Entries the kernel adds for the device's own MAC have no destination.
        if !e.dst.is_empty()
            && !plan
                .fdb
                .iter()
                .any(|(mac, dst)| *mac == e.mac && dst.to_string() == e.dst)
        {
            command::run(
                "bridge",
                &[
                    "fdb",
                    "del",
                    &e.mac,
                    "dev",
                    VXLAN_DEVICE,
                    "dst",
                    &e.dst,
                    "self",
                ],
            )
            .await?;
        }
    }
    for (mac, dst) in &plan.fdb {
        if !have
            .iter()
            .any(|e| e.mac == *mac && e.dst == dst.to_string())
        {
            let dst = dst.to_string();
            command::run(
                "bridge",
                &[
                    "fdb",
                    "append",
                    mac,
                    "dev",
                    VXLAN_DEVICE,
                    "dst",
                    &dst,
                    "self",
                    "permanent",
                ],
            )
            .await?;
        }
    }
    Ok(())
}

async fn converge_neighbours(plan: &Plan) -> Result<(), CommandError> {
    let have = links::neighbours(VXLAN_DEVICE).await?;
    for n in &have {
        if !plan
            .neighbours
            .iter()
            .any(|(ip, mac)| ip.to_string() == n.dst && *mac == n.lladdr)
        {
            command::run("ip", &["neigh", "del", &n.dst, "dev", VXLAN_DEVICE]).await?;
        }
    }
    for (ip, mac) in &plan.neighbours {
        if !have
            .iter()
            .any(|n| n.dst == ip.to_string() && n.lladdr == *mac)
        {
            let ip = ip.to_string();
            command::run(
                "ip",
                &[
                    "neigh",
                    "replace",
                    &ip,
                    "lladdr",
                    mac,
                    "dev",
                    VXLAN_DEVICE,
                    "nud",
                    "permanent",
                ],
            )
            .await?;
        }
    }
    Ok(())
}

async fn converge_routes(plan: &Plan) -> Result<(), CommandError> {
    let proto = ROUTE_PROTOCOL.to_string();
    let have = links::routes(ROUTE_PROTOCOL).await?;
    for r in have.iter().filter(|r| !plan.routes.contains(r)) {
        command::run("ip", &["route", "del", &r.dst, "proto", &proto]).await?;
    }
    for r in plan.routes.iter().filter(|r| !have.contains(r)) {
        let mut args = vec![
            "route",
            "replace",
            r.dst.as_str(),
            "via",
            r.gateway.as_str(),
            "dev",
            r.dev.as_str(),
            "proto",
            proto.as_str(),
        ];
        if r.dev == VXLAN_DEVICE {
            // The gateway is the remote device's address, reachable only through it.
            args.push("onlink");
        }
        command::run("ip", &args).await?;
    }
    Ok(())
}

/// The pods' MTU on the node at `node_ip`: its link's, less what `backend` adds (1500 is
/// assumed where the link cannot be found, as on loopback).
pub async fn pod_mtu(backend: Backend, node_ip: Option<Ipv4Addr>) -> u32 {
    let link_mtu = match node_ip {
        Some(ip) if !ip.is_loopback() => links::interface_of(ip).await.ok().flatten().map(|l| l.1),
        _ => None,
    };
    backend.pod_mtu(link_mtu.unwrap_or(1500))
}
