//! The cluster's ranges for Service addresses: `--service-cidr` and
//! `--service-node-port-range`.

use std::net::Ipv4Addr;

/// The cluster's ranges for Service addresses (`--service-cidr`,
/// `--service-node-port-range`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceNetwork {
    base: u32,
    prefix: u8,
    node_ports: (u16, u16),
}

impl Default for ServiceNetwork {
    fn default() -> ServiceNetwork {
        ServiceNetwork {
            base: u32::from(Ipv4Addr::new(10, 96, 0, 0)),
            prefix: 16,
            node_ports: (30000, 32767),
        }
    }
}

impl std::fmt::Display for ServiceNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

impl ServiceNetwork {
    /// `cidr` like `10.96.0.0/16` (an IPv4 network of 4 to 2^24 addresses); `node_ports`
    /// like `30000-32767`, inside Kubernetes' default 30000–32767.
    pub fn new(cidr: &str, node_ports: &str) -> Result<ServiceNetwork, String> {
        let (ip, prefix) = cidr.split_once('/').ok_or_else(|| {
            format!("service CIDR {cidr:?}: expected ADDRESS/PREFIX, e.g. 10.96.0.0/16")
        })?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("service CIDR {cidr:?}: {ip:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| format!("service CIDR {cidr:?}: the prefix must be 8 to 30"))?;
        let mask = u32::MAX << (32 - prefix);
        let base = u32::from(ip);
        if base & !mask != 0 {
            return Err(format!(
                "service CIDR {cidr:?}: host bits are set; did you mean {}/{prefix}?",
                Ipv4Addr::from(base & mask)
            ));
        }
        let (low, high) = node_ports
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)))
            .filter(|(a, b)| a <= b)
            .ok_or_else(|| {
                format!("node port range {node_ports:?}: expected LOW-HIGH, e.g. 30000-32767")
            })?;
        // Manifests and the agents' checks hold node ports to Kubernetes' default range, so a
        // narrower range is fine and a wider one would hand out ports agents refuse.
        let (min, max) = keel_schema::validate::NODE_PORT_RANGE;
        if i64::from(low) < min || i64::from(high) > max {
            return Err(format!(
                "node port range {node_ports:?}: must lie within {min}-{max}"
            ));
        }
        Ok(ServiceNetwork {
            base,
            prefix,
            node_ports: (low, high),
        })
    }

    /// Usable addresses: the network and broadcast addresses are never handed out.
    pub(super) fn size(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 2
    }

    pub(super) fn nth(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1 + i)
    }

    /// The lowest and highest node port.
    pub(super) fn port_bounds(&self) -> (u16, u16) {
        self.node_ports
    }

    /// The whole range, as a network.
    pub fn cidr(&self) -> ipnet::Ipv4Net {
        // `new` only builds prefixes of 8 to 30, always valid.
        ipnet::Ipv4Net::new(Ipv4Addr::from(self.base), self.prefix).unwrap_or_default()
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let offset = u32::from(ip).wrapping_sub(self.base);
        (1..=self.size()).contains(&offset)
    }

    pub(super) fn port_in_range(&self, port: i64) -> bool {
        (i64::from(self.node_ports.0)..=i64::from(self.node_ports.1)).contains(&port)
    }

    /// The node port range, as `LOW-HIGH`.
    pub(super) fn port_range(&self) -> String {
        format!("{}-{}", self.node_ports.0, self.node_ports.1)
    }
}
