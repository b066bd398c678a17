//! Node sync: pushes each node's full desired set (never a delta) to its agent's `Sync`.
//!
//! A node's set is its bound pods, the ConfigMaps and Secrets those pods use (and no others:
//! an agent never receives a Secret none of its pods needs), and every Service with its
//! Endpoints for the node's proxy. It is numbered with the store revision it was read at, so
//! generations only grow, across control-plane restarts too.
//!
//! Changes mark nodes dirty; every [`DEBOUNCE`] the dirty nodes' sets are rebuilt and sent if
//! they differ from the last one the agent acknowledged. A registration (an agent that
//! (re)started), a failed send and the periodic [`RESEND`] send again whatever the set.
//! One send per node is in flight at a time; a node that does not answer is retried with
//! backoff, and its dropping and returning is routine.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use keel_agent_protocol::node_agent_client::NodeAgentClient;
use keel_agent_protocol::{NodeDesired, ServiceEntry};
use keel_schema::Object;
use keel_schema::types::pod::Pod;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::AGENT_ADDRESS;
use super::dial::AgentDialer;
use crate::cache::{Cache, Change};
use keel_schema::Kind;
use keel_store::{ObjectKey, Stored};

/// Changes within this window go out as one set.
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// Every node's set is sent again this often, changed or not (level-triggered).
pub const RESEND: Duration = Duration::from_secs(30);
/// Sends in flight across all nodes.
const MAX_IN_FLIGHT: usize = 64;
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

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
    for c in &pod.spec.containers {
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

fn json(object: &Object) -> Vec<u8> {
    // Objects from the store always serialise; an empty message would be refused whole by
    // the agent, never half-applied.
    serde_json::to_vec(object).unwrap_or_default()
}

/// The desired set of `node` as the cache holds it now, and its hash.
pub fn desired_set(cache: &Cache, node: &str) -> (NodeDesired, u64) {
    let mut pods: Vec<Arc<Stored>> = cache.pods_on(node);
    pods.sort_by(|a, b| ObjectKey::of(&a.object).cmp(&ObjectKey::of(&b.object)));
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
    let services = cache
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
    let mut desired = NodeDesired {
        node_name: node.to_string(),
        generation: 0,
        pods: pods.iter().map(|s| json(&s.object)).collect(),
        config_maps: fetch(config_maps),
        secrets: fetch(secrets),
        services,
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    desired.pods.hash(&mut hasher);
    desired.config_maps.hash(&mut hasher);
    desired.secrets.hash(&mut hasher);
    for s in &desired.services {
        (&s.service, &s.endpoints).hash(&mut hasher);
    }
    desired.generation = cache.revision().max(1);
    (desired, hasher.finish())
}

/// What node sync knows of one node.
#[derive(Default)]
struct NodeState {
    address: Option<String>,
    client: Option<NodeAgentClient<Channel>>,
    /// Hash of the set the agent last acknowledged.
    acked: Option<u64>,
    last_generation: u64,
    in_flight: bool,
    failures: u32,
    retry_at: Option<Instant>,
    last_sent: Option<Instant>,
}

/// The outcome of one send, back to the loop.
struct Sent {
    node: String,
    hash: u64,
    generation: u64,
    client: Option<NodeAgentClient<Channel>>,
    result: Result<(), SendError>,
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    /// The agent has applied a newer set (numbered by a control plane whose count ran
    /// ahead before a restart): the next send goes above it.
    #[error("{address} ignored generation {sent}: it has applied {applied}")]
    Stale {
        address: String,
        sent: u64,
        applied: u64,
    },
    #[error("{0}")]
    Failed(String),
}

fn agent_address(cache: &Cache, node: &str) -> Option<String> {
    cache
        .get(&ObjectKey::new(Kind::Node, "", node))?
        .object
        .meta()
        .annotation(AGENT_ADDRESS)
        .map(str::to_string)
}

/// Runs node sync until `stop`.
pub async fn run(cache: Cache, dialer: AgentDialer, stop: CancellationToken) {
    let mut changes = cache.subscribe();
    tokio::select! {
        _ = cache.wait_synced() => {}
        _ = stop.cancelled() => return,
    }
    let mut nodes: HashMap<String, NodeState> = HashMap::new();
    // Dirty nodes, and whether to send even an unchanged set.
    let mut dirty: HashMap<String, bool> = HashMap::new();
    let mark_all = |dirty: &mut HashMap<String, bool>, force: bool| {
        for s in cache.list(Kind::Node, None) {
            let e = dirty.entry(s.object.name().to_string()).or_insert(false);
            *e |= force;
        }
    };
    mark_all(&mut dirty, true);
    let (done_tx, mut done_rx) = mpsc::channel::<Sent>(MAX_IN_FLIGHT * 2);
    let mut tick = tokio::time::interval(DEBOUNCE);
    let mut resend = tokio::time::interval(RESEND);
    resend.reset();
    let mut in_flight = 0usize;
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Ok(Change::Object { old, new }) => {
                    let objects = old.iter().chain(new.iter()).map(|s| &s.object);
                    match new.as_ref().or(old.as_ref()).map(|s| s.object.kind()) {
                        Some(Kind::Pod) => {
                            for o in objects {
                                if let Object::Pod(p) = o
                                    && let Some(n) = p.spec.node_name.as_deref().filter(|n| !n.is_empty())
                                {
                                    dirty.entry(n.to_string()).or_insert(false);
                                }
                            }
                        }
                        Some(Kind::Node) => {
                            for o in objects {
                                dirty.insert(o.name().to_string(), true);
                            }
                        }
                        Some(Kind::ConfigMap | Kind::Secret | Kind::Service | Kind::Endpoints) => {
                            mark_all(&mut dirty, false);
                        }
                        _ => {}
                    }
                }
                Ok(Change::Relisted) | Err(RecvError::Lagged(_)) => mark_all(&mut dirty, true),
                Err(RecvError::Closed) => return,
            },
            Some(sent) = done_rx.recv() => {
                in_flight -= 1;
                let state = nodes.entry(sent.node.clone()).or_default();
                state.in_flight = false;
                match sent.result {
                    Ok(()) => {
                        state.acked = Some(sent.hash);
                        state.last_generation = sent.generation;
                        state.failures = 0;
                        state.retry_at = None;
                        state.client = sent.client;
                    }
                    Err(e) => {
                        if let SendError::Stale { applied, .. } = &e {
                            state.last_generation = state.last_generation.max(*applied);
                        }
                        state.failures += 1;
                        let delay = Duration::from_millis(250)
                            .saturating_mul(1 << state.failures.min(6))
                            .min(MAX_BACKOFF);
                        if state.failures == 1 || state.failures.is_multiple_of(10) {
                            tracing::warn!(node = %sent.node, error = %e, retry_in = ?delay, "cannot sync the node's pods to its agent");
                        }
                        state.acked = None;
                        state.client = None;
                        state.retry_at = Some(Instant::now() + delay);
                        dirty.insert(sent.node, true);
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let ready: Vec<(String, bool)> = dirty
                    .iter()
                    .filter(|(n, _)| nodes.get(*n).is_none_or(|s| !s.in_flight && s.retry_at.is_none_or(|t| t <= now)))
                    .map(|(n, f)| (n.clone(), *f))
                    .take(MAX_IN_FLIGHT.saturating_sub(in_flight))
                    .collect();
                for (node, force) in ready {
                    dirty.remove(&node);
                    let Some(address) = agent_address(&cache, &node) else {
                        // Not a registered node (pods bound to a name nobody runs).
                        nodes.remove(&node);
                        continue;
                    };
                    let (mut desired, hash) = desired_set(&cache, &node);
                    let state = nodes.entry(node.clone()).or_default();
                    if !force && state.acked == Some(hash) {
                        continue;
                    }
                    if state.address.as_deref() != Some(address.as_str()) {
                        state.address = Some(address.clone());
                        state.client = None;
                    }
                    desired.generation = desired.generation.max(state.last_generation + 1);
                    state.in_flight = true;
                    state.last_sent = Some(now);
                    in_flight += 1;
                    let client = state.client.take();
                    let done = done_tx.clone();
                    let dialer = dialer.clone();
                    tokio::spawn(async move {
                        let generation = desired.generation;
                        let (client, result) = send(&dialer, &node, client, &address, desired).await;
                        let _ = done.send(Sent { node, hash, generation, client, result }).await;
                    });
                }
            }
            _ = resend.tick() => mark_all(&mut dirty, true),
            _ = stop.cancelled() => return,
        }
    }
}

/// One `Sync` call, connecting first when there is no channel yet.
async fn send(
    dialer: &AgentDialer,
    node: &str,
    client: Option<NodeAgentClient<Channel>>,
    address: &str,
    desired: NodeDesired,
) -> (Option<NodeAgentClient<Channel>>, Result<(), SendError>) {
    let mut client = match client {
        Some(c) => c,
        None => match dialer.connect(node, address, Some(SEND_TIMEOUT)).await {
            Ok(c) => c,
            Err(e) => return (None, Err(SendError::Failed(e))),
        },
    };
    let generation = desired.generation;
    match client.sync(desired).await {
        Ok(ack) if ack.get_ref().applied_generation == generation => (Some(client), Ok(())),
        // It has applied a newer set than this one (from before a control-plane restart
        // whose numbering ran ahead): the next send goes above it.
        Ok(ack) => (
            Some(client),
            Err(SendError::Stale {
                address: address.to_string(),
                sent: generation,
                applied: ack.get_ref().applied_generation,
            }),
        ),
        Err(status) => (
            None,
            Err(SendError::Failed(format!(
                "{address}: {}: {}",
                status.code(),
                status.message()
            ))),
        ),
    }
}
