//! The cluster's names, computed from the desired set alone (no calls to the control plane),
//! as Kubernetes' DNS specification defines them:
//! - `SVC.NS.svc.DOMAIN`: A, the Service's ClusterIP; for a headless Service, the addresses
//!   of its ready endpoints.
//! - `HOST.SVC.NS.svc.DOMAIN`: A, a headless Service's ready endpoint, `HOST` being the pod's
//!   `hostname` (when its `subdomain` is the Service) or its address with dashes.
//! - `_PORT._PROTO.SVC.NS.svc.DOMAIN`: SRV, one per named port (per endpoint when headless).
//! - `D.C.B.A.in-addr.arpa`: PTR, a ClusterIP's Service and a named endpoint's name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use keel_schema::types::core::{Endpoints, Service};

/// A Service as DNS sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsService {
    pub namespace: String,
    pub name: String,
    /// `None` for a headless Service (or one without an address yet).
    pub cluster_ip: Option<Ipv4Addr>,
    pub headless: bool,
    pub ports: Vec<DnsPort>,
    /// Ready endpoints only.
    pub endpoints: Vec<DnsEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsPort {
    pub name: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsEndpoint {
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
    /// The endpoint's ports by name (a headless Service's SRV records point at them).
    pub ports: BTreeMap<String, u16>,
}

impl DnsService {
    pub fn from_objects(service: &Service, endpoints: Option<&Endpoints>) -> DnsService {
        let cluster_ip_text = service.spec.cluster_ip.as_deref().unwrap_or("");
        let headless = cluster_ip_text == "None";
        let ports = service
            .spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(DnsPort {
                    name: p.name.clone().filter(|n| !n.is_empty())?,
                    protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                    port: u16::try_from(p.port).ok()?,
                })
            })
            .collect();
        let mut ready = Vec::new();
        for subset in endpoints.iter().flat_map(|e| e.subsets.iter().flatten()) {
            let ports: BTreeMap<String, u16> = subset
                .ports
                .iter()
                .flatten()
                .filter_map(|p| Some((p.name.clone()?, u16::try_from(p.port).ok()?)))
                .collect();
            for address in subset.addresses.iter().flatten() {
                if let Ok(ip) = address.ip.parse() {
                    ready.push(DnsEndpoint {
                        ip,
                        hostname: address.hostname.clone().filter(|h| !h.is_empty()),
                        ports: ports.clone(),
                    });
                }
            }
        }
        DnsService {
            namespace: service.metadata.namespace().to_string(),
            name: service.metadata.name().to_string(),
            cluster_ip: cluster_ip_text.parse().ok(),
            headless,
            ports,
            endpoints: ready,
        }
    }
}

/// How long resolvers may keep an answer: short, as endpoints come and go (CoreDNS's 5 s).
pub const TTL: u32 = 5;

/// Every name of the cluster and what it answers. Names are lower case, fully qualified,
/// with the final dot.
#[derive(Debug, Default)]
pub struct Records {
    /// `DOMAIN.` — names under it are the cluster's, answered here or not at all.
    pub zone: String,
    pub a: HashMap<String, Vec<Ipv4Addr>>,
    /// (port, target name).
    pub srv: HashMap<String, Vec<(u16, String)>>,
    pub ptr: HashMap<Ipv4Addr, String>,
    /// Names that exist without A or SRV records of their own (`svc.DOMAIN.`,
    /// `NS.svc.DOMAIN.`): they answer with no data rather than "no such name".
    pub parents: BTreeSet<String>,
}

/// A cluster domain as a zone: `cluster.local` → `cluster.local.`.
pub fn zone(domain: &str) -> String {
    format!("{}.", domain.trim_matches('.').to_ascii_lowercase())
}

/// `10.0.0.5` → `5.0.0.10.in-addr.arpa.`
pub fn reverse_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
}

/// The address a reverse name stands for, if it is one.
pub fn from_reverse_name(name: &str) -> Option<Ipv4Addr> {
    let rest = name.strip_suffix(".in-addr.arpa.")?;
    let octets: Vec<u8> = rest
        .split('.')
        .map(|o| o.parse().ok())
        .collect::<Option<_>>()?;
    let [d, c, b, a] = <[u8; 4]>::try_from(octets).ok()?;
    Some(Ipv4Addr::new(a, b, c, d))
}

impl Records {
    pub fn build(domain: &str, services: &[DnsService]) -> Records {
        let zone = zone(domain);
        let mut r = Records {
            zone: zone.clone(),
            ..Records::default()
        };
        r.parents.insert(zone.clone());
        r.parents.insert(format!("svc.{zone}"));
        for s in services {
            let ns = s.namespace.to_ascii_lowercase();
            let base = format!("{}.{ns}.svc.{zone}", s.name.to_ascii_lowercase());
            r.parents.insert(format!("{ns}.svc.{zone}"));
            if s.headless {
                r.add_headless(s, &base);
            } else if let Some(ip) = s.cluster_ip {
                r.a.entry(base.clone()).or_default().push(ip);
                r.ptr.insert(ip, base.clone());
                for p in &s.ports {
                    let srv = format!("_{}._{}.{base}", p.name, p.protocol);
                    r.srv.entry(srv).or_default().push((p.port, base.clone()));
                }
            } else {
                // A Service without an address yet exists, with nothing to answer.
                r.parents.insert(base);
            }
        }
        r
    }

    fn add_headless(&mut self, s: &DnsService, base: &str) {
        self.parents.insert(base.to_string());
        for e in &s.endpoints {
            self.a.entry(base.to_string()).or_default().push(e.ip);
            let host = e
                .hostname
                .clone()
                .unwrap_or_else(|| e.ip.to_string().replace('.', "-"))
                .to_ascii_lowercase();
            let name = format!("{host}.{base}");
            self.a.entry(name.clone()).or_default().push(e.ip);
            if e.hostname.is_some() {
                self.ptr.insert(e.ip, name.clone());
            }
            for p in &s.ports {
                let port = e.ports.get(&p.name).copied().unwrap_or(p.port);
                let srv = format!("_{}._{}.{base}", p.name, p.protocol);
                self.srv.entry(srv).or_default().push((port, name.clone()));
            }
        }
    }

    /// Whether `name` is the cluster's to answer.
    pub fn owns(&self, name: &str) -> bool {
        // The zone itself, or a name ending in `.ZONE` (never `xZONE`): no allocation, as
        // this runs for every query.
        name.strip_suffix(self.zone.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
    }

    /// Whether `name` exists here, with records of any type.
    pub fn exists(&self, name: &str) -> bool {
        self.a.contains_key(name) || self.srv.contains_key(name) || self.parents.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_schema::Object;

    fn service(yaml: serde_json::Value) -> Service {
        match Object::from_json(yaml).unwrap() {
            Object::Service(s) => s,
            _ => unreachable!(),
        }
    }

    fn endpoints(yaml: serde_json::Value) -> Endpoints {
        match Object::from_json(yaml).unwrap() {
            Object::Endpoints(e) => e,
            _ => unreachable!(),
        }
    }

    fn records() -> Records {
        let web = service(serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "Web", "namespace": "shop"},
            "spec": {"clusterIP": "10.96.0.7", "ports": [{"name": "http", "port": 80}]}
        }));
        let db = service(serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}
        }));
        let db_endpoints = endpoints(serde_json::json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "db", "namespace": "shop"},
            "subsets": [{
                "addresses": [{"ip": "10.244.1.5", "hostname": "db-0"}, {"ip": "10.244.2.9"}],
                "notReadyAddresses": [{"ip": "10.244.3.3", "hostname": "db-2"}],
                "ports": [{"name": "pg", "port": 15432}]
            }]
        }));
        let services = [
            DnsService::from_objects(&web, None),
            DnsService::from_objects(&db, Some(&db_endpoints)),
        ];
        Records::build("Cluster.Local", &services)
    }

    #[test]
    fn a_service_answers_with_its_cluster_ip_srv_and_ptr() {
        let r = records();
        let ip: Ipv4Addr = "10.96.0.7".parse().unwrap();
        assert_eq!(r.a["web.shop.svc.cluster.local."], [ip]);
        assert_eq!(
            r.srv["_http._tcp.web.shop.svc.cluster.local."],
            [(80, "web.shop.svc.cluster.local.".to_string())]
        );
        assert_eq!(r.ptr[&ip], "web.shop.svc.cluster.local.");
        assert_eq!(from_reverse_name(&reverse_name(ip)), Some(ip));
    }

    #[test]
    fn a_headless_service_answers_with_its_ready_pods_by_name() {
        let r = records();
        let (a, b): (Ipv4Addr, Ipv4Addr) =
            ("10.244.1.5".parse().unwrap(), "10.244.2.9".parse().unwrap());
        assert_eq!(
            r.a["db.shop.svc.cluster.local."],
            [a, b],
            "never the unready"
        );
        assert_eq!(r.a["db-0.db.shop.svc.cluster.local."], [a]);
        assert_eq!(r.a["10-244-2-9.db.shop.svc.cluster.local."], [b]);
        assert!(!r.a.contains_key("db-2.db.shop.svc.cluster.local."));
        assert_eq!(
            r.srv["_pg._tcp.db.shop.svc.cluster.local."],
            [
                (15432, "db-0.db.shop.svc.cluster.local.".to_string()),
                (15432, "10-244-2-9.db.shop.svc.cluster.local.".to_string())
            ]
        );
        assert_eq!(r.ptr[&a], "db-0.db.shop.svc.cluster.local.");
    }

    #[test]
    fn the_zone_is_owned_whole_and_its_parents_exist() {
        let r = records();
        assert!(r.owns("nope.shop.svc.cluster.local."));
        assert!(r.owns("cluster.local."));
        assert!(!r.owns("example.com."));
        assert!(!r.owns("notcluster.local."));
        assert!(r.exists("shop.svc.cluster.local."));
        assert!(r.exists("svc.cluster.local."));
        assert!(!r.exists("other.svc.cluster.local."));
        assert_eq!(from_reverse_name("1.2.3.in-addr.arpa."), None);
    }
}
