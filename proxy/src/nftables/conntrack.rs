//! UDP has no connection to end: a client that keeps sending keeps its conntrack entry, and
//! with it the endpoint it was first translated to, even after that endpoint is gone. As
//! kube-proxy does, the entries of removed UDP endpoints are deleted (`conntrack -D`), and
//! so are the entries a port gathered while it had no endpoint at all, so the next packet
//! is translated afresh.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use tokio::process::Command;

use crate::model::{Protocol, ProxiedService};

/// Where UDP traffic enters: a ClusterIP port, or a node port on every node address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Frontend {
    ClusterIp(Ipv4Addr, u16),
    NodePort(u16),
}

/// Every UDP frontend with its endpoints' addresses.
pub type UdpFrontends = BTreeMap<Frontend, BTreeSet<IpAddr>>;

pub fn udp_frontends(services: &[ProxiedService]) -> UdpFrontends {
    let mut out = UdpFrontends::new();
    for s in services {
        for p in s.ports.iter().filter(|p| p.protocol == Protocol::Udp) {
            let endpoints: BTreeSet<IpAddr> = p.endpoints.iter().map(|e| e.ip()).collect();
            if let Some(ip) = s.cluster_ip {
                out.insert(Frontend::ClusterIp(ip, p.port), endpoints.clone());
            }
            if let Some(n) = p.node_port {
                out.insert(Frontend::NodePort(n), endpoints);
            }
        }
    }
    out
}

/// The `conntrack` options that select a frontend's entries.
fn selector(frontend: Frontend) -> Vec<String> {
    match frontend {
        Frontend::ClusterIp(ip, port) => vec![
            "--orig-dst".to_string(),
            ip.to_string(),
            "--orig-port-dst".to_string(),
            port.to_string(),
        ],
        Frontend::NodePort(port) => vec!["--orig-port-dst".to_string(), port.to_string()],
    }
}

/// The `conntrack -D` filters for what changed from `old` to `new`.
pub fn stale(old: &UdpFrontends, new: &UdpFrontends) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (frontend, endpoints) in new {
        let selector = selector(*frontend);
        let before = old.get(frontend);
        let had_none = before.is_none_or(BTreeSet::is_empty);
        if had_none && !endpoints.is_empty() {
            out.push(selector);
            continue;
        }
        for gone in before
            .into_iter()
            .flatten()
            .filter(|e| !endpoints.contains(e))
        {
            let mut filter = selector.clone();
            filter.extend(["--dst-nat".to_string(), gone.to_string()]);
            out.push(filter);
        }
    }
    for (frontend, endpoints) in old {
        if new.contains_key(frontend) {
            continue;
        }
        for gone in endpoints {
            let mut filter = selector(*frontend);
            filter.extend(["--dst-nat".to_string(), gone.to_string()]);
            out.push(filter);
        }
    }
    out
}

/// Deletes the entries each filter selects. A missing `conntrack` tool is said once by the
/// caller; "0 flow entries" is not a failure.
pub async fn delete(filter: &[String]) -> Result<(), String> {
    let out = Command::new("conntrack")
        .args(["-D", "-p", "udp"])
        .args(filter)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run `conntrack` (install conntrack): {e}"))?;
    let text = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || text.contains("0 flow entries") {
        return Ok(());
    }
    Err(format!(
        "`conntrack -D -p udp {}`: {}",
        filter.join(" "),
        text.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProxiedPort;

    fn dns(endpoints: &[&str]) -> Vec<ProxiedService> {
        vec![ProxiedService {
            namespace: "kube-system".into(),
            name: "dns".into(),
            cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 10)),
            affinity: None,
            external_local: false,
            external_ips: Vec::new(),
            ports: vec![ProxiedPort {
                name: None,
                protocol: Protocol::Udp,
                port: 53,
                node_port: None,
                endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
            }],
        }]
    }

    #[test]
    fn removed_endpoints_and_ports_that_had_none_are_cleared() {
        let none = udp_frontends(&dns(&[]));
        let two = udp_frontends(&dns(&["10.244.1.5:53", "10.244.2.5:53"]));
        let one = udp_frontends(&dns(&["10.244.2.5:53"]));
        assert_eq!(
            stale(&none, &two),
            vec![vec!["--orig-dst", "10.96.0.10", "--orig-port-dst", "53"]]
        );
        assert_eq!(
            stale(&two, &one),
            vec![vec![
                "--orig-dst",
                "10.96.0.10",
                "--orig-port-dst",
                "53",
                "--dst-nat",
                "10.244.1.5"
            ]]
        );
        assert!(stale(&one, &one).is_empty());
        assert_eq!(
            stale(&one, &UdpFrontends::new()).len(),
            1,
            "Service deleted"
        );
    }
}
