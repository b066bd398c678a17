//! ClusterIPs and NodePorts, assigned while a revision is applied, so a taken or out-of-range
//! address rejects the revision whole like any other error, located at the field.
//!
//! An assignment lives in the Service's `spec` as Kubernetes keeps it, and is carried over
//! from the stored object whenever git leaves the field empty: a Service keeps its address
//! across revisions and server restarts. A new one gets the first free address at a point
//! hashed from its name, so the same Service name tends to get the same address again.
//!
//! Order: what Services already hold is claimed first, then what git states (which must be
//! free: an address in use is never moved from under its clients), then new assignments.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use keel_schema::path::FieldPath;
use keel_schema::types::core::Service;
use keel_schema::{Manifest, ManifestError, Object, Revision};
use sha2::{Digest, Sha256};

use super::PRUNE;
use keel_store::{ObjectKey, Stored};

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
    fn size(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 2
    }

    fn nth(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1 + i)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let offset = u32::from(ip).wrapping_sub(self.base);
        (1..=self.size()).contains(&offset)
    }

    fn port_in_range(&self, port: i64) -> bool {
        (i64::from(self.node_ports.0)..=i64::from(self.node_ports.1)).contains(&port)
    }

    fn port_range(&self) -> String {
        format!("{}-{}", self.node_ports.0, self.node_ports.1)
    }
}

/// What one Service holds: what git stated, or what the cluster assigned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub cluster_ip: Option<String>,
    /// One per `spec.ports` entry, for NodePort Services.
    pub node_ports: Vec<Option<i64>>,
}

impl Assigned {
    /// `service` with the assignment filled into the fields git left empty.
    pub fn fill(&self, service: &mut Service) {
        if let Some(ip) = &self.cluster_ip {
            service.spec.cluster_ip = Some(ip.clone());
        }
        for (port, assigned) in service
            .spec
            .ports
            .iter_mut()
            .flatten()
            .zip(&self.node_ports)
        {
            if let Some(n) = assigned {
                port.node_port = Some(*n);
            }
        }
    }
}

fn start_point(what: &str, size: u32) -> u32 {
    let digest = Sha256::digest(what.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % size.max(1)
}

fn is_node_port(s: &Service) -> bool {
    s.spec.type_.as_deref() == Some("NodePort")
}

fn protocol(p: &keel_schema::types::core::ServicePort) -> &str {
    p.protocol.as_deref().unwrap_or("TCP")
}

/// A Service's stated ClusterIP: `Ok(None)` when the cluster picks it or it is headless.
fn stated_ip(s: &Service) -> Option<Result<Ipv4Addr, String>> {
    match s.spec.cluster_ip.as_deref() {
        None | Some("") | Some("None") => None,
        Some(text) => Some(text.parse::<Ipv4Addr>().map_err(|_| text.to_string())),
    }
}

fn headless(s: &Service) -> bool {
    s.spec.cluster_ip.as_deref() == Some("None")
}

/// A reason an assignment cannot be made: the Service (by index), the field, the message.
struct Problem {
    index: usize,
    path: FieldPath,
    message: String,
}

/// The assignments for every Service of `revision`, or the located errors that reject it.
pub fn allocate(
    revision: &Revision,
    applied: &BTreeMap<ObjectKey, Stored>,
    network: &ServiceNetwork,
) -> Result<HashMap<ObjectKey, Assigned>, Vec<ManifestError>> {
    let manifests: Vec<&Manifest> = revision
        .manifests
        .iter()
        .filter(|m| matches!(m.object, Object::Service(_)))
        .collect();
    let services: Vec<(ObjectKey, &Service)> = manifests
        .iter()
        .filter_map(|m| match &m.object {
            Object::Service(s) => Some((ObjectKey::of(&m.object), s)),
            _ => None,
        })
        .collect();
    let assigned = assign(&services, applied, network).map_err(|problems| {
        problems
            .into_iter()
            .map(|p| manifests[p.index].error_at(&p.path, p.message))
            .collect::<Vec<_>>()
    })?;
    Ok(services.into_iter().map(|(k, _)| k).zip(assigned).collect())
}

/// `objects` with the cluster's assignments filled into their Services, as applying them
/// would store them; for plans made against the cluster. Errors read `Service ns/name:
/// field: message`.
pub fn fill_assignments(
    objects: &mut [Object],
    applied: &BTreeMap<ObjectKey, Stored>,
    network: &ServiceNetwork,
) -> Result<(), Vec<String>> {
    let services: Vec<(ObjectKey, &Service)> = objects
        .iter()
        .filter_map(|o| match o {
            Object::Service(s) => Some((ObjectKey::of(o), s)),
            _ => None,
        })
        .collect();
    let assigned = assign(&services, applied, network).map_err(|problems| {
        problems
            .into_iter()
            .map(|p| {
                let key = &services[p.index].0;
                format!(
                    "Service {}/{}: {}: {}",
                    key.namespace, key.name, p.path, p.message
                )
            })
            .collect::<Vec<_>>()
    })?;
    let by_key: HashMap<ObjectKey, Assigned> = services
        .iter()
        .map(|(k, _)| k.clone())
        .zip(assigned)
        .collect();
    for o in objects.iter_mut() {
        let key = ObjectKey::of(o);
        if let (Object::Service(s), Some(a)) = (o, by_key.get(&key)) {
            a.fill(s);
        }
    }
    Ok(())
}

/// The assignments, in the order of `services`. Held first: what Services kept in the store
/// without git hold, then what the cluster assigned each Service before (where git leaves the
/// field empty). Then what git states, which must be free. Then new ones.
fn assign(
    services: &[(ObjectKey, &Service)],
    applied: &BTreeMap<ObjectKey, Stored>,
    network: &ServiceNetwork,
) -> Result<Vec<Assigned>, Vec<Problem>> {
    let in_revision: BTreeSet<&ObjectKey> = services.iter().map(|(k, _)| k).collect();
    let stored = |key: &ObjectKey| match applied.get(key).map(|s| &s.object) {
        Some(Object::Service(s)) => Some(s),
        _ => None,
    };
    let holder = |key: &ObjectKey| format!("{}/{}", key.namespace, key.name);
    let node_port_at = |i: usize| {
        FieldPath::new("spec")
            .field("ports")
            .index(i)
            .field("nodePort")
    };
    let mut problems = Vec::new();
    // Address → holder, for messages.
    let mut ips: HashMap<Ipv4Addr, String> = HashMap::new();
    let mut ports: HashMap<(i64, String), String> = HashMap::new();
    let mut out: Vec<Assigned> = services
        .iter()
        .map(|(_, svc)| Assigned {
            cluster_ip: None,
            node_ports: vec![None; svc.spec.ports.as_ref().map_or(0, Vec::len)],
        })
        .collect();

    // Services kept in the store without being in git (`keel.dev/prune: disabled`) keep
    // what they hold.
    for (key, s) in applied {
        let Object::Service(svc) = &s.object else {
            continue;
        };
        if in_revision.contains(key) || s.object.meta().annotation(PRUNE) != Some("disabled") {
            continue;
        }
        if let Some(Ok(ip)) = stated_ip(svc) {
            ips.insert(ip, holder(key));
        }
        for p in svc.spec.ports.iter().flatten() {
            if let Some(n) = p.node_port {
                ports.insert((n, protocol(p).to_string()), holder(key));
            }
        }
    }

    // What the cluster assigned before, where git leaves it to the cluster: an address in
    // use stays with its Service (its clients hold it).
    for (index, (key, svc)) in services.iter().enumerate() {
        let old = stored(key);
        let assigned = &mut out[index];
        if stated_ip(svc).is_none()
            && !headless(svc)
            && let Some(Some(Ok(ip))) = old.map(stated_ip)
            && network.contains(ip)
            && !ips.contains_key(&ip)
        {
            ips.insert(ip, holder(key));
            assigned.cluster_ip = Some(ip.to_string());
        }
        if !is_node_port(svc) {
            continue;
        }
        for (i, p) in svc.spec.ports.iter().flatten().enumerate() {
            if p.node_port.is_some_and(|n| n != 0) {
                continue;
            }
            let kept = old
                .filter(|o| is_node_port(o))
                .and_then(|o| {
                    o.spec
                        .ports
                        .iter()
                        .flatten()
                        .find(|q| q.port == p.port && protocol(q) == protocol(p))
                })
                .and_then(|q| q.node_port)
                .filter(|n| network.port_in_range(*n));
            if let Some(n) = kept
                && let std::collections::hash_map::Entry::Vacant(free) =
                    ports.entry((n, protocol(p).to_string()))
            {
                free.insert(holder(key));
                assigned.node_ports[i] = Some(n);
            }
        }
    }

    // What git states: in range and not held by another Service.
    for (index, (key, svc)) in services.iter().enumerate() {
        let at = FieldPath::new("spec").field("clusterIP");
        match stated_ip(svc) {
            None => {}
            Some(Err(text)) => problems.push(Problem {
                index,
                path: at,
                message: format!(
                    "Invalid value: {text:?}: must be empty, 'None', or a valid IPv4 address"
                ),
            }),
            Some(Ok(ip)) if !network.contains(ip) => problems.push(Problem {
                index,
                path: at,
                message: format!(
                    "Invalid value: \"{ip}\": provided IP is not in the valid range. The range of valid IPs is {network}"
                ),
            }),
            Some(Ok(ip)) => match ips.get(&ip) {
                Some(other) => problems.push(Problem {
                    index,
                    path: at,
                    message: format!(
                        "Invalid value: \"{ip}\": provided IP is already allocated (to Service {other})"
                    ),
                }),
                None => {
                    ips.insert(ip, holder(key));
                    out[index].cluster_ip = Some(ip.to_string());
                }
            },
        }
        if !is_node_port(svc) {
            continue;
        }
        for (i, p) in svc.spec.ports.iter().flatten().enumerate() {
            let Some(n) = p.node_port.filter(|n| *n != 0) else {
                continue;
            };
            if !network.port_in_range(n) {
                problems.push(Problem {
                    index,
                    path: node_port_at(i),
                    message: format!(
                        "Invalid value: {n}: provided port is not in the valid range. The range of valid ports is {}",
                        network.port_range()
                    ),
                });
                continue;
            }
            match ports.entry((n, protocol(p).to_string())) {
                std::collections::hash_map::Entry::Occupied(other) => problems.push(Problem {
                    index,
                    path: node_port_at(i),
                    message: format!(
                        "Invalid value: {n}: provided port is already allocated (to Service {})",
                        other.get()
                    ),
                }),
                std::collections::hash_map::Entry::Vacant(free) => {
                    free.insert(holder(key));
                    out[index].node_ports[i] = Some(n);
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    // Last: new assignments.
    for (index, (key, svc)) in services.iter().enumerate() {
        let assigned = &mut out[index];
        if !headless(svc) && assigned.cluster_ip.is_none() {
            let size = network.size();
            let start = start_point(&holder(key), size);
            let free = (0..size)
                .map(|i| network.nth((start + i) % size))
                .find(|ip| !ips.contains_key(ip));
            match free {
                Some(ip) => {
                    ips.insert(ip, holder(key));
                    assigned.cluster_ip = Some(ip.to_string());
                }
                None => problems.push(Problem {
                    index,
                    path: FieldPath::new("spec").field("clusterIP"),
                    message: format!("Internal error: no free ClusterIP left in {network}"),
                }),
            }
        }
        if !is_node_port(svc) {
            continue;
        }
        for (i, p) in svc.spec.ports.iter().flatten().enumerate() {
            if assigned.node_ports[i].is_some() {
                continue;
            }
            let (low, high) = network.node_ports;
            let size = u32::from(high - low) + 1;
            let start = start_point(&format!("{}:{}/{}", holder(key), p.port, protocol(p)), size);
            let free = (0..size)
                .map(|j| i64::from(low) + i64::from((start + j) % size))
                .find(|n| !ports.contains_key(&(*n, protocol(p).to_string())));
            match free {
                Some(n) => {
                    ports.insert((n, protocol(p).to_string()), holder(key));
                    assigned.node_ports[i] = Some(n);
                }
                None => problems.push(Problem {
                    index,
                    path: node_port_at(i),
                    message: format!(
                        "Internal error: no free node port left in {}",
                        network.port_range()
                    ),
                }),
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_schema::{Kind, SourceFile, load_sources};

    fn revision(yaml: &str) -> Revision {
        let r = load_sources(
            &[SourceFile {
                name: "services.yaml".into(),
                bytes: yaml.as_bytes().to_vec(),
            }],
            None,
        );
        assert!(r.is_valid(), "{:?}", r.errors);
        r
    }

    fn service(name: &str, extra: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{port: 80}}]\n{extra}---\n"
        )
    }

    /// The revision's Services as the store would hold them after applying `assigned`.
    fn stored(
        r: &Revision,
        assigned: &HashMap<ObjectKey, Assigned>,
    ) -> BTreeMap<ObjectKey, Stored> {
        r.manifests
            .iter()
            .map(|m| {
                let key = ObjectKey::of(&m.object);
                let mut object = m.object.clone();
                if let (Object::Service(s), Some(a)) = (&mut object, assigned.get(&key)) {
                    a.fill(s);
                }
                (
                    key,
                    Stored {
                        object,
                        resource_version: 1,
                    },
                )
            })
            .collect()
    }

    fn ip_of(a: &HashMap<ObjectKey, Assigned>, name: &str) -> Option<String> {
        a.get(&ObjectKey::new(Kind::Service, "default", name))
            .and_then(|a| a.cluster_ip.clone())
    }

    #[test]
    fn assigns_distinct_addresses_in_range_and_keeps_them() {
        let net = ServiceNetwork::new("10.99.0.0/29", "30100-30102").expect("valid");
        let names = ["a", "b", "c", "d", "e"];
        let yaml: String = names.iter().map(|n| service(n, "")).collect::<String>()
            + &service("db", "  clusterIP: None\n")
            + &service("np", "  type: NodePort\n");
        let r = revision(&yaml);
        let first = allocate(&r, &BTreeMap::new(), &net).expect("room for all");
        let ips: BTreeSet<String> = names
            .iter()
            .chain(&["np"])
            .map(|n| ip_of(&first, n).expect("an address"))
            .collect();
        assert_eq!(
            ips.len(),
            6,
            "a /29 has 6 usable addresses, all distinct: {ips:?}"
        );
        assert!(!ips.contains("10.99.0.0") && !ips.contains("10.99.0.7"));
        assert_eq!(ip_of(&first, "db"), None, "headless");
        let np = first[&ObjectKey::new(Kind::Service, "default", "np")].node_ports[0];
        assert!(np.is_some_and(|p| (30100..=30102).contains(&p)), "{np:?}");

        // The next revision, with the store holding the assignments, keeps every one.
        let again = allocate(&r, &stored(&r, &first), &net).expect("same room");
        assert_eq!(again, first);

        // One more Service than the range holds: a located error, nothing assigned.
        let full = revision(&(yaml.clone() + &service("extra", "")));
        let errors = allocate(&full, &stored(&r, &first), &net).expect_err("no room");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .to_string()
                .contains("no free ClusterIP left in 10.99.0.0/29"),
            "{}",
            errors[0]
        );
        assert_eq!(errors[0].name.as_deref(), Some("extra"));
    }

    #[test]
    fn stated_addresses_are_honoured_only_when_free() {
        let net = ServiceNetwork::default();
        let r = revision(&(service("a", "  clusterIP: 10.96.5.5\n") + &service("b", "")));
        let first = allocate(&r, &BTreeMap::new(), &net).expect("valid");
        assert_eq!(ip_of(&first, "a").as_deref(), Some("10.96.5.5"));

        // git gives b's address to a new Service c: refused, b's clients keep their address.
        let b_ip = ip_of(&first, "b").expect("b has one");
        let r2 = revision(
            &(service("a", "  clusterIP: 10.96.5.5\n")
                + &service("b", "")
                + &service("c", &format!("  clusterIP: {b_ip}\n"))),
        );
        let errors = allocate(&r2, &stored(&r, &first), &net).expect_err("taken");
        let text = errors[0].to_string();
        assert!(
            text.contains(&format!(
                "\"{b_ip}\": provided IP is already allocated (to Service default/b)"
            )),
            "{text}"
        );
        assert_eq!(errors[0].name.as_deref(), Some("c"));

        // Once b is gone in the same revision, c may have its address.
        let r3 = revision(
            &(service("a", "  clusterIP: 10.96.5.5\n")
                + &service("c", &format!("  clusterIP: {b_ip}\n"))),
        );
        let third = allocate(&r3, &stored(&r, &first), &net).expect("b released it");
        assert_eq!(ip_of(&third, "c"), Some(b_ip));

        for (extra, expect) in [
            (
                "  clusterIP: 10.1.2.3\n",
                "provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/16",
            ),
            (
                "  clusterIP: 10.96.5.5\n",
                "provided IP is already allocated (to Service default/a)",
            ),
        ] {
            let r = revision(&(service("a", "  clusterIP: 10.96.5.5\n") + &service("z", extra)));
            let errors = allocate(&r, &BTreeMap::new(), &net).expect_err(extra);
            let text = errors[0].to_string();
            assert!(text.contains(expect), "{text}");
            assert!(text.starts_with("services.yaml:"), "located: {text}");
            assert_eq!(errors[0].name.as_deref(), Some("z"));
        }
    }

    #[test]
    fn node_ports_outside_the_servers_range_are_located_errors() {
        let net = ServiceNetwork::new("10.96.0.0/16", "31000-31999").expect("valid");
        let r = revision(
            "apiVersion: v1\nkind: Service\nmetadata: {name: z}\nspec:\n  type: NodePort\n  ports:\n  - {port: 80, nodePort: 30500}\n",
        );
        let errors = allocate(&r, &BTreeMap::new(), &net).expect_err("outside");
        let text = errors[0].to_string();
        assert!(
            text.contains("The range of valid ports is 31000-31999"),
            "{text}"
        );
        assert!(
            text.starts_with("services.yaml:7:"),
            "located at the port: {text}"
        );
        assert_eq!(errors[0].field.as_deref(), Some("spec.ports[0].nodePort"));
    }

    #[test]
    fn network_flags_are_checked() {
        for (cidr, ports, expect) in [
            ("10.96.0.0", "30000-32767", "expected ADDRESS/PREFIX"),
            ("10.96.0.1/16", "30000-32767", "did you mean 10.96.0.0/16"),
            ("10.96.0.0/31", "30000-32767", "prefix must be 8 to 30"),
            ("10.96.0.0/16", "32767-30000", "expected LOW-HIGH"),
            ("10.96.0.0/16", "20000-20999", "must lie within 30000-32767"),
        ] {
            let err = ServiceNetwork::new(cidr, ports).expect_err(cidr);
            assert!(err.contains(expect), "{err}");
        }
    }
}
