//! Taking over what an earlier agent process left running for a pod.

use std::time::Duration;

use chrono::Utc;

use super::cleanup::remove_all;
use super::exits::ended_from;
use super::{PodWorker, instant_of};
use crate::pod::state::{ContainerLife, ContainerSlot};
use crate::runtime::{ContainerInfo, ContainerState, Sandbox};

impl PodWorker {
    /// Takes over the containers an earlier agent process made for this pod, leaving running
    /// ones running.
    pub(super) async fn adopt(&mut self, mut found: Vec<ContainerInfo>) {
        if found.iter().any(|c| c.pod_hash != self.desired.hash) {
            // Made from another spec: replace the pod.
            tracing::info!(pod = %self.desired.key(), "pod spec changed while the agent was away; replacing its containers");
            remove_all(&self.ctx, &self.desired.uid, self.desired.grace_seconds()).await;
            return;
        }
        found.sort_by_key(|c| std::cmp::Reverse(c.attempt));
        let mut unwanted = Vec::new();
        // Earlier runs are kept for their logs, but never left running beside the latest.
        let mut stray = Vec::new();
        for c in found.iter().filter(|c| c.is_sandbox()) {
            let running = matches!(c.state, ContainerState::Running { .. });
            if self.sandbox.is_none() && running {
                self.sandbox = Some(Sandbox {
                    id: c.id.clone(),
                    attempt: c.attempt,
                    ip: self.sandbox_ip(c.ip.clone()),
                });
                if let ContainerState::Running { started_at } = c.state {
                    self.start_time = started_at;
                }
            } else {
                unwanted.push(c.id.clone());
            }
            self.sandbox_starts = self.sandbox_starts.max(c.attempt + 1);
        }
        for slot in &mut self.slots {
            let mut runs = found
                .iter()
                .filter(|c| c.container.as_deref() == Some(slot.spec.name.as_str()));
            if let Some(latest) = runs.next() {
                slot.starts = latest.attempt + 1;
                match latest.state {
                    ContainerState::Running { started_at } if self.sandbox.is_some() => {
                        // Probe delays count from the container's own start, as the kubelet's.
                        slot.life = ContainerLife::Running {
                            id: latest.id.clone(),
                            started_at,
                            probes: ContainerSlot::probes_for(&slot.spec, instant_of(started_at)),
                        };
                    }
                    _ => {
                        // Exited, or running without its sandbox: the pass below deals with it
                        // through the restart policy.
                        slot.life = ContainerLife::Running {
                            id: latest.id.clone(),
                            started_at: Utc::now(),
                            probes: Vec::new(),
                        };
                    }
                }
            }
            if let Some(previous) = runs.next() {
                slot.last = Some(ended_from(previous));
                stray.push(previous.id.clone());
            }
            if let Some(older) = runs.next() {
                slot.older = Some(older.id.clone());
                stray.push(older.id.clone());
            }
            unwanted.extend(runs.map(|c| c.id.clone()));
        }
        let known: Vec<&str> = self.slots.iter().map(|s| s.spec.name.as_str()).collect();
        unwanted.extend(
            found
                .iter()
                .filter(|c| c.container.as_deref().is_some_and(|n| !known.contains(&n)))
                .map(|c| c.id.clone()),
        );
        let grace = Duration::from_secs(self.desired.grace_seconds() as u64);
        for id in stray {
            let _ = self.ctx.runtime.stop(&id, grace).await;
        }
        for id in unwanted {
            let _ = self.ctx.runtime.remove(&id).await;
        }
        tracing::info!(pod = %self.desired.key(), "adopted the pod's running containers");
    }
}
