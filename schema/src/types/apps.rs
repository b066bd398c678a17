//! `apps/v1`: Deployment, ReplicaSet, DaemonSet, StatefulSet, ControllerRevision.

use super::meta::{Condition, ObjectMeta};
use super::pod::PodTemplateSpec;
use super::storage::PersistentVolumeClaimTemplate;
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

model! {
    pub struct StatefulSet {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: StatefulSetSpec,
        /// Boxed, as CronJob's template: inline, it made StatefulSet the largest kind, and every
        /// decoded object (each of 100,000 pods) is as large as the largest kind.
        pub status: Option<Box<StatefulSetStatus>>,
    }
}

model! {
    pub struct StatefulSetSpec {
        /// Default 1.
        pub replicas: Option<i64>,
        pub selector: Option<LabelSelector>,
        pub template: Option<PodTemplateSpec>,
        /// The headless Service that gives each pod its DNS name
        /// (`NAME-0.SERVICE.NAMESPACE.svc.cluster.local`).
        pub service_name: Option<String>,
        /// `OrderedReady` (default: one pod at a time, in order) or `Parallel`.
        #[schemars(extend("enum" = ["OrderedReady", "Parallel", null]))]
        pub pod_management_policy: Option<String>,
        pub update_strategy: Option<StatefulSetUpdateStrategy>,
        pub min_ready_seconds: Option<i64>,
        /// Default 10.
        pub revision_history_limit: Option<i64>,
        pub volume_claim_templates: Option<Vec<PersistentVolumeClaimTemplate>>,
        pub persistent_volume_claim_retention_policy: Option<ClaimRetentionPolicy>,
        pub ordinals: Option<StatefulSetOrdinals>,
    }
}

model! {
    pub struct StatefulSetUpdateStrategy {
        /// `RollingUpdate` (default) or `OnDelete`.
        #[serde(rename = "type")]
        #[schemars(extend("enum" = ["RollingUpdate", "OnDelete", null]))]
        pub type_: Option<String>,
        pub rolling_update: Option<StatefulSetRollingUpdate>,
    }
}

model! {
    pub struct StatefulSetRollingUpdate {
        /// Pods with a lower ordinal keep the current revision (a canary). Default 0.
        pub partition: Option<i64>,
        /// Alpha in Kubernetes (off by default); keel updates one pod at a time.
        pub max_unavailable: Option<IntOrString>,
    }
}

model! {
    pub struct StatefulSetOrdinals {
        /// The first pod's number. Default 0.
        pub start: Option<i64>,
    }
}

model! {
    pub struct ClaimRetentionPolicy {
        /// `Retain` (default) or `Delete`.
        #[schemars(extend("enum" = ["Retain", "Delete", null]))]
        pub when_deleted: Option<String>,
        #[schemars(extend("enum" = ["Retain", "Delete", null]))]
        pub when_scaled: Option<String>,
    }
}

model! {
    pub struct StatefulSetStatus {
        pub observed_generation: Option<i64>,
        #[serde(default)]
        pub replicas: i64,
        pub ready_replicas: Option<i64>,
        pub current_replicas: Option<i64>,
        pub updated_replicas: Option<i64>,
        pub available_replicas: Option<i64>,
        /// The ControllerRevision the pods below the update came from.
        pub current_revision: Option<String>,
        /// The ControllerRevision of the template now declared.
        pub update_revision: Option<String>,
        pub collision_count: Option<i64>,
        /// Set when reconciling fails for good (`ReconcileError`).
        pub conditions: Option<Vec<Condition>>,
    }
}

model! {
    /// A StatefulSet's template as it was at one revision, kept so that pods the update has
    /// not reached (below its partition) are made again as they were.
    pub struct ControllerRevision {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        pub data: Option<ControllerRevisionData>,
        #[serde(default)]
        pub revision: i64,
    }
}

model! {
    /// `data`: as Kubernetes' StatefulSet controller writes it, `{spec: {template: …}}`.
    pub struct ControllerRevisionData {
        #[serde(default)]
        pub spec: ControllerRevisionSpec,
    }
}

model! {
    pub struct ControllerRevisionSpec {
        pub template: Option<PodTemplateSpec>,
    }
}
