//! The node lifecycle: a node heard from is Ready; one silent for `--node-grace` is written
//! `Unknown`, and its pods stop being Ready (so Services stop sending them traffic before
//! they are evicted); its next heartbeat undoes both.

use std::time::Duration;

use chrono::Utc;
use keel_schema::types::core::EventType;
use keel_schema::{Kind, Object};
use keel_store::{ObjectKey, StoreError};
use tokio::time::Instant;

use super::readiness::set_ready;
use super::{CONFLICT_RETRIES, NodeRegistry};

impl NodeRegistry {
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
}
