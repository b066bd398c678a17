//! A `Sync` message read and checked: the pods this node must run, each with the ConfigMaps and
//! Secrets it uses. Nothing from the wire is trusted: every object is decoded and validated
//! with the same rules as a manifest, and a message with any bad part is refused whole, naming
//! what and where, so the node keeps converging to its last good set.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use keel_agent_protocol::NodeDesired;
use keel_proxy::{ProxiedService, service_links};
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
    if let Object::Pod(p) = &mut declared {
        p.status = None;
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

/// Reads and checks `msg` for the node `node`.
pub fn read(msg: &NodeDesired, node: &str) -> Result<DesiredSet, DesiredError> {
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
    ] {
        if n > MAX_OBJECTS {
            problems.push(format!(
                "{what}: {n} entries, more than the {MAX_OBJECTS} allowed"
            ));
        }
    }
    if !problems.is_empty() {
        return Err(DesiredError(problems));
    }

    // Per namespace, shared by that namespace's pods.
    let mut config_maps: HashMap<String, BTreeMap<String, ConfigMap>> = HashMap::new();
    for (i, bytes) in msg.config_maps.iter().enumerate() {
        if let Some(Object::ConfigMap(c)) = decode(
            Kind::ConfigMap,
            &format!("config_maps[{i}]"),
            bytes,
            &mut problems,
        ) {
            let ns = c.metadata.namespace().to_string();
            let name = c.metadata.name().to_string();
            config_maps.entry(ns).or_default().insert(name, c);
        }
    }
    let mut secrets: HashMap<String, BTreeMap<String, Secret>> = HashMap::new();
    for (i, bytes) in msg.secrets.iter().enumerate() {
        if let Some(Object::Secret(s)) =
            decode(Kind::Secret, &format!("secrets[{i}]"), bytes, &mut problems)
        {
            let ns = s.metadata.namespace().to_string();
            let name = s.metadata.name().to_string();
            secrets.entry(ns).or_default().insert(name, s);
        }
    }
    let mut services = Vec::with_capacity(msg.services.len());
    for (i, entry) in msg.services.iter().enumerate() {
        let what = format!("services[{i}]");
        let service = decode(Kind::Service, &what, &entry.service, &mut problems);
        let endpoints = if entry.endpoints.is_empty() {
            None
        } else {
            decode(
                Kind::Endpoints,
                &format!("{what}.endpoints"),
                &entry.endpoints,
                &mut problems,
            )
        };
        let (Some(Object::Service(service)), endpoints) = (service, endpoints) else {
            continue;
        };
        let endpoints = match endpoints {
            Some(Object::Endpoints(e)) => Some(e),
            _ => None,
        };
        match ProxiedService::from_objects(&service, endpoints.as_ref()) {
            Ok(s) => services.push(s),
            Err(e) => problems.push(format!(
                "{what} (Service {}/{}): {e}",
                service.metadata.namespace(),
                service.metadata.name()
            )),
        }
    }
    let mut service_env: HashMap<String, Arc<Vec<(String, String)>>> = HashMap::new();

    let config_maps: HashMap<String, Arc<BTreeMap<String, ConfigMap>>> = config_maps
        .into_iter()
        .map(|(ns, m)| (ns, Arc::new(m)))
        .collect();
    let secrets: HashMap<String, Arc<BTreeMap<String, Secret>>> = secrets
        .into_iter()
        .map(|(ns, m)| (ns, Arc::new(m)))
        .collect();
    let mut pods = Vec::with_capacity(msg.pods.len());
    let mut uids = HashSet::new();
    let mut keys = HashSet::new();
    for (i, bytes) in msg.pods.iter().enumerate() {
        let what = format!("pods[{i}]");
        let Some(Object::Pod(pod)) = decode(Kind::Pod, &what, bytes, &mut problems) else {
            continue;
        };
        let namespace = pod.metadata.namespace().to_string();
        let name = pod.metadata.name().to_string();
        let label = format!("{what} (Pod {namespace}/{name})");
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if uid.is_empty() {
            problems.push(format!("{label}: metadata.uid: Required value"));
            continue;
        }
        if pod.spec.node_name.as_deref() != Some(node) {
            problems.push(format!(
                "{label}: spec.nodeName: {:?} is not this node ({node:?})",
                pod.spec.node_name.as_deref().unwrap_or("")
            ));
            continue;
        }
        if !uids.insert(uid.clone()) {
            problems.push(format!("{label}: metadata.uid: Duplicate value: {uid:?}"));
            continue;
        }
        if !keys.insert((namespace.clone(), name.clone())) {
            problems.push(format!(
                "{label}: Duplicate value: two pods named {namespace}/{name}"
            ));
            continue;
        }
        pods.push(Arc::new(DesiredPod {
            hash: spec_hash(&pod),
            config_maps: config_maps.get(&namespace).cloned().unwrap_or_default(),
            secrets: secrets.get(&namespace).cloned().unwrap_or_default(),
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
    })
}
