//! What the proxy serves: each Service reduced to its frontends (ClusterIP and NodePort ports)
//! and the ready endpoints behind each port, read from the Service and Endpoints objects the
//! control plane sends.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use keel_schema::types::core::{Endpoints, Service};

/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds`: three hours.
pub const DEFAULT_AFFINITY_TIMEOUT: Duration = Duration::from_secs(10800);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn parse(text: &str) -> Option<Protocol> {
        match text {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// One Service as the proxy serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedService {
    pub namespace: String,
    pub name: String,
    /// `None` for headless Services and for Services not yet given an address.
    pub cluster_ip: Option<Ipv4Addr>,
    /// `Some(timeout)` with `sessionAffinity: ClientIP`.
    pub affinity: Option<Duration>,
    /// `externalTrafficPolicy: Local`: traffic from outside goes only to this node's
    /// endpoints, with the client's address kept.
    pub external_local: bool,
    /// A LoadBalancer Service's external addresses (`status.loadBalancer.ingress`): its
    /// ports answer there too, as traffic from outside.
    pub external_ips: Vec<Ipv4Addr>,
    pub ports: Vec<ProxiedPort>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedPort {
    pub name: Option<String>,
    pub protocol: Protocol,
    pub port: u16,
    pub node_port: Option<u16>,
    /// Ready endpoints only, in a stable order.
    pub endpoints: Vec<SocketAddr>,
}

impl ProxiedService {
    /// Reads a Service and its Endpoints (if the controller has written them yet). Only
    /// checked objects reach here, so a value out of range is a bug upstream; it is reported
    /// rather than guessed around.
    pub fn from_objects(
        service: &Service,
        endpoints: Option<&Endpoints>,
    ) -> Result<ProxiedService, String> {
        let namespace = service.metadata.namespace().to_string();
        let name = service.metadata.name().to_string();
        let cluster_ip = match service.spec.cluster_ip.as_deref() {
            None | Some("") | Some("None") => None,
            Some(ip) => Some(
                ip.parse::<Ipv4Addr>()
                    .map_err(|_| format!("spec.clusterIP: {ip:?} is not an IPv4 address"))?,
            ),
        };
        let affinity = (service.spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            service
                .spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u64::try_from(t).ok())
                .map_or(DEFAULT_AFFINITY_TIMEOUT, Duration::from_secs)
        });
        let external_local = service.spec.external_traffic_policy.as_deref() == Some("Local");
        let external_ips = if service.spec.type_.as_deref() == Some("LoadBalancer") {
            service
                .load_balancer_ips()
                .into_iter()
                .filter_map(|ip| ip.parse().ok())
                .collect()
        } else {
            Vec::new()
        };
        let mut ports = Vec::new();
        for (i, p) in service.spec.ports.iter().flatten().enumerate() {
            let protocol_text = p.protocol.as_deref().unwrap_or("TCP");
            let protocol = Protocol::parse(protocol_text).ok_or_else(|| {
                format!("spec.ports[{i}].protocol: {protocol_text:?} is not supported")
            })?;
            let port = u16::try_from(p.port)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("spec.ports[{i}].port: {} is out of range", p.port))?;
            let node_port = match p.node_port.filter(|n| *n != 0) {
                None => None,
                Some(n) => Some(
                    u16::try_from(n)
                        .map_err(|_| format!("spec.ports[{i}].nodePort: {n} is out of range"))?,
                ),
            };
            ports.push(ProxiedPort {
                name: p.name.clone().filter(|n| !n.is_empty()),
                protocol,
                port,
                node_port,
                endpoints: ready_endpoints(endpoints, p.name.as_deref(), protocol),
            });
        }
        Ok(ProxiedService {
            namespace,
            name,
            cluster_ip,
            affinity,
            external_local,
            external_ips,
            ports,
        })
    }
}

/// The ready addresses of every subset that serves the Service port named `name` (the
/// Endpoints controller copies the Service port's name and protocol onto each subset's port).
fn ready_endpoints(
    endpoints: Option<&Endpoints>,
    name: Option<&str>,
    protocol: Protocol,
) -> Vec<SocketAddr> {
    let name = name.filter(|n| !n.is_empty());
    let mut out = Vec::new();
    for subset in endpoints
        .and_then(|e| e.subsets.as_ref())
        .into_iter()
        .flatten()
    {
        let port = subset.ports.iter().flatten().find(|p| {
            p.name.as_deref().filter(|n| !n.is_empty()) == name
                && Protocol::parse(p.protocol.as_deref().unwrap_or("TCP")) == Some(protocol)
        });
        let Some(port) = port.and_then(|p| u16::try_from(p.port).ok()) else {
            continue;
        };
        for address in subset.addresses.iter().flatten() {
            if let Ok(ip) = address.ip.parse::<IpAddr>() {
                out.push(SocketAddr::new(ip, port));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(yaml: &str) -> Service {
        serde_yaml::from_str(yaml).expect("test service")
    }

    fn endpoints(yaml: &str) -> Endpoints {
        serde_yaml::from_str(yaml).expect("test endpoints")
    }

    #[test]
    fn reads_ports_endpoints_and_affinity() {
        let s = service(
            "metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.7
  sessionAffinity: ClientIP
  type: NodePort
  ports:
  - {name: http, port: 80, nodePort: 30080}
  - {name: dns, port: 53, protocol: UDP}",
        );
        let e = endpoints(
            "metadata: {name: web, namespace: shop}
subsets:
- addresses: [{ip: 172.17.0.3}, {ip: 172.17.0.2}]
  notReadyAddresses: [{ip: 172.17.0.9}]
  ports: [{name: http, port: 8080, protocol: TCP}, {name: dns, port: 5353, protocol: UDP}]",
        );
        let p = ProxiedService::from_objects(&s, Some(&e)).expect("valid");
        assert_eq!(p.cluster_ip, Some(Ipv4Addr::new(10, 96, 0, 7)));
        assert_eq!(p.affinity, Some(DEFAULT_AFFINITY_TIMEOUT));
        assert_eq!(p.ports[0].node_port, Some(30080));
        assert_eq!(
            p.ports[0].endpoints,
            vec![
                "172.17.0.2:8080".parse().unwrap(),
                "172.17.0.3:8080".parse().unwrap()
            ],
            "ready addresses only, sorted"
        );
        assert_eq!(p.ports[1].protocol, Protocol::Udp);
        assert_eq!(p.ports[1].endpoints.len(), 2);
        assert_eq!(p.ports[1].endpoints[0].port(), 5353);
    }

    #[test]
    fn headless_and_unallocated_services_have_no_address() {
        for ip in ["None", ""] {
            let s = service(&format!(
                "metadata: {{name: db}}\nspec: {{clusterIP: '{ip}', ports: [{{port: 5432}}]}}"
            ));
            let p = ProxiedService::from_objects(&s, None).expect("valid");
            assert_eq!(p.cluster_ip, None);
            assert!(p.ports[0].endpoints.is_empty());
        }
        let bad = service("metadata: {name: db}\nspec: {clusterIP: 'x', ports: [{port: 1}]}");
        let err = ProxiedService::from_objects(&bad, None).unwrap_err();
        assert!(err.contains("spec.clusterIP"), "{err}");
    }
}
