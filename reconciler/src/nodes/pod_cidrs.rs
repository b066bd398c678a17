//! The pod network's address plan: `--cluster-cidr` cut into one range per node of
//! `--node-cidr-mask-size`, as Kubernetes' node IPAM controller does.
//!
//! # Guarantees
//! - A range is free when no Node object holds it: the Node objects are the only record, so
//!   a range survives restarts and re-registrations, and is freed exactly when its Node is
//!   deleted.
//! - Ranges are handed out lowest first; two nodes never get the same one (the registry
//!   allocates under one lock, see [`super::registry`]).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The cluster's pod network and how it is cut per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodNetwork {
    cluster: Ipv4Net,
    node_prefix: u8,
}

impl Default for PodNetwork {
    /// Kubernetes' usual `10.244.0.0/16` with a `/24` (254 pods) per node.
    fn default() -> PodNetwork {
        PodNetwork {
            cluster: Ipv4Net::new(Ipv4Addr::new(10, 244, 0, 0), 16).unwrap_or_default(),
            node_prefix: 24,
        }
    }
}

impl std::fmt::Display for PodNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} with /{} per node", self.cluster, self.node_prefix)
    }
}

impl PodNetwork {
    /// `cidr` like `10.244.0.0/16` and a per-node prefix like 24; refused when the two do
    /// not fit together or the range overlaps `services` (a ClusterIP that is also a pod's
    /// address would be routed to the pod or to the proxy, at random to the user).
    pub fn new(cidr: &str, node_prefix: u8, services: Ipv4Net) -> Result<PodNetwork, String> {
        let cluster: Ipv4Net = cidr.parse().map_err(|_| {
            format!("--cluster-cidr {cidr:?}: expected an IPv4 ADDRESS/PREFIX, e.g. 10.244.0.0/16")
        })?;
        if cluster.network() != cluster.addr() {
            return Err(format!(
                "--cluster-cidr {cidr:?}: host bits are set; did you mean {}?",
                cluster.trunc()
            ));
        }
        if !(8..=28).contains(&cluster.prefix_len()) {
            return Err(format!(
                "--cluster-cidr {cidr:?}: the prefix must be 8 to 28"
            ));
        }
        // A /30 leaves one pod address after the gateway; less is no pod network at all.
        if node_prefix > 29 || node_prefix < cluster.prefix_len() {
            return Err(format!(
                "--node-cidr-mask-size {node_prefix}: must be between the cluster CIDR's prefix ({}) and 29",
                cluster.prefix_len()
            ));
        }
        if cluster.contains(&services.network()) || services.contains(&cluster.network()) {
            return Err(format!(
                "--cluster-cidr {cluster} overlaps --service-cidr {services}: pod and Service addresses must not mix; pick ranges apart, e.g. 10.244.0.0/16 and 10.96.0.0/16"
            ));
        }
        Ok(PodNetwork {
            cluster,
            node_prefix,
        })
    }

    pub fn cluster(&self) -> Ipv4Net {
        self.cluster
    }

    /// How many nodes the plan has room for.
    pub fn capacity(&self) -> u64 {
        1u64 << (self.node_prefix - self.cluster.prefix_len())
    }

    /// The lowest range not in `used`; `None` when every one is taken.
    pub fn allocate(&self, used: &BTreeSet<Ipv4Net>) -> Option<Ipv4Net> {
        self.cluster
            .subnets(self.node_prefix)
            .ok()?
            .find(|n| !used.contains(n))
    }

    /// A node's range as stored, when it is one of this plan's.
    pub fn parse_node_range(&self, text: &str) -> Option<Ipv4Net> {
        let net: Ipv4Net = text.parse().ok()?;
        (net.prefix_len() == self.node_prefix && self.cluster.contains(&net)).then_some(net)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services() -> Ipv4Net {
        "10.96.0.0/16".parse().unwrap()
    }

    #[test]
    fn bad_plans_are_refused_with_the_flag_named() {
        for (cidr, prefix, expected) in [
            ("10.244.0.0", 24, "--cluster-cidr \"10.244.0.0\": expected"),
            ("10.244.1.0/16", 24, "did you mean 10.244.0.0/16"),
            ("10.0.0.0/8", 24, "overlaps --service-cidr 10.96.0.0/16"),
            ("10.96.128.0/17", 24, "overlaps --service-cidr"),
            (
                "10.244.0.0/16",
                12,
                "--node-cidr-mask-size 12: must be between",
            ),
            ("10.244.0.0/16", 31, "--node-cidr-mask-size 31"),
            ("10.244.0.0/30", 30, "the prefix must be 8 to 28"),
        ] {
            let err = PodNetwork::new(cidr, prefix, services()).unwrap_err();
            assert!(err.contains(expected), "{cidr}/{prefix}: {err}");
        }
    }

    #[test]
    fn ranges_are_handed_out_lowest_first_until_none_is_left() {
        let plan = PodNetwork::new("10.244.0.0/22", 24, services()).unwrap();
        assert_eq!(plan.capacity(), 4);
        let mut used = BTreeSet::new();
        let mut got = Vec::new();
        while let Some(n) = plan.allocate(&used) {
            used.insert(n);
            got.push(n.to_string());
        }
        assert_eq!(
            got,
            [
                "10.244.0.0/24",
                "10.244.1.0/24",
                "10.244.2.0/24",
                "10.244.3.0/24"
            ]
        );
        // A freed range (its Node deleted) is the next one handed out.
        used.remove(&"10.244.1.0/24".parse().unwrap());
        assert_eq!(plan.allocate(&used).unwrap().to_string(), "10.244.1.0/24");
        assert_eq!(
            plan.parse_node_range("10.244.3.0/24"),
            Some("10.244.3.0/24".parse().unwrap())
        );
        assert_eq!(plan.parse_node_range("10.245.0.0/24"), None);
        assert_eq!(plan.parse_node_range("10.244.0.0/25"), None);
    }
}
