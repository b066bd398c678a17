//! Node sync: sends each node's desired set to its agent. An agent that registered to take
//! its sets asks for each with `NextSet` on its own connection, and the set is left for it
//! ([`crate::nodes::handoff`]); any other agent is dialed and sent it with `Sync`. Either
//! way one set per node is out at a time, and its outcome is the agent's answer. A node
//! whose agent has not registered with this control plane (it restarted, or its term just
//! began) waits for it: the registration sends its set.
//!
//! A node's set is its bound pods, the ConfigMaps and Secrets those pods use (and no others:
//! an agent never receives a Secret none of its pods needs), every Service with its
//! Endpoints for the node's proxy, and every node's overlay entry. It is numbered with the
//! store revision it was read at, so generations only grow, across control-plane restarts
//! too. Every part is sent whole except the nodes and the pods, to an agent that applied a
//! set before and says it takes changes: it gets what changed in its nodes list since
//! ([`peers`]; the list changes at most every [`PEERS_EVERY`], so 5,000 nodes joining do
//! not send each agent 5,000 lists of 5,000), and its pods that are new or changed, with the
//! names of those that went ([`pods`]). A forced send carries every pod. Pods go without
//! their status (but a finished phase), so an agent's own status reports do not come back
//! to it.
//!
//! Changes mark nodes dirty; every [`DEBOUNCE`] the dirty nodes' sets are rebuilt and sent if
//! they differ from the last one the agent acknowledged. A registration (an agent that
//! (re)started), a failed send, an agent whose heartbeat names another set than the one it
//! acknowledged, and the periodic [`RESEND`] send again whatever the set. The heartbeats
//! (every second) are what keeps agents level with the store; the resend is the backstop,
//! spread over its period a slice of the nodes each second, so 5,000 nodes' sets never go
//! out in one burst that a single pod's change would queue behind.
//! One send per node is in flight at a time; a node that does not answer is retried with
//! backoff, and its dropping and returning is routine.
//!
//! # Layout
//! - this file: the loop (what is dirty, what is in flight, backoff); [`due`]: which
//!   nodes go when; [`desired`]: a node's set; [`peers`]: the nodes' entries as they
//!   change; [`pods`]: a node's pods as they change; [`send`]: one send.

mod desired;
mod due;
mod peers;
mod pods;
mod send;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use keel_agent_protocol::node_agent_client::NodeAgentClient;
use keel_schema::{Kind, Object};
use keel_store::ObjectKey;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::dial::AgentDialer;
use super::registry::Reach;
use super::{AGENT_ADDRESS, NodeRegistry};
use crate::cache::{Cache, Change};
use desired::{Shared, desired_set};
use due::{disagrees, pick, resend_slice};
use peers::PeerLog;
use pods::{AgentVersions, SentPods};
use send::{SendError, Sent, Takes};

/// Changes within this window go out as one set. The first change after a quiet window
/// goes out at once (see `due::at_once`): an isolated change, a pod deleted or
/// scaled by one, does not wait for the next tick.
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// Every node's set is sent again this often, changed or not.
pub const RESEND: Duration = Duration::from_secs(300);
/// How often the agents' heartbeats are compared with what they acknowledged, and a slice
/// of the nodes is resent.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// The resend's slices: one per check.
const RESEND_SLICES: u64 = RESEND.as_secs() / CHECK_EVERY.as_secs();
/// A heartbeat heard this long after an acknowledgement was sent after it (agents beat every
/// second): one that names another set means the agent no longer has the acknowledged one.
const HEARD_AFTER_ACK: Duration = Duration::from_secs(3);
/// Nodes joining, leaving or moving reach the other agents' lists at most this often.
pub const PEERS_EVERY: Duration = Duration::from_secs(1);
/// Sends in flight across all nodes.
const MAX_IN_FLIGHT: usize = 64;
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What node sync knows of one node.
#[derive(Default)]
struct NodeState {
    address: Option<String>,
    client: Option<NodeAgentClient<Channel>>,
    /// Hash of the set the agent last acknowledged.
    acked: Option<u64>,
    /// The [`PeerLog`] version of the nodes in that set.
    acked_nodes: Option<u64>,
    /// The pods of that set, with the versions sent.
    acked_pods: Option<SentPods>,
    /// What the agent takes as changes (it said so in its last ack).
    takes: Takes,
    last_generation: u64,
    /// When the agent acknowledged the set numbered `last_generation`.
    acked_at: Option<Instant>,
    /// Its heartbeats named another set since they last named the acknowledged one.
    disagreed: bool,
    in_flight: bool,
    failures: u32,
    retry_at: Option<Instant>,
}

impl NodeState {
    /// Nothing is known to be acknowledged: the next set goes whole and is sent even if
    /// unchanged.
    fn forget_ack(&mut self) {
        self.acked = None;
        self.acked_nodes = None;
        self.acked_pods = None;
        self.acked_at = None;
    }
}

/// Node sync's state between events.
struct NodeSync {
    cache: Cache,
    dialer: AgentDialer,
    /// What each agent's heartbeats say it has applied.
    registry: NodeRegistry,
    /// Checks done, which picks the slice of nodes to resend.
    checks: u64,
    nodes: HashMap<String, NodeState>,
    /// Dirty nodes, and whether to send even an unchanged set.
    dirty: HashMap<String, bool>,
    /// The dirty nodes whose own pods changed: sent before the others, so a pod's change
    /// does not wait behind a resend of every node's set.
    urgent: HashSet<String>,
    /// Sends in flight; aborted at shutdown (agents converge to the next full set anyway).
    sends: JoinSet<Sent>,
    /// Whose send each task is, so one that panicked still frees its node.
    sending: HashMap<tokio::task::Id, String>,
    peers: PeerLog,
    /// Which version of each pod its agent sees.
    versions: AgentVersions,
    /// A node came, went or moved since the log was last refreshed.
    peers_changed: bool,
    peers_refreshed: Option<Instant>,
    /// When a pass last had something to send (or a reason to look).
    last_pass: Option<Instant>,
}

/// Runs node sync until `stop`.
pub async fn run(
    cache: Cache,
    dialer: AgentDialer,
    registry: NodeRegistry,
    stop: CancellationToken,
) {
    let mut changes = cache.subscribe();
    tokio::select! {
        _ = cache.wait_synced() => {}
        _ = stop.cancelled() => return,
    }
    let mut sync = NodeSync {
        cache,
        dialer,
        registry,
        checks: 0,
        nodes: HashMap::new(),
        dirty: HashMap::new(),
        urgent: HashSet::new(),
        sends: JoinSet::new(),
        sending: HashMap::new(),
        peers: PeerLog::default(),
        versions: AgentVersions::default(),
        peers_changed: true,
        peers_refreshed: None,
        last_pass: None,
    };
    sync.mark_all(true);
    let mut tick = tokio::time::interval(DEBOUNCE);
    let mut check = tokio::time::interval(CHECK_EVERY);
    check.reset();
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Ok(change) => {
                    sync.changed(&change);
                    // The window keeps its beat: restarting it here would make the next
                    // change wait a whole window whenever an unrelated one (of 5,000
                    // nodes') had just gone at once.
                    if sync.quiet() {
                        sync.send_dirty();
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    sync.versions.clear();
                    sync.mark_all(true);
                }
                Err(RecvError::Closed) => break,
            },
            Some(done) = sync.sends.join_next_with_id() => sync.done(done),
            _ = tick.tick() => sync.send_dirty(),
            _ = check.tick() => sync.check(),
            _ = stop.cancelled() => break,
        }
    }
    sync.sends.shutdown().await;
}

impl NodeSync {
    fn mark_all(&mut self, force: bool) {
        for s in self.cache.list(Kind::Node, None) {
            let e = self
                .dirty
                .entry(s.object.name().to_string())
                .or_insert(false);
            *e |= force;
        }
    }

    /// Marks to be sent, changed or not, the nodes whose agents say they have applied
    /// another set than the one they acknowledged, and this check's slice of all nodes.
    fn check(&mut self) {
        self.checks += 1;
        let slice = self.checks % RESEND_SLICES;
        for s in self.cache.list(Kind::Node, None) {
            let name = s.object.name();
            let applied = self.registry.agent_applied(name);
            let disagrees = match (self.nodes.get_mut(name), applied) {
                (Some(state), Some(applied)) => {
                    let disagrees = disagrees(state, applied);
                    if disagrees {
                        // Once until it agrees again: an agent that keeps losing its set
                        // does not fill the log every few seconds.
                        let first = !std::mem::replace(&mut state.disagreed, true);
                        if first {
                            tracing::warn!(
                                node = name,
                                acked = state.last_generation,
                                applied = applied.generation,
                                "the agent no longer has the set it acknowledged; sending it again"
                            );
                        }
                    } else if applied.generation == state.last_generation {
                        state.disagreed = false;
                    }
                    disagrees
                }
                _ => false,
            };
            if disagrees || resend_slice(name) == slice {
                self.dirty.insert(name.to_string(), true);
            }
        }
    }

    /// Marks the nodes a change may concern.
    fn changed(&mut self, change: &Change) {
        let Change::Object { old, new } = change else {
            self.versions.clear();
            self.peers_changed = true;
            self.mark_all(true);
            return;
        };
        let objects = old.iter().chain(new.iter()).map(|s| &s.object);
        match change.kind() {
            Some(Kind::Pod) => {
                self.versions.changed(old.as_deref(), new.as_deref());
                // Most pod writes are the agents' own status reports: nothing to send back.
                if let (Some(Object::Pod(a)), Some(Object::Pod(b))) = (
                    old.as_ref().map(|s| &s.object),
                    new.as_ref().map(|s| &s.object),
                ) && pods::same_for_agent(a, b)
                {
                    return;
                }
                for o in objects {
                    if let Object::Pod(p) = o
                        && let Some(n) = p.spec.node_name.as_deref().filter(|n| !n.is_empty())
                    {
                        self.dirty.entry(n.to_string()).or_insert(false);
                        self.urgent.insert(n.to_string());
                    }
                }
            }
            // A registration (an agent that (re)started): send whatever the set. A node that
            // came, went, or moved its range or address changes every node's routes.
            Some(Kind::Node) => {
                let peer = |s: &Option<std::sync::Arc<keel_store::Stored>>| match s
                    .as_ref()
                    .map(|s| &s.object)
                {
                    Some(Object::Node(n)) => desired::network_peer(n),
                    _ => None,
                };
                let ready = |s: &Option<std::sync::Arc<keel_store::Stored>>| matches!(s.as_ref().map(|s| &s.object), Some(Object::Node(n)) if n.is_ready());
                // Readiness also moves which node answers for LoadBalancer addresses.
                if ready(old) != ready(new) {
                    self.mark_all(false);
                }
                if peer(old) != peer(new) {
                    self.peers_changed = true;
                }
                for o in objects {
                    self.dirty.insert(o.name().to_string(), true);
                }
            }
            Some(
                Kind::ConfigMap
                | Kind::Secret
                | Kind::Service
                | Kind::Endpoints
                | Kind::Ingress
                | Kind::IngressClass
                // Which claim is which directory, and which directories go.
                | Kind::PersistentVolumeClaim
                | Kind::PersistentVolume,
            ) => {
                self.mark_all(false);
            }
            Some(
                Kind::ReplicationController
                | Kind::Namespace
                | Kind::Event
                | Kind::Deployment
                | Kind::ReplicaSet
                | Kind::DaemonSet
                | Kind::StatefulSet
                | Kind::ControllerRevision
                | Kind::Job
                | Kind::CronJob
                // Stored, not enforced: nothing on a node depends on them.
                | Kind::ServiceAccount
                | Kind::NetworkPolicy
                | Kind::PodDisruptionBudget
                | Kind::HorizontalPodAutoscaler
                | Kind::ResourceQuota
                | Kind::LimitRange
                | Kind::Role
                | Kind::ClusterRole
                | Kind::RoleBinding
                | Kind::ClusterRoleBinding
                | Kind::CustomResourceDefinition
                // Nothing on a node depends on a custom object.
                | Kind::Custom(_),
            )
            | None => {}
        }
    }

    /// A send task ended: its outcome, or (it panicked, a bug) a failure of its node's send.
    fn done(&mut self, done: Result<(tokio::task::Id, Sent), tokio::task::JoinError>) {
        let sent = match done {
            Ok((id, sent)) => {
                self.sending.remove(&id);
                sent
            }
            Err(e) => {
                let Some(node) = self.sending.remove(&e.id()) else {
                    return;
                };
                tracing::error!(node, error = %e, "a send to an agent panicked; this is a bug in keel");
                let failed = SendError::Failed("the send panicked".into());
                Sent::failed(node, failed)
            }
        };
        self.sent(sent);
    }

    /// A send's outcome: acknowledged, or retried after a backoff.
    fn sent(&mut self, sent: Sent) {
        let state = self.nodes.entry(sent.node.clone()).or_default();
        state.in_flight = false;
        match sent.result {
            Ok(()) => {
                state.acked = Some(sent.hash);
                state.acked_nodes = Some(sent.nodes_version);
                state.acked_pods = Some(sent.pods);
                state.takes = sent.takes;
                state.last_generation = sent.generation;
                state.acked_at = Some(Instant::now());
                state.failures = 0;
                state.retry_at = None;
                state.client = sent.client;
            }
            Err(SendError::NeedsWhole(why)) => {
                // It no longer has the list the change was to (it restarted): the whole
                // set now, on the same connection.
                tracing::debug!(node = %sent.node, why, "sending the agent its whole set");
                state.forget_ack();
                state.client = sent.client;
                self.dirty.insert(sent.node, true);
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
                state.forget_ack();
                state.client = None;
                state.retry_at = Some(Instant::now() + delay);
                self.dirty.insert(sent.node, true);
            }
        }
    }

    /// Whether a change goes out now ([`due::at_once`]).
    fn quiet(&self) -> bool {
        due::at_once(!self.dirty.is_empty(), self.last_pass, Instant::now())
    }

    /// Sends the dirty nodes' sets that changed (or must go anyway), one per node at a time.
    fn send_dirty(&mut self) {
        if self.dirty.is_empty() && !self.peers_changed {
            return;
        }
        let now = Instant::now();
        self.last_pass = Some(now);
        if self.peers_changed && self.peers_refreshed.is_none_or(|t| now - t >= PEERS_EVERY) {
            self.peers_changed = false;
            self.peers_refreshed = Some(now);
            let before = self.peers.version();
            self.peers.refresh(desired::network_peers(&self.cache));
            if self.peers.version() != before {
                self.mark_all(false);
            }
        }
        let room = MAX_IN_FLIGHT.saturating_sub(self.sends.len());
        let ready = pick(&self.dirty, &self.urgent, room, |n| {
            self.nodes
                .get(n)
                .is_none_or(|s| !s.in_flight && s.retry_at.is_none_or(|t| t <= now))
        });
        if ready.is_empty() {
            return;
        }
        let shared = Shared::read(&self.cache);
        for (node, force) in ready {
            self.dirty.remove(&node);
            self.urgent.remove(&node);
            self.send_one(node, force, &shared);
        }
    }

    fn send_one(&mut self, node: String, force: bool, shared: &Shared) {
        let Some(address) = agent_address(&self.cache, &node) else {
            // Not a registered node (pods bound to a name nobody runs).
            self.nodes.remove(&node);
            return;
        };
        let handoff = match self.registry.reach(&node) {
            Reach::Handoff(handoff) => Some(handoff),
            Reach::Dial => None,
            // Its registration (a Node write) marks it to be sent its whole set.
            Reach::NotYet => return,
        };
        let (mut desired, pods, hash) = desired_set(&self.cache, shared, &node, &self.versions);
        let nodes_version = self.peers.version();
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (hash, nodes_version).hash(&mut h);
            h.finish()
        };
        let state = self.nodes.entry(node.clone()).or_default();
        if !force && state.acked == Some(hash) {
            return;
        }
        let changes = state
            .acked_nodes
            .filter(|_| state.takes.nodes)
            .and_then(|v| self.peers.since(v));
        match changes {
            Some(changes) => {
                desired.nodes = changes.changed;
                desired.removed_nodes = changes.removed;
                desired.nodes_base_generation = state.last_generation;
            }
            None => desired.nodes = self.peers.all(),
        }
        // A forced send (a registration, a resend, an agent that lost its set) is whole.
        match state
            .acked_pods
            .as_ref()
            .filter(|_| state.takes.pods && !force)
        {
            Some(acked) => {
                (desired.pods, desired.removed_pods) = pods::change(acked, &pods);
                desired.pods_base_generation = state.last_generation;
            }
            None => {
                desired.pods = pods
                    .iter()
                    .map(|p| pods::pod_json(&p.stored.object))
                    .collect()
            }
        }
        let sent_pods: SentPods = pods.into_iter().map(|p| (p.key, p.version)).collect();
        if state.address.as_deref() != Some(address.as_str()) {
            state.address = Some(address.clone());
            state.client = None;
        }
        desired.generation = desired.generation.max(state.last_generation + 1);
        state.in_flight = true;
        let client = state.client.take();
        let dialer = self.dialer.clone();
        let node_name = node.clone();
        let task = self.sends.spawn(async move {
            let generation = desired.generation;
            let (client, result) = match handoff {
                Some(handoff) => (None, send::hand_over(&handoff, &node, desired).await),
                None => send::send(&dialer, &node, client, &address, desired).await,
            };
            Sent {
                node,
                hash,
                generation,
                nodes_version,
                pods: sent_pods,
                takes: result.as_ref().copied().unwrap_or_default(),
                client,
                result: result.map(|_| ()),
            }
        });
        self.sending.insert(task.id(), node_name);
    }
}

fn agent_address(cache: &Cache, node: &str) -> Option<String> {
    cache
        .get(&ObjectKey::new(Kind::Node, "", node))?
        .object
        .meta()
        .annotation(AGENT_ADDRESS)
        .map(str::to_string)
}
