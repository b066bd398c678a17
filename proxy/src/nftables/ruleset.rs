//! The nftables ruleset of a node's Services, computed whole from the Service set. Pure: no
//! kernel is asked, so it is tested as data and diffed against what was applied last.
//!
//! The path of a packet, after kube-proxy's nftables mode, made lighter where `nft` pays for
//! size (every `nft` run reads every chain and set of the host, not their rules):
//! - `nat-prerouting` (pods, other hosts) and `nat-output` (the node itself) jump to
//!   `services`, which looks the destination up in two verdict maps: `service-ips`
//!   (ClusterIP . protocol . port) and, for the node's own addresses, `service-nodeports`
//!   (protocol . port). One lookup per new connection, whatever the number of Services.
//! - A Service port's chain `svc-NS/NAME/PROTO/PORT` picks a ready endpoint at random and
//!   DNATs to it: rule i of N matches with probability 1/(N-i) (`numgen random mod (N-i)`),
//!   so each endpoint gets 1/N, with rules only (no chain or anonymous set per endpoint).
//!   Under ClientIP affinity, each endpoint has a chain `ep-…__IP/PORT` and a timeout set
//!   `affSECONDS-…` instead: known clients go back to theirs, new ones are recorded.
//! - Traffic from outside enters through `ext-…` first: marked as external, or, with
//!   `externalTrafficPolicy: Local`, sent only to this node's endpoints.
//! - `nat-postrouting` masquerades only where the reply would not come back through this
//!   node otherwise: a pod reaching itself (its address pair is in `hairpin`), and external
//!   traffic sent to a pod outside `local-pods`.
//! - Ports without a ready endpoint are in the `no-endpoint-*` sets, which the filter chains
//!   reject, so clients are refused at once instead of waiting for a timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::expr::{Action, Rule, protocol_name};
pub use super::expr::{IpKey, PortKey};
use crate::model::{Protocol, ProxiedService};
use ipnet::Ipv4Net;

/// The agent's table; nothing outside it is ever touched.
pub const TABLE: &str = "keel-services";
pub const FAMILY: &str = "ip";

pub const SERVICE_IPS: &str = "service-ips";
pub const SERVICE_NODE_PORTS: &str = "service-nodeports";
pub const NO_ENDPOINT_IPS: &str = "no-endpoint-ips";
pub const NO_ENDPOINT_NODE_PORTS: &str = "no-endpoint-nodeports";
/// `ENDPOINT . ENDPOINT`: a connection from an endpoint translated to itself.
pub const HAIRPIN: &str = "hairpin";
/// This node's pod range.
pub const LOCAL_PODS: &str = "local-pods";

/// The pod ranges that tell this node's endpoints from other nodes'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranges {
    /// This node's pods.
    pub pod_cidr: Ipv4Net,
    /// Every pod of the cluster.
    pub cluster_cidr: Ipv4Net,
}

/// The Service-dependent part of the table; the fixed part is [`super::skeleton`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Service, external and endpoint chains, each with its rules.
    pub chains: BTreeMap<String, Vec<Rule>>,
    /// ClientIP affinity sets, each with its timeout in seconds.
    pub affinity_sets: BTreeMap<String, u64>,
    pub service_ips: BTreeMap<IpKey, String>,
    pub node_ports: BTreeMap<PortKey, String>,
    pub no_endpoint_ips: BTreeSet<IpKey>,
    pub no_endpoint_node_ports: BTreeSet<PortKey>,
    /// Every endpoint address.
    pub hairpin: BTreeSet<Ipv4Addr>,
    /// This node's pod range, once known.
    pub local_pods: Option<Ipv4Net>,
}

impl Ruleset {
    /// The ruleset for `services`. `ranges` tells local endpoints from remote ones; without
    /// it (before registration) every endpoint counts as remote.
    pub fn build(services: &[ProxiedService], ranges: Option<Ranges>) -> Ruleset {
        let mut out = Ruleset::default();
        for s in services {
            for p in &s.ports {
                if s.cluster_ip.is_none() && p.node_port.is_none() {
                    continue;
                }
                let base = format!(
                    "{}/{}/{}/{}",
                    s.namespace,
                    s.name,
                    protocol_name(p.protocol),
                    p.port
                );
                let ip_key = s.cluster_ip.map(|ip| (ip, p.protocol, p.port));
                let port_key = p.node_port.map(|n| (p.protocol, n));
                if ip_key.is_some_and(|k| out.taken_ip(&k, &base))
                    || port_key.is_some_and(|k| out.taken_port(&k, &base))
                {
                    continue;
                }
                let external_keys: Vec<IpKey> = s
                    .external_ips
                    .iter()
                    .map(|ip| (*ip, p.protocol, p.port))
                    .filter(|k| !out.taken_ip(k, &base))
                    .collect();
                let endpoints: Vec<SocketAddr> = p
                    .endpoints
                    .iter()
                    .copied()
                    .filter(|e| e.is_ipv4())
                    .collect();
                if endpoints.is_empty() {
                    out.no_endpoint_ips.extend(ip_key);
                    out.no_endpoint_ips.extend(external_keys);
                    out.no_endpoint_node_ports.extend(port_key);
                    continue;
                }
                let affinity = s.affinity.map(|d| d.as_secs().max(1));
                let local = |e: &SocketAddr| match (e.ip(), ranges) {
                    (IpAddr::V4(ip), Some(r)) => r.pod_cidr.contains(&ip),
                    _ => false,
                };
                let mut targets = Vec::new();
                for e in &endpoints {
                    if let IpAddr::V4(ip) = e.ip() {
                        out.hairpin.insert(ip);
                    }
                    targets.push((out.endpoint(&base, *e, p.protocol, affinity), local(e)));
                }
                let svc = format!("svc-{base}");
                let all: Vec<_> = targets.iter().map(|(t, _)| t.clone()).collect();
                out.chains.insert(svc.clone(), dispatch(&all));
                if let Some(k) = ip_key {
                    out.service_ips.insert(k, svc.clone());
                }
                if port_key.is_some() || !external_keys.is_empty() {
                    let ext = format!("ext-{base}");
                    let local_targets: Vec<_> = targets
                        .iter()
                        .filter(|(_, l)| *l)
                        .map(|(t, _)| t.clone())
                        .collect();
                    let rules = if s.external_local {
                        external_local(&svc, &local_targets, ranges)
                    } else {
                        vec![Rule::External {
                            service: svc.clone(),
                        }]
                    };
                    out.chains.insert(ext.clone(), rules);
                    for k in external_keys {
                        out.service_ips.insert(k, ext.clone());
                    }
                    if let Some(k) = port_key {
                        out.node_ports.insert(k, ext);
                    }
                }
            }
        }
        out.local_pods = ranges.map(|r| r.pod_cidr);
        out
    }

    fn taken_ip(&self, key: &IpKey, by: &str) -> bool {
        let taken = self.service_ips.contains_key(key) || self.no_endpoint_ips.contains(key);
        if taken {
            // The control plane allocates without overlaps; two Services on one address
            // can only come from a bug, and the first one keeps it.
            tracing::warn!(address = %key.0, port = key.2, second = by, "two services on one address; ignoring the second");
        }
        taken
    }

    fn taken_port(&self, key: &PortKey, by: &str) -> bool {
        let taken = self.node_ports.contains_key(key) || self.no_endpoint_node_ports.contains(key);
        if taken {
            tracing::warn!(
                node_port = key.1,
                second = by,
                "two services on one node port; ignoring the second"
            );
        }
        taken
    }

    /// How a Service chain reaches endpoint `e`: a DNAT in its own rule, or under affinity a
    /// chain (and timeout set) of the endpoint's own that records the client.
    fn endpoint(
        &mut self,
        base: &str,
        e: SocketAddr,
        protocol: Protocol,
        affinity: Option<u64>,
    ) -> Target {
        let Some(timeout) = affinity else {
            return Target {
                action: Action::Dnat(protocol, e),
                set: None,
            };
        };
        let chain = format!("ep-{base}__{}/{}", e.ip(), e.port());
        let set = format!("aff{timeout}-{base}__{}/{}", e.ip(), e.port());
        self.affinity_sets.insert(set.clone(), timeout);
        self.chains.insert(
            chain.clone(),
            vec![
                Rule::Remember { set: set.clone() },
                Rule::Pick {
                    one_in: None,
                    action: Action::Dnat(protocol, e),
                },
            ],
        );
        Target {
            action: Action::Goto(chain),
            set: Some(set),
        }
    }
}

/// How a Service chain sends to one endpoint: a DNAT, or (under affinity) a goto to the
/// endpoint's chain, whose set remembers its clients.
#[derive(Debug, Clone)]
struct Target {
    action: Action,
    set: Option<String>,
}

/// Affine clients to their endpoint; everyone else to one at random: rule i of N matches
/// with probability 1/(N-i), so every endpoint gets 1/N of new connections.
fn dispatch(targets: &[Target]) -> Vec<Rule> {
    let mut rules = Vec::new();
    for t in targets {
        if let (Some(set), Action::Goto(chain)) = (&t.set, &t.action) {
            rules.push(Rule::Affine {
                set: set.clone(),
                chain: chain.clone(),
            });
        }
    }
    let n = targets.len();
    for (i, t) in targets.iter().enumerate() {
        rules.push(Rule::Pick {
            one_in: (i + 1 < n).then_some(n - i),
            action: t.action.clone(),
        });
    }
    if targets.is_empty() {
        rules.push(Rule::Drop);
    }
    rules
}

/// `externalTrafficPolicy: Local`: pods and the node itself still use every endpoint (as
/// kube-proxy does); outside clients reach only this node's, unmasqueraded, or are dropped
/// when it has none.
fn external_local(svc: &str, local: &[Target], ranges: Option<Ranges>) -> Vec<Rule> {
    let mut rules = Vec::new();
    if let Some(r) = ranges {
        rules.push(Rule::FromRange {
            range: r.cluster_cidr,
            service: svc.to_string(),
        });
    }
    rules.push(Rule::FromNode {
        service: svc.to_string(),
    });
    rules.extend(dispatch(local));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProxiedPort;
    use crate::nftables::expr::EXTERNAL_MARK;
    use crate::nftables::skeleton::skeleton;
    use serde_json::Value;
    use std::time::Duration;

    fn service(name: &str, ip: [u8; 4], node_port: Option<u16>, eps: &[&str]) -> ProxiedService {
        ProxiedService {
            namespace: "shop".into(),
            name: name.into(),
            cluster_ip: Some(Ipv4Addr::from(ip)),
            affinity: None,
            external_local: false,
            external_ips: Vec::new(),
            ports: vec![ProxiedPort {
                name: None,
                protocol: Protocol::Tcp,
                port: 80,
                node_port,
                endpoints: eps.iter().map(|e| e.parse().unwrap()).collect(),
            }],
        }
    }

    fn ranges() -> Option<Ranges> {
        Some(Ranges {
            pod_cidr: "10.244.1.0/24".parse().unwrap(),
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
        })
    }

    fn text(v: &[Rule]) -> String {
        serde_json::to_string(&v.iter().map(Rule::exprs).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_service_is_one_map_entry_and_a_chain_picking_an_endpoint_at_random() {
        let r = Ruleset::build(
            &[service(
                "web",
                [10, 96, 0, 7],
                None,
                &["10.244.1.5:8080", "10.244.2.9:8080", "10.244.2.10:8080"],
            )],
            ranges(),
        );
        let key = (Ipv4Addr::new(10, 96, 0, 7), Protocol::Tcp, 80);
        assert_eq!(r.service_ips[&key], "svc-shop/web/tcp/80");
        assert_eq!(r.chains.len(), 1, "no chain per endpoint without affinity");
        let rules = &r.chains["svc-shop/web/tcp/80"];
        assert_eq!(rules.len(), 3);
        // 1/3, then 1/2 of the rest, then the rest: a third each.
        let first = text(&rules[..1]);
        assert!(first.contains(r#""mod":3"#), "{first}");
        assert!(
            first.contains(r#""dnat":{"addr":"10.244.1.5","port":8080}"#),
            "{first}"
        );
        assert!(text(&rules[1..2]).contains(r#""mod":2"#));
        let last = text(&rules[2..]);
        assert!(
            !last.contains("numgen") && last.contains("10.244.2.10"),
            "{last}"
        );
        assert_eq!(r.hairpin.len(), 3, "each endpoint may reach itself");
        assert_eq!(r.local_pods, Some("10.244.1.0/24".parse().unwrap()));
        assert!(r.no_endpoint_ips.is_empty() && r.affinity_sets.is_empty());
    }

    #[test]
    fn node_port_traffic_is_marked_external_for_the_masquerade_rule() {
        let r = Ruleset::build(
            &[service(
                "web",
                [10, 96, 0, 7],
                Some(30080),
                &["10.244.1.5:8080", "10.244.2.9:8080"],
            )],
            ranges(),
        );
        assert_eq!(r.node_ports[&(Protocol::Tcp, 30080)], "ext-shop/web/tcp/80");
        let ext = text(&r.chains["ext-shop/web/tcp/80"]);
        assert!(ext.contains(&EXTERNAL_MARK.to_string()) && ext.contains("svc-shop/web/tcp/80"));
        // And the fixed masquerade rule sends only external traffic outside local-pods.
        let (_, rules) = skeleton();
        let post: Vec<Value> = rules
            .into_iter()
            .filter(|(c, _)| *c == "nat-postrouting")
            .map(|(_, r)| Value::from(r))
            .collect();
        let post = serde_json::to_string(&post).unwrap();
        assert!(post.contains(&format!("@{LOCAL_PODS}")) && post.contains(&format!("@{HAIRPIN}")));
    }

    #[test]
    fn a_load_balancer_address_is_external_traffic_like_a_node_port() {
        let mut s = service("web", [10, 96, 0, 7], Some(30080), &["10.244.2.9:8080"]);
        s.external_ips = vec![Ipv4Addr::new(192, 168, 1, 240)];
        let r = Ruleset::build(std::slice::from_ref(&s), ranges());
        let lb = (Ipv4Addr::new(192, 168, 1, 240), Protocol::Tcp, 80);
        assert_eq!(r.service_ips[&lb], "ext-shop/web/tcp/80");
        s.ports[0].endpoints.clear();
        let r = Ruleset::build(&[s], ranges());
        assert!(r.no_endpoint_ips.contains(&lb), "refused without endpoints");
    }

    #[test]
    fn external_traffic_policy_local_keeps_outside_clients_on_this_node() {
        let mut s = service(
            "web",
            [10, 96, 0, 7],
            Some(30080),
            &["10.244.1.5:8080", "10.244.2.9:8080"],
        );
        s.external_local = true;
        let r = Ruleset::build(std::slice::from_ref(&s), ranges());
        let ext = text(&r.chains["ext-shop/web/tcp/80"]);
        assert!(ext.contains("10.244.0.0"), "pods use every endpoint: {ext}");
        assert!(ext.contains(r#""dnat":{"addr":"10.244.1.5""#), "{ext}");
        assert!(!ext.contains("10.244.2.9"), "{ext}");
        assert!(
            !ext.contains(&EXTERNAL_MARK.to_string()),
            "never masqueraded: {ext}"
        );

        s.ports[0].endpoints = vec!["10.244.2.9:8080".parse().unwrap()];
        let r = Ruleset::build(&[s], ranges());
        let ext = text(&r.chains["ext-shop/web/tcp/80"]);
        assert!(ext.ends_with(r#"[{"drop":null}]]"#), "{ext}");
    }

    #[test]
    fn no_ready_endpoint_means_rejected_and_headless_means_nothing() {
        let mut headless = service("db", [0, 0, 0, 0], None, &["10.244.1.5:5432"]);
        headless.cluster_ip = None;
        let r = Ruleset::build(
            &[service("web", [10, 96, 0, 7], Some(30080), &[]), headless],
            None,
        );
        assert!(r.chains.is_empty() && r.service_ips.is_empty() && r.node_ports.is_empty());
        assert_eq!(r.no_endpoint_ips.len(), 1);
        assert_eq!(
            r.no_endpoint_node_ports.iter().collect::<Vec<_>>(),
            vec![&(Protocol::Tcp, 30080)]
        );
    }

    #[test]
    fn affinity_sends_a_known_client_back_and_records_new_ones() {
        let mut s = service(
            "web",
            [10, 96, 0, 7],
            None,
            &["10.244.1.5:8080", "10.244.2.9:8080"],
        );
        s.affinity = Some(Duration::from_secs(600));
        let r = Ruleset::build(&[s], ranges());
        let set = "aff600-shop/web/tcp/80__10.244.1.5/8080";
        assert_eq!(r.affinity_sets[set], 600);
        let svc = text(&r.chains["svc-shop/web/tcp/80"]);
        assert!(svc.starts_with(&format!(r#"[[{{"match":{{"left":{{"payload":{{"field":"saddr","protocol":"ip"}}}},"op":"==","right":"@{set}"}}}}"#)), "{svc}");
        let ep = text(&r.chains["ep-shop/web/tcp/80__10.244.1.5/8080"]);
        assert!(
            ep.contains(r#""op":"update""#) && ep.contains("dnat"),
            "{ep}"
        );
        assert!(
            svc.contains(r#""goto":{"target":"ep-shop/web/tcp/80__10.244.2.9/8080"}"#),
            "{svc}"
        );
    }

    #[test]
    fn a_second_service_on_a_taken_address_is_ignored() {
        let r = Ruleset::build(
            &[
                service("a", [10, 96, 0, 7], None, &["10.244.1.5:80"]),
                service("b", [10, 96, 0, 7], None, &["10.244.1.6:80"]),
            ],
            None,
        );
        assert_eq!(r.service_ips.len(), 1);
        assert!(
            r.chains.keys().all(|c| c.contains("shop/a/")),
            "{:?}",
            r.chains.keys()
        );
    }
}
