//! A pod's resolver settings by its `dnsPolicy`, as the kubelet writes them:
//! - `ClusterFirst` (default): the node's cluster DNS, searching `NS.svc.DOMAIN`,
//!   `svc.DOMAIN` and `DOMAIN`, with `ndots:5`; a `hostNetwork` pod falls back to `Default`.
//! - `ClusterFirstWithHostNet`: the same, for `hostNetwork` pods too.
//! - `Default`: the node's own resolvers (Docker copies the node's `resolv.conf`).
//! - `None`: only what `dnsConfig` gives.
//!
//! `dnsConfig` adds nameservers and search domains after the policy's, and options replace
//! the policy's of the same name.

use keel_schema::types::pod::PodSpec;

use super::DnsSettings;

/// What goes into a pod's `/etc/resolv.conf`; `None` fields keep Docker's (the node's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodDns {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// The pod's settings, or `None` for the node's own `resolv.conf` unchanged.
pub fn pod_dns(spec: &PodSpec, namespace: &str, cluster: Option<&DnsSettings>) -> Option<PodDns> {
    let host_network = spec.host_network == Some(true);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let mut dns = match (policy, cluster) {
        ("ClusterFirst", Some(c)) if !host_network => cluster_first(namespace, c),
        ("ClusterFirstWithHostNet", Some(c)) => cluster_first(namespace, c),
        ("None", _) => PodDns::default(),
        _ => {
            // The node's own resolvers, with whatever dnsConfig adds.
            spec.dns_config.as_ref()?;
            PodDns::default()
        }
    };
    if let Some(config) = &spec.dns_config {
        dns.nameservers
            .extend(config.nameservers.iter().flatten().cloned());
        dns.searches
            .extend(config.searches.iter().flatten().cloned());
        for option in config.options.iter().flatten() {
            dns.options
                .retain(|o| o.split(':').next() != Some(option.name.as_str()));
            dns.options.push(match &option.value {
                Some(v) => format!("{}:{v}", option.name),
                None => option.name.clone(),
            });
        }
    }
    Some(dns)
}

fn cluster_first(namespace: &str, c: &DnsSettings) -> PodDns {
    let domain = c.domain.trim_matches('.');
    PodDns {
        nameservers: vec![c.address.to_string()],
        searches: vec![
            format!("{namespace}.svc.{domain}"),
            format!("svc.{domain}"),
            domain.to_string(),
        ],
        options: vec!["ndots:5".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    fn cluster() -> DnsSettings {
        DnsSettings {
            address: "169.254.20.10".parse().unwrap(),
            port: 53,
            domain: "cluster.local".into(),
        }
    }

    #[test]
    fn cluster_first_searches_the_pods_namespace_first() {
        let dns = pod_dns(&spec(json!({"containers": []})), "shop", Some(&cluster())).unwrap();
        assert_eq!(dns.nameservers, ["169.254.20.10"]);
        assert_eq!(
            dns.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
        assert_eq!(dns.options, ["ndots:5"]);
    }

    #[test]
    fn host_network_pods_use_the_node_unless_they_ask() {
        let c = cluster();
        assert_eq!(
            pod_dns(&spec(json!({"hostNetwork": true})), "a", Some(&c)),
            None
        );
        let asked = spec(json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}));
        assert_eq!(
            pod_dns(&asked, "a", Some(&c)).unwrap().nameservers,
            ["169.254.20.10"]
        );
        assert_eq!(
            pod_dns(&spec(json!({"dnsPolicy": "Default"})), "a", Some(&c)),
            None
        );
        assert_eq!(pod_dns(&spec(json!({})), "a", None), None, "no cluster DNS");
    }

    #[test]
    fn dns_config_adds_and_none_takes_only_it() {
        let c = cluster();
        let s = spec(json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1"], "searches": ["corp.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}));
        assert_eq!(
            pod_dns(&s, "a", Some(&c)).unwrap(),
            PodDns {
                nameservers: vec!["1.1.1.1".into()],
                searches: vec!["corp.example".into()],
                options: vec!["ndots:2".into(), "edns0".into()],
            }
        );
        let s = spec(json!({"dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}}));
        assert_eq!(pod_dns(&s, "a", Some(&c)).unwrap().options, ["ndots:1"]);
    }
}
