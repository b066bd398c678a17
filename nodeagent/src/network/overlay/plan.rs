//! What the overlay should be for a set of peers: pure, so it is tested as data.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{Backend, VXLAN_DEVICE};
use crate::network::links::Route;

/// Another node, as the control plane lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub node_ip: Ipv4Addr,
    pub pod_cidr: Ipv4Net,
}

/// The VXLAN device's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanDevice {
    pub local: Ipv4Addr,
    pub link: String,
    pub mac: String,
    /// The range's network address, held as a /32: remote nodes' gateway to this one.
    pub address: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// `None`: no VXLAN device (host-gw, or no other node yet).
    pub vxlan: Option<VxlanDevice>,
    pub routes: Vec<Route>,
    /// (address, MAC) of each remote gateway.
    pub neighbours: Vec<(Ipv4Addr, String)>,
    /// (MAC, node IP) of each remote VXLAN device.
    pub fdb: Vec<(String, Ipv4Addr)>,
}

/// The MAC of the VXLAN device of the node holding `range`: locally administered, unicast,
/// and different for every range.
pub fn vtep_mac(range: Ipv4Net) -> String {
    let [a, b, c, d] = range.network().octets();
    format!("02:4b:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

impl Plan {
    /// The plan for node `me` (range `own`, address `node_ip` on link `link`) among
    /// `peers`, which may include itself. A peer whose range overlaps this node's is left out
    /// (the control plane never hands one out; a stale list might carry one).
    pub fn new(
        me: &str,
        backend: Backend,
        own: Ipv4Net,
        node_ip: Ipv4Addr,
        link: Option<&str>,
        peers: &[Peer],
    ) -> Result<Plan, String> {
        let mut remote: Vec<&Peer> = peers
            .iter()
            .filter(|p| {
                p.name != me
                    && !p.pod_cidr.contains(&own.network())
                    && !own.contains(&p.pod_cidr.network())
            })
            .collect();
        remote.sort_by_key(|p| p.pod_cidr);
        remote.dedup_by_key(|p| p.pod_cidr);
        if remote.is_empty() {
            return Ok(Plan::default());
        }
        let link = match link {
            Some(l) if !node_ip.is_loopback() => l.to_string(),
            _ => {
                return Err(format!(
                    "this node's address {node_ip} is not on a network interface other nodes reach; start keel-agent with --advertise-address set to the node's LAN address"
                ));
            }
        };
        let mut plan = Plan::default();
        match backend {
            Backend::Vxlan => {
                plan.vxlan = Some(VxlanDevice {
                    local: node_ip,
                    link,
                    mac: vtep_mac(own),
                    address: own.network(),
                });
                for p in remote {
                    let gateway = p.pod_cidr.network();
                    plan.routes.push(Route {
                        dst: p.pod_cidr.to_string(),
                        gateway: gateway.to_string(),
                        dev: VXLAN_DEVICE.to_string(),
                    });
                    plan.neighbours.push((gateway, vtep_mac(p.pod_cidr)));
                    plan.fdb.push((vtep_mac(p.pod_cidr), p.node_ip));
                }
            }
            Backend::HostGw => {
                for p in remote {
                    plan.routes.push(Route {
                        dst: p.pod_cidr.to_string(),
                        gateway: p.node_ip.to_string(),
                        dev: link.clone(),
                    });
                }
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, ip: &str, range: &str) -> Peer {
        Peer {
            name: name.into(),
            node_ip: ip.parse().unwrap(),
            pod_cidr: range.parse().unwrap(),
        }
    }

    fn peers() -> Vec<Peer> {
        vec![
            peer("n1", "192.168.9.11", "10.244.0.0/24"),
            peer("n3", "192.168.9.13", "10.244.2.0/24"),
            peer("n2", "192.168.9.12", "10.244.1.0/24"),
        ]
    }

    #[test]
    fn vxlan_routes_each_remote_range_through_the_device_to_its_node() {
        let own: Ipv4Net = "10.244.0.0/24".parse().unwrap();
        let plan = Plan::new(
            "n1",
            Backend::Vxlan,
            own,
            "192.168.9.11".parse().unwrap(),
            Some("eth0"),
            &peers(),
        )
        .unwrap();
        let device = plan.vxlan.clone().unwrap();
        assert_eq!(
            (
                device.mac.as_str(),
                device.address.to_string().as_str(),
                device.link.as_str()
            ),
            ("02:4b:0a:f4:00:00", "10.244.0.0", "eth0")
        );
        let routes: Vec<String> = plan
            .routes
            .iter()
            .map(|r| format!("{} via {} dev {}", r.dst, r.gateway, r.dev))
            .collect();
        assert_eq!(
            routes,
            [
                "10.244.1.0/24 via 10.244.1.0 dev keel.vxlan",
                "10.244.2.0/24 via 10.244.2.0 dev keel.vxlan"
            ]
        );
        assert_eq!(
            plan.fdb,
            [
                (
                    "02:4b:0a:f4:01:00".to_string(),
                    "192.168.9.12".parse().unwrap()
                ),
                (
                    "02:4b:0a:f4:02:00".to_string(),
                    "192.168.9.13".parse().unwrap()
                )
            ]
        );
        assert_eq!(
            plan.neighbours[1],
            (
                "10.244.2.0".parse().unwrap(),
                "02:4b:0a:f4:02:00".to_string()
            )
        );
    }

    #[test]
    fn host_gw_routes_each_remote_range_via_its_node() {
        let own: Ipv4Net = "10.244.1.0/24".parse().unwrap();
        let plan = Plan::new(
            "n2",
            Backend::HostGw,
            own,
            "192.168.9.12".parse().unwrap(),
            Some("eth0"),
            &peers(),
        )
        .unwrap();
        assert_eq!(plan.vxlan, None);
        let routes: Vec<String> = plan
            .routes
            .iter()
            .map(|r| format!("{} via {} dev {}", r.dst, r.gateway, r.dev))
            .collect();
        assert_eq!(
            routes,
            [
                "10.244.0.0/24 via 192.168.9.11 dev eth0",
                "10.244.2.0/24 via 192.168.9.13 dev eth0"
            ]
        );
    }

    #[test]
    fn alone_there_is_nothing_to_route_and_a_loopback_address_is_refused_among_peers() {
        let own: Ipv4Net = "10.244.0.0/24".parse().unwrap();
        let alone = Plan::new(
            "n1",
            Backend::Vxlan,
            own,
            "127.0.0.1".parse().unwrap(),
            None,
            &peers()[..1],
        )
        .unwrap();
        assert_eq!(alone, Plan::default());
        let err = Plan::new(
            "n1",
            Backend::Vxlan,
            own,
            "127.0.0.1".parse().unwrap(),
            Some("lo"),
            &peers(),
        )
        .unwrap_err();
        assert!(err.contains("--advertise-address"), "{err}");
        // A peer claiming this node's range is never routed to.
        let clash = vec![peer("n9", "192.168.9.19", "10.244.0.0/24")];
        assert_eq!(
            Plan::new(
                "n1",
                Backend::HostGw,
                own,
                "192.168.9.11".parse().unwrap(),
                Some("eth0"),
                &clash
            )
            .unwrap(),
            Plan::default()
        );
    }
}
