//! The pod sandbox: the container holding the pod's network (and its host ports), made
//! again when it is gone, after stopping app containers that lived in the lost one.

use std::time::Duration;

use keel_schema::types::core::EventType;
use keel_schema::types::pod::Pod;
use tokio::time::Instant;

use super::PodWorker;
use super::exits::{ended_from, vanished};
use crate::pod::state::ContainerLife;
use crate::runtime::{ContainerState, HostPort, SandboxSpec};

/// The host ports a pod's containers ask for.
fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let mut out = Vec::new();
    for c in &pod.spec.containers {
        for p in c.ports.iter().flatten() {
            let Some(hp) = p
                .host_port
                .and_then(|h| u16::try_from(h).ok())
                .filter(|h| *h > 0)
            else {
                continue;
            };
            out.push(HostPort {
                container_port: u16::try_from(p.container_port).unwrap_or(hp),
                host_port: hp,
                host_ip: p.host_ip.clone().filter(|h| !h.is_empty()),
                protocol: if p.protocol.as_deref() == Some("UDP") {
                    "udp"
                } else {
                    "tcp"
                },
            });
        }
    }
    out
}

/// A hostname is a DNS label: at most 63 characters, as Kubernetes truncates it.
fn hostname(pod_name: &str) -> String {
    pod_name
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}

impl PodWorker {
    /// Makes sure a running sandbox exists; false when there is none (yet).
    pub(super) async fn ensure_sandbox(&mut self) -> bool {
        match self.sandbox_running().await {
            Some(running) => return running,
            None if self.volumes.is_none() => return false,
            None => {}
        }
        if self.sandbox_retry.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        if !self.stop_orphaned_apps().await {
            return false;
        }
        if self.terminal() {
            // Every container is done for good (found so after an agent restart, say): a
            // finished pod needs no sandbox.
            return false;
        }
        self.create_sandbox().await
    }

    /// `Some(true)` when the sandbox runs, `Some(false)` when the engine cannot say; `None`
    /// when there is none (any that died is removed).
    async fn sandbox_running(&mut self) -> Option<bool> {
        let sb = self.sandbox.as_ref()?;
        match self.ctx.runtime.inspect(&sb.id).await {
            Ok(Some(info)) if matches!(info.state, ContainerState::Running { .. }) => Some(true),
            Ok(_) => {
                tracing::warn!(pod = %self.desired.key(), "pod sandbox is gone; recreating the pod's containers");
                let id = sb.id.clone();
                let _ = self.ctx.runtime.remove(&id).await;
                self.sandbox = None;
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot inspect the sandbox");
                self.engine_unanswered();
                Some(false)
            }
        }
    }

    /// App containers still running belong to a sandbox that is gone (their network went
    /// with it): stops them; the restart policy brings them back in the new one. False when
    /// the engine could not do it.
    async fn stop_orphaned_apps(&mut self) -> bool {
        let grace = Duration::from_secs(self.desired.grace_seconds() as u64);
        let orphaned: Vec<(usize, String)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match &s.life {
                ContainerLife::Running { id, .. } | ContainerLife::Stopping { id, .. } => {
                    Some((i, id.clone()))
                }
                _ => None,
            })
            .collect();
        let stops = orphaned
            .iter()
            .map(|(_, id)| self.ctx.runtime.stop(id, grace));
        for r in futures_util::future::join_all(stops).await {
            if let Err(e) = r {
                tracing::debug!(error = %e, "cannot stop a container of a lost sandbox");
                self.engine_unanswered();
                return false;
            }
        }
        for (i, id) in orphaned {
            let ended = match self.ctx.runtime.inspect(&id).await {
                Ok(Some(info)) => ended_from(&info),
                Ok(None) => vanished(&id, None),
                Err(_) => {
                    self.engine_unanswered();
                    return false;
                }
            };
            self.on_exit(i, ended).await;
        }
        true
    }

    async fn create_sandbox(&mut self) -> bool {
        let spec = SandboxSpec {
            pod: self.pod_ref.clone(),
            attempt: self.sandbox_starts,
            // As the kubelet: `spec.hostname` when given (StatefulSet pods), else the name.
            hostname: hostname(
                (self.desired.pod.spec.hostname.as_deref())
                    .filter(|h| !h.is_empty())
                    .unwrap_or(&self.desired.name),
            ),
            host_ports: host_ports(&self.desired.pod),
            host_network: self.host_network(),
            dns: crate::dns::resolv::pod_dns(
                &self.desired.pod.spec,
                &self.desired.namespace,
                self.ctx.cluster_dns.as_ref(),
            ),
            sysctls: self
                .desired
                .pod
                .spec
                .security_context
                .iter()
                .flat_map(|sc| sc.sysctls.iter().flatten())
                .map(|s| (s.name.replace('/', "."), s.value.clone()))
                .collect(),
            extra_hosts: self
                .desired
                .pod
                .spec
                .host_aliases
                .iter()
                .flatten()
                .flat_map(|a| {
                    let ip = a.ip.clone();
                    a.hostnames
                        .iter()
                        .flatten()
                        .map(move |h| format!("{h}:{ip}"))
                })
                .collect(),
        };
        match self.ctx.runtime.run_sandbox(&spec).await {
            Ok(mut sb) => {
                sb.ip = self.sandbox_ip(sb.ip);
                self.sandbox_starts += 1;
                self.sandbox_backoff = Default::default();
                self.sandbox_retry = None;
                self.sandbox = Some(sb);
                true
            }
            Err(e) => {
                tracing::warn!(pod = %self.desired.key(), error = %e, "cannot create the pod sandbox");
                // As the kubelet: an event with the cause (a CNI plugin's own message), and
                // the next try after a growing pause.
                self.event(
                    EventType::Warning,
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {e}"),
                );
                let retry = Instant::now() + self.sandbox_backoff.on_failure();
                self.sandbox_retry = Some(retry);
                for slot in &mut self.slots {
                    if let ContainerLife::Waiting { reason, .. } = slot.life {
                        slot.life = ContainerLife::Waiting {
                            reason,
                            message: Some(format!("FailedCreatePodSandBox: {e}")),
                            retry_at: Some(retry),
                        };
                    }
                }
                false
            }
        }
    }
}
