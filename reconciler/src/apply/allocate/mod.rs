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

mod network;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use keel_schema::path::FieldPath;
use keel_schema::types::core::Service;
use keel_schema::{Manifest, ManifestError, Object, Revision};
use sha2::{Digest, Sha256};

use keel_store::{ObjectKey, Stored};

use super::PRUNE;
pub use network::ServiceNetwork;

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

/// NodePort and LoadBalancer Services get node ports, as in Kubernetes.
fn is_node_port(s: &Service) -> bool {
    keel_schema::validate::service::EXTERNAL_TYPES.contains(&s.spec.type_.as_deref().unwrap_or(""))
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

/// Addresses and ports taken so far, with who holds each (for messages).
#[derive(Default)]
struct Taken {
    ips: HashMap<Ipv4Addr, String>,
    ports: HashMap<(i64, String), String>,
}

impl Taken {
    /// Takes `ip` for `holder`; false when someone has it.
    fn ip(&mut self, ip: Ipv4Addr, holder: &str) -> bool {
        match self.ips.entry(ip) {
            Entry::Occupied(_) => false,
            Entry::Vacant(free) => {
                free.insert(holder.to_string());
                true
            }
        }
    }

    /// Takes node port `port` (of `protocol`) for `holder`; false when someone has it.
    fn port(&mut self, port: i64, protocol: &str, holder: &str) -> bool {
        match self.ports.entry((port, protocol.to_string())) {
            Entry::Occupied(_) => false,
            Entry::Vacant(free) => {
                free.insert(holder.to_string());
                true
            }
        }
    }
}

/// `namespace/name`, as messages name a Service.
fn holder(key: &ObjectKey) -> String {
    format!("{}/{}", key.namespace, key.name)
}

fn node_port_at(i: usize) -> FieldPath {
    FieldPath::new("spec")
        .field("ports")
        .index(i)
        .field("nodePort")
}

/// The assignments, in the order of `services`. Held first: what Services kept in the store
/// without git hold, then what the cluster assigned each Service before (where git leaves the
/// field empty). Then what git states, which must be free. Then new ones.
fn assign(
    services: &[(ObjectKey, &Service)],
    applied: &BTreeMap<ObjectKey, Stored>,
    network: &ServiceNetwork,
) -> Result<Vec<Assigned>, Vec<Problem>> {
    let mut taken = Taken::default();
    let mut out: Vec<Assigned> = services
        .iter()
        .map(|(_, svc)| Assigned {
            cluster_ip: None,
            node_ports: vec![None; svc.spec.ports.as_ref().map_or(0, Vec::len)],
        })
        .collect();
    hold_kept(services, applied, &mut taken);
    keep_assigned(services, applied, network, &mut taken, &mut out);
    let problems = claim_stated(services, network, &mut taken, &mut out);
    if !problems.is_empty() {
        return Err(problems);
    }
    let problems = assign_new(services, network, &mut taken, &mut out);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Services kept in the store without being in git (`keel.dev/prune: disabled`) keep what
/// they hold.
fn hold_kept(
    services: &[(ObjectKey, &Service)],
    applied: &BTreeMap<ObjectKey, Stored>,
    taken: &mut Taken,
) {
    let in_revision: BTreeSet<&ObjectKey> = services.iter().map(|(k, _)| k).collect();
    for (key, s) in applied {
        let Object::Service(svc) = &s.object else {
            continue;
        };
        if in_revision.contains(key) || s.object.meta().annotation(PRUNE) != Some("disabled") {
            continue;
        }
        if let Some(Ok(ip)) = stated_ip(svc) {
            taken.ip(ip, &holder(key));
        }
        for p in svc.spec.ports.iter().flatten() {
            if let Some(n) = p.node_port {
                taken.port(n, protocol(p), &holder(key));
            }
        }
    }
}

/// What the cluster assigned before, where git leaves it to the cluster: an address in use
/// stays with its Service (its clients hold it).
fn keep_assigned(
    services: &[(ObjectKey, &Service)],
    applied: &BTreeMap<ObjectKey, Stored>,
    network: &ServiceNetwork,
    taken: &mut Taken,
    out: &mut [Assigned],
) {
    for ((key, svc), assigned) in services.iter().zip(out.iter_mut()) {
        let old = match applied.get(key).map(|s| &s.object) {
            Some(Object::Service(s)) => Some(s),
            _ => None,
        };
        if stated_ip(svc).is_none()
            && !headless(svc)
            && let Some(Some(Ok(ip))) = old.map(stated_ip)
            && network.contains(ip)
            && taken.ip(ip, &holder(key))
        {
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
                && taken.port(n, protocol(p), &holder(key))
            {
                assigned.node_ports[i] = Some(n);
            }
        }
    }
}

/// What git states: in range and not held by another Service.
fn claim_stated(
    services: &[(ObjectKey, &Service)],
    network: &ServiceNetwork,
    taken: &mut Taken,
    out: &mut [Assigned],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (index, (key, svc)) in services.iter().enumerate() {
        let problem = |path: FieldPath, message: String| Problem {
            index,
            path,
            message,
        };
        let at = FieldPath::new("spec").field("clusterIP");
        match stated_ip(svc) {
            None => {}
            Some(Err(text)) => problems.push(problem(
                at,
                format!("Invalid value: {text:?}: must be empty, 'None', or a valid IPv4 address"),
            )),
            Some(Ok(ip)) if !network.contains(ip) => problems.push(problem(
                at,
                format!(
                    "Invalid value: \"{ip}\": provided IP is not in the valid range. The range of valid IPs is {network}"
                ),
            )),
            Some(Ok(ip)) => match taken.ips.get(&ip) {
                Some(other) => problems.push(problem(
                    at,
                    format!(
                        "Invalid value: \"{ip}\": provided IP is already allocated (to Service {other})"
                    ),
                )),
                None => {
                    taken.ip(ip, &holder(key));
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
                problems.push(problem(
                    node_port_at(i),
                    format!(
                        "Invalid value: {n}: provided port is not in the valid range. The range of valid ports is {}",
                        network.port_range()
                    ),
                ));
            } else if let Some(other) = taken.ports.get(&(n, protocol(p).to_string())) {
                problems.push(problem(
                    node_port_at(i),
                    format!("Invalid value: {n}: provided port is already allocated (to Service {other})"),
                ));
            } else {
                taken.port(n, protocol(p), &holder(key));
                out[index].node_ports[i] = Some(n);
            }
        }
    }
    problems
}

/// Last: new assignments, each the first free one from a point hashed from its holder.
fn assign_new(
    services: &[(ObjectKey, &Service)],
    network: &ServiceNetwork,
    taken: &mut Taken,
    out: &mut [Assigned],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (index, ((key, svc), assigned)) in services.iter().zip(out.iter_mut()).enumerate() {
        if !headless(svc) && assigned.cluster_ip.is_none() {
            let size = network.size();
            let start = start_point(&holder(key), size);
            let free = (0..size)
                .map(|i| network.nth((start + i) % size))
                .find(|ip| !taken.ips.contains_key(ip));
            match free {
                Some(ip) => {
                    taken.ip(ip, &holder(key));
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
            let (low, high) = network.port_bounds();
            let size = u32::from(high - low) + 1;
            let start = start_point(&format!("{}:{}/{}", holder(key), p.port, protocol(p)), size);
            let free = (0..size)
                .map(|j| i64::from(low) + i64::from((start + j) % size))
                .find(|n| !taken.ports.contains_key(&(*n, protocol(p).to_string())));
            match free {
                Some(n) => {
                    taken.port(n, protocol(p), &holder(key));
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
    problems
}

#[cfg(test)]
mod tests;
