//! The environment variables Kubernetes gives every container for each Service of its
//! namespace that exists when the container starts: `NAME_SERVICE_HOST`, `NAME_SERVICE_PORT`,
//! `NAME_SERVICE_PORT_<PORT NAME>`, and the Docker-link style `NAME_PORT...` family.

use crate::model::ProxiedService;

fn env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// The variables for `namespace`'s Services, in a stable order. Headless Services (no
/// ClusterIP) get none, as in Kubernetes.
pub fn service_links(services: &[ProxiedService], namespace: &str) -> Vec<(String, String)> {
    let mut selected: Vec<&ProxiedService> = services
        .iter()
        .filter(|s| s.namespace == namespace && s.cluster_ip.is_some() && !s.ports.is_empty())
        .collect();
    selected.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::new();
    for s in selected {
        let (Some(ip), Some(first)) = (s.cluster_ip, s.ports.first()) else {
            continue;
        };
        let name = env_name(&s.name);
        out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for p in &s.ports {
            if let Some(port_name) = &p.name {
                out.push((
                    format!("{name}_SERVICE_PORT_{}", env_name(port_name)),
                    p.port.to_string(),
                ));
            }
        }
        let proto = first.protocol.as_str().to_ascii_lowercase();
        out.push((
            format!("{name}_PORT"),
            format!("{proto}://{ip}:{}", first.port),
        ));
        for p in &s.ports {
            let proto = p.protocol.as_str().to_ascii_lowercase();
            let prefix = format!("{name}_PORT_{}_{}", p.port, p.protocol.as_str());
            out.push((prefix.clone(), format!("{proto}://{ip}:{}", p.port)));
            out.push((format!("{prefix}_PROTO"), proto));
            out.push((format!("{prefix}_PORT"), p.port.to_string()));
            out.push((format!("{prefix}_ADDR"), ip.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Protocol, ProxiedPort};
    use std::net::Ipv4Addr;

    fn service(namespace: &str, name: &str, ip: Option<Ipv4Addr>) -> ProxiedService {
        ProxiedService {
            namespace: namespace.into(),
            name: name.into(),
            cluster_ip: ip,
            affinity: None,
            external_local: false,
            external_ips: Vec::new(),
            ports: vec![
                ProxiedPort {
                    name: Some("http".into()),
                    protocol: Protocol::Tcp,
                    port: 80,
                    node_port: None,
                    endpoints: Vec::new(),
                },
                ProxiedPort {
                    name: Some("dns-udp".into()),
                    protocol: Protocol::Udp,
                    port: 53,
                    node_port: None,
                    endpoints: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn follows_kubernetes_names() {
        let services = vec![
            service("shop", "redis-primary", Some(Ipv4Addr::new(10, 96, 0, 11))),
            service("other", "web", Some(Ipv4Addr::new(10, 96, 0, 12))),
            service("shop", "headless", None),
        ];
        let env: std::collections::BTreeMap<String, String> =
            service_links(&services, "shop").into_iter().collect();
        let get = |k: &str| env.get(k).map(String::as_str);
        assert_eq!(get("REDIS_PRIMARY_SERVICE_HOST"), Some("10.96.0.11"));
        assert_eq!(get("REDIS_PRIMARY_SERVICE_PORT"), Some("80"));
        assert_eq!(get("REDIS_PRIMARY_SERVICE_PORT_HTTP"), Some("80"));
        assert_eq!(get("REDIS_PRIMARY_SERVICE_PORT_DNS_UDP"), Some("53"));
        assert_eq!(get("REDIS_PRIMARY_PORT"), Some("tcp://10.96.0.11:80"));
        assert_eq!(
            get("REDIS_PRIMARY_PORT_53_UDP"),
            Some("udp://10.96.0.11:53")
        );
        assert_eq!(get("REDIS_PRIMARY_PORT_53_UDP_PROTO"), Some("udp"));
        assert_eq!(get("REDIS_PRIMARY_PORT_80_TCP_ADDR"), Some("10.96.0.11"));
        assert!(
            !env.keys().any(|k| k.starts_with("WEB_")),
            "other namespaces' services stay out"
        );
        assert!(
            !env.keys().any(|k| k.starts_with("HEADLESS_")),
            "headless services get none"
        );
    }
}
