//! The node lifecycle: a node heard from is Ready; one silent for `--node-grace` is written
//! `Unknown`, and its pods stop being Ready (so Services stop sending them traffic before
//! they are evicted); its next heartbeat undoes both.
//!
//! The check runs once a second and handles every node that went silent (or came back)
//! since the last one together: one read of the pods for all of them, and the writes in
//! flight at once so the store commits them in groups. When a rack of 500 nodes loses power
//! at once, that is one pass, not 500 passes over every pod in the cluster.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use keel_schema::types::core::EventType;
use keel_schema::types::pod::Pod;
use keel_schema::{Kind, Object};
use keel_store::{ObjectKey, StoreError, Stored};
use tokio::time::Instant;

use super::readiness::set_ready;
use super::registry::Applied;
use super::{CONFLICT_RETRIES, NodeRegistry};

/// How many readiness writes (of nodes, or of their pods) are in flight at once.
const WRITES_IN_FLIGHT: usize = 64;

impl NodeRegistry {
    /// A heartbeat from `node`: it is alive; flips it back to Ready if it was written not
    /// ready (checked on every beat, so a beat racing the lifecycle check is made good by the
    /// next one). Its pods are made Ready again by the next lifecycle check. `applied` is the
    /// set generation a heartbeat says the agent has applied (other reports do not say).
    pub async fn heartbeat(&self, node: &str, applied: Option<u64>) {
        self.heartbeats.inc();
        let unready = {
            let mut state = self.state();
            let heard = Instant::now();
            state.seen.insert(node.to_string(), heard);
            if let Some(generation) = applied {
                state
                    .applied
                    .insert(node.to_string(), Applied { generation, heard });
            }
            state.unready.contains(node)
        };
        if !unready {
            return;
        }
        let _writing = self.readiness.lock().await;
        if self.state().unready.contains(node) && self.write_ready(node, true).await {
            let mut state = self.state();
            state.unready.remove(node);
            // Heard from again on the same stream, the agent sends no statuses it thinks it
            // already sent: the next check undoes this registry's own marking of its pods
            // (anything else they went through meanwhile, the agent reported, and that
            // replaced the mark).
            state.returned.insert(node.to_string());
        }
    }

    /// What `node`'s agent last said it has applied.
    pub fn agent_applied(&self, node: &str) -> Option<Applied> {
        self.state().applied.get(node).copied()
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
            let is_ready = n.is_ready();
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

    /// Marks nodes without a heartbeat for longer than the grace period as not ready, and
    /// their pods with them; makes the pods of nodes heard from again Ready again.
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
        let mut down = HashSet::new();
        if !late.is_empty() {
            let _writing = self.readiness.lock().await;
            // Heard from meanwhile: still alive.
            let still_late: Vec<String> = {
                let state = self.state();
                late.into_iter()
                    .filter(|n| state.seen.get(n).is_some_and(|t| t.elapsed() > self.grace))
                    .collect()
            };
            let written: Vec<(String, bool)> = futures_util::stream::iter(still_late)
                .map(|node| async move {
                    let written = self.write_ready(&node, false).await;
                    (node, written)
                })
                .buffer_unordered(WRITES_IN_FLIGHT)
                .collect()
                .await;
            let mut state = self.state();
            for (node, written) in written {
                if written {
                    state.unready.insert(node.clone());
                    state.returned.remove(&node);
                    down.insert(node);
                }
            }
        }
        let returned: HashSet<String> = {
            let mut state = self.state();
            let returned = std::mem::take(&mut state.returned);
            // Gone silent again since it came back: its pods stay as they are.
            returned
                .into_iter()
                .filter(|n| !state.unready.contains(n))
                .collect()
        };
        // Back already (a heartbeat between its NotReady write and here): its pods are not
        // marked, and what marking they have is undone.
        down.retain(|n| !returned.contains(n));
        if down.is_empty() && returned.is_empty() {
            return;
        }
        // Shared, not copied: only the pods of these nodes are.
        let Ok(pods) = self.store.list_shared(Kind::Pod, None, None).await else {
            return;
        };
        let (mut gone, mut back) = (Vec::new(), Vec::new());
        for stored in pods.items {
            let Object::Pod(pod) = &stored.object else {
                continue;
            };
            match pod.spec.node_name.as_deref() {
                Some(node) if down.contains(node) => gone.push(Stored::clone(&stored)),
                Some(node) if returned.contains(node) => back.push(Stored::clone(&stored)),
                _ => {}
            }
        }
        self.mark_pods(gone, false).await;
        self.mark_pods(back, true).await;
    }

    /// A node gone silent cannot vouch for its pods: they stop being Ready (as Kubernetes'
    /// node lifecycle controller does), so Services stop sending them traffic now rather than
    /// when the pods are evicted (`ready` false). When the node is heard from again, the
    /// pods this marked are Ready again (`ready` true); the agent's statuses have the last
    /// word either way.
    async fn mark_pods(&self, pods: Vec<Stored>, ready: bool) {
        let now = Utc::now();
        let marked = futures_util::stream::iter(pods)
            .filter_map(|stored| async move { marked(stored, ready, now) })
            .map(|(pod, node, version)| async move {
                // A conflict means the pod changed meanwhile (deleted, or its agent
                // reported): that write is newer than this one.
                let written = self.store.update(Object::Pod(pod), version).await.is_ok();
                (node, written)
            })
            .buffer_unordered(WRITES_IN_FLIGHT)
            .filter_map(|(node, written)| async move { written.then_some(node) })
            .collect::<Vec<String>>()
            .await;
        let mut per_node = std::collections::BTreeMap::<String, usize>::new();
        for node in marked {
            *per_node.entry(node).or_default() += 1;
        }
        for (node, pods) in per_node {
            tracing::info!(node, pods, ready, "pods of the node marked");
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
}

/// `stored`, a pod, with its Ready condition marked as its node's readiness says (`ready`),
/// with its node and version; `None` when there is nothing to change: a not-ready mark only
/// turns a Ready pod, and a ready mark only undoes this registry's own marking.
fn marked(stored: Stored, ready: bool, now: chrono::DateTime<Utc>) -> Option<(Pod, String, u64)> {
    let Object::Pod(mut pod) = stored.object else {
        return None;
    };
    let node = pod.spec.node_name.clone()?;
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
    changed.then_some((pod, node, stored.resource_version))
}
