//! `v1` Pod and the pod spec shared by every workload template.

use crate::string_map::StringMap;

use super::meta::{Condition, ObjectMeta, Time};
use crate::intorstr::IntOrString;
use crate::quantity::Quantity;

model! {
    pub struct Pod {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: PodSpec,
        pub status: Option<PodStatus>,
    }
}

model! {
    /// `spec.template` of a workload.
    pub struct PodTemplateSpec {
        #[serde(default)]
        pub metadata: ObjectMeta,
        /// Boxed: every decoded object is as large as the largest kind, and a template
        /// inline made each workload kind (and so each Pod) about 800 bytes larger.
        #[serde(default)]
        pub spec: Box<PodSpec>,
    }
}

model! {
    pub struct PodSpec {
        /// Run in order, each to completion, before any of `containers` starts; a failed
        /// one runs again as `restartPolicy` says (`Never`: the pod fails).
        pub init_containers: Option<Vec<Container>>,
        #[serde(default)]
        pub containers: Vec<Container>,
        pub volumes: Option<Vec<Volume>>,
        /// Secrets of type `kubernetes.io/dockerconfigjson` with the logins images are pulled
        /// with.
        pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
        /// `Always` (default), `OnFailure` or `Never`.
        #[schemars(extend("enum" = ["Always", "OnFailure", "Never", null]))]
        pub restart_policy: Option<String>,
        pub node_selector: Option<StringMap>,
        /// Set by the scheduler when the pod is bound; may be given to pin a pod to a node.
        pub node_name: Option<String>,
        /// Default 30.
        pub termination_grace_period_seconds: Option<i64>,
        pub tolerations: Option<Vec<Toleration>>,
        /// The pod uses the node's network namespace (its IP is the node's). Refused unless
        /// `keel.yaml`'s `podSecurity` allows `hostNetwork` in the pod's namespace.
        pub host_network: Option<bool>,
        /// The pod's containers see every process of the node. Refused unless `keel.yaml`
        /// allows `hostPID` in the pod's namespace.
        #[serde(rename = "hostPID")]
        pub host_pid: Option<bool>,
        /// The pod's host name (default: its name); with `subdomain` naming a headless
        /// Service, the pod answers in DNS as `HOSTNAME.SUBDOMAIN.NS.svc.CLUSTER-DOMAIN`.
        pub hostname: Option<String>,
        pub subdomain: Option<String>,
        /// Where the pod's DNS queries go: `ClusterFirst` (default: the node's cluster DNS),
        /// `ClusterFirstWithHostNet` (the same for a `hostNetwork` pod), `Default` (the
        /// node's own resolvers) or `None` (only `dnsConfig`).
        #[schemars(extend("enum" = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None", null]))]
        pub dns_policy: Option<String>,
        /// Added to what `dnsPolicy` gives (all of it, with `None`).
        pub dns_config: Option<Box<PodDnsConfig>>,
        /// Users, groups, sysctls and seccomp for every container of the pod (a
        /// container's own `securityContext` wins where both set a field).
        pub security_context: Option<Box<PodSecurityContext>>,
        /// A ServiceAccount of the pod's namespace (`default` when unset). Stored, not
        /// enforced: keel gives pods no API token.
        pub service_account_name: Option<String>,
        /// The older name of `serviceAccountName`.
        pub service_account: Option<String>,
        /// Accepted; keel mounts no token either way.
        pub automount_service_account_token: Option<bool>,
        /// Lines added to the pod's `/etc/hosts`.
        pub host_aliases: Option<Vec<HostAlias>>,
        /// The pod's containers share one process namespace (they see and can signal each
        /// other's processes).
        pub share_process_namespace: Option<bool>,
        /// Whether Services' `NAME_SERVICE_HOST`/`_PORT` variables are set (default true).
        pub enable_service_links: Option<bool>,
        /// Accepted and kept; keel schedules without priorities.
        pub priority_class_name: Option<String>,
        pub affinity: Option<Box<super::scheduling::Affinity>>,
        pub topology_spread_constraints: Option<Vec<super::scheduling::TopologySpreadConstraint>>,
    }
}

model! {
    pub struct HostAlias {
        #[serde(default)]
        pub ip: String,
        pub hostnames: Option<Vec<String>>,
    }
}

model! {
    pub struct LocalObjectReference {
        pub name: Option<String>,
    }
}

model! {
    pub struct PodSecurityContext {
        pub run_as_user: Option<i64>,
        pub run_as_group: Option<i64>,
        /// The containers must not run as root: a `runAsUser` of 0, or an image whose user
        /// is root (or a name keel cannot check), keeps a container from starting.
        pub run_as_non_root: Option<bool>,
        /// Given to every container as a supplementary group, made the group of the pod's
        /// emptyDir folders (set-group-id: what is made there inherits it) and of its
        /// configMap and secret files.
        pub fs_group: Option<i64>,
        /// `Always` or `OnRootMismatch`; accepted. keel never walks a volume a container
        /// can write (an emptyDir starts empty and its folder carries the group), so both
        /// behave as `OnRootMismatch` would.
        #[schemars(extend("enum" = ["Always", "OnRootMismatch", null]))]
        pub fs_group_change_policy: Option<String>,
        pub supplemental_groups: Option<Vec<i64>>,
        /// Namespaced kernel settings. Kubernetes' safe set is always allowed; any other
        /// needs `unsafeSysctls` in `keel.yaml`'s `podSecurity`.
        pub sysctls: Option<Vec<Sysctl>>,
        pub seccomp_profile: Option<SeccompProfile>,
    }
}

model! {
    pub struct Sysctl {
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub value: String,
    }
}

model! {
    /// `RuntimeDefault` (the engine's profile; also what keel uses when none is set) or
    /// `Unconfined` (no filter: needs `seccompUnconfined` in `keel.yaml`'s
    /// `podSecurity`). `Localhost` profiles are not supported on keel nodes.
    pub struct SeccompProfile {
        #[serde(rename = "type", default)]
        #[schemars(extend("enum" = ["RuntimeDefault", "Unconfined", "Localhost"]))]
        pub type_: String,
        pub localhost_profile: Option<String>,
    }
}

model! {
    pub struct PodDnsConfig {
        pub nameservers: Option<Vec<String>>,
        pub searches: Option<Vec<String>>,
        pub options: Option<Vec<PodDnsConfigOption>>,
    }
}

model! {
    pub struct PodDnsConfigOption {
        #[serde(default)]
        pub name: String,
        pub value: Option<String>,
    }
}

model! {
    pub struct Container {
        #[serde(default)]
        pub name: String,
        pub image: Option<String>,
        pub command: Option<Vec<String>>,
        pub args: Option<Vec<String>>,
        pub working_dir: Option<String>,
        pub env: Option<Vec<EnvVar>>,
        pub env_from: Option<Vec<EnvFromSource>>,
        pub ports: Option<Vec<ContainerPort>>,
        pub resources: Option<ResourceRequirements>,
        pub volume_mounts: Option<Vec<VolumeMount>>,
        // Probes, hooks and security settings are boxed: most containers have few of
        // them, and inline they made every container 1,720 bytes (every pod pays that).
        pub liveness_probe: Option<Box<Probe>>,
        pub readiness_probe: Option<Box<Probe>>,
        pub startup_probe: Option<Box<Probe>>,
        /// `Always`, `IfNotPresent` or `Never`; defaults as Kubernetes: `Always` for a
        /// `:latest` or untagged image, else `IfNotPresent`.
        #[schemars(extend("enum" = ["Always", "IfNotPresent", "Never", null]))]
        pub image_pull_policy: Option<String>,
        pub security_context: Option<Box<SecurityContext>>,
        pub lifecycle: Option<Box<Lifecycle>>,
        /// Where the container may write why it ended (default `/dev/termination-log`).
        pub termination_message_path: Option<String>,
        /// `File` (default) or `FallbackToLogsOnError`.
        #[schemars(extend("enum" = ["File", "FallbackToLogsOnError", null]))]
        pub termination_message_policy: Option<String>,
    }
}

model! {
    /// Hooks the agent runs as the kubelet does: `postStart` right after the container
    /// starts (it is not Running until the hook returns; a failed hook kills it), `preStop`
    /// before it is stopped, within the pod's grace period.
    pub struct Lifecycle {
        pub post_start: Option<LifecycleHandler>,
        pub pre_stop: Option<LifecycleHandler>,
    }
}

model! {
    /// Exactly one of `exec`, `httpGet` (to the pod's IP) or `sleep`.
    pub struct LifecycleHandler {
        pub exec: Option<ExecAction>,
        pub http_get: Option<HttpGetAction>,
        pub sleep: Option<SleepAction>,
    }
}

model! {
    pub struct SleepAction {
        #[serde(default)]
        pub seconds: i64,
    }
}

model! {
    /// A container's privileges. `privileged` and `capabilities.add` are refused unless
    /// `keel.yaml`'s `podSecurity` allows them in the pod's namespace.
    pub struct SecurityContext {
        pub privileged: Option<bool>,
        pub capabilities: Option<Capabilities>,
        /// The user id the container's process runs as.
        pub run_as_user: Option<i64>,
        pub run_as_group: Option<i64>,
        /// As the pod's `runAsNonRoot`, for this container.
        pub run_as_non_root: Option<bool>,
        pub seccomp_profile: Option<SeccompProfile>,
        pub read_only_root_filesystem: Option<bool>,
        /// `false` sets no_new_privs: no setuid binary gains privileges.
        pub allow_privilege_escalation: Option<bool>,
    }
}

model! {
    /// Linux capabilities, as `NET_ADMIN` or `CAP_NET_ADMIN`; `ALL` in `drop` drops every one.
    pub struct Capabilities {
        pub add: Option<Vec<String>>,
        pub drop: Option<Vec<String>>,
    }
}

model! {
    pub struct ContainerPort {
        pub name: Option<String>,
        #[serde(default)]
        pub container_port: i64,
        /// `TCP` (default) or `UDP`.
        #[schemars(extend("enum" = ["TCP", "UDP", null]))]
        pub protocol: Option<String>,
        pub host_port: Option<i64>,
        #[serde(rename = "hostIP")]
        pub host_ip: Option<String>,
    }
}

model! {
    pub struct EnvVar {
        #[serde(default)]
        pub name: String,
        pub value: Option<String>,
        pub value_from: Option<EnvVarSource>,
    }
}

model! {
    pub struct EnvVarSource {
        pub config_map_key_ref: Option<KeySelector>,
        pub secret_key_ref: Option<KeySelector>,
    }
}

model! {
    /// `configMapKeyRef` / `secretKeyRef`.
    pub struct KeySelector {
        pub name: Option<String>,
        pub key: Option<String>,
        pub optional: Option<bool>,
    }
}

model! {
    pub struct EnvFromSource {
        pub prefix: Option<String>,
        pub config_map_ref: Option<LocalRef>,
        pub secret_ref: Option<LocalRef>,
    }
}

model! {
    pub struct LocalRef {
        pub name: Option<String>,
        pub optional: Option<bool>,
    }
}

model! {
    pub struct ResourceRequirements {
        /// `cpu` and `memory`.
        pub requests: Option<StringMap<Quantity>>,
        pub limits: Option<StringMap<Quantity>>,
    }
}

model! {
    pub struct VolumeMount {
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub mount_path: String,
        pub read_only: Option<bool>,
        pub sub_path: Option<String>,
    }
}

model! {
    pub struct Probe {
        pub http_get: Option<HttpGetAction>,
        pub tcp_socket: Option<TcpSocketAction>,
        pub exec: Option<ExecAction>,
        pub grpc: Option<GrpcAction>,
        pub initial_delay_seconds: Option<i64>,
        /// Default 10.
        pub period_seconds: Option<i64>,
        /// Default 1.
        pub timeout_seconds: Option<i64>,
        /// Default 1; must be 1 for liveness and startup probes.
        pub success_threshold: Option<i64>,
        /// Default 3.
        pub failure_threshold: Option<i64>,
    }
}

model! {
    pub struct HttpGetAction {
        pub path: Option<String>,
        pub port: Option<IntOrString>,
        pub host: Option<String>,
        /// `HTTP` (default) or `HTTPS`.
        pub scheme: Option<String>,
        pub http_headers: Option<Vec<HttpHeader>>,
    }
}

model! {
    pub struct HttpHeader {
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub value: String,
    }
}

model! {
    pub struct TcpSocketAction {
        pub port: Option<IntOrString>,
        pub host: Option<String>,
    }
}

model! {
    /// A `grpc.health.v1.Health/Check` call to the pod's IP: healthy when it answers
    /// `SERVING`.
    pub struct GrpcAction {
        /// Required: a number (gRPC probes take no port names, as in Kubernetes).
        #[serde(default)]
        pub port: i64,
        /// The service name asked about (`""`, the default, is the server as a whole).
        pub service: Option<String>,
    }
}

model! {
    pub struct ExecAction {
        pub command: Option<Vec<String>>,
    }
}

model! {
    pub struct Volume {
        #[serde(default)]
        pub name: String,
        pub empty_dir: Option<EmptyDirVolumeSource>,
        pub config_map: Option<ConfigMapVolumeSource>,
        pub secret: Option<SecretVolumeSource>,
        pub host_path: Option<HostPathVolumeSource>,
        pub persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
    }
}

model! {
    pub struct PersistentVolumeClaimVolumeSource {
        #[serde(default)]
        pub claim_name: String,
        pub read_only: Option<bool>,
    }
}

model! {
    pub struct EmptyDirVolumeSource {
        /// `""` (node disk) or `Memory` (tmpfs).
        pub medium: Option<String>,
        pub size_limit: Option<Quantity>,
    }
}

model! {
    pub struct ConfigMapVolumeSource {
        pub name: Option<String>,
        pub items: Option<Vec<KeyToPath>>,
        pub default_mode: Option<i64>,
        pub optional: Option<bool>,
    }
}

model! {
    pub struct SecretVolumeSource {
        pub secret_name: Option<String>,
        pub items: Option<Vec<KeyToPath>>,
        pub default_mode: Option<i64>,
        pub optional: Option<bool>,
    }
}

model! {
    pub struct KeyToPath {
        #[serde(default)]
        pub key: String,
        #[serde(default)]
        pub path: String,
        pub mode: Option<i64>,
    }
}

model! {
    pub struct HostPathVolumeSource {
        #[serde(default)]
        pub path: String,
        /// `""`, `Directory`, `DirectoryOrCreate`, `File`, `FileOrCreate`.
        #[serde(rename = "type")]
        pub type_: Option<String>,
    }
}

model! {
    pub struct Toleration {
        pub key: Option<String>,
        /// `Equal` (default) or `Exists`.
        pub operator: Option<String>,
        pub value: Option<String>,
        /// `NoSchedule`, `PreferNoSchedule`, `NoExecute`, or empty for all.
        pub effect: Option<String>,
        pub toleration_seconds: Option<i64>,
    }
}

impl PodSpec {
    /// Every container with the field that lists it: `initContainers` first, in order,
    /// then `containers`.
    pub fn all_containers(&self) -> impl Iterator<Item = (&'static str, usize, &Container)> {
        let init = self.init_containers.iter().flatten().enumerate();
        let apps = self.containers.iter().enumerate();
        init.map(|(i, c)| ("initContainers", i, c))
            .chain(apps.map(|(i, c)| ("containers", i, c)))
    }

    /// `all_containers`, to change them.
    pub fn all_containers_mut(&mut self) -> impl Iterator<Item = &mut Container> {
        self.init_containers
            .iter_mut()
            .flatten()
            .chain(self.containers.iter_mut())
    }
}

impl Pod {
    /// Whether `other` is this pod with only its status (and so its resource version)
    /// changed: a node's report, which neither its agent nor its owner's pod set cares
    /// about beyond the counts.
    pub fn same_but_status(&self, other: &Pod) -> bool {
        self.spec == other.spec && self.metadata.same_but_version(&other.metadata)
    }

    /// The same pod but for its status and the node it is bound to: what a bind and the
    /// agent's reports change, and nothing else.
    pub fn same_but_status_and_node(&self, other: &Pod) -> bool {
        if self.spec.node_name == other.spec.node_name {
            return self.same_but_status(other);
        }
        let mut spec = self.spec.clone();
        spec.node_name.clone_from(&other.spec.node_name);
        // A bind changes the spec, so the store bumps the generation with it.
        let mut meta = self.metadata.clone();
        meta.generation = other.metadata.generation;
        meta.resource_version
            .clone_from(&other.metadata.resource_version);
        spec == other.spec && meta == other.metadata
    }

    /// The phase its node reported, if any.
    pub fn phase(&self) -> Option<PodPhase> {
        self.status.as_ref().and_then(|s| s.phase)
    }

    /// Finished (Succeeded or Failed): it never runs again.
    pub fn is_finished(&self) -> bool {
        self.phase().is_some_and(PodPhase::is_finished)
    }

    /// Its `Ready` condition, when that is True.
    pub fn ready_condition(&self) -> Option<&Condition> {
        crate::Resource::condition(self, "Ready").filter(|c| c.status == "True")
    }

    pub fn is_ready(&self) -> bool {
        self.ready_condition().is_some()
    }
}

/// Where a pod is in its life, as Kubernetes defines it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub enum PodPhase {
    /// Accepted, but not every container runs yet (being scheduled, pulled or started).
    Pending,
    /// Bound to a node, every container made, at least one running.
    Running,
    /// Every container ended with success and will not restart.
    Succeeded,
    /// Every container ended, at least one in failure, and none will restart.
    Failed,
    /// The pod's node cannot say.
    Unknown,
}

impl PodPhase {
    pub const fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
            PodPhase::Unknown => "Unknown",
        }
    }

    /// Succeeded or Failed: the pod will never run again.
    pub const fn is_finished(self) -> bool {
        matches!(self, PodPhase::Succeeded | PodPhase::Failed)
    }
}

impl std::fmt::Display for PodPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

model! {
    pub struct PodStatus {
        pub phase: Option<PodPhase>,
        pub conditions: Option<Vec<Condition>>,
        pub message: Option<String>,
        pub reason: Option<String>,
        #[serde(rename = "hostIP")]
        pub host_ip: Option<String>,
        #[serde(rename = "podIP")]
        pub pod_ip: Option<String>,
        pub start_time: Option<Time>,
        pub init_container_statuses: Option<Vec<ContainerStatus>>,
        pub container_statuses: Option<Vec<ContainerStatus>>,
    }
}

model! {
    pub struct ContainerStatus {
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub ready: bool,
        #[serde(default)]
        pub restart_count: i64,
        pub started: Option<bool>,
        pub image: Option<String>,
        #[serde(rename = "containerID")]
        pub container_id: Option<String>,
        pub state: Option<ContainerState>,
        pub last_state: Option<ContainerState>,
    }
}

model! {
    /// Exactly one of the three is set. Waiting and terminated are boxed: every container
    /// status holds two of these (`state` and `lastState`, usually `{}` or running), and
    /// inline they made each 240 bytes larger (2.4 MB per 10,000 pods in the store's cache).
    pub struct ContainerState {
        pub waiting: Option<Box<ContainerStateWaiting>>,
        pub running: Option<ContainerStateRunning>,
        pub terminated: Option<Box<ContainerStateTerminated>>,
    }
}

model! {
    pub struct ContainerStateWaiting {
        pub reason: Option<String>,
        pub message: Option<String>,
    }
}

model! {
    pub struct ContainerStateRunning {
        pub started_at: Option<Time>,
    }
}

model! {
    pub struct ContainerStateTerminated {
        #[serde(default)]
        pub exit_code: i64,
        pub signal: Option<i64>,
        pub reason: Option<String>,
        pub message: Option<String>,
        pub started_at: Option<Time>,
        pub finished_at: Option<Time>,
    }
}
