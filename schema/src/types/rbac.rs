//! `rbac.authorization.k8s.io/v1`: Role, ClusterRole, RoleBinding, ClusterRoleBinding. keel
//! stores them, validated, so repositories written for Kubernetes apply unchanged; it does
//! not enforce them (its API has its own tokens), and says so in plans and status.

use super::meta::ObjectMeta;
use crate::selector::LabelSelector;

model! {
    pub struct PolicyRule {
        /// Required: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, or `*`.
        #[serde(default)]
        pub verbs: Vec<String>,
        pub api_groups: Option<Vec<String>>,
        pub resources: Option<Vec<String>>,
        pub resource_names: Option<Vec<String>>,
        #[serde(rename = "nonResourceURLs")]
        pub non_resource_urls: Option<Vec<String>>,
    }
}

model! {
    pub struct Role {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        pub rules: Option<Vec<PolicyRule>>,
    }
}

model! {
    pub struct AggregationRule {
        pub cluster_role_selectors: Option<Vec<LabelSelector>>,
    }
}

model! {
    pub struct ClusterRole {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        pub rules: Option<Vec<PolicyRule>>,
        pub aggregation_rule: Option<AggregationRule>,
    }
}

model! {
    /// Who a binding grants to: a `ServiceAccount` (with its namespace), a `User` or a
    /// `Group`.
    pub struct Subject {
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub name: String,
        pub namespace: Option<String>,
        pub api_group: Option<String>,
    }
}

model! {
    /// The role a binding grants: a `Role` (RoleBinding only) or `ClusterRole`.
    pub struct RoleRef {
        #[serde(default)]
        pub api_group: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub name: String,
    }
}

model! {
    pub struct RoleBinding {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        pub subjects: Option<Vec<Subject>>,
        #[serde(default)]
        pub role_ref: RoleRef,
    }
}

model! {
    pub struct ClusterRoleBinding {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        pub subjects: Option<Vec<Subject>>,
        #[serde(default)]
        pub role_ref: RoleRef,
    }
}
