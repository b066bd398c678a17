//! What agents report about their pods: statuses and events, taken only for pods bound to
//! the reporting node, with the uid it names.

use keel_agent_protocol::PodStatusUpdate;
use keel_schema::types::core::EventType;
use keel_schema::types::pod::{Pod, PodStatus};
use keel_schema::{Kind, Object};
use keel_store::{ObjectKey, StoreError};

use super::{CONFLICT_RETRIES, NodeRegistry};

/// The largest pod status accepted from an agent.
const MAX_STATUS_BYTES: usize = 256 * 1024;

impl NodeRegistry {
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

    /// Why a pod's reported address cannot be its own: a pod on the pod network has an
    /// address in its node's range, or other nodes would route its traffic elsewhere. A
    /// `hostNetwork` pod has the node's address.
    fn foreign_address(&self, node: &str, pod: &Pod, status: &PodStatus) -> Option<String> {
        let ip = status.pod_ip.as_deref().filter(|ip| !ip.is_empty())?;
        if pod.spec.host_network == Some(true) {
            return None;
        }
        let range = self.pod_cidr(node)?;
        match ip.parse::<std::net::Ipv4Addr>() {
            Ok(addr) if range.contains(&addr) => None,
            _ => Some(format!(
                "pod IP {ip} is outside node {node}'s pod range {range}"
            )),
        }
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
            if let Some(why) = self.foreign_address(node, &pod, &status) {
                tracing::warn!(node, pod = %key, "{why}; the status is refused");
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
