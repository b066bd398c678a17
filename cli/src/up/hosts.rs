//! The nodes' network hosts: each node of a local cluster is a network namespace
//! (`keel-1`, `keel-2`, …) on a bridge standing in for the LAN, so the cluster runs the real
//! multi-machine data path (overlay, routes, masquerade) on one machine. The machine sits on
//! the LAN at its first address, where the control plane listens for the nodes.

use std::net::Ipv4Addr;

use anyhow::Context;
use ipnet::Ipv4Net;
use keel_nodehost::{Lan, NodeHost};

use super::agents::MAX_NODES;

/// Namespaces `keel-lan` (the switch), `keel-1`…; the machine's link to the LAN `keel-h`.
const PREFIX: &str = "keel";

pub struct NodeHosts {
    lan: Lan,
    pub hosts: Vec<NodeHost>,
}

impl NodeHosts {
    /// The LAN over `cidr` with `n` node hosts, made where missing and adopted where a
    /// resumed or interrupted run left them; hosts of an earlier, larger run are removed.
    pub fn create(cidr: Ipv4Net, n: usize) -> anyhow::Result<NodeHosts> {
        const NEEDS: &str = "keel up runs each node in a network namespace of its own; \
            that needs root (CAP_NET_ADMIN), iproute2, nftables and iptables";
        let lan = Lan::create(cidr, PREFIX).context(NEEDS)?;
        let mut hosts = Vec::with_capacity(n);
        for i in 1..=n as u32 {
            hosts.push(lan.host(i).context(NEEDS)?);
        }
        for i in n as u32 + 1..=MAX_NODES as u32 {
            lan.remove_host(i);
        }
        lan.open_to_world().context(NEEDS)?;
        Ok(NodeHosts { lan, hosts })
    }

    /// The machine's address on the LAN.
    pub fn gateway(&self) -> Ipv4Addr {
        self.lan.gateway()
    }

    pub fn addresses(&self) -> Vec<Ipv4Addr> {
        self.hosts.iter().map(|h| h.ip).collect()
    }

    /// Removes every namespace, link, address, route and rule the LAN made (the routes and
    /// addresses inside a namespace go with it).
    pub fn remove(self) {
        self.lan.remove(MAX_NODES as u32);
    }
}
