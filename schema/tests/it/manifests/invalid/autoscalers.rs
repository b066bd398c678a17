//! Invalid HorizontalPodAutoscalers: Kubernetes' checks, and metrics keel cannot measure
//! refused where they are written.

use super::Case;

/// `yaml`, then the Deployment its autoscalers scale (after it: the lines stay put).
macro_rules! with_target {
    ($yaml:literal) => {
        concat!(
            $yaml,
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n",
            "  selector: {matchLabels: {app: web}}\n  template:\n",
            "    metadata: {labels: {app: web}}\n",
            "    spec: {containers: [{name: web, image: \"web:1\"}]}\n"
        )
    };
}

pub(super) const CASES: &[Case] = &[
    Case {
        name: "bounds, an unscalable target and a target nobody declares",
        yaml: r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: a}
spec:
  scaleTargetRef: {kind: DaemonSet, name: agents}
  minReplicas: 0
  maxReplicas: 0
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: b}
spec:
  scaleTargetRef: {apiVersion: extensions/v1beta1, kind: Deployment, name: api}
  minReplicas: 5
  maxReplicas: 3
"#,
        errors: &[
            (
                5,
                "spec.scaleTargetRef.kind",
                "Unsupported value: \"DaemonSet\"",
            ),
            (6, "spec.minReplicas", "must be greater than or equal to 1"),
            (7, "spec.maxReplicas", "must be greater than or equal to 1"),
            (
                13,
                "spec.scaleTargetRef.apiVersion",
                "a Deployment is in API group \"apps\"",
            ),
            (
                13,
                "spec.scaleTargetRef.name",
                "Not found: Deployment \"api\" is not declared",
            ),
            (
                15,
                "spec.maxReplicas",
                "must be greater than or equal to `minReplicas`",
            ),
        ],
    },
    Case {
        name: "metrics keel cannot measure, and targets that do not fit their type",
        yaml: with_target!(
            r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 4
  metrics:
  - type: External
    external: {metric: {name: queue_depth}, target: {type: Value, value: "30"}}
  - type: Resource
    resource: {name: gpu, target: {type: Utilization, averageUtilization: 0}}
  - type: Resource
    resource: {name: memory, target: {type: Value, value: 1Gi}}
  - type: ContainerResource
    resource: {name: cpu, target: {type: AverageValue}}
  - type: Resource
    resource: {name: cpu, target: {type: AverageValue, averageValue: -1}}
"#
        ),
        errors: &[
            (
                8,
                "spec.metrics[0].type",
                "Forbidden: External metrics need a custom or external metrics API",
            ),
            (
                11,
                "spec.metrics[1].resource.name",
                "Unsupported value: \"gpu\"",
            ),
            (
                11,
                "spec.metrics[1].resource.target.averageUtilization",
                "must be greater than 0",
            ),
            (
                13,
                "spec.metrics[2].resource.target.type",
                "must be either Utilization or AverageValue",
            ),
            (
                13,
                "spec.metrics[2].resource.target.value",
                "Forbidden: resource metrics are averaged per pod",
            ),
            (
                14,
                "spec.metrics[3].containerResource",
                "Required value: must populate information for the given metric source",
            ),
            (
                15,
                "spec.metrics[3].resource",
                "Forbidden: must populate the given metric source only",
            ),
            (
                17,
                "spec.metrics[4].resource.target.averageValue",
                "must be positive",
            ),
        ],
    },
    Case {
        name: "behavior out of Kubernetes' bounds",
        yaml: with_target!(
            r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 4
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 7200
      selectPolicy: Fastest
      policies: []
    scaleDown:
      policies:
      - {type: Pods, value: 0, periodSeconds: 1801}
      - {type: Replicas, value: 1, periodSeconds: 0}
"#
        ),
        errors: &[
            (
                9,
                "spec.behavior.scaleUp.stabilizationWindowSeconds",
                "must be less than or equal to 3600",
            ),
            (
                10,
                "spec.behavior.scaleUp.selectPolicy",
                "Unsupported value: \"Fastest\"",
            ),
            (
                11,
                "spec.behavior.scaleUp.policies",
                "Required value: must specify at least one Policy",
            ),
            (
                14,
                "spec.behavior.scaleDown.policies[0].value",
                "must be greater than zero",
            ),
            (
                14,
                "spec.behavior.scaleDown.policies[0].periodSeconds",
                "must be less than or equal to 1800",
            ),
            (
                15,
                "spec.behavior.scaleDown.policies[1].type",
                "Unsupported value: \"Replicas\"",
            ),
            (
                15,
                "spec.behavior.scaleDown.policies[1].periodSeconds",
                "must be greater than zero",
            ),
        ],
    },
    Case {
        name: "two autoscalers for one workload",
        yaml: with_target!(
            r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 4
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web-memory}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 4
"#
        ),
        errors: &[(
            12,
            "spec.scaleTargetRef.name",
            "Duplicate value: Deployment \"web\" is already scaled by HorizontalPodAutoscaler \"web\"",
        )],
    },
];
