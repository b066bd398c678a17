//! A `Sync` message read and checked: the pods this node must run, each with the ConfigMaps and
//! Secrets it uses. Nothing from the wire is trusted: every object is decoded and validated
//! with the same rules as a manifest, and a message with any bad part is refused whole, naming
//! what and where, so the node keeps converging to its last good set.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use keel_agent_protocol::NodeDesired;

use crate::network::overlay::Peer;
use keel_proxy::{ProxiedService, service_links};

use crate::dns::records::DnsService;
use keel_schema::Kind;
use keel_schema::defaults::apply_defaults;
use keel_schema::object::Object;
use keel_schema::types::core::{ConfigMap, Secret};
use keel_schema::types::pod::Pod;
use keel_schema::validate::meta::{MANAGED_BY_LABEL, REVISION_ANNOTATION};
use keel_schema::validate::validate_object;
use sha2::{Digest, Sha256};

/// One pod to run, with what it references.
#[derive(Clone)]
pub struct DesiredPod {
    pub pod: Pod,
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// Identifies the pod's spec: containers made from another spec are replaced.
    pub hash: String,
    /// ConfigMaps and Secrets of the pod's namespace, by name.
    pub config_maps: Arc<BTreeMap<String, ConfigMap>>,
    pub secrets: Arc<BTreeMap<String, Secret>>,
    /// The local volumes of the namespace's claims on this node: claim name → handle.
    pub claims: Arc<BTreeMap<String, String>>,
    /// `NAME_SERVICE_HOST`-style variables for the Services of the pod's namespace, as they
    /// are in this set; a container gets those of the set it starts from.
    pub service_env: Arc<Vec<(String, String)>>,
}

impl fmt::Debug for DesiredPod {
    // Secrets stay out of logs: keys only, through SecretData's own Debug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DesiredPod")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("uid", &self.uid)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl DesiredPod {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn is_deleting(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }

    pub fn grace_seconds(&self) -> i64 {
        self.pod
            .spec
            .termination_grace_period_seconds
            .unwrap_or(keel_schema::defaults::DEFAULT_GRACE_SECONDS)
            .max(0)
    }
}

#[derive(Debug)]
pub struct DesiredSet {
    pub generation: u64,
    pub pods: Vec<Arc<DesiredPod>>,
    /// Every Service of the cluster with its ready endpoints, for the proxy.
    pub services: Vec<ProxiedService>,
    /// The same, as cluster DNS names them.
    pub dns_services: Vec<crate::dns::records::DnsService>,
    /// Every node with a pod range, for the overlay's routes.
    pub peers: Vec<Peer>,
    /// LoadBalancer addresses this node answers for on its network.
    pub announce: Vec<std::net::Ipv4Addr>,
    /// The Ingresses the node's ingress proxy serves, and their TLS Secrets.
    pub ingresses: Vec<keel_schema::types::networking::Ingress>,
    pub ingress_secrets: Vec<keel_schema::types::core::Secret>,
    /// Local volumes to remove from this node (their claims are gone).
    pub released_volumes: Vec<String>,
}

/// Why a `Sync` message was refused; every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredError(pub Vec<String>);

impl fmt::Display for DesiredError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "desired state refused: {}", self.0.join("; "))
    }
}

impl std::error::Error for DesiredError {}

/// The most objects of each kind one message may carry: far above a node's pod capacity, low
/// enough that a hostile message cannot make the agent allocate without bound.
const MAX_OBJECTS: usize = 100_000;

fn decode(kind: Kind, what: &str, bytes: &[u8], problems: &mut Vec<String>) -> Option<Object> {
    let mut obj = match Object::from_json_slice(kind, bytes) {
        Ok(o) => o,
        Err(e) => {
            problems.push(format!("{what}: not a valid {kind}: {e}"));
            return None;
        }
    };
    let label = |o: &Object| format!("{what} ({} {}/{})", kind, o.namespace(), o.name());
    // Check it as a manifest would be checked, minus what the cluster itself sets.
    let mut declared = obj.declared();
    let meta = declared.meta_mut();
    if let Some(l) = meta.labels.as_mut() {
        l.remove(MANAGED_BY_LABEL);
    }
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(REVISION_ANNOTATION);
    }
    let errors = validate_object(&declared);
    if !errors.is_empty() {
        for e in errors {
            problems.push(format!("{}: {}: {}", label(&obj), e.path, e.message));
        }
        return None;
    }
    if obj.namespace().is_empty() {
        problems.push(format!(
            "{}: metadata.namespace: Required value",
            label(&obj)
        ));
        return None;
    }
    apply_defaults(&mut obj);
    Some(obj)
}

fn spec_hash(pod: &Pod) -> String {
    // serde_json writes struct fields in declaration order and maps sorted (BTreeMap), so
    // equal specs hash equally across agent restarts.
    let json = serde_json::to_vec(&pod.spec).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..8])
}

/// Reads and checks `msg` for the node `node`. Its pods are `kept` (pods of the last applied
/// set that a change to it keeps, decoded and checked when that set was read) and those it
/// carries.
pub fn read(
    msg: &NodeDesired,
    node: &str,
    kept: Vec<Arc<DesiredPod>>,
) -> Result<DesiredSet, DesiredError> {
    let mut problems = bounds(msg, node);
    if !problems.is_empty() {
        return Err(DesiredError(problems));
    }
    let config_maps = by_namespace(
        &msg.config_maps,
        "config_maps",
        Kind::ConfigMap,
        &mut problems,
    );
    let secrets = by_namespace(&msg.secrets, "secrets", Kind::Secret, &mut problems);
    let (claims, released_volumes) = local_volumes(msg, &mut problems);
    let (services, dns_services) = proxied_services(msg, &mut problems);
    let peers = network_peers(msg, &mut problems);
    let mut announce = Vec::with_capacity(msg.announce.len());
    for (i, text) in msg.announce.iter().enumerate() {
        match text.parse::<std::net::Ipv4Addr>() {
            Ok(ip) => announce.push(ip),
            Err(_) => problems.push(format!("announce[{i}]: {text:?} is not an IPv4 address")),
        }
    }
    let mut ingresses = Vec::with_capacity(msg.ingresses.len());
    for (i, bytes) in msg.ingresses.iter().enumerate() {
        if let Some(Object::Ingress(ing)) = decode(
            Kind::Ingress,
            &format!("ingresses[{i}]"),
            bytes,
            &mut problems,
        ) {
            ingresses.push(ing);
        }
    }
    let mut ingress_secrets = Vec::with_capacity(msg.ingress_secrets.len());
    for (i, bytes) in msg.ingress_secrets.iter().enumerate() {
        if let Some(Object::Secret(secret)) = decode(
            Kind::Secret,
            &format!("ingress_secrets[{i}]"),
            bytes,
            &mut problems,
        ) {
            ingress_secrets.push(secret);
        }
    }
    let mut service_env: HashMap<String, Arc<Vec<(String, String)>>> = HashMap::new();
    let mut pods = Vec::with_capacity(kept.len() + msg.pods.len());
    let mut uids = HashSet::new();
    let mut keys = HashSet::new();
    let carried: Vec<(String, Pod, Option<String>)> = msg
        .pods
        .iter()
        .enumerate()
        .filter_map(|(i, bytes)| {
            let what = format!("pods[{i}]");
            match decode(Kind::Pod, &what, bytes, &mut problems) {
                Some(Object::Pod(pod)) => Some((what, pod, None)),
                _ => None,
            }
        })
        .collect();
    // The kept pods first, so a carried pod that clashes with one is the one named. They
    // were decoded and checked as part of the set they came in; their spec hash stands.
    let kept = kept.iter().map(|p| {
        (
            "a kept pod".to_string(),
            p.pod.clone(),
            Some(p.hash.clone()),
        )
    });
    for (what, pod, hash) in kept.chain(carried) {
        let namespace = pod.metadata.namespace().to_string();
        let name = pod.metadata.name().to_string();
        let label = format!("{what} (Pod {namespace}/{name})");
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if let Err(problem) = check_pod(&pod, &uid, node, &mut uids, &mut keys) {
            problems.push(format!("{label}: {problem}"));
            continue;
        }
        pods.push(Arc::new(DesiredPod {
            hash: hash.unwrap_or_else(|| spec_hash(&pod)),
            config_maps: config_maps.get(&namespace).cloned().unwrap_or_default(),
            secrets: secrets.get(&namespace).cloned().unwrap_or_default(),
            claims: claims.get(&namespace).cloned().unwrap_or_default(),
            service_env: service_env
                .entry(namespace.clone())
                .or_insert_with(|| Arc::new(service_links(&services, &namespace)))
                .clone(),
            pod,
            uid,
            namespace,
            name,
        }));
    }
    if !problems.is_empty() {
        return Err(DesiredError(problems));
    }
    Ok(DesiredSet {
        generation: msg.generation,
        pods,
        services,
        dns_services,
        peers,
        announce,
        ingresses,
        ingress_secrets,
        released_volumes,
    })
}

/// The local volumes by namespace (claim → handle), and the released ones; a handle that is
/// not a name keel makes refuses the set (it becomes a path on the node).
#[allow(clippy::type_complexity)]
fn local_volumes(
    msg: &NodeDesired,
    problems: &mut Vec<String>,
) -> (HashMap<String, Arc<BTreeMap<String, String>>>, Vec<String>) {
    let mut claims: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    for (i, v) in msg.volumes.iter().enumerate() {
        if !crate::pod::local_volumes::valid_handle(&v.handle) {
            problems.push(format!(
                "volumes[{i}]: handle {:?} is not a volume name",
                v.handle
            ));
            continue;
        }
        claims
            .entry(v.namespace.clone())
            .or_default()
            .insert(v.claim.clone(), v.handle.clone());
    }
    let mut released = Vec::with_capacity(msg.released_volumes.len());
    for (i, handle) in msg.released_volumes.iter().enumerate() {
        if crate::pod::local_volumes::valid_handle(handle) {
            released.push(handle.clone());
        } else {
            problems.push(format!(
                "released_volumes[{i}]: {handle:?} is not a volume name"
            ));
        }
    }
    let claims = claims
        .into_iter()
        .map(|(ns, m)| (ns, Arc::new(m)))
        .collect();
    (claims, released)
}

/// The nodes' ranges and addresses, checked: a malformed entry refuses the set, since a
/// route built from it would send pods' traffic astray.
fn network_peers(msg: &NodeDesired, problems: &mut Vec<String>) -> Vec<Peer> {
    let mut peers = Vec::with_capacity(msg.nodes.len());
    for (i, n) in msg.nodes.iter().enumerate() {
        let what = format!("nodes[{i}] ({})", n.name);
        let node_ip = match n.node_ip.parse::<std::net::Ipv4Addr>() {
            Ok(ip) if !ip.is_unspecified() && !ip.is_multicast() && !ip.is_broadcast() => ip,
            _ => {
                problems.push(format!(
                    "{what}: node_ip {:?} is not a node's IPv4 address",
                    n.node_ip
                ));
                continue;
            }
        };
        match n.pod_cidr.parse::<ipnet::Ipv4Net>() {
            Ok(pod_cidr) if pod_cidr.network() == pod_cidr.addr() => peers.push(Peer {
                name: n.name.clone(),
                node_ip,
                pod_cidr,
            }),
            _ => problems.push(format!(
                "{what}: pod_cidr {:?} is not an IPv4 range",
                n.pod_cidr
            )),
        }
    }
    peers
}

/// What is wrong with the message as a whole: another node's, or too large.
fn bounds(msg: &NodeDesired, node: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if msg.node_name != node {
        problems.push(format!(
            "node_name: this agent is node {node:?}, not {:?}",
            msg.node_name
        ));
    }
    for (what, n) in [
        ("pods", msg.pods.len()),
        ("config_maps", msg.config_maps.len()),
        ("secrets", msg.secrets.len()),
        ("services", msg.services.len()),
        ("nodes", msg.nodes.len()),
        ("announce", msg.announce.len()),
        ("ingresses", msg.ingresses.len()),
        ("ingress_secrets", msg.ingress_secrets.len()),
        ("volumes", msg.volumes.len()),
        ("released_volumes", msg.released_volumes.len()),
    ] {
        if n > MAX_OBJECTS {
            problems.push(format!(
                "{what}: {n} entries, more than the {MAX_OBJECTS} allowed"
            ));
        }
    }
    problems
}

/// ConfigMaps or Secrets per namespace, by name, shared by that namespace's pods.
fn by_namespace<T>(
    entries: &[Vec<u8>],
    field: &str,
    kind: Kind,
    problems: &mut Vec<String>,
) -> HashMap<String, Arc<BTreeMap<String, T>>>
where
    T: TryFrom<Object>,
{
    let mut out: HashMap<String, BTreeMap<String, T>> = HashMap::new();
    for (i, bytes) in entries.iter().enumerate() {
        let Some(object) = decode(kind, &format!("{field}[{i}]"), bytes, problems) else {
            continue;
        };
        let (ns, name) = (object.namespace().to_string(), object.name().to_string());
        if let Ok(typed) = T::try_from(object) {
            out.entry(ns).or_default().insert(name, typed);
        }
    }
    out.into_iter().map(|(ns, m)| (ns, Arc::new(m))).collect()
}

/// Every Service with its Endpoints, as the proxy serves them and as DNS names them.
fn proxied_services(
    msg: &NodeDesired,
    problems: &mut Vec<String>,
) -> (Vec<ProxiedService>, Vec<DnsService>) {
    let mut services = Vec::with_capacity(msg.services.len());
    let mut dns = Vec::with_capacity(msg.services.len());
    for (i, entry) in msg.services.iter().enumerate() {
        let what = format!("services[{i}]");
        let service = decode(Kind::Service, &what, &entry.service, problems);
        let endpoints = if entry.endpoints.is_empty() {
            None
        } else {
            let what = format!("{what}.endpoints");
            decode(Kind::Endpoints, &what, &entry.endpoints, problems)
        };
        let (Some(Object::Service(service)), endpoints) = (service, endpoints) else {
            continue;
        };
        let endpoints = match endpoints {
            Some(Object::Endpoints(e)) => Some(e),
            _ => None,
        };
        dns.push(DnsService::from_objects(&service, endpoints.as_ref()));
        match ProxiedService::from_objects(&service, endpoints.as_ref()) {
            Ok(s) => services.push(s),
            Err(e) => problems.push(format!(
                "{what} (Service {}/{}): {e}",
                service.metadata.namespace(),
                service.metadata.name()
            )),
        }
    }
    (services, dns)
}

/// A pod this node may run: it has a uid, it is bound here, and no other pod of the set has
/// its uid or name.
fn check_pod(
    pod: &Pod,
    uid: &str,
    node: &str,
    uids: &mut HashSet<String>,
    keys: &mut HashSet<(String, String)>,
) -> Result<(), String> {
    if uid.is_empty() {
        return Err("metadata.uid: Required value".into());
    }
    if pod.spec.node_name.as_deref() != Some(node) {
        return Err(format!(
            "spec.nodeName: {:?} is not this node ({node:?})",
            pod.spec.node_name.as_deref().unwrap_or("")
        ));
    }
    if !uids.insert(uid.to_string()) {
        return Err(format!("metadata.uid: Duplicate value: {uid:?}"));
    }
    let (namespace, name) = (pod.metadata.namespace(), pod.metadata.name());
    if !keys.insert((namespace.to_string(), name.to_string())) {
        return Err(format!(
            "Duplicate value: two pods named {namespace}/{name}"
        ));
    }
    Ok(())
}
