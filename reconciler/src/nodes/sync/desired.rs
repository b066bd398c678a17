//! A node's desired set: its pods, the ConfigMaps and Secrets they use (and no others),
//! every Service with its Endpoints (read once per round for all nodes: [`Shared`]), and
//! every node's pod range and address (the overlay's routes, from [`super::peers`]),
//! numbered with the store revision and hashed.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use keel_agent_protocol::{LocalVolume, NetworkPeer, NodeDesired, ServiceEntry};
use keel_schema::types::pod::Pod;
use keel_schema::{Kind, Object};
use keel_store::{ObjectKey, Stored};

use super::pods::{AgentVersions, NodePod, json, key_of};
use crate::cache::Cache;

/// ConfigMaps and Secrets a pod uses, by name.
fn references(pod: &Pod) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut cms, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    for v in pod.spec.volumes.iter().flatten() {
        if let Some(n) = v.config_map.as_ref().and_then(|c| c.name.clone()) {
            cms.insert(n);
        }
        if let Some(n) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.insert(n);
        }
    }
    for r in pod.spec.image_pull_secrets.iter().flatten() {
        secrets.extend(r.name.clone());
    }
    for (_, _, c) in pod.spec.all_containers() {
        for e in c.env.iter().flatten() {
            if let Some(from) = &e.value_from {
                if let Some(n) = from
                    .config_map_key_ref
                    .as_ref()
                    .and_then(|r| r.name.clone())
                {
                    cms.insert(n);
                }
                if let Some(n) = from.secret_key_ref.as_ref().and_then(|r| r.name.clone()) {
                    secrets.insert(n);
                }
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(n) = e.config_map_ref.as_ref().and_then(|r| r.name.clone()) {
                cms.insert(n);
            }
            if let Some(n) = e.secret_ref.as_ref().and_then(|r| r.name.clone()) {
                secrets.insert(n);
            }
        }
    }
    (cms, secrets)
}

/// Every node with a pod range and an address: where each range is routed.
pub fn network_peers(cache: &Cache) -> Vec<NetworkPeer> {
    cache
        .list(Kind::Node, None)
        .iter()
        .filter_map(|s| match &s.object {
            Object::Node(n) => network_peer(n),
            _ => None,
        })
        .collect()
}

/// A node as the overlay sees it; `None` until it has both a range and an address.
pub fn network_peer(node: &keel_schema::types::core::Node) -> Option<NetworkPeer> {
    Some(NetworkPeer {
        name: node.metadata.name().to_string(),
        node_ip: node.internal_ip().filter(|ip| !ip.is_empty())?.to_string(),
        pod_cidr: node.spec.pod_cidr.clone()?,
    })
}

/// The LoadBalancer addresses each node answers for: of each address from the pool (not a
/// node's own), the Ready node that ranks first for it (rendezvous hashing: the same node
/// while it stays Ready, and only that node's addresses move when it does not).
fn announcements(cache: &Cache) -> HashMap<String, Vec<String>> {
    let balanced: Vec<Arc<Stored>> = cache
        .list(Kind::Service, None)
        .into_iter()
        .filter(|s| {
            matches!(&s.object, Object::Service(svc) if crate::controllers::loadbalancer::is_load_balancer(svc))
        })
        .collect();
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    if balanced.is_empty() {
        // Nothing to announce: no need to look at every node (5,000 of them, each round).
        return out;
    }
    let nodes = cache.list(Kind::Node, None);
    let mut ready = Vec::new();
    let mut node_ips = BTreeSet::new();
    for s in nodes.iter() {
        if let Object::Node(n) = &s.object
            && let Some(ip) = n.internal_ip().filter(|ip| !ip.is_empty())
        {
            node_ips.insert(ip.to_string());
            if n.is_ready() {
                ready.push(n.metadata.name().to_string());
            }
        }
    }
    let rank = |ip: &str, name: &str| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (ip, name).hash(&mut h);
        h.finish()
    };
    for s in &balanced {
        let Object::Service(svc) = &s.object else {
            continue;
        };
        for ip in crate::controllers::loadbalancer::ingress_ips(svc) {
            let ip = ip.to_string();
            if node_ips.contains(&ip) {
                continue;
            }
            if let Some(first) = ready.iter().max_by_key(|name| rank(&ip, name)) {
                out.entry(first.clone()).or_default().push(ip);
            }
        }
    }
    for ips in out.values_mut() {
        ips.sort();
        ips.dedup();
    }
    out
}

/// The Ingresses keel serves and the TLS Secrets they name (each in its Ingress's
/// namespace), as JSON.
fn ingress_objects(cache: &Cache) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let ingresses = crate::controllers::ingress::served_ingresses(cache);
    let mut secrets = BTreeSet::new();
    for s in &ingresses {
        if let Object::Ingress(i) = &s.object {
            for tls in i.spec.tls.iter().flatten() {
                if let Some(name) = tls.secret_name.as_deref() {
                    secrets.insert(ObjectKey::new(Kind::Secret, i.metadata.namespace(), name));
                }
            }
        }
    }
    (
        ingresses.iter().map(|s| json(&s.object)).collect(),
        secrets
            .iter()
            .filter_map(|k| cache.get(k))
            .map(|s| json(&s.object))
            .collect(),
    )
}

/// The local volumes, on `node`, of the claims its pods name.
fn local_volumes(cache: &Cache, node: &str, pods: &[Arc<Stored>]) -> Vec<LocalVolume> {
    let mut out = BTreeSet::new();
    for s in pods {
        let Object::Pod(p) = &s.object else { continue };
        let namespace = p.metadata.namespace();
        for v in p.spec.volumes.iter().flatten() {
            let Some(claim) = &v.persistent_volume_claim else {
                continue;
            };
            let key = ObjectKey::new(Kind::PersistentVolumeClaim, namespace, &claim.claim_name);
            let Some(Object::PersistentVolumeClaim(c)) = cache.get(&key).map(|s| s.object.clone())
            else {
                continue;
            };
            let Some(volume) = c.spec.volume_name.as_deref() else {
                continue;
            };
            let pv_key = ObjectKey::new(Kind::PersistentVolume, "", volume);
            if let Some(Object::PersistentVolume(pv)) = cache.get(&pv_key).map(|s| s.object.clone())
                && pv.node() == Some(node)
                && let Some(handle) = pv.local_handle()
            {
                out.insert((
                    namespace.to_string(),
                    claim.claim_name.clone(),
                    handle.to_string(),
                ));
            }
        }
    }
    out.into_iter()
        .map(|(namespace, claim, handle)| LocalVolume {
            namespace,
            claim,
            handle,
        })
        .collect()
}

/// The local volumes being deleted, by node, for their agents to remove.
fn released_volumes(cache: &Cache) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for s in cache.list(Kind::PersistentVolume, None).iter() {
        if let Object::PersistentVolume(pv) = &s.object
            && pv.metadata.deletion_timestamp.is_some()
            && let (Some(node), Some(handle)) = (pv.node(), pv.local_handle())
        {
            out.entry(node.to_string())
                .or_default()
                .push(handle.to_string());
        }
    }
    out
}

/// What every node's set shares, read once per round of sends rather than once per node:
/// Services with their Endpoints, the Ingresses and their TLS Secrets, which node answers
/// for each LoadBalancer address, and the local volumes being released.
pub struct Shared {
    services: Vec<ServiceEntry>,
    ingresses: Vec<Vec<u8>>,
    ingress_secrets: Vec<Vec<u8>>,
    announce: HashMap<String, Vec<String>>,
    released: HashMap<String, Vec<String>>,
    /// Of the Services, Endpoints, Ingresses and their Secrets.
    hash: u64,
}

impl Shared {
    pub fn read(cache: &Cache) -> Shared {
        let services: Vec<ServiceEntry> = cache
            .list(Kind::Service, None)
            .iter()
            .map(|s| {
                let endpoints = cache
                    .get(&ObjectKey::new(
                        Kind::Endpoints,
                        s.object.namespace(),
                        s.object.name(),
                    ))
                    .map(|e| json(&e.object))
                    .unwrap_or_default();
                ServiceEntry {
                    service: json(&s.object),
                    endpoints,
                }
            })
            .collect();
        let (ingresses, ingress_secrets) = ingress_objects(cache);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for s in &services {
            (&s.service, &s.endpoints).hash(&mut hasher);
        }
        ingresses.hash(&mut hasher);
        ingress_secrets.hash(&mut hasher);
        Shared {
            services,
            ingresses,
            ingress_secrets,
            announce: announcements(cache),
            released: released_volumes(cache),
            hash: hasher.finish(),
        }
    }
}

/// The desired set of `node` as the cache holds it now, its pods with the version each
/// agent sees, and its hash: all but its `nodes`, which node sync adds from its
/// [`super::peers::PeerLog`], and its `pods`, which it adds whole or as a change
/// ([`super::pods`]).
pub fn desired_set(
    cache: &Cache,
    shared: &Shared,
    node: &str,
    versions: &AgentVersions,
) -> (NodeDesired, Vec<NodePod>, u64) {
    // In key order already, so one set hashes the same however the cache got it.
    let pods: Vec<Arc<Stored>> = cache.pods_on(node);
    let mut config_maps = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for s in &pods {
        if let Object::Pod(p) = &s.object {
            let (c, sec) = references(p);
            let ns = p.metadata.namespace().to_string();
            config_maps.extend(
                c.into_iter()
                    .map(|n| ObjectKey::new(Kind::ConfigMap, &ns, &n)),
            );
            secrets.extend(
                sec.into_iter()
                    .map(|n| ObjectKey::new(Kind::Secret, &ns, &n)),
            );
        }
    }
    let fetch = |keys: BTreeSet<ObjectKey>| -> Vec<Vec<u8>> {
        keys.iter()
            .filter_map(|k| cache.get(k))
            .map(|s| json(&s.object))
            .collect()
    };
    let desired = NodeDesired {
        node_name: node.to_string(),
        generation: cache.revision().max(1),
        pods: Vec::new(),
        config_maps: fetch(config_maps),
        secrets: fetch(secrets),
        services: shared.services.clone(),
        nodes: Vec::new(),
        announce: shared.announce.get(node).cloned().unwrap_or_default(),
        ingresses: shared.ingresses.clone(),
        ingress_secrets: shared.ingress_secrets.clone(),
        volumes: local_volumes(cache, node, &pods),
        released_volumes: shared.released.get(node).cloned().unwrap_or_default(),
        nodes_base_generation: 0,
        removed_nodes: Vec::new(),
        pods_base_generation: 0,
        removed_pods: Vec::new(),
    };
    let pods: Vec<NodePod> = pods
        .into_iter()
        .map(|stored| {
            let key = key_of(&stored);
            NodePod {
                version: versions.of(&key, &stored),
                key,
                stored,
            }
        })
        .collect();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    shared.hash.hash(&mut hasher);
    for p in &pods {
        (&p.key, p.version).hash(&mut hasher);
    }
    desired.config_maps.hash(&mut hasher);
    desired.secrets.hash(&mut hasher);
    desired.announce.hash(&mut hasher);
    for v in &desired.volumes {
        (&v.namespace, &v.claim, &v.handle).hash(&mut hasher);
    }
    desired.released_volumes.hash(&mut hasher);
    (desired, pods, hasher.finish())
}
