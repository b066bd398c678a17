//! A sandbox's network: attached through CNI once the sandbox runs (its address is the
//! attachment's), released before the sandbox is removed, and the pod's resolver settings
//! given to Docker, which shares them with the pod's containers.

use bollard::models::HostConfig;

use super::{DockerRuntime, engine_error, is_not_found};
use crate::dns::resolv::PodDns;
use crate::runtime::{ContainerInfo, RuntimeError, Sandbox, SandboxSpec};

/// The sandbox's `resolv.conf` settings; what a pod does not set stays the node's.
pub(super) fn resolver(dns: Option<&PodDns>) -> HostConfig {
    let set = |v: &Vec<String>| Some(v.clone()).filter(|v| !v.is_empty());
    HostConfig {
        dns: dns.and_then(|d| set(&d.nameservers)),
        dns_search: dns.and_then(|d| set(&d.searches)),
        dns_options: dns.and_then(|d| set(&d.options)),
        ..Default::default()
    }
}

impl DockerRuntime {
    /// The network namespace of a running container (`/proc/PID/ns/net`); empty when it
    /// does not run.
    async fn netns(&self, id: &str) -> Result<String, RuntimeError> {
        match self.docker.inspect_container(id, None).await {
            Ok(info) => Ok(info
                .state
                .and_then(|s| s.pid)
                .filter(|pid| *pid > 0)
                .map(|pid| format!("/proc/{pid}/ns/net"))
                .unwrap_or_default()),
            Err(e) if is_not_found(&e) => Ok(String::new()),
            Err(e) => Err(engine_error(e)),
        }
    }

    /// A sandbox's address: Docker's for host-network sandboxes, the CNI attachment's for
    /// the others.
    pub(super) fn with_pod_ip(&self, mut info: ContainerInfo) -> ContainerInfo {
        if info.is_sandbox() && info.ip.is_none() {
            info.ip = self.cni.ip_of(&info.id).map(|ip| ip.to_string());
        }
        info
    }

    /// Attaches the started sandbox `id` to the pod network (not a host-network one); a
    /// sandbox that cannot be attached is removed, never left to look like a pod.
    pub(super) async fn attach(
        &self,
        id: String,
        spec: &SandboxSpec,
    ) -> Result<Sandbox, RuntimeError> {
        if spec.host_network {
            return Ok(Sandbox {
                id,
                attempt: spec.attempt,
                ip: None,
            });
        }
        let attached = match self.netns(&id).await {
            Ok(netns) if !netns.is_empty() => self
                .cni
                .attach(&id, &netns, &spec.pod, &spec.host_ports)
                .await
                .map_err(RuntimeError::Failed),
            Ok(_) => Err(RuntimeError::Failed(
                "the sandbox stopped before its network was set up".into(),
            )),
            Err(e) => Err(e),
        };
        match attached {
            Ok(ip) => Ok(Sandbox {
                id,
                attempt: spec.attempt,
                ip: Some(ip.to_string()),
            }),
            Err(e) => {
                let _ = crate::runtime::Runtime::remove(self, &id).await;
                Err(e)
            }
        }
    }

    /// Removes `sandbox` when it is on Docker's `none` network without an attachment on
    /// record: the agent that made it stopped between starting it and recording its
    /// address, so it has no address keel knows and never will. The pod gets a new sandbox
    /// (its app containers are restarted in it); the address lease the plugin may have
    /// taken is released with those of other vanished sandboxes. True when it was removed
    /// (or is gone).
    pub(super) async fn remove_if_half_attached(&self, sandbox: &ContainerInfo) -> bool {
        if !sandbox.is_sandbox() || sandbox.ip.is_some() {
            return false;
        }
        let mode = match self.docker.inspect_container(&sandbox.id, None).await {
            Ok(info) => info.host_config.and_then(|h| h.network_mode),
            Err(e) if is_not_found(&e) => return true,
            Err(_) => return false,
        };
        // Host-network sandboxes have no attachment by design.
        if mode.as_deref() != Some("none") {
            return false;
        }
        let pod = format!("{}/{}", sandbox.pod_namespace, sandbox.pod_name);
        match crate::runtime::Runtime::remove(self, &sandbox.id).await {
            Ok(()) => {
                tracing::warn!(pod = %pod, sandbox = %sandbox.id, "removed a pod sandbox whose network was never recorded (an agent stopped while attaching it); the pod gets a new one");
                true
            }
            Err(e) => {
                tracing::warn!(pod = %pod, sandbox = %sandbox.id, error = %e, "cannot remove a half-attached pod sandbox");
                false
            }
        }
    }

    /// Releases the pod network of `id` if it is attached. A failure is kept on record:
    /// the next agent start releases it once the sandbox is gone.
    pub(super) async fn detach(&self, id: &str) -> Result<(), RuntimeError> {
        if self.cni.ip_of(id).is_some() {
            let netns = self.netns(id).await?;
            if let Err(e) = self.cni.detach(id, &netns).await {
                tracing::warn!(sandbox = %id, error = %e, "cannot release the pod's network now; retried at the next agent start");
            }
        }
        Ok(())
    }
}
