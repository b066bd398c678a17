//! [`NodeRegistry`]: the nodes known to this control plane, and registration, which makes or
//! updates a node's `Node` object from what its agent says about itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_agent_protocol::RegisterRequest;
use keel_schema::quantity::Quantity;
use keel_schema::types::core::{EventType, Node, NodeAddress, NodeStatus, NodeSystemInfo};
use keel_schema::validate::names;
use keel_schema::{Kind, Object};
use keel_store::{ObjectKey, Store, StoreError};
use tokio::time::Instant;

use super::handoff::SetHandoff;
use super::pod_cidrs::PodNetwork;
use super::readiness::set_ready;
use super::{AGENT_ADDRESS, CERTIFICATE_EXPIRES, CONFLICT_RETRIES, MAX_NODES};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    Invalid(String),
    /// The pod network has no range left for a new node.
    #[error("{0}")]
    Exhausted(String),
    #[error("{0}")]
    Store(String),
}

/// Nodes known to this control plane and when each was last heard from.
#[derive(Clone)]
pub struct NodeRegistry {
    pub(super) store: Store,
    pub(super) grace: Duration,
    pub(super) state: Arc<Mutex<Liveness>>,
    /// Readiness is written under this lock, with the heartbeat checked again inside it, so
    /// a heartbeat and the lifecycle check cannot leave a live node marked not ready.
    pub(super) readiness: Arc<tokio::sync::Mutex<()>>,
    pub(super) events: crate::events::Recorder,
    /// Heartbeats received (`keel_node_heartbeats_total`).
    pub(super) heartbeats: prometheus_client::metrics::counter::Counter,
    /// How pod ranges are cut from `--cluster-cidr`.
    pub(super) pod_network: PodNetwork,
    /// Held from reading the ranges in use to writing a new node's, so that two nodes
    /// registering at once never get the same range.
    allocating: Arc<tokio::sync::Mutex<()>>,
}

/// What a registered node is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub pod_cidr: ipnet::Ipv4Net,
}

/// What the registry knows of each node's heartbeats.
#[derive(Default)]
pub(super) struct Liveness {
    /// When each node was last heard from.
    pub(super) seen: HashMap<String, Instant>,
    /// Nodes last written as not ready: their next heartbeat writes them ready.
    pub(super) unready: std::collections::HashSet<String>,
    /// Nodes written Ready again since the last lifecycle check: it makes their pods Ready
    /// again.
    pub(super) returned: std::collections::HashSet<String>,
    /// Each node's pod range, so that a pod address outside it is refused without a read.
    pub(super) pod_cidrs: HashMap<String, ipnet::Ipv4Net>,
    /// Each node's own address (its InternalIP), the one address a `hostNetwork` pod of its
    /// may report.
    pub(super) addresses: HashMap<String, std::net::IpAddr>,
    /// The set each node's agent said it has applied in its last heartbeat, and when that
    /// heartbeat arrived: node sync compares it with what the agent acknowledged.
    pub(super) applied: HashMap<String, Applied>,
    /// Where node sync leaves the sets of the nodes whose agents ask for them (`NextSet`).
    pub(super) handoffs: HashMap<String, Arc<SetHandoff>>,
    /// The nodes whose agents registered here without asking: node sync dials them (`Sync`).
    pub(super) dialed: std::collections::HashSet<String>,
}

/// How node sync reaches a node's agent ([`NodeRegistry::reach`]).
pub enum Reach {
    /// It asks for its sets: leave them in its handoff.
    Handoff(Arc<SetHandoff>),
    /// It registered without asking: dial it and send them with `Sync`.
    Dial,
    /// Its agent has not registered with this registry: this control plane restarted, or
    /// its term began, and the agent has yet to come back. Its registration sends it its set.
    NotYet,
}

/// The generation an agent's heartbeat said it has applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub generation: u64,
    /// When the heartbeat arrived.
    pub heard: Instant,
}

/// The most CPU a node may offer: 1,024 cores.
pub const MAX_CPU_MILLIS: i64 = 1024 * 1000;
/// The most memory a node may offer: 64 TiB.
pub const MAX_MEMORY_BYTES: i64 = 64 << 40;
/// The most pods a node may take.
pub const MAX_PODS: i64 = 5_000;

/// Checks what an agent says about itself.
fn check(req: &RegisterRequest) -> Result<(), RegisterError> {
    let bad = |m: String| Err(RegisterError::Invalid(m));
    if let Some(why) = names::dns1123_subdomain(&req.node_name) {
        return bad(format!("node_name {:?}: {why}", req.node_name));
    }
    match req.address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {}
        _ => return bad(format!("address {:?}: must be host:port", req.address)),
    }
    // Its hostNetwork pods take this address, and every node's proxy sends their Services'
    // traffic there: never link-local, multicast or unspecified. Loopback stays allowed for
    // a cluster on one machine.
    if let Ok(ip) = host_of(&req.address).parse::<std::net::IpAddr>()
        && !ip.to_canonical().is_loopback()
        && let Some(why) = super::reports::special_address(ip)
    {
        return bad(format!("address {:?}: {why}", req.address));
    }
    // Sanity bounds beyond the largest machines (a node claiming more would draw every pod
    // to itself), which also keep every sum and score far from overflowing.
    for (what, v, max) in [
        ("cpu_millis", req.cpu_millis, MAX_CPU_MILLIS),
        ("memory_bytes", req.memory_bytes, MAX_MEMORY_BYTES),
        ("max_pods", req.max_pods, MAX_PODS),
    ] {
        if v <= 0 {
            return bad(format!("{what}: must be more than zero, not {v}"));
        }
        if v > max {
            return bad(format!("{what}: {v} is more than the {max} allowed"));
        }
    }
    for (k, v) in &req.labels {
        if let Some(why) = names::qualified_name(k) {
            return bad(format!("labels: key {k:?}: {why}"));
        }
        if let Some(why) = names::reserved_node_label(k) {
            return bad(format!("labels: key {k:?}: {why}"));
        }
        if let Some(why) = names::label_value(v) {
            return bad(format!("labels: value {v:?} of {k:?}: {why}"));
        }
    }
    Ok(())
}

impl NodeRegistry {
    /// A registry over `store`. Nodes already in the store count as heard from a little
    /// ahead of now: an agent that lost its control plane retries at most every
    /// [`keel_agent_protocol::RECONNECT_BACKOFF_MAX`], so each has `grace` beyond that to
    /// come back after a control-plane restart (or a new leader's term) before its node is
    /// written NotReady and its pods unready.
    pub async fn new(store: Store, grace: Duration) -> Result<Self, StoreError> {
        let nodes = store.list_shared(Kind::Node, None, None).await?;
        let heard = Instant::now() + keel_agent_protocol::RECONNECT_BACKOFF_MAX;
        let mut state = Liveness::default();
        for s in &nodes.items {
            let name = s.object.name().to_string();
            if let Object::Node(n) = &s.object {
                if !n.is_ready() {
                    state.unready.insert(name.clone());
                }
                if let Some(cidr) = n.spec.pod_cidr.as_deref().and_then(|c| c.parse().ok()) {
                    state.pod_cidrs.insert(name.clone(), cidr);
                }
                let internal = n.status.as_ref().and_then(|s| s.addresses.as_ref());
                if let Some(ip) = internal
                    .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
                    .and_then(|a| a.address.parse().ok())
                {
                    state.addresses.insert(name.clone(), ip);
                }
            }
            state.seen.insert(name, heard);
        }
        Ok(Self {
            store,
            grace,
            state: Arc::new(Mutex::new(state)),
            readiness: Arc::default(),
            events: crate::events::Recorder::disabled(),
            heartbeats: Default::default(),
            pod_network: PodNetwork::default(),
            allocating: Arc::default(),
        })
    }

    /// Cuts pod ranges from `plan` (`--cluster-cidr`, `--node-cidr-mask-size`).
    pub fn with_pod_network(mut self, plan: PodNetwork) -> Self {
        self.pod_network = plan;
        self
    }

    pub fn pod_network(&self) -> PodNetwork {
        self.pod_network
    }

    /// The pod range of `node`, as last registered.
    pub fn pod_cidr(&self, node: &str) -> Option<ipnet::Ipv4Net> {
        self.state().pod_cidrs.get(node).copied()
    }

    /// The address `node` registered with, when it is an IP address.
    pub fn node_address(&self, node: &str) -> Option<std::net::IpAddr> {
        self.state().addresses.get(node).copied()
    }

    /// Counts heartbeats in `counter` (served at `/metrics`).
    pub fn with_heartbeat_counter(
        mut self,
        counter: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        self.heartbeats = counter;
        self
    }

    /// Records node events (`RegisteredNode`, `NodeReady`, `NodeNotReady`) and the agents'
    /// pod events with `events`.
    pub fn with_events(mut self, events: crate::events::Recorder) -> Self {
        self.events = events;
        self
    }

    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, Liveness> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The store's revision now (0 when it cannot say).
    pub async fn store_revision(&self) -> u64 {
        self.store.revision().await.unwrap_or(0)
    }

    pub fn is_registered(&self, node: &str) -> bool {
        self.state().seen.contains_key(node)
    }

    /// Where `node`'s sets are left for its agent, when it asks for them (`NextSet`).
    pub fn handoff(&self, node: &str) -> Option<Arc<SetHandoff>> {
        self.state().handoffs.get(node).cloned()
    }

    /// How node sync reaches `node`'s agent. Only agents that registered with this registry
    /// are reached: after a restart every agent registers again within its backoff, and
    /// dialing them meanwhile would open a connection to each (5,000 at scale, each with its
    /// TLS handshake and buffers) that its registration makes useless at once.
    pub fn reach(&self, node: &str) -> Reach {
        let state = self.state();
        match state.handoffs.get(node) {
            Some(handoff) => Reach::Handoff(handoff.clone()),
            None if state.dialed.contains(node) => Reach::Dial,
            None => Reach::NotYet,
        }
    }

    /// How often agents send heartbeats: a quarter of `--node-grace` (as a kubelet renews
    /// its lease at a quarter of the lease's duration), so a node is written NotReady only
    /// after four beats in a row went unheard. Beats cost the control plane at scale (5,000
    /// nodes beating once a second, with their keepalive pings, kept it at 0.3 of a core
    /// while idle), so they are no more frequent than the grace needs; within the
    /// protocol's bounds (250 ms to 10 s).
    pub fn heartbeat_interval(&self) -> Duration {
        heartbeat_interval(self.grace)
    }

    /// Whether `node` was heard from within `--node-grace`.
    pub fn is_alive(&self, node: &str) -> bool {
        self.state()
            .seen
            .get(node)
            .is_some_and(|t| t.elapsed() <= self.grace)
    }

    /// Registers (or re-registers) a node: creates or updates its object from what its
    /// agent says; it is Ready. A node without a pod range gets one. `certificate_expires`
    /// is when the certificate its agent presented expires, shown by `keel describe node`.
    pub async fn register(
        &self,
        req: &RegisterRequest,
        certificate_expires: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Registered, RegisterError> {
        check(req)?;
        // A node new to this control plane takes the lock before it is read, so its range is
        // decided on a fresh view of all and the node limit holds. A node that holds its
        // range (every agent coming back after a restart of either side) takes it only if
        // it turns out to have none: 5,000 agents re-registering one at a time behind it
        // took longer than the node grace, and their nodes went NotReady.
        let mut allocating = None;
        if !self.is_registered(&req.node_name) {
            allocating = Some(self.allocating.lock().await);
            let state = self.state();
            if !state.seen.contains_key(&req.node_name) && state.seen.len() >= MAX_NODES {
                return Err(RegisterError::Invalid(format!(
                    "this control plane already has {MAX_NODES} nodes"
                )));
            }
        }
        // Before the write: node sync, seeing the registration, must find how this agent
        // takes its sets, or it would dial an agent that asks for them.
        {
            let mut state = self.state();
            if req.takes_sets {
                state
                    .handoffs
                    .entry(req.node_name.clone())
                    .or_default()
                    .registered();
                state.dialed.remove(&req.node_name);
            } else {
                state.handoffs.remove(&req.node_name);
                state.dialed.insert(req.node_name.clone());
            }
        }
        let key = ObjectKey::new(Kind::Node, "", &req.node_name);
        let mut attempts = 0;
        while attempts < CONFLICT_RETRIES {
            let existing = self
                .store
                .get(&key)
                .await
                .map_err(|e| RegisterError::Store(e.to_string()))?;
            let (node, expected) = match &existing {
                Some(s) => match &s.object {
                    Object::Node(n) => (n.clone(), Some(s.resource_version)),
                    _ => (Node::default(), Some(s.resource_version)),
                },
                None => (Node::default(), None),
            };
            if node.spec.pod_cidr.is_none() && allocating.is_none() {
                // It needs a range after all (deleted meanwhile): read again under the lock.
                allocating = Some(self.allocating.lock().await);
                continue;
            }
            attempts += 1;
            self.refuse_takeover(req, &node)?;
            let pod_cidr = self.pod_cidr_for(req, &node).await?;
            let mut node = registered(node, req, certificate_expires);
            node.spec.pod_cidr = Some(pod_cidr.to_string());
            node.spec.pod_cidrs = Some(vec![pod_cidr.to_string()]);
            let mut object = Object::Node(node);
            object.set_type_meta();
            let written = match expected {
                Some(v) => self.store.update(object, v).await,
                None => self.store.create(object).await,
            };
            match written {
                Ok(stored) => {
                    self.registered(req, &stored.object, pod_cidr);
                    return Ok(Registered { pod_cidr });
                }
                Err(StoreError::Conflict { .. } | StoreError::AlreadyExists(_)) => continue,
                Err(e) => return Err(RegisterError::Store(e.to_string())),
            }
        }
        Err(RegisterError::Store(format!(
            "node {} kept changing while it registered; try again",
            req.node_name
        )))
    }

    /// A live node's address cannot be taken over by another registration: two agents
    /// started with one name (and, under --insecure, a stranger) would fight over it.
    fn refuse_takeover(&self, req: &RegisterRequest, node: &Node) -> Result<(), RegisterError> {
        let current = node.metadata.annotation(AGENT_ADDRESS);
        let alive = self.is_alive(&req.node_name);
        let ready = node.is_ready();
        match current.filter(|c| *c != req.address && alive && ready) {
            Some(current) => Err(RegisterError::Invalid(format!(
                "node {:?} is registered from {current} and still sends heartbeats; \
                 stop that agent first (or wait {:?}) to move it to {}",
                req.node_name, self.grace, req.address
            ))),
            None => Ok(()),
        }
    }

    /// The node's pod range: the one it holds, or the lowest free one. A range from another
    /// plan (the flags changed since) is refused rather than silently swapped under pods.
    async fn pod_cidr_for(
        &self,
        req: &RegisterRequest,
        node: &Node,
    ) -> Result<ipnet::Ipv4Net, RegisterError> {
        let plan = self.pod_network;
        if let Some(held) = node.spec.pod_cidr.as_deref() {
            return plan.parse_node_range(held).ok_or_else(|| {
                RegisterError::Invalid(format!(
                    "node {} holds pod range {held}, which is not one of --cluster-cidr {plan}; \
                     delete the node (keel delete node {}) to give it a new range",
                    req.node_name, req.node_name
                ))
            });
        }
        // Shared, not copied: every node that joins reads every other, and 5,000 nodes
        // joining would copy 12.5 million Nodes.
        let nodes = self
            .store
            .list_shared(Kind::Node, None, None)
            .await
            .map_err(|e| RegisterError::Store(e.to_string()))?;
        let used: BTreeSet<ipnet::Ipv4Net> = nodes
            .items
            .iter()
            .filter_map(|s| match &s.object {
                Object::Node(n) => n.spec.pod_cidr.as_deref()?.parse().ok(),
                _ => None,
            })
            .collect();
        if let Some(free) = plan.allocate(&used) {
            return Ok(free);
        }
        let message = format!(
            "no pod range left for node {}: --cluster-cidr {plan} has room for {} nodes and all are taken; \
             delete nodes that are gone (keel delete node NAME) or restart keel server with a wider --cluster-cidr",
            req.node_name,
            plan.capacity()
        );
        let mut refused = Node::default();
        refused.metadata.name = Some(req.node_name.clone());
        let mut refused = Object::Node(refused);
        refused.set_type_meta();
        self.events.object(
            &refused,
            EventType::Warning,
            "CIDRNotAvailable",
            message.clone(),
            "node-controller",
        );
        tracing::warn!(node = %req.node_name, "{message}");
        Err(RegisterError::Exhausted(message))
    }

    /// Told and remembered: the node is live and ready from now.
    fn registered(&self, req: &RegisterRequest, node: &Object, pod_cidr: ipnet::Ipv4Net) {
        self.events.object(
            node,
            EventType::Normal,
            "RegisteredNode",
            format!(
                "Node {} event: Registered Node {} in Controller",
                req.node_name, req.node_name
            ),
            "node-controller",
        );
        let mut state = self.state();
        state.seen.insert(req.node_name.clone(), Instant::now());
        if state.unready.remove(&req.node_name) {
            state.returned.insert(req.node_name.clone());
        }
        state.pod_cidrs.insert(req.node_name.clone(), pod_cidr);
        match host_of(&req.address).parse() {
            Ok(ip) => state.addresses.insert(req.node_name.clone(), ip),
            Err(_) => state.addresses.remove(&req.node_name),
        };
        drop(state);
        tracing::info!(node = %req.node_name, address = %req.address, "node registered");
    }
}

/// The host of an agent's `host:port` address (an IPv6 one without its brackets).
fn host_of(address: &str) -> &str {
    address
        .rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']))
        .unwrap_or_default()
}

/// `node` (as stored, or new) as its agent describes it now: labels, address, capacity,
/// versions, certificate expiry, and Ready.
fn registered(
    mut node: Node,
    req: &RegisterRequest,
    certificate_expires: Option<chrono::DateTime<chrono::Utc>>,
) -> Node {
    let host = host_of(&req.address).to_string();
    let capacity: BTreeMap<String, Quantity> = [
        ("cpu", format!("{}m", req.cpu_millis)),
        ("memory", req.memory_bytes.to_string()),
        ("pods", req.max_pods.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity::new(v)))
    .collect();
    node.metadata.name = Some(req.node_name.clone());
    let mut labels: keel_schema::StringMap = req.labels.clone().into_iter().collect();
    labels.insert("kubernetes.io/hostname".into(), req.node_name.clone());
    node.metadata.labels = Some(labels);
    let annotations = node
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    annotations.insert(AGENT_ADDRESS.into(), req.address.clone());
    match certificate_expires {
        Some(t) => {
            let at = t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            annotations.insert(CERTIFICATE_EXPIRES.into(), at);
        }
        None => {
            annotations.remove(CERTIFICATE_EXPIRES);
        }
    }
    let status = node.status.get_or_insert_with(NodeStatus::default);
    status.capacity = Some(capacity.clone());
    status.allocatable = Some(capacity);
    status.addresses = Some(vec![NodeAddress {
        type_: "InternalIP".into(),
        address: host,
    }]);
    status.node_info = Some(NodeSystemInfo {
        agent_version: Some(req.agent_version.clone()),
        container_runtime_version: Some(req.runtime.clone()),
        operating_system: None,
        architecture: None,
    });
    set_ready(&mut node, true);
    node
}

/// A quarter of `grace`, within the protocol's bounds: see
/// [`NodeRegistry::heartbeat_interval`].
pub(super) fn heartbeat_interval(grace: Duration) -> Duration {
    (grace / 4).clamp(
        keel_agent_protocol::HEARTBEAT_INTERVAL_MIN,
        keel_agent_protocol::HEARTBEAT_INTERVAL_MAX,
    )
}

#[cfg(test)]
mod tests {
    use super::heartbeat_interval;
    use std::time::Duration;

    #[test]
    fn agents_beat_four_times_within_the_grace_and_never_absurdly() {
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(heartbeat_interval(Duration::from_secs(10))), 2_500);
        assert_eq!(ms(heartbeat_interval(Duration::from_secs(2))), 500);
        // The shortest grace keel server takes (1 s) gets the floor, and nothing is beaten
        // faster,
        assert_eq!(ms(heartbeat_interval(Duration::from_secs(1))), 250);
        assert_eq!(ms(heartbeat_interval(Duration::from_millis(400))), 250);
        // and a long one still hears from its nodes every 10 s.
        assert_eq!(ms(heartbeat_interval(Duration::from_secs(300))), 10_000);
    }
}
