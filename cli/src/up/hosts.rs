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
/// The machine's end of the LAN, whose routes are the LAN's own.
const UPLINK: &str = "keel-h";

/// The machine's IPv4 routes as `ip -j route show` lists them (none when it cannot run).
fn routes() -> Vec<serde_json::Value> {
    std::process::Command::new("ip")
        .args(["-j", "-4", "route", "show", "table", "main"])
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .unwrap_or_default()
}

/// A route of the machine's own (not the LAN's) into `cidr`, as `DST dev DEV`: the LAN would
/// shadow that network, or it the LAN.
fn clashing_route(cidr: Ipv4Net, routes: &[serde_json::Value]) -> Option<String> {
    routes.iter().find_map(|r| {
        let dev = r["dev"].as_str().unwrap_or_default();
        let dst = r["dst"].as_str().unwrap_or_default();
        // A bare address is a host route; `default` overlaps everything and shadows nothing.
        let net: Ipv4Net = dst
            .parse()
            .or_else(|_| dst.parse::<Ipv4Addr>().map(Ipv4Net::from))
            .ok()?;
        let overlaps = net.contains(&cidr.network()) || cidr.contains(&net.network());
        (overlaps && dev != UPLINK).then(|| format!("{dst} dev {dev}"))
    })
}

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
        if let Some(route) = clashing_route(cidr, &routes()) {
            anyhow::bail!(
                "--lan-cidr {cidr} overlaps this machine's own network ({route}); \
                 give keel up a range it does not use, e.g. --lan-cidr 10.251.0.0/24"
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_machines_own_routes_into_the_lan_clash() {
        let routes: Vec<serde_json::Value> = serde_json::from_str(
            r#"[{"dst":"default","gateway":"192.0.2.1","dev":"eth0"},
                {"dst":"10.250.0.0/24","dev":"keel-h"},
                {"dst":"172.17.0.0/16","dev":"docker0"},
                {"dst":"192.168.1.7","dev":"wg0"}]"#,
        )
        .unwrap();
        let lan = |s: &str| s.parse::<Ipv4Net>().unwrap();
        assert_eq!(clashing_route(lan("10.250.0.0/24"), &routes), None);
        assert_eq!(
            clashing_route(lan("172.17.5.0/24"), &routes).as_deref(),
            Some("172.17.0.0/16 dev docker0")
        );
        assert_eq!(
            clashing_route(lan("192.168.1.0/24"), &routes).as_deref(),
            Some("192.168.1.7 dev wg0")
        );
        assert_eq!(clashing_route(lan("10.9.0.0/16"), &routes), None);
    }
}
