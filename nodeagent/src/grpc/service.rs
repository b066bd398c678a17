//! What the agent's gRPC calls share: the node's supervisor, runtime and data paths
//! ([`NodeAgentService`]), who may call (only the control plane, under mutual TLS) and a
//! pod's container by name.

use std::sync::Arc;

use tonic::{Request, Status};

use crate::runtime::Runtime;
use crate::supervisor::Supervisor;

pub struct NodeAgentService {
    pub node: String,
    pub supervisor: Supervisor,
    pub runtime: Arc<dyn Runtime>,
    pub proxy: Option<Arc<keel_proxy::ServiceProxy>>,
    /// Holds the LoadBalancer addresses this node answers for.
    pub announcer: Option<crate::network::announce::Announcer>,
    /// The HTTP(S) proxy for Ingresses.
    pub ingress: Option<Arc<keel_proxy::ingress::IngressProxy>>,
    pub dns: Option<Arc<crate::dns::ClusterDns>>,
    /// The nodes of the latest applied set, for the overlay.
    pub peers: Arc<tokio::sync::watch::Sender<Vec<crate::network::overlay::Peer>>>,
    /// The last applied set's nodes (as the control plane sent them) and pods, with its
    /// generation: what a `Sync` carrying a change changes. Held through each `Sync`, so
    /// they apply one at a time.
    pub applied: std::sync::Mutex<super::set_change::AppliedSet>,
    /// The node's and its containers' resource use (`Metrics`).
    pub usage: crate::usage::UsageSampler,
    /// Whether calls must carry the control plane's certificate (false under `--insecure`).
    pub mutual_tls: bool,
}

impl NodeAgentService {
    /// Refuses any caller but the control plane (under mutual TLS).
    pub(super) fn authorize<T>(&self, request: &Request<T>, call: &str) -> Result<(), Status> {
        if !self.mutual_tls {
            return Ok(());
        }
        match keel_tls::Identity::of_peer(request) {
            Some(keel_tls::Identity::ControlPlane) => Ok(()),
            other => {
                let who = other
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "a client without a keel certificate".into());
                tracing::warn!(peer = ?request.remote_addr(), caller = %who, call, "refused a call: only the control plane may call the agent");
                Err(Status::permission_denied(format!(
                    "only the control plane may call {call}, not {who}"
                )))
            }
        }
    }

    /// The uid of pod `namespace/name` on this node and the container `container` names
    /// (its only app container when empty; init containers are named to be chosen).
    pub(super) fn container_of(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
    ) -> Result<(String, String), Status> {
        let pod = format!("{namespace}/{name}");
        let uid = self.supervisor.pod_uid(namespace, name).ok_or_else(|| {
            Status::not_found(format!("pod {pod} does not run on node {}", self.node))
        })?;
        let (names, inits) = self.supervisor.container_names(&uid);
        if container.is_empty() {
            return match names.as_slice() {
                [only] => Ok((uid, only.clone())),
                _ => {
                    let inits = if inits.is_empty() {
                        String::new()
                    } else {
                        format!(" or one of the init containers: [{}]", inits.join(" "))
                    };
                    Err(Status::invalid_argument(format!(
                        "a container name must be specified for pod {pod}, choose one of: [{}]{inits}",
                        names.join(" ")
                    )))
                }
            };
        }
        if names.iter().chain(&inits).any(|n| n == container) {
            Ok((uid, container.to_string()))
        } else {
            Err(Status::not_found(format!(
                "container {container} is not valid for pod {pod}"
            )))
        }
    }
}
