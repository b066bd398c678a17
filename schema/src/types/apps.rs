//! `apps/v1`: Deployment, ReplicaSet, DaemonSet.

use super::meta::{Condition, ObjectMeta};
use super::pod::PodTemplateSpec;
use crate::intorstr::IntOrString;
use crate::selector::LabelSelector;

model! {
    pub struct Deployment {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: DeploymentSpec,
        pub status: Option<DeploymentStatus>,
    }
}

model! {
    pub struct DeploymentSpec {
        /// Default 1.
        pub replicas: Option<i64>,
        pub selector: Option<LabelSelector>,
        pub template: Option<PodTemplateSpec>,
        pub strategy: Option<DeploymentStrategy>,
        pub min_ready_seconds: Option<i64>,
        /// Default 10.
        pub revision_history_limit: Option<i64>,
        /// Default 600.
        pub progress_deadline_seconds: Option<i64>,
        pub paused: Option<bool>,
    }
}

model! {
    pub struct DeploymentStrategy {
        /// `RollingUpdate` (default) or `Recreate`.
        #[serde(rename = "type")]
        #[schemars(extend("enum" = ["RollingUpdate", "Recreate", null]))]
        pub type_: Option<String>,
        pub rolling_update: Option<RollingUpdate>,
    }
}

model! {
    /// `maxSurge` / `maxUnavailable`: a count or a percentage, default 25% each.
    pub struct RollingUpdate {
        pub max_surge: Option<IntOrString>,
        pub max_unavailable: Option<IntOrString>,
    }
}

model! {
    pub struct DeploymentStatus {
        pub observed_generation: Option<i64>,
        pub replicas: Option<i64>,
        pub updated_replicas: Option<i64>,
        pub ready_replicas: Option<i64>,
        pub available_replicas: Option<i64>,
        pub unavailable_replicas: Option<i64>,
        pub conditions: Option<Vec<Condition>>,
    }
}

model! {
    pub struct ReplicaSet {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: ReplicaSetSpec,
        pub status: Option<ReplicaSetStatus>,
    }
}

model! {
    pub struct ReplicaSetSpec {
        /// Default 1.
        pub replicas: Option<i64>,
        pub selector: Option<LabelSelector>,
        pub template: Option<PodTemplateSpec>,
        pub min_ready_seconds: Option<i64>,
    }
}

model! {
    pub struct ReplicaSetStatus {
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
    pub struct DaemonSet {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: DaemonSetSpec,
        pub status: Option<DaemonSetStatus>,
    }
}

model! {
    pub struct DaemonSetSpec {
        pub selector: Option<LabelSelector>,
        pub template: Option<PodTemplateSpec>,
        pub update_strategy: Option<DaemonSetUpdateStrategy>,
        pub min_ready_seconds: Option<i64>,
        /// Default 10.
        pub revision_history_limit: Option<i64>,
    }
}

model! {
    pub struct DaemonSetUpdateStrategy {
        /// `RollingUpdate` (default) or `OnDelete`.
        #[serde(rename = "type")]
        #[schemars(extend("enum" = ["RollingUpdate", "OnDelete", null]))]
        pub type_: Option<String>,
        pub rolling_update: Option<RollingUpdate>,
    }
}

model! {
    pub struct DaemonSetStatus {
        #[serde(default)]
        pub current_number_scheduled: i64,
        #[serde(default)]
        pub desired_number_scheduled: i64,
        #[serde(default)]
        pub number_misscheduled: i64,
        #[serde(default)]
        pub number_ready: i64,
        pub number_available: Option<i64>,
        pub updated_number_scheduled: Option<i64>,
        pub observed_generation: Option<i64>,
        /// Set when reconciling fails for good (`ReconcileError`).
        pub conditions: Option<Vec<Condition>>,
    }
}
