//! What agents report about their pods: statuses and events, taken only for pods bound to
//! the reporting node, with the uid it names.

use keel_agent_protocol::PodStatusUpdate;
use keel_schema::fit::fitted;
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
        let key = ObjectKey::new(Kind::Pod, &event.namespace, &event.name);
        let Ok(Some(stored)) = self.store.get_shared(&key).await else {
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

    /// Why a pod's reported address cannot be its own. Every node's proxy sends a Service's
    /// traffic to its pods' addresses, so a node could otherwise point others at their own
    /// loopback or at a metadata service. As Kubernetes refuses for Endpoints: no loopback,
    /// link-local, multicast, broadcast or unspecified address. A pod on the pod network has
    /// an address in its node's range (or other nodes would route its traffic elsewhere); a
    /// `hostNetwork` pod has the node's own address, whatever that is (on a one-machine
    /// cluster it can be 127.0.0.1).
    fn foreign_address(&self, node: &str, pod: &Pod, status: &PodStatus) -> Option<String> {
        let ip = status.pod_ip.as_deref().filter(|ip| !ip.is_empty())?;
        let Ok(addr) = ip.parse::<std::net::IpAddr>() else {
            return Some(format!("pod IP {:?} is not an IP address", bounded(ip, 64)));
        };
        // ::ffff:127.0.0.1 is 127.0.0.1.
        let addr = addr.to_canonical();
        if pod.spec.host_network == Some(true) {
            return match self.node_address(node) {
                Some(own) if own == addr => None,
                Some(own) => Some(format!(
                    "hostNetwork pod IP {ip} is not node {node}'s address {own}"
                )),
                None => Some(format!(
                    "node {node} registered without an IP address, so its hostNetwork pods have none"
                )),
            };
        }
        if let Some(why) = special_address(addr) {
            return Some(format!("pod IP {ip} is {why}"));
        }
        let range = self.pod_cidr(node)?;
        match addr {
            std::net::IpAddr::V4(v4) if range.contains(&v4) => None,
            _ => Some(format!(
                "pod IP {ip} is outside node {node}'s pod range {range}"
            )),
        }
    }

    /// Writes a pod's status as `node`'s agent reports it. Reports for pods that are gone,
    /// were replaced (another uid) or are bound elsewhere are ignored.
    pub async fn pod_status(&self, node: &str, update: &PodStatusUpdate) {
        if update.deleted {
            return self.pod_stopped(node, update).await;
        }
        if update.status.len() > MAX_STATUS_BYTES {
            tracing::warn!(node, pod = %format!("{}/{}", update.namespace, update.name), bytes = update.status.len(), "pod status too large; ignored");
            return;
        }
        // Kept in the stored pod, so refitted (`keel_schema::fit`).
        let read = || serde_json::from_slice::<PodStatus>(&update.status).map(fitted);
        // Moved into the new version (an Option, so a retry can read it again).
        let mut status: Option<PodStatus> = match read() {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(node, pod = %format!("{}/{}", update.namespace, update.name), error = %e, "unreadable pod status from an agent");
                return;
            }
        };
        let key = ObjectKey::new(Kind::Pod, &update.namespace, &update.name);
        for _ in 0..CONFLICT_RETRIES {
            // Looked at in place: an unchanged status (the common report) copies nothing.
            let Ok(Some(stored)) = self.store.get_shared(&key).await else {
                return;
            };
            let Object::Pod(pod) = &stored.object else {
                return;
            };
            if pod.metadata.uid.as_deref() != Some(update.uid.as_str())
                || pod.spec.node_name.as_deref() != Some(node)
            {
                tracing::debug!(node, pod = %key, "status for a pod not bound here; ignored");
                return;
            }
            let Some(reported) = status.as_ref() else {
                return;
            };
            if pod.status.as_ref() == Some(reported) {
                return;
            }
            if let Some(why) = self.foreign_address(node, pod, reported) {
                tracing::warn!(node, pod = %key, "{why}; the status is refused");
                return;
            }
            // The new version is the stored one with the reported status: its old status is
            // not copied only to be replaced, and the report's is moved in (read again from
            // the report for a retry after a conflict).
            let pod = Pod {
                api_version: pod.api_version.clone(),
                kind: pod.kind.clone(),
                metadata: pod.metadata.clone(),
                spec: pod.spec.clone(),
                status: status.take(),
            };
            match self
                .store
                .update_shared(Object::Pod(pod), stored.resource_version)
                .await
            {
                Ok(_) => return,
                Err(StoreError::Conflict { .. }) => {
                    status = read().ok();
                }
                Err(e) => {
                    tracing::warn!(node, pod = %key, error = %e, "cannot write a pod's status");
                    return;
                }
            }
        }
    }
}

impl NodeRegistry {
    /// `node` has stopped and removed a pod: one being deleted gracefully (it has a
    /// deletionTimestamp, as a StatefulSet's pods) is now removed from the store, so its
    /// name is free for the next one. Other pods' removals are ignored: they were deleted
    /// at once, or the report is for another uid or node.
    async fn pod_stopped(&self, node: &str, update: &PodStatusUpdate) {
        let key = ObjectKey::new(Kind::Pod, &update.namespace, &update.name);
        let Ok(Some(stored)) = self.store.get_shared(&key).await else {
            return;
        };
        let Object::Pod(pod) = &stored.object else {
            return;
        };
        if pod.metadata.uid.as_deref() != Some(update.uid.as_str())
            || pod.spec.node_name.as_deref() != Some(node)
            || pod.metadata.deletion_timestamp.is_none()
        {
            return;
        }
        match self
            .store
            .delete_shared(&key, Some(stored.resource_version))
            .await
        {
            Ok(_) => tracing::debug!(node, pod = %key, "stopped on its node; removed"),
            Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
            Err(e) => tracing::warn!(node, pod = %key, error = %e, "cannot remove a stopped pod"),
        }
    }
}

impl NodeRegistry {
    /// `node` has removed a released local volume's directory: the volume object goes,
    /// when it is one of this node's being deleted.
    pub async fn volume_removed(&self, node: &str, handle: &str) {
        let key = ObjectKey::new(Kind::PersistentVolume, "", handle);
        let Ok(Some(stored)) = self.store.get(&key).await else {
            return;
        };
        let Object::PersistentVolume(pv) = &stored.object else {
            return;
        };
        if pv.node() != Some(node)
            || pv.local_handle() != Some(handle)
            || pv.metadata.deletion_timestamp.is_none()
        {
            tracing::debug!(
                node,
                volume = handle,
                "removal report for a volume not released here; ignored"
            );
            return;
        }
        match self.store.delete(&key, Some(stored.resource_version)).await {
            Ok(_) => tracing::info!(
                node,
                volume = handle,
                "released volume removed from its node"
            ),
            Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
            Err(e) => {
                tracing::warn!(node, volume = handle, error = %e, "cannot delete a removed volume")
            }
        }
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn bounded(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .take(max)
        .collect()
}

/// What makes `addr` an address no Service may send traffic to, if anything.
pub(super) fn special_address(addr: std::net::IpAddr) -> Option<&'static str> {
    use std::net::IpAddr;
    let addr = addr.to_canonical();
    let link_local = match addr {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    let broadcast = matches!(addr, IpAddr::V4(v4) if v4.is_broadcast());
    if addr.is_loopback() {
        Some("a loopback address")
    } else if link_local {
        Some("a link-local address")
    } else if addr.is_multicast() || broadcast {
        Some("a multicast or broadcast address")
    } else if addr.is_unspecified() {
        Some("the unspecified address")
    } else {
        None
    }
}
