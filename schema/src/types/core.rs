//! `v1` kinds other than Pod: Service, ReplicationController, ConfigMap, Secret, Namespace,
//! and the live-only Node, Endpoints and Event.

use std::collections::BTreeMap;
use std::fmt;

use super::meta::{Condition, ObjectMeta, ObjectReference, Time};
use super::pod::PodTemplateSpec;
use crate::intorstr::IntOrString;
use crate::quantity::Quantity;

model! {
    pub struct Service {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: ServiceSpec,
        pub status: Option<ServiceStatus>,
    }
}

model! {
    pub struct ServiceSpec {
        /// `ClusterIP` (default), `NodePort`, or `LoadBalancer` (a NodePort Service that also
        /// gets an external address from `--loadbalancer-pool`).
        #[serde(rename = "type")]
        #[schemars(extend("enum" = ["ClusterIP", "NodePort", "LoadBalancer", null]))]
        pub type_: Option<String>,
        /// Equality-only, as in Kubernetes; no selector means endpoints are not managed.
        pub selector: Option<crate::selector::Labels>,
        pub ports: Option<Vec<ServicePort>>,
        /// Allocated by the cluster when empty; `None` makes the Service headless.
        #[serde(rename = "clusterIP")]
        pub cluster_ip: Option<String>,
        /// `None` (default) or `ClientIP`.
        #[schemars(extend("enum" = ["None", "ClientIP", null]))]
        pub session_affinity: Option<String>,
        pub session_affinity_config: Option<SessionAffinityConfig>,
        /// `Cluster` (default: any ready endpoint) or `Local` (only this node's, keeping the
        /// client's address); for traffic from outside through a NodePort.
        #[schemars(extend("enum" = ["Cluster", "Local", null]))]
        pub external_traffic_policy: Option<String>,
        /// `LoadBalancer` Services: the address wanted from the pool (assigned when free).
        #[serde(rename = "loadBalancerIP")]
        pub load_balancer_ip: Option<String>,
        /// Pods count as endpoints before they are ready (a StatefulSet's peers finding each
        /// other through its headless Service while they start).
        pub publish_not_ready_addresses: Option<bool>,
    }
}

model! {
    pub struct ServicePort {
        pub name: Option<String>,
        /// `TCP` (default) or `UDP`.
        #[schemars(extend("enum" = ["TCP", "UDP", null]))]
        pub protocol: Option<String>,
        #[serde(default)]
        pub port: i64,
        /// Defaults to `port`; a name refers to a named container port.
        pub target_port: Option<IntOrString>,
        /// For `NodePort` Services: 30000–32767, allocated when absent.
        pub node_port: Option<i64>,
    }
}

model! {
    pub struct SessionAffinityConfig {
        #[serde(rename = "clientIP")]
        pub client_ip: Option<ClientIpConfig>,
    }
}

model! {
    pub struct ClientIpConfig {
        /// Default 10800 (3 hours).
        pub timeout_seconds: Option<i64>,
    }
}

model! {
    pub struct ServiceStatus {
        /// `LoadBalancer` Services: the external addresses assigned.
        pub load_balancer: Option<LoadBalancerStatus>,
        /// `LoadBalancerReady`: whether (and why not) an external address is assigned.
        pub conditions: Option<Vec<Condition>>,
    }
}

model! {
    pub struct LoadBalancerStatus {
        pub ingress: Option<Vec<LoadBalancerIngress>>,
    }
}

model! {
    pub struct LoadBalancerIngress {
        pub ip: Option<String>,
        pub hostname: Option<String>,
    }
}

model! {
    pub struct ReplicationController {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: ReplicationControllerSpec,
        pub status: Option<ReplicationControllerStatus>,
    }
}

model! {
    pub struct ReplicationControllerSpec {
        /// Default 1.
        pub replicas: Option<i64>,
        /// Equality-only; defaults to the template's labels.
        pub selector: Option<crate::selector::Labels>,
        pub template: Option<PodTemplateSpec>,
        pub min_ready_seconds: Option<i64>,
    }
}

model! {
    pub struct ReplicationControllerStatus {
        #[serde(default)]
        pub replicas: i64,
        pub ready_replicas: Option<i64>,
        pub available_replicas: Option<i64>,
        pub fully_labeled_replicas: Option<i64>,
        pub observed_generation: Option<i64>,
        /// Set when reconciling fails for good (`ReconcileError`).
        pub conditions: Option<Vec<Condition>>,
    }
}

model! {
    pub struct ConfigMap {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        pub data: Option<BTreeMap<String, String>>,
        /// Values are base64.
        pub binary_data: Option<BTreeMap<String, String>>,
        pub immutable: Option<bool>,
    }
}

/// Secret values: base64 text as given by the repo. `Debug` shows keys only, so a Secret
/// logged by mistake does not leak its values.
#[derive(Clone, PartialEq, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct SecretData(pub BTreeMap<String, String>);

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

model! {
    pub struct Secret {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        /// Default `Opaque`.
        #[serde(rename = "type")]
        pub type_: Option<String>,
        /// Values are base64.
        pub data: Option<SecretData>,
        /// Plain-text values, merged into `data` (base64-encoded) when loaded.
        pub string_data: Option<SecretData>,
        pub immutable: Option<bool>,
    }
}

model! {
    /// An identity for pods. keel stores it (pods name it in `serviceAccountName`) but does
    /// not enforce it: pods get no API token from it.
    pub struct ServiceAccount {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        pub secrets: Option<Vec<super::pod::LocalObjectReference>>,
        pub image_pull_secrets: Option<Vec<super::pod::LocalObjectReference>>,
        pub automount_service_account_token: Option<bool>,
    }
}

model! {
    pub struct Namespace {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        pub status: Option<NamespaceStatus>,
    }
}

model! {
    pub struct NamespaceStatus {
        /// `Active` or `Terminating`.
        pub phase: Option<String>,
    }
}

model! {
    /// A machine running `keel-agent`. Live-only: created when the agent registers.
    pub struct Node {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: NodeSpec,
        pub status: Option<NodeStatus>,
    }
}

model! {
    pub struct NodeSpec {
        pub unschedulable: Option<bool>,
        pub taints: Option<Vec<Taint>>,
        /// The range this node's pods take their addresses from, given by the control plane
        /// when the node first registers and kept until the Node object is deleted.
        #[serde(rename = "podCIDR")]
        pub pod_cidr: Option<String>,
        /// The same range, as Kubernetes' dual-stack list (one IPv4 range here).
        #[serde(rename = "podCIDRs")]
        pub pod_cidrs: Option<Vec<String>>,
    }
}

model! {
    pub struct Taint {
        #[serde(default)]
        pub key: String,
        pub value: Option<String>,
        /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
        #[serde(default)]
        pub effect: String,
        pub time_added: Option<Time>,
    }
}

model! {
    pub struct NodeStatus {
        pub capacity: Option<BTreeMap<String, Quantity>>,
        pub allocatable: Option<BTreeMap<String, Quantity>>,
        pub conditions: Option<Vec<Condition>>,
        pub addresses: Option<Vec<NodeAddress>>,
        pub node_info: Option<NodeSystemInfo>,
    }
}

impl Service {
    /// The external addresses in `status.loadBalancer.ingress`, as written.
    pub fn load_balancer_ips(&self) -> Vec<&str> {
        self.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref())
            .collect()
    }
}

impl Node {
    /// The node's `Ready` condition, as its agent's heartbeats keep it.
    pub fn ready_condition(&self) -> Option<&Condition> {
        crate::Resource::condition(self, "Ready")
    }

    /// Whether the node's Ready condition is True.
    pub fn is_ready(&self) -> bool {
        self.ready_condition().is_some_and(|c| c.status == "True")
    }

    /// The address other nodes and the control plane reach the node at.
    pub fn internal_ip(&self) -> Option<&str> {
        self.status
            .as_ref()?
            .addresses
            .as_ref()?
            .iter()
            .find(|a| a.type_ == "InternalIP")
            .map(|a| a.address.as_str())
    }

    /// Whether its agent registered or was last written ready at or after `since`.
    pub fn heard_since(&self, since: chrono::DateTime<chrono::Utc>) -> bool {
        self.ready_condition()
            .and_then(|c| c.last_heartbeat_time)
            .is_some_and(|t| t >= since)
    }
}

model! {
    pub struct NodeAddress {
        /// `InternalIP` or `Hostname`.
        #[serde(rename = "type", default)]
        pub type_: String,
        #[serde(default)]
        pub address: String,
    }
}

model! {
    pub struct NodeSystemInfo {
        pub agent_version: Option<String>,
        pub container_runtime_version: Option<String>,
        pub operating_system: Option<String>,
        pub architecture: Option<String>,
    }
}

model! {
    /// The ready and not-ready addresses behind a Service. Live-only: kept by the Endpoints
    /// controller.
    pub struct Endpoints {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        pub subsets: Option<Vec<EndpointSubset>>,
    }
}

model! {
    pub struct EndpointSubset {
        pub addresses: Option<Vec<EndpointAddress>>,
        pub not_ready_addresses: Option<Vec<EndpointAddress>>,
        pub ports: Option<Vec<EndpointPort>>,
    }
}

model! {
    pub struct EndpointAddress {
        #[serde(default)]
        pub ip: String,
        /// The pod's `hostname`, when its `subdomain` is this (headless) Service's name.
        pub hostname: Option<String>,
        pub node_name: Option<String>,
        pub target_ref: Option<ObjectReference>,
    }
}

model! {
    pub struct EndpointPort {
        pub name: Option<String>,
        #[serde(default)]
        pub port: i64,
        pub protocol: Option<String>,
    }
}

model! {
    /// Something that happened to an object. Live-only.
    pub struct Event {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub involved_object: ObjectReference,
        pub reason: Option<String>,
        pub message: Option<String>,
        #[serde(rename = "type")]
        pub type_: Option<EventType>,
        pub count: Option<i64>,
        pub first_timestamp: Option<Time>,
        pub last_timestamp: Option<Time>,
        pub source: Option<EventSource>,
    }
}

/// An Event's type, as Kubernetes has them.
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
pub enum EventType {
    /// Something that went as it should (`Scheduled`, `Started`).
    Normal,
    /// Something that needs attention (`FailedScheduling`, `BackOff`).
    Warning,
}

impl EventType {
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

model! {
    pub struct EventSource {
        pub component: Option<String>,
        pub host: Option<String>,
    }
}
