//! `autoscaling/v2` HorizontalPodAutoscaler: keel's autoscaler sets a workload's replicas
//! from its pods' CPU and memory use (resource metrics; custom and external metrics need a
//! metrics adapter keel does not have, and are refused where written).

use super::meta::{Condition, ObjectMeta, Time};
use crate::quantity::Quantity;

model! {
    pub struct HorizontalPodAutoscaler {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: HorizontalPodAutoscalerSpec,
        pub status: Option<HorizontalPodAutoscalerStatus>,
    }
}

model! {
    pub struct HorizontalPodAutoscalerSpec {
        /// The workload it scales: a Deployment, StatefulSet, ReplicaSet or
        /// ReplicationController of its namespace.
        #[serde(default)]
        pub scale_target_ref: CrossVersionObjectReference,
        /// At least 1 (default 1).
        pub min_replicas: Option<i32>,
        #[serde(default)]
        pub max_replicas: i32,
        /// Absent or empty: 80% average CPU utilization.
        pub metrics: Option<Vec<MetricSpec>>,
        pub behavior: Option<HorizontalPodAutoscalerBehavior>,
    }
}

model! {
    pub struct CrossVersionObjectReference {
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub name: String,
        pub api_version: Option<String>,
    }
}

model! {
    pub struct MetricSpec {
        /// `Resource` or `ContainerResource` (keel); `Pods`, `Object` and `External` need
        /// a custom metrics API.
        #[serde(rename = "type", default)]
        #[schemars(extend("enum" = ["Resource", "ContainerResource", "Pods", "Object", "External"]))]
        pub type_: String,
        pub resource: Option<ResourceMetricSource>,
        pub container_resource: Option<ContainerResourceMetricSource>,
        pub pods: Option<serde_json::Value>,
        pub object: Option<serde_json::Value>,
        pub external: Option<serde_json::Value>,
    }
}

model! {
    pub struct ResourceMetricSource {
        /// `cpu` or `memory`.
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub target: MetricTarget,
    }
}

model! {
    pub struct ContainerResourceMetricSource {
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub container: String,
        #[serde(default)]
        pub target: MetricTarget,
    }
}

model! {
    pub struct MetricTarget {
        /// `Utilization` (percent of the pods' requests) or `AverageValue` (per pod).
        #[serde(rename = "type", default)]
        #[schemars(extend("enum" = ["Utilization", "AverageValue", "Value"]))]
        pub type_: String,
        pub average_utilization: Option<i32>,
        pub average_value: Option<Quantity>,
        pub value: Option<Quantity>,
    }
}

model! {
    pub struct HorizontalPodAutoscalerBehavior {
        pub scale_up: Option<HpaScalingRules>,
        pub scale_down: Option<HpaScalingRules>,
    }
}

model! {
    /// Named `HPAScalingRules` in Kubernetes' schema (and so in `kubectl explain`).
    #[schemars(rename = "HPAScalingRules")]
    pub struct HpaScalingRules {
        /// 0–3600; defaults: 0 up, 300 down.
        pub stabilization_window_seconds: Option<i32>,
        /// `Max` (default), `Min` or `Disabled`.
        #[schemars(extend("enum" = ["Max", "Min", "Disabled", null]))]
        pub select_policy: Option<String>,
        pub policies: Option<Vec<HpaScalingPolicy>>,
    }
}

model! {
    /// Named `HPAScalingPolicy` in Kubernetes' schema (and so in `kubectl explain`).
    #[schemars(rename = "HPAScalingPolicy")]
    pub struct HpaScalingPolicy {
        /// `Pods` or `Percent`.
        #[serde(rename = "type", default)]
        #[schemars(extend("enum" = ["Pods", "Percent"]))]
        pub type_: String,
        #[serde(default)]
        pub value: i32,
        /// 1–1800.
        #[serde(default)]
        pub period_seconds: i32,
    }
}

model! {
    pub struct HorizontalPodAutoscalerStatus {
        pub observed_generation: Option<i64>,
        pub last_scale_time: Option<Time>,
        pub current_replicas: Option<i32>,
        #[serde(default)]
        pub desired_replicas: i32,
        pub current_metrics: Option<Vec<MetricStatus>>,
        pub conditions: Option<Vec<Condition>>,
    }
}

model! {
    pub struct MetricStatus {
        #[serde(rename = "type", default)]
        pub type_: String,
        pub resource: Option<ResourceMetricStatus>,
        pub container_resource: Option<ContainerResourceMetricStatus>,
    }
}

model! {
    pub struct ResourceMetricStatus {
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub current: MetricValueStatus,
    }
}

model! {
    pub struct ContainerResourceMetricStatus {
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub container: String,
        #[serde(default)]
        pub current: MetricValueStatus,
    }
}

model! {
    pub struct MetricValueStatus {
        pub average_utilization: Option<i32>,
        pub average_value: Option<Quantity>,
        pub value: Option<Quantity>,
    }
}

/// Kubernetes' default target: 80% of the pods' CPU requests.
pub const DEFAULT_CPU_UTILIZATION: i32 = 80;

/// `rules` with Kubernetes' defaults for scaling up where it leaves them out: no
/// stabilization, and at most 4 pods or 100% more every 15 s, whichever is more.
pub fn scale_up_rules(rules: Option<&HpaScalingRules>) -> HpaScalingRules {
    let policies = vec![policy("Pods", 4, 15), policy("Percent", 100, 15)];
    filled(rules, 0, policies)
}

/// `rules` with Kubernetes' defaults for scaling down: the highest recommendation of the
/// last 5 minutes, and up to 100% fewer every 15 s.
pub fn scale_down_rules(rules: Option<&HpaScalingRules>) -> HpaScalingRules {
    filled(rules, 300, vec![policy("Percent", 100, 15)])
}

fn policy(type_: &str, value: i32, period_seconds: i32) -> HpaScalingPolicy {
    HpaScalingPolicy {
        type_: type_.to_string(),
        value,
        period_seconds,
    }
}

fn filled(
    rules: Option<&HpaScalingRules>,
    window: i32,
    policies: Vec<HpaScalingPolicy>,
) -> HpaScalingRules {
    let mut rules = rules.cloned().unwrap_or_default();
    rules.stabilization_window_seconds.get_or_insert(window);
    rules.select_policy.get_or_insert_with(|| "Max".to_string());
    rules.policies.get_or_insert(policies);
    rules
}

/// Kubernetes' defaults: one replica at least, CPU at 80% when no metric is named, and the
/// scaling rules filled in where a `behavior` is given.
pub fn set_defaults(spec: &mut HorizontalPodAutoscalerSpec) {
    spec.min_replicas.get_or_insert(1);
    if spec.metrics.as_ref().is_none_or(Vec::is_empty) {
        spec.metrics = Some(vec![MetricSpec {
            type_: "Resource".to_string(),
            resource: Some(ResourceMetricSource {
                name: "cpu".to_string(),
                target: MetricTarget {
                    type_: "Utilization".to_string(),
                    average_utilization: Some(DEFAULT_CPU_UTILIZATION),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }]);
    }
    if let Some(behavior) = &mut spec.behavior {
        behavior.scale_up = Some(scale_up_rules(behavior.scale_up.as_ref()));
        behavior.scale_down = Some(scale_down_rules(behavior.scale_down.as_ref()));
    }
}
