//! The container runtime: what the pod workers ask of a node's engine.
//!
//! The trait is container-level, like Kubernetes' CRI: sandboxes and containers are created,
//! started, stopped, inspected and listed; policy (restarts, backoff, probes' meaning, phases)
//! lives in [`crate::pod`] and is the same for every runtime. Two implementations:
//! [`docker::DockerRuntime`] (real containers through bollard) and [`hollow::HollowRuntime`]
//! (simulated in memory, for scale tests). Nothing outside this module knows which one runs.

pub mod docker;
pub mod hollow;
pub mod session;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use tokio::sync::broadcast;

/// Labels on every container the agent creates. Adoption after a restart finds containers by
/// them, and containers without `keel.dev/node: <this node>` are never touched.
pub mod labels {
    pub const NODE: &str = "keel.dev/node";
    pub const POD_UID: &str = "keel.dev/pod-uid";
    pub const POD_NAMESPACE: &str = "keel.dev/pod-namespace";
    pub const POD_NAME: &str = "keel.dev/pod-name";
    /// The container's name in the pod spec; absent on sandboxes.
    pub const CONTAINER: &str = "keel.dev/container";
    /// `sandbox` or `app`.
    pub const ROLE: &str = "keel.dev/role";
    /// How many times this container (or sandbox) was started before: its restart count.
    pub const ATTEMPT: &str = "keel.dev/attempt";
    /// Hash of the pod spec the container was made from: a changed spec replaces the pod.
    pub const POD_HASH: &str = "keel.dev/pod-hash";
    /// The pod's termination grace period, so orphans found at start stop as gracefully as
    /// their pod asked.
    pub const GRACE: &str = "keel.dev/grace-seconds";
}

/// Which pod a container belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub hash: String,
    pub grace_seconds: i64,
    /// The pod's annotations (the hollow runtime reads its scripted failures from them).
    pub annotations: BTreeMap<String, String>,
}

/// A port of the pod published on the node (`hostPort`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub container_port: u16,
    pub host_port: u16,
    pub host_ip: Option<String>,
    /// `tcp` or `udp`.
    pub protocol: &'static str,
}

#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub pod: PodRef,
    pub attempt: u32,
    pub hostname: String,
    pub host_ports: Vec<HostPort>,
    /// The pod shares the node's network namespace (`hostNetwork`).
    pub host_network: bool,
    /// Its resolver settings; `None` keeps the node's `resolv.conf`.
    pub dns: Option<crate::dns::resolv::PodDns>,
    /// Namespaced kernel settings (`securityContext.sysctls`), set on the namespaces the
    /// sandbox owns and its containers join.
    pub sysctls: std::collections::BTreeMap<String, String>,
    /// `hostAliases`, as Docker's `HOST:IP` lines for `/etc/hosts` (the pod's containers
    /// share the sandbox's).
    pub extra_hosts: Vec<String>,
}

/// A running sandbox: the container that owns the pod's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub id: String,
    pub attempt: u32,
    pub ip: Option<String>,
}

/// One registry login, for a pull (from the pod's `imagePullSecrets`).
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    pub server: String,
    pub username: String,
    pub password: String,
}

// Passwords stay out of logs.
impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A directory or file of the node mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host_path: String,
    pub container_path: String,
    pub read_only: bool,
}

/// Where a runtime's engine resolves bind-mount sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostBinds {
    /// It binds nothing (the hollow runtime): nothing is pinned.
    Nothing,
    /// In the agent's own mount namespace.
    Here,
    /// In this mount namespace (`/proc/PID/ns/mnt` of the engine).
    In(std::path::PathBuf),
}

#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub pod: PodRef,
    pub name: String,
    pub attempt: u32,
    pub image: String,
    /// Replaces the image's entrypoint (`command` in Kubernetes).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's cmd (`args` in Kubernetes).
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    /// `NAME=value`, in order.
    pub env: Vec<String>,
    pub mounts: Vec<Mount>,
    pub memory_limit_bytes: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub security: ContainerSecurity,
    /// One of the pod's init containers (the hollow runtime completes those at once).
    pub init: bool,
}

/// What a container may do beyond the engine's defaults (`securityContext`, `hostPID`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSecurity {
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `uid` or `uid:gid`.
    pub user: Option<String>,
    pub read_only_root: bool,
    pub no_new_privileges: bool,
    pub host_pid: bool,
    /// `shareProcessNamespace`: the container joins its sandbox's process namespace.
    pub share_process_namespace: bool,
    /// Supplementary groups: `supplementalGroups`, then `fsGroup`.
    pub groups: Vec<i64>,
    /// `seccompProfile: Unconfined`; otherwise the engine's default profile.
    pub seccomp_unconfined: bool,
}

/// What a container is doing, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running {
        started_at: DateTime<Utc>,
    },
    Exited {
        exit_code: i64,
        oom_killed: bool,
        started_at: Option<DateTime<Utc>>,
        finished_at: Option<DateTime<Utc>>,
        /// The engine's own error (a failed start, say).
        error: Option<String>,
    },
}

/// A container (or sandbox) this agent created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub pod_uid: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub pod_hash: String,
    pub grace_seconds: i64,
    /// `None` for a sandbox.
    pub container: Option<String>,
    pub attempt: u32,
    pub image: String,
    pub state: ContainerState,
    /// The sandbox's IP (sandboxes only).
    pub ip: Option<String>,
}

impl ContainerInfo {
    pub fn is_sandbox(&self) -> bool {
        self.container.is_none()
    }
}

/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// Why an image is not there; the message is the engine's own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("{0}")]
    PullFailed(String),
    #[error("container image \"{0}\" is not present with pull policy of Never")]
    NeverPull(String),
    #[error("{0}")]
    Runtime(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The engine cannot be reached; callers retry.
    #[error("container engine unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
}

/// The outcome of a command run in a container (exec probes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    pub exit_code: i64,
    pub output: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// Something changed for a pod's containers; its worker should look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEvent {
    Pod(String),
    /// The engine's event stream was interrupted: any change may have been missed.
    Resync,
}

#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// `docker` or `hollow`, as registered with the control plane.
    fn name(&self) -> &'static str;

    /// Makes `image` present as `policy` says.
    async fn ensure_image(
        &self,
        image: &str,
        policy: PullPolicy,
        auth: Option<&RegistryAuth>,
    ) -> Result<(), ImageError>;

    /// Whether the image is on the node now (to say "Pulling" before a pull).
    async fn image_present(&self, image: &str) -> Result<bool, ImageError>;

    /// Creates and starts a pod's sandbox.
    async fn run_sandbox(&self, spec: &SandboxSpec) -> Result<Sandbox, RuntimeError>;

    /// Creates and starts an app container in `sandbox`'s namespaces; returns its id. A
    /// container that was created but failed to start is removed again.
    async fn run_container(
        &self,
        sandbox: &Sandbox,
        spec: &ContainerSpec,
    ) -> Result<String, RuntimeError>;

    /// Sends the container's stop signal, waits up to `grace`, then kills it.
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError>;

    /// Removes a container, killing it if it runs; a container already gone is fine.
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;

    /// `None` when the container no longer exists.
    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>, RuntimeError>;

    /// Every container (and sandbox) this node's agent created, running or not.
    async fn list(&self) -> Result<Vec<ContainerInfo>, RuntimeError>;

    /// The containers (and sandboxes) of one pod.
    async fn list_pod(&self, uid: &str) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let mut all = self.list().await?;
        all.retain(|c| c.pod_uid == uid);
        Ok(all)
    }

    /// Runs `cmd` in the container, giving up after `timeout`.
    async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Result<ExecOutcome, RuntimeError>;

    /// Runs a command in running container `id` (or attaches to its own process) with its
    /// stdio streamed (`kubectl exec`, `attach`).
    async fn open_session(
        &self,
        _id: &str,
        _spec: &session::SessionSpec,
    ) -> Result<session::Session, RuntimeError> {
        Err(session::no_processes("exec"))
    }

    /// A TCP connection to `port` on the loopback of the pod whose sandbox is `sandbox`,
    /// made inside the pod's network namespace (`kubectl port-forward`).
    async fn connect_in_pod(
        &self,
        _sandbox: &ContainerInfo,
        _port: u16,
    ) -> Result<tokio::net::TcpStream, RuntimeError> {
        Err(session::no_processes("port-forward"))
    }

    /// A running container's CPU time and memory working set now (`None`: not running, or
    /// a runtime without processes, such as the hollow one).
    async fn usage(&self, _id: &str) -> Option<crate::usage::cgroup::Reading> {
        None
    }

    /// Whether probes should really be sent. The hollow runtime has no network to probe and
    /// answers every probe with success.
    fn probes_are_real(&self) -> bool {
        true
    }

    /// The user an image runs as when none is given (`""` for root by default); `None`
    /// when the runtime cannot tell (the hollow runtime), and `runAsNonRoot` is not checked.
    async fn image_user(&self, _image: &str) -> Result<Option<String>, RuntimeError> {
        Ok(None)
    }

    /// Where the engine resolves the host paths containers are given, so pinned mount
    /// sources are mounted where it sees them.
    fn host_binds(&self) -> Result<HostBinds, String> {
        Ok(HostBinds::Here)
    }

    /// The container's output; `tail` 0 means all of it.
    fn logs(
        &self,
        id: &str,
        tail: u64,
        follow: bool,
    ) -> BoxStream<'static, Result<(LogStream, bytes::Bytes), RuntimeError>>;

    /// Changes to this node's containers, as the engine sees them.
    fn events(&self) -> broadcast::Receiver<RuntimeEvent>;
}
