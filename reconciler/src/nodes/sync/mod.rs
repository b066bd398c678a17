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
//!
//! # Layout
//! - this file: the loop (what is dirty, what is in flight, backoff); [`desired`]: a node's
//!   set; [`send`]: one send.

mod desired;
mod send;

use std::collections::HashMap;
use std::time::Duration;

use keel_agent_protocol::node_agent_client::NodeAgentClient;
use keel_schema::{Kind, Object};
use keel_store::ObjectKey;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::AGENT_ADDRESS;
use super::dial::AgentDialer;
use crate::cache::{Cache, Change};
pub use desired::desired_set;
use send::{SendError, Sent};

/// Changes within this window go out as one set.
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// Every node's set is sent again this often, changed or not (level-triggered).
pub const RESEND: Duration = Duration::from_secs(30);
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
    last_generation: u64,
    in_flight: bool,
    failures: u32,
    retry_at: Option<Instant>,
}

/// Node sync's state between events.
struct NodeSync {
    cache: Cache,
    dialer: AgentDialer,
    nodes: HashMap<String, NodeState>,
    /// Dirty nodes, and whether to send even an unchanged set.
    dirty: HashMap<String, bool>,
    /// Sends in flight; aborted at shutdown (agents converge to the next full set anyway).
    sends: JoinSet<Sent>,
    /// Whose send each task is, so one that panicked still frees its node.
    sending: HashMap<tokio::task::Id, String>,
}

/// Runs node sync until `stop`.
pub async fn run(cache: Cache, dialer: AgentDialer, stop: CancellationToken) {
    let mut changes = cache.subscribe();
    tokio::select! {
        _ = cache.wait_synced() => {}
        _ = stop.cancelled() => return,
    }
    let mut sync = NodeSync {
        cache,
        dialer,
        nodes: HashMap::new(),
        dirty: HashMap::new(),
        sends: JoinSet::new(),
        sending: HashMap::new(),
    };
    sync.mark_all(true);
    let mut tick = tokio::time::interval(DEBOUNCE);
    let mut resend = tokio::time::interval(RESEND);
    resend.reset();
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Ok(change) => sync.changed(&change),
                Err(RecvError::Lagged(_)) => sync.mark_all(true),
                Err(RecvError::Closed) => break,
            },
            Some(done) = sync.sends.join_next_with_id() => sync.done(done),
            _ = tick.tick() => sync.send_dirty(),
            _ = resend.tick() => sync.mark_all(true),
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

    /// Marks the nodes a change may concern.
    fn changed(&mut self, change: &Change) {
        let Change::Object { old, new } = change else {
            self.mark_all(true);
            return;
        };
        let objects = old.iter().chain(new.iter()).map(|s| &s.object);
        match change.kind() {
            Some(Kind::Pod) => {
                for o in objects {
                    if let Object::Pod(p) = o
                        && let Some(n) = p.spec.node_name.as_deref().filter(|n| !n.is_empty())
                    {
                        self.dirty.entry(n.to_string()).or_insert(false);
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
                if peer(old) != peer(new) || ready(old) != ready(new) {
                    self.mark_all(false);
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
                self.dirty.insert(sent.node, true);
            }
        }
    }

    /// Sends the dirty nodes' sets that changed (or must go anyway), one per node at a time.
    fn send_dirty(&mut self) {
        let now = Instant::now();
        let room = MAX_IN_FLIGHT.saturating_sub(self.sends.len());
        let ready: Vec<(String, bool)> = self
            .dirty
            .iter()
            .filter(|(n, _)| {
                self.nodes
                    .get(*n)
                    .is_none_or(|s| !s.in_flight && s.retry_at.is_none_or(|t| t <= now))
            })
            .map(|(n, f)| (n.clone(), *f))
            .take(room)
            .collect();
        for (node, force) in ready {
            self.dirty.remove(&node);
            self.send_one(node, force);
        }
    }

    fn send_one(&mut self, node: String, force: bool) {
        let Some(address) = agent_address(&self.cache, &node) else {
            // Not a registered node (pods bound to a name nobody runs).
            self.nodes.remove(&node);
            return;
        };
        let (mut desired, hash) = desired_set(&self.cache, &node);
        let state = self.nodes.entry(node.clone()).or_default();
        if !force && state.acked == Some(hash) {
            return;
        }
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
            let (client, result) = send::send(&dialer, &node, client, &address, desired).await;
            Sent {
                node,
                hash,
                generation,
                client,
                result,
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
