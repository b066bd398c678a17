//! Nodes: agents register here and report over a status stream; the registry keeps each
//! node's `Node` object in the store and its pods' statuses, and marks a node whose heartbeats
//! stopped as not ready.
//!
//! # Layout
//! - this file: [`NodeRegistry`], what registration and reports do to the store, and the node
//!   lifecycle (Ready → Unknown after `--node-grace` without a heartbeat, back on the next one).
//! - [`grpc`]: the `ControlPlane` gRPC service agents call, and `serve`, the one place its
//!   server is built (mutual TLS: callers are who their certificates say).
//!
//! Heartbeats are kept in memory; the store is written only when something changes (a
//! registration, a readiness flip, a pod's status), so a thousand nodes beating every second
//! cost the store nothing.

pub mod dial;
pub mod grpc;
pub mod sync;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use keel_agent_protocol::{PodStatusUpdate, RegisterRequest};
use keel_schema::object::Object;
use keel_schema::quantity::Quantity;
use keel_schema::types::core::{Node, NodeAddress, NodeStatus, NodeSystemInfo};
use keel_schema::types::meta::Condition;
use keel_schema::types::pod::PodStatus;
use keel_schema::validate::names;
use tokio::time::Instant;

use keel_schema::Kind;
use keel_schema::types::core::EventType;
use keel_store::{ObjectKey, Store, StoreError};

/// Where the control plane reaches a node's agent (host:port), on its Node object.
pub const AGENT_ADDRESS: &str = "keel.dev/agent-address";
/// When the certificate the node's agent registered with expires (RFC 3339); absent when
/// the cluster runs `--insecure`.
pub const CERTIFICATE_EXPIRES: &str = "keel.dev/certificate-expires";

/// How many times a write that lost a race (a conflict) is tried again.
const CONFLICT_RETRIES: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Store(String),
}

/// Nodes known to this control plane and when each was last heard from.
#[derive(Clone)]
pub struct NodeRegistry {
    store: Store,
    grace: Duration,
    state: Arc<Mutex<Liveness>>,
    /// Readiness is written under this lock, with the heartbeat checked again inside it, so
    /// a heartbeat and the lifecycle check cannot leave a live node marked not ready.
    readiness: Arc<tokio::sync::Mutex<()>>,
    events: crate::events::Recorder,
    /// Heartbeats received (`keel_node_heartbeats_total`).
    heartbeats: prometheus_client::metrics::counter::Counter,
}

/// The most nodes one control plane accepts (a join token, or `--insecure`, lets a caller
/// register nodes; this bounds what that costs).
pub const MAX_NODES: usize = 10_000;
/// The largest pod status accepted from an agent.
const MAX_STATUS_BYTES: usize = 256 * 1024;

/// What the registry knows of each node's heartbeats.
#[derive(Default)]
struct Liveness {
    /// When each node was last heard from.
    seen: HashMap<String, Instant>,
    /// Nodes last written as not ready: their next heartbeat writes them ready.
    unready: std::collections::HashSet<String>,
}

fn ready_condition(ready: bool, previous: Option<&Condition>) -> Condition {
    let now = Utc::now();
    let status = if ready { "True" } else { "Unknown" };
    // Unknown keeps the time of the last heartbeat that was written.
    let heartbeat = if ready {
        Some(now)
    } else {
        previous.and_then(|c| c.last_heartbeat_time)
    };
    let since = previous
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time);
    Condition {
        type_: "Ready".into(),
        status: status.into(),
        last_heartbeat_time: heartbeat,
        last_transition_time: Some(since.unwrap_or(now)),
        reason: Some(
            if ready {
                "KeelAgentReady"
            } else {
                "NodeStatusUnknown"
            }
            .into(),
        ),
        message: Some(
            if ready {
                "keel-agent is posting ready status"
            } else {
                "keel-agent stopped posting node status."
            }
            .into(),
        ),
        ..Default::default()
    }
}

/// Whether the node's Ready condition is True.
pub fn is_ready(node: &Node) -> bool {
    ready_of(node).is_some_and(|c| c.status == "True")
}

/// Whether the node's agent registered or was last written ready at or after `since`.
pub fn heard_since(node: &Node, since: chrono::DateTime<chrono::Utc>) -> bool {
    ready_of(node)
        .and_then(|c| c.last_heartbeat_time)
        .is_some_and(|t| t >= since)
}

fn ready_of(node: &Node) -> Option<&Condition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

fn set_ready(node: &mut Node, ready: bool) {
    let cond = ready_condition(ready, ready_of(node));
    let status = node.status.get_or_insert_with(NodeStatus::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != "Ready");
    conditions.push(cond);
}

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
    // Upper bounds far beyond any machine, so no sum or score can overflow.
    for (what, v, max) in [
        ("cpu_millis", req.cpu_millis, 1_i64 << 40),
        ("memory_bytes", req.memory_bytes, 1_i64 << 56),
        ("max_pods", req.max_pods, 1_000_000),
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
        if let Some(why) = names::label_value(v) {
            return bad(format!("labels: value {v:?} of {k:?}: {why}"));
        }
    }
    Ok(())
}

impl NodeRegistry {
    /// A registry over `store`. Nodes already in the store count as just heard from, so
    /// they have `grace` to reconnect after a control-plane restart.
    pub async fn new(store: Store, grace: Duration) -> Result<Self, StoreError> {
        let nodes = store.list(Kind::Node, None, None).await?;
        let now = Instant::now();
        let mut state = Liveness::default();
        for s in &nodes.items {
            let name = s.object.name().to_string();
            if let Object::Node(n) = &s.object
                && ready_of(n).is_none_or(|c| c.status != "True")
            {
                state.unready.insert(name.clone());
            }
            state.seen.insert(name, now);
        }
        Ok(Self {
            store,
            grace,
            state: Arc::new(Mutex::new(state)),
            readiness: Arc::default(),
            events: crate::events::Recorder::disabled(),
            heartbeats: Default::default(),
        })
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

    fn state(&self) -> std::sync::MutexGuard<'_, Liveness> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The store's revision now (0 when it cannot say).
    pub async fn store_revision(&self) -> u64 {
        self.store.revision().await.unwrap_or(0)
    }

    pub fn is_registered(&self, node: &str) -> bool {
        self.state().seen.contains_key(node)
    }

    /// Whether `node` was heard from within `--node-grace`.
    pub fn is_alive(&self, node: &str) -> bool {
        self.state()
            .seen
            .get(node)
            .is_some_and(|t| t.elapsed() <= self.grace)
    }

    /// Registers (or re-registers) a node: creates or updates its object from what its
    /// agent says; it is Ready. `certificate_expires` is when the certificate
    /// its agent presented expires, shown by `keel describe node`.
    pub async fn register(
        &self,
        req: &RegisterRequest,
        certificate_expires: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), RegisterError> {
        check(req)?;
        {
            let state = self.state();
            if !state.seen.contains_key(&req.node_name) && state.seen.len() >= MAX_NODES {
                return Err(RegisterError::Invalid(format!(
                    "this control plane already has {MAX_NODES} nodes"
                )));
            }
        }
        let key = ObjectKey::new(Kind::Node, "", &req.node_name);
        let host = req
            .address
            .rsplit_once(':')
            .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
            .unwrap_or_default();
        let capacity: BTreeMap<String, Quantity> = [
            ("cpu", format!("{}m", req.cpu_millis)),
            ("memory", req.memory_bytes.to_string()),
            ("pods", req.max_pods.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Quantity::new(v)))
        .collect();
        for _ in 0..CONFLICT_RETRIES {
            let existing = self
                .store
                .get(&key)
                .await
                .map_err(|e| RegisterError::Store(e.to_string()))?;
            let (mut node, expected) = match &existing {
                Some(s) => match &s.object {
                    Object::Node(n) => (n.clone(), Some(s.resource_version)),
                    _ => (Node::default(), Some(s.resource_version)),
                },
                None => (Node::default(), None),
            };
            // A live node's address cannot be taken over by another registration: two agents
            // started with one name (and, under --insecure, a stranger) would fight over it.
            let current = node.metadata.annotation(AGENT_ADDRESS).map(str::to_string);
            let alive = self
                .state()
                .seen
                .get(&req.node_name)
                .is_some_and(|t| t.elapsed() <= self.grace);
            let ready = ready_of(&node).is_some_and(|c| c.status == "True");
            if let Some(current) = current.filter(|c| *c != req.address && alive && ready) {
                return Err(RegisterError::Invalid(format!(
                    "node {:?} is registered from {current} and still sends heartbeats; \
                     stop that agent first (or wait {:?}) to move it to {}",
                    req.node_name, self.grace, req.address
                )));
            }
            node.metadata.name = Some(req.node_name.clone());
            let mut labels: BTreeMap<String, String> = req.labels.clone().into_iter().collect();
            labels.insert("kubernetes.io/hostname".into(), req.node_name.clone());
            node.metadata.labels = Some(labels);
            node.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(AGENT_ADDRESS.into(), req.address.clone());
            let annotations = node.metadata.annotations.get_or_insert_with(BTreeMap::new);
            match certificate_expires {
                Some(t) => {
                    annotations.insert(
                        CERTIFICATE_EXPIRES.into(),
                        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    );
                }
                None => {
                    annotations.remove(CERTIFICATE_EXPIRES);
                }
            }
            let status = node.status.get_or_insert_with(NodeStatus::default);
            status.capacity = Some(capacity.clone());
            status.allocatable = Some(capacity.clone());
            status.addresses = Some(vec![NodeAddress {
                type_: "InternalIP".into(),
                address: host.clone(),
            }]);
            status.node_info = Some(NodeSystemInfo {
                agent_version: Some(req.agent_version.clone()),
                container_runtime_version: Some(req.runtime.clone()),
                operating_system: None,
                architecture: None,
            });
            set_ready(&mut node, true);
            let mut object = Object::Node(node);
            object.set_type_meta();
            let written = match expected {
                Some(v) => self.store.update(object, v).await,
                None => self.store.create(object).await,
            };
            match written {
                Ok(stored) => {
                    self.events.object(
                        &stored.object,
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
                    state.unready.remove(&req.node_name);
                    drop(state);
                    tracing::info!(node = %req.node_name, address = %req.address, "node registered");
                    return Ok(());
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

    /// A heartbeat from `node`: it is alive; flips it back to Ready if it was written not
    /// ready (checked on every beat, so a beat racing the lifecycle check is made good by the
    /// next one).
    pub async fn heartbeat(&self, node: &str) {
        self.heartbeats.inc();
        let unready = {
            let mut state = self.state();
            state.seen.insert(node.to_string(), Instant::now());
            state.unready.contains(node)
        };
        if !unready {
            return;
        }
        let _writing = self.readiness.lock().await;
        if self.state().unready.contains(node) && self.write_ready(node, true).await {
            self.state().unready.remove(node);
            // Heard from again on the same stream, the agent sends no statuses it thinks it
            // already sent: undo this registry's own marking (anything else the pods went
            // through meanwhile, the agent reported, and that replaced the mark).
            self.mark_pods(node, true).await;
        }
    }

    /// Writes `node`'s Ready condition if it differs; true when the store now says `ready`.
    async fn write_ready(&self, node: &str, ready: bool) -> bool {
        let key = ObjectKey::new(Kind::Node, "", node);
        for _ in 0..CONFLICT_RETRIES {
            let Ok(Some(stored)) = self.store.get(&key).await else {
                return false;
            };
            let Object::Node(mut n) = stored.object else {
                return false;
            };
            let is_ready = ready_of(&n).is_some_and(|c| c.status == "True");
            if is_ready == ready {
                return true;
            }
            set_ready(&mut n, ready);
            match self
                .store
                .update(Object::Node(n), stored.resource_version)
                .await
            {
                Ok(stored) => {
                    let (type_, reason) = if ready {
                        (EventType::Normal, "NodeReady")
                    } else {
                        (EventType::Warning, "NodeNotReady")
                    };
                    self.events.object(
                        &stored.object,
                        type_,
                        reason,
                        format!("Node {node} status is now: {reason}"),
                        "node-controller",
                    );
                    if ready {
                        tracing::info!(node, "node is ready again");
                    } else {
                        tracing::warn!(node, grace = ?self.grace, "NodeNotReady: no heartbeat from its agent");
                    }
                    return true;
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => {
                    tracing::warn!(node, error = %e, "cannot write the node's readiness");
                    return false;
                }
            }
        }
        false
    }

    /// Marks nodes without a heartbeat for longer than the grace period as not ready.
    pub async fn check_heartbeats(&self) {
        let late: Vec<String> = {
            let state = self.state();
            state
                .seen
                .iter()
                .filter(|(n, t)| t.elapsed() > self.grace && !state.unready.contains(*n))
                .map(|(n, _)| n.clone())
                .collect()
        };
        for node in late {
            let _writing = self.readiness.lock().await;
            // Heard from meanwhile: still alive.
            let still_late = self
                .state()
                .seen
                .get(&node)
                .is_some_and(|t| t.elapsed() > self.grace);
            if still_late && self.write_ready(&node, false).await {
                self.state().unready.insert(node.clone());
                self.mark_pods(&node, false).await;
            }
        }
    }

    /// A node gone silent cannot vouch for its pods: they stop being Ready (as Kubernetes'
    /// node lifecycle controller does), so Services stop sending them traffic now rather than
    /// when the pods are evicted (`ready` false). When the node is heard from again, the
    /// pods this marked are Ready again (`ready` true); the agent's statuses have the last
    /// word either way.
    async fn mark_pods(&self, node: &str, ready: bool) {
        let Ok(pods) = self.store.list(Kind::Pod, None, None).await else {
            return;
        };
        let now = Utc::now();
        let mut marked = 0;
        for stored in pods.items {
            let Object::Pod(mut pod) = stored.object else {
                continue;
            };
            if pod.spec.node_name.as_deref() != Some(node) {
                continue;
            }
            let mut changed = false;
            let conditions = pod
                .status
                .as_mut()
                .and_then(|s| s.conditions.as_mut())
                .into_iter()
                .flatten();
            for c in conditions.filter(|c| c.type_ == "Ready") {
                let marked = c.reason.as_deref() == Some("NodeNotReady");
                if !ready && c.status == "True" {
                    c.status = "False".into();
                    c.reason = Some("NodeNotReady".into());
                    c.message = Some(format!("node {node} is not ready"));
                } else if ready && c.status == "False" && marked {
                    c.status = "True".into();
                    c.reason = None;
                    c.message = None;
                } else {
                    continue;
                }
                c.last_transition_time = Some(now);
                changed = true;
            }
            // A conflict means the pod changed meanwhile (deleted, or its agent reported):
            // that write is newer than this one.
            if changed
                && self
                    .store
                    .update(Object::Pod(pod), stored.resource_version)
                    .await
                    .is_ok()
            {
                marked += 1;
            }
        }
        if marked > 0 {
            tracing::info!(node, pods = marked, ready, "pods of the node marked");
        }
    }

    /// Runs [`NodeRegistry::check_heartbeats`] every second until `stop`.
    pub async fn run_lifecycle(&self, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => self.check_heartbeats().await,
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Records an event an agent reports about one of its pods (only for pods bound to that
    /// node, with the uid it names; fields are bounded and the type is Normal or Warning).
    pub async fn pod_event(&self, node: &str, event: &keel_agent_protocol::PodEvent) {
        fn bounded(s: &str, max: usize) -> String {
            s.chars()
                .filter(|c| !c.is_control() || *c == '\n')
                .take(max)
                .collect()
        }
        let key = ObjectKey::new(Kind::Pod, &event.namespace, &event.name);
        let Ok(Some(stored)) = self.store.get(&key).await else {
            return;
        };
        let Object::Pod(pod) = &stored.object else {
            return;
        };
        if pod.metadata.uid.as_deref() != Some(event.uid.as_str())
            || pod.spec.node_name.as_deref() != Some(node)
        {
            return;
        }
        let type_ = if event.r#type == "Warning" {
            EventType::Warning
        } else {
            EventType::Normal
        };
        self.events.record(crate::events::Record {
            involved: crate::events::reference(&stored.object),
            type_,
            reason: bounded(&event.reason, 128),
            message: bounded(&event.message, 1024),
            component: "kubelet",
            host: Some(node.to_string()),
        });
    }

    /// Writes a pod's status as `node`'s agent reports it. Reports for pods that are gone,
    /// were replaced (another uid) or are bound elsewhere are ignored.
    pub async fn pod_status(&self, node: &str, update: &PodStatusUpdate) {
        if update.deleted {
            return;
        }
        if update.status.len() > MAX_STATUS_BYTES {
            tracing::warn!(node, pod = %format!("{}/{}", update.namespace, update.name), bytes = update.status.len(), "pod status too large; ignored");
            return;
        }
        let status: PodStatus = match serde_json::from_slice(&update.status) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(node, pod = %format!("{}/{}", update.namespace, update.name), error = %e, "unreadable pod status from an agent");
                return;
            }
        };
        let key = ObjectKey::new(Kind::Pod, &update.namespace, &update.name);
        for _ in 0..CONFLICT_RETRIES {
            let Ok(Some(stored)) = self.store.get(&key).await else {
                return;
            };
            let Object::Pod(mut pod) = stored.object else {
                return;
            };
            if pod.metadata.uid.as_deref() != Some(update.uid.as_str())
                || pod.spec.node_name.as_deref() != Some(node)
            {
                tracing::debug!(node, pod = %key, "status for a pod not bound here; ignored");
                return;
            }
            if pod.status.as_ref() == Some(&status) {
                return;
            }
            pod.status = Some(status.clone());
            match self
                .store
                .update(Object::Pod(pod), stored.resource_version)
                .await
            {
                Ok(_) => return,
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => {
                    tracing::warn!(node, pod = %key, error = %e, "cannot write a pod's status");
                    return;
                }
            }
        }
    }
}
