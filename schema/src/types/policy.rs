//! Policy kinds keel stores, validates and serves but does not enforce (plans and status say
//! so): `networking.k8s.io/v1` NetworkPolicy and `policy/v1` PodDisruptionBudget.

use super::meta::{Condition, ObjectMeta};
use crate::intorstr::IntOrString;
use crate::selector::LabelSelector;

model! {
    pub struct NetworkPolicy {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: NetworkPolicySpec,
    }
}

model! {
    pub struct NetworkPolicySpec {
        /// The pods it is about (`{}`: every pod of the namespace).
        pub pod_selector: Option<LabelSelector>,
        /// `Ingress`, `Egress`.
        pub policy_types: Option<Vec<String>>,
        pub ingress: Option<Vec<NetworkPolicyIngressRule>>,
        pub egress: Option<Vec<NetworkPolicyEgressRule>>,
    }
}

model! {
    pub struct NetworkPolicyIngressRule {
        pub from: Option<Vec<NetworkPolicyPeer>>,
        pub ports: Option<Vec<NetworkPolicyPort>>,
    }
}

model! {
    pub struct NetworkPolicyEgressRule {
        pub to: Option<Vec<NetworkPolicyPeer>>,
        pub ports: Option<Vec<NetworkPolicyPort>>,
    }
}

model! {
    pub struct NetworkPolicyPeer {
        pub pod_selector: Option<LabelSelector>,
        pub namespace_selector: Option<LabelSelector>,
        pub ip_block: Option<IpBlock>,
    }
}

model! {
    pub struct IpBlock {
        #[serde(default)]
        pub cidr: String,
        pub except: Option<Vec<String>>,
    }
}

model! {
    pub struct NetworkPolicyPort {
        /// `TCP` (default), `UDP` or `SCTP`.
        #[schemars(extend("enum" = ["TCP", "UDP", "SCTP", null]))]
        pub protocol: Option<String>,
        pub port: Option<IntOrString>,
        pub end_port: Option<i64>,
    }
}

model! {
    pub struct PodDisruptionBudget {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: PodDisruptionBudgetSpec,
        pub status: Option<PodDisruptionBudgetStatus>,
    }
}

model! {
    pub struct PodDisruptionBudgetSpec {
        pub min_available: Option<IntOrString>,
        pub max_unavailable: Option<IntOrString>,
        pub selector: Option<LabelSelector>,
        /// `IfHealthyBudget` (default) or `AlwaysAllow`.
        #[schemars(extend("enum" = ["IfHealthyBudget", "AlwaysAllow", null]))]
        pub unhealthy_pod_eviction_policy: Option<String>,
    }
}

model! {
    pub struct PodDisruptionBudgetStatus {
        pub observed_generation: Option<i64>,
        pub current_healthy: Option<i64>,
        pub desired_healthy: Option<i64>,
        pub disruptions_allowed: Option<i64>,
        pub expected_pods: Option<i64>,
        pub conditions: Option<Vec<Condition>>,
    }
}

model! {
    /// `v1` ResourceQuota: enforced by keel when a revision is applied (the revision's
    /// declared workloads, at their replica counts, must fit).
    pub struct ResourceQuota {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: ResourceQuotaSpec,
        pub status: Option<ResourceQuotaStatus>,
    }
}

model! {
    pub struct ResourceQuotaSpec {
        /// `pods`, `requests.cpu`, `limits.memory`, `services`, `count/deployments.apps`, …
        pub hard: Option<std::collections::BTreeMap<String, crate::quantity::Quantity>>,
        /// Not supported by keel (refused where written).
        pub scopes: Option<Vec<String>>,
        pub scope_selector: Option<serde_json::Value>,
    }
}

model! {
    pub struct ResourceQuotaStatus {
        pub hard: Option<std::collections::BTreeMap<String, crate::quantity::Quantity>>,
        pub used: Option<std::collections::BTreeMap<String, crate::quantity::Quantity>>,
    }
}

model! {
    /// `v1` LimitRange: defaults and bounds for the containers (and claims) of a namespace.
    pub struct LimitRange {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: LimitRangeSpec,
    }
}

model! {
    pub struct LimitRangeSpec {
        #[serde(default)]
        pub limits: Vec<LimitRangeItem>,
    }
}

model! {
    pub struct LimitRangeItem {
        /// `Container`, `Pod` or `PersistentVolumeClaim`.
        #[serde(rename = "type")]
        #[serde(default)]
        #[schemars(extend("enum" = ["Container", "Pod", "PersistentVolumeClaim"]))]
        pub type_: String,
        pub max: Option<std::collections::BTreeMap<String, crate::quantity::Quantity>>,
        pub min: Option<std::collections::BTreeMap<String, crate::quantity::Quantity>>,
        /// Containers: the limit of a container that sets none.
        pub default: Option<std::collections::BTreeMap<String, crate::quantity::Quantity>>,
        /// Containers: the request of a container that sets none.
        pub default_request: Option<std::collections::BTreeMap<String, crate::quantity::Quantity>>,
        pub max_limit_request_ratio:
            Option<std::collections::BTreeMap<String, crate::quantity::Quantity>>,
    }
}
