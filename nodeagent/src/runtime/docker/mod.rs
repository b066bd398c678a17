//! The Docker runtime: real containers on the node's Docker engine, through bollard.
//!
//! A pod is a sandbox container (busybox `sleep`, the "pause" role) that owns the pod's
//! network and IPC namespaces and its hostname, plus one container per app container joined to
//! them (`network_mode: container:<sandbox>`), so the pod's IP survives app restarts. The
//! sandbox starts on Docker's `none` network and is attached to the pod network through CNI
//! ([`crate::network::cni`]) before it counts as made; removing it detaches it first.
//! Containers are named `keel_<ns>_<pod>_<container>_<uid8>_<attempt>` and labelled (see
//! [`super::labels`]); only containers labelled with this node's name are ever listed, stopped
//! or removed.
//!
//! Besides the lifecycle here: `session` (exec and attach with stdio streamed), `pod_connect`
//! (port-forward's connection inside the pod's network namespace), `exec` (probes), `logs`,
//! `usage`.

mod convert;
mod engine_namespace;
mod events;
mod exec;
pub mod image_import;
mod logs;
pub mod node_lock;
mod pod_connect;
mod pod_network;
mod session;
mod usage;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, MountType};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, KillContainerOptions, ListContainersOptions,
    RemoveContainerOptions, WaitContainerOptions,
};
use futures_util::TryStreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::broadcast;

use crate::network::cni::Cni;

use super::{
    ContainerInfo, ContainerSpec, ExecOutcome, ImageError, LogStream, PodRef, PullPolicy, Runtime,
    RuntimeError, RuntimeEvent, Sandbox, SandboxSpec, labels,
};

/// The sandbox image made from busybox when `--pause-image` is left at its default.
pub const DEFAULT_PAUSE_IMAGE: &str = "keel/pause:1";

/// Engine calls that return at once get this long; stops and pulls manage their own time.
const CALL_TIMEOUT_SECS: u64 = 120;

pub struct DockerRuntime {
    docker: Docker,
    node: String,
    pause_image: String,
    events: broadcast::Sender<RuntimeEvent>,
    cni: Arc<Cni>,
}

impl DockerRuntime {
    /// `node`'s lock on the engine (`DOCKER_HOST` or the local socket): taken by the
    /// agent process before it touches any container, held for its life.
    pub async fn lock_node(node: &str) -> anyhow::Result<node_lock::NodeLock> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| anyhow::anyhow!("cannot reach the Docker engine: {e}"))?
            .with_timeout(Duration::from_secs(CALL_TIMEOUT_SECS));
        let engine = docker
            .info()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot reach the Docker engine: {e}; is dockerd running? \
                     (start it with: sudo dockerd &)"
                )
            })?
            .id
            .unwrap_or_else(|| "default".into());
        node_lock::NodeLock::acquire(&engine, node)
    }

    /// Connects to the engine (`DOCKER_HOST` or the local socket), agrees on an API version,
    /// makes sure the sandbox image exists, starts following the engine's events, removes
    /// sandboxes an earlier agent left half-attached, and releases the network of sandboxes
    /// removed while no agent ran.
    pub async fn connect(node: &str, pause_image: &str, cni: Arc<Cni>) -> anyhow::Result<Self> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| anyhow::anyhow!("cannot reach the Docker engine: {e}"))?
            .with_timeout(Duration::from_secs(CALL_TIMEOUT_SECS));
        let docker = docker.negotiate_version().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the Docker engine: {e}; is dockerd running? \
                 (start it with: sudo dockerd &)"
            )
        })?;
        if docker.inspect_image(pause_image).await.is_err() {
            if pause_image != DEFAULT_PAUSE_IMAGE {
                anyhow::bail!(
                    "the pod sandbox image {pause_image} (--pause-image) is not on this node's \
                     Docker engine"
                );
            }
            tracing::info!(
                image = pause_image,
                "making the pod sandbox image from busybox"
            );
            image_import::import_image(&docker, pause_image, image_import::Rootfs::busybox())
                .await?;
        }
        let (tx, _) = broadcast::channel(4096);
        events::spawn(docker.clone(), node.to_string(), tx.clone());
        let runtime = Self {
            docker,
            node: node.to_string(),
            pause_image: pause_image.to_string(),
            events: tx,
            cni,
        };
        let sandboxes: Vec<ContainerInfo> = runtime
            .list_labelled(None)
            .await
            .map_err(|e| anyhow::anyhow!("cannot list this node's containers: {e}"))?
            .into_iter()
            .filter(ContainerInfo::is_sandbox)
            .collect();
        let mut live = HashSet::new();
        for sandbox in sandboxes {
            if !runtime.remove_if_half_attached(&sandbox).await {
                live.insert(sandbox.id);
            }
        }
        let released = runtime.cni.forget_vanished(&live).await;
        if released > 0 {
            tracing::info!(
                released,
                "released the pod network of sandboxes that are gone"
            );
        }
        Ok(runtime)
    }

    /// The bollard client, for callers that prepare images (tests, `keel up`).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    fn labels(
        &self,
        pod: &PodRef,
        container: Option<&str>,
        attempt: u32,
    ) -> HashMap<String, String> {
        let mut l = HashMap::from([
            (labels::NODE.to_string(), self.node.clone()),
            (labels::POD_UID.to_string(), pod.uid.clone()),
            (labels::POD_NAMESPACE.to_string(), pod.namespace.clone()),
            (labels::POD_NAME.to_string(), pod.name.clone()),
            (labels::POD_HASH.to_string(), pod.hash.clone()),
            (labels::GRACE.to_string(), pod.grace_seconds.to_string()),
            (labels::ATTEMPT.to_string(), attempt.to_string()),
            (
                labels::ROLE.to_string(),
                if container.is_some() {
                    "app"
                } else {
                    "sandbox"
                }
                .to_string(),
            ),
        ]);
        if let Some(c) = container {
            l.insert(labels::CONTAINER.to_string(), c.to_string());
        }
        l
    }

    async fn create_and_start(
        &self,
        name: String,
        body: ContainerCreateBody,
    ) -> Result<String, RuntimeError> {
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        let created = match self
            .docker
            .create_container(Some(options.clone()), body.clone())
            .await
        {
            // A leftover of an earlier try (the agent died between create and start, say):
            // replaced only if it is this node's own.
            Err(DockerError::DockerResponseServerError {
                status_code: 409,
                message,
            }) => {
                if self.inspect(&name).await?.is_none() {
                    return Err(RuntimeError::Failed(format!(
                        "{message} (a container keel did not create has this name)"
                    )));
                }
                self.remove(&name).await?;
                self.docker.create_container(Some(options), body).await
            }
            other => other,
        }
        .map_err(engine_error)?;
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            // Never leave a container that was created but could not start.
            let _ = self.remove(&created.id).await;
            return Err(engine_error(e));
        }
        Ok(created.id)
    }

    /// This node's containers, or one pod's.
    async fn list_labelled(
        &self,
        pod_uid: Option<&str>,
    ) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let mut wanted = vec![format!("{}={}", labels::NODE, self.node)];
        if let Some(uid) = pod_uid {
            wanted.push(format!("{}={uid}", labels::POD_UID));
        }
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_string(), wanted)])),
            ..Default::default()
        };
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(engine_error)?;
        let mut out = Vec::with_capacity(summaries.len());
        for s in summaries {
            let Some(id) = s.id else { continue };
            if let Some(info) = self.inspect(&id).await? {
                out.push(info);
            }
        }
        Ok(out)
    }

    async fn pull(
        &self,
        image: &str,
        auth: Option<&super::RegistryAuth>,
    ) -> Result<(), ImageError> {
        // Without a tag Docker pulls every tag of the repository; Kubernetes means `latest`.
        let last = image.rsplit('/').next().unwrap_or(image);
        let tag = (!last.contains(':') && !image.contains('@')).then(|| "latest".to_string());
        let options = CreateImageOptions {
            from_image: Some(image.to_string()),
            tag,
            ..Default::default()
        };
        let credentials = auth.map(|a| bollard::auth::DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.clone()),
            serveraddress: Some(a.server.clone()),
            ..Default::default()
        });
        self.docker
            .create_image(Some(options), None, credentials)
            .try_collect::<Vec<_>>()
            .await
            .map(|_| ())
            .map_err(|e| match e {
                DockerError::DockerStreamError { error } => ImageError::PullFailed(error),
                DockerError::DockerResponseServerError { message, .. } => {
                    ImageError::PullFailed(message)
                }
                other => ImageError::Runtime(other.to_string()),
            })
    }
}

/// Maps an engine error: connection problems are `Unavailable` (retried), the rest are the
/// engine's message.
fn engine_error(e: DockerError) -> RuntimeError {
    match e {
        DockerError::DockerResponseServerError { message, .. } => RuntimeError::Failed(message),
        DockerError::HyperResponseError { .. }
        | DockerError::IOError { .. }
        | DockerError::RequestTimeoutError
        | DockerError::HyperLegacyError { .. } => RuntimeError::Unavailable(e.to_string()),
        other => RuntimeError::Failed(other.to_string()),
    }
}

fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Docker's container names allow `[a-zA-Z0-9][a-zA-Z0-9_.-]`; pod and container names are
/// DNS labels and subdomains, so they fit as they are.
fn container_name(pod: &PodRef, container: &str, attempt: u32) -> String {
    let uid: String = pod
        .uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    format!(
        "keel_{}_{}_{}_{}_{}",
        pod.namespace, pod.name, container, uid, attempt
    )
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn image_user(&self, image: &str) -> Result<Option<String>, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(info) => Ok(Some(info.config.and_then(|c| c.user).unwrap_or_default())),
            Err(e) => Err(engine_error(e)),
        }
    }

    async fn image_present(&self, image: &str) -> Result<bool, ImageError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(ImageError::Runtime(e.to_string())),
        }
    }

    async fn ensure_image(
        &self,
        image: &str,
        policy: PullPolicy,
        auth: Option<&super::RegistryAuth>,
    ) -> Result<(), ImageError> {
        let present = match self.docker.inspect_image(image).await {
            Ok(_) => true,
            Err(e) if is_not_found(&e) => false,
            Err(e) => return Err(ImageError::Runtime(e.to_string())),
        };
        match policy {
            PullPolicy::Never if present => Ok(()),
            PullPolicy::Never => Err(ImageError::NeverPull(image.to_string())),
            PullPolicy::IfNotPresent if present => Ok(()),
            PullPolicy::IfNotPresent | PullPolicy::Always => self.pull(image, auth).await,
        }
    }

    async fn run_sandbox(&self, spec: &SandboxSpec) -> Result<Sandbox, RuntimeError> {
        let body = ContainerCreateBody {
            image: Some(self.pause_image.clone()),
            // keel's own image is plain busybox; another `--pause-image` (a real pause
            // image, say) runs its own entrypoint.
            entrypoint: (self.pause_image == DEFAULT_PAUSE_IMAGE).then(|| {
                vec![
                    "/bin/busybox".to_string(),
                    "sleep".to_string(),
                    "2147483647".to_string(),
                ]
            }),
            // Docker refuses a hostname of its own in the host's network namespace.
            hostname: (!spec.host_network).then(|| spec.hostname.clone()),
            labels: Some(self.labels(&spec.pod, None, spec.attempt)),
            host_config: Some(HostConfig {
                ipc_mode: Some("shareable".to_string()),
                // Pods get their network from CNI (host ports included, by `portmap`);
                // Docker's own bridge is never used.
                network_mode: Some(if spec.host_network { "host" } else { "none" }.to_string()),
                sysctls: (!spec.sysctls.is_empty())
                    .then(|| spec.sysctls.clone().into_iter().collect()),
                extra_hosts: (!spec.extra_hosts.is_empty()).then(|| spec.extra_hosts.clone()),
                ..pod_network::resolver(spec.dns.as_ref())
            }),
            ..Default::default()
        };
        let name = container_name(&spec.pod, "POD", spec.attempt);
        let id = self.create_and_start(name, body).await?;
        self.attach(id, spec).await
    }

    async fn run_container(
        &self,
        sandbox: &Sandbox,
        spec: &ContainerSpec,
    ) -> Result<String, RuntimeError> {
        let mounts = spec
            .mounts
            .iter()
            .map(|m| bollard::models::Mount {
                target: Some(m.container_path.clone()),
                source: Some(m.host_path.clone()),
                typ: Some(MountType::BIND),
                read_only: Some(m.read_only),
                ..Default::default()
            })
            .collect::<Vec<_>>();
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.cmd.clone(),
            working_dir: spec.working_dir.clone(),
            env: Some(spec.env.clone()),
            labels: Some(self.labels(&spec.pod, Some(&spec.name), spec.attempt)),
            user: spec.security.user.clone(),
            host_config: Some(HostConfig {
                privileged: spec.security.privileged.then_some(true),
                cap_add: (!spec.security.cap_add.is_empty()).then(|| spec.security.cap_add.clone()),
                cap_drop: (!spec.security.cap_drop.is_empty())
                    .then(|| spec.security.cap_drop.clone()),
                readonly_rootfs: spec.security.read_only_root.then_some(true),
                security_opt: convert::security_options(&spec.security),
                pid_mode: if spec.security.host_pid {
                    Some("host".to_string())
                } else if spec.security.share_process_namespace {
                    Some(format!("container:{}", sandbox.id))
                } else {
                    None
                },
                group_add: (!spec.security.groups.is_empty())
                    .then(|| spec.security.groups.iter().map(i64::to_string).collect()),
                network_mode: Some(format!("container:{}", sandbox.id)),
                ipc_mode: Some(format!("container:{}", sandbox.id)),
                mounts: (!mounts.is_empty()).then_some(mounts),
                memory: spec.memory_limit_bytes,
                // No swap beyond the limit, so a container over it is OOM-killed as in
                // Kubernetes rather than slowed down.
                memory_swap: spec.memory_limit_bytes,
                nano_cpus: spec.nano_cpus,
                cpu_shares: spec.cpu_shares,
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = container_name(&spec.pod, &spec.name, spec.attempt);
        self.create_and_start(name, body).await
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let info = match self.docker.inspect_container(id, None).await {
            Ok(info) => info,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(engine_error(e)),
        };
        if !info.state.as_ref().and_then(|s| s.running).unwrap_or(false) {
            return Ok(());
        }
        // The image's STOPSIGNAL, as `docker stop` and the kubelet use; SIGTERM otherwise.
        let signal = info
            .config
            .and_then(|c| c.stop_signal)
            .unwrap_or_else(|| "SIGTERM".to_string());
        let sent = self
            .docker
            .kill_container(id, Some(KillContainerOptions { signal }))
            .await;
        if let Err(e) = sent {
            if is_not_found(&e) {
                return Ok(());
            }
            tracing::debug!(container = id, error = %e, "stop signal not delivered");
        }
        let wait = self
            .docker
            .wait_container(
                id,
                Some(WaitContainerOptions {
                    condition: "not-running".to_string(),
                }),
            )
            .try_collect::<Vec<_>>();
        if tokio::time::timeout(grace, wait).await.is_err() {
            let killed = self
                .docker
                .kill_container(
                    id,
                    Some(KillContainerOptions {
                        signal: "SIGKILL".to_string(),
                    }),
                )
                .await;
            match killed {
                Ok(()) => {}
                // Exited (409) or gone (404) by itself meanwhile.
                Err(DockerError::DockerResponseServerError {
                    status_code: 404 | 409,
                    ..
                }) => {}
                Err(e) => return Err(engine_error(e)),
            }
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.detach(id).await?;
        let options = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // Already being removed by someone else.
            Err(DockerError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(engine_error(e)),
        }
    }

    fn host_binds(&self) -> Result<super::HostBinds, String> {
        engine_namespace::host_binds()
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        match self.docker.inspect_container(id, None).await {
            Ok(info) => Ok(convert::container_info(&info, &self.node).map(|c| self.with_pod_ip(c))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine_error(e)),
        }
    }

    async fn list(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.list_labelled(None).await
    }

    async fn usage(&self, id: &str) -> Option<crate::usage::cgroup::Reading> {
        // The container's cgroup files, read directly; where this agent cannot see them (a
        // node host made with `ip netns exec`, which mounts a sysfs of its own), the
        // engine's one-shot stats.
        let info = self.docker.inspect_container(id, None).await.ok()?;
        let pid = u32::try_from(info.state?.pid?).ok().filter(|p| *p > 0)?;
        if let Some(reading) = crate::usage::cgroup::read_pid(pid) {
            return Some(reading);
        }
        usage::engine_stats(&self.docker, id).await
    }

    async fn list_pod(&self, uid: &str) -> Result<Vec<ContainerInfo>, RuntimeError> {
        self.list_labelled(Some(uid)).await
    }

    async fn open_session(
        &self,
        id: &str,
        spec: &super::session::SessionSpec,
    ) -> Result<super::session::Session, RuntimeError> {
        session::open(&self.docker, id, spec).await
    }

    async fn connect_in_pod(
        &self,
        sandbox: &ContainerInfo,
        port: u16,
    ) -> Result<tokio::net::TcpStream, RuntimeError> {
        pod_connect::connect(&self.docker, sandbox, port).await
    }

    async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutcome, RuntimeError> {
        exec::run(&self.docker, id, cmd, timeout).await
    }

    fn logs(
        &self,
        id: &str,
        tail: u64,
        follow: bool,
    ) -> BoxStream<'static, Result<(LogStream, bytes::Bytes), RuntimeError>> {
        logs::stream(&self.docker, id, tail, follow)
    }

    fn events(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.events.subscribe()
    }
}
