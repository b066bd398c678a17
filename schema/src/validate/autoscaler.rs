//! HorizontalPodAutoscaler (`autoscaling/v2`), checked as Kubernetes checks it, and refused
//! where it asks for what keel cannot measure: metrics other than the pods' CPU and memory.

use super::{Errors, names};
use crate::kinds::{Kind, api_group};
use crate::path::FieldPath;
use crate::quantity::Quantity;
use crate::types::autoscaling::{
    HorizontalPodAutoscalerSpec, HpaScalingRules, MetricSpec, MetricTarget,
};

/// The kinds whose replicas keel's autoscaler sets.
pub const SCALABLE: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "ReplicaSet",
    "ReplicationController",
];
const RESOURCES: &[&str] = &["cpu", "memory"];
const MAX_WINDOW_SECONDS: i64 = 3600;
const MAX_PERIOD_SECONDS: i64 = 1800;

pub fn validate_autoscaler(
    spec: &HorizontalPodAutoscalerSpec,
    path: &FieldPath,
    errs: &mut Errors,
) {
    let target = &spec.scale_target_ref;
    let at = path.field("scaleTargetRef");
    match target.kind.as_str() {
        "" => errs.required(&at.field("kind")),
        kind if !SCALABLE.contains(&kind) => errs.unsupported(&at.field("kind"), kind, SCALABLE),
        kind => {
            // The group must be the kind's (`apps` for a Deployment); the version may differ.
            let wanted = Kind::from_name(kind).map_or("", |k| k.info().group());
            if let Some(version) = target.api_version.as_deref().filter(|v| !v.is_empty())
                && api_group(version) != wanted
            {
                errs.invalid(
                    &at.field("apiVersion"),
                    version,
                    format!("a {kind} is in API group {wanted:?}"),
                );
            }
        }
    }
    errs.required_name(
        &at.field("name"),
        Some(&target.name),
        names::dns1123_subdomain,
    );
    let min = spec.min_replicas.unwrap_or(1);
    if min < 1 {
        errs.invalid(
            &path.field("minReplicas"),
            i64::from(min),
            "must be greater than or equal to 1 (keel does not scale to zero)",
        );
    }
    if spec.max_replicas < 1 {
        errs.invalid(
            &path.field("maxReplicas"),
            i64::from(spec.max_replicas),
            "must be greater than or equal to 1",
        );
    } else if spec.max_replicas < min {
        errs.invalid(
            &path.field("maxReplicas"),
            i64::from(spec.max_replicas),
            "must be greater than or equal to `minReplicas`",
        );
    }
    for (i, metric) in spec.metrics.iter().flatten().enumerate() {
        validate_metric(metric, &path.field("metrics").index(i), errs);
    }
    if let Some(behavior) = &spec.behavior {
        let at = path.field("behavior");
        for (field, rules) in [
            ("scaleUp", &behavior.scale_up),
            ("scaleDown", &behavior.scale_down),
        ] {
            if let Some(rules) = rules {
                validate_rules(rules, &at.field(field), errs);
            }
        }
    }
}

fn validate_metric(metric: &MetricSpec, path: &FieldPath, errs: &mut Errors) {
    let given = [
        ("Resource", "resource", metric.resource.is_some()),
        (
            "ContainerResource",
            "containerResource",
            metric.container_resource.is_some(),
        ),
        ("Pods", "pods", metric.pods.is_some()),
        ("Object", "object", metric.object.is_some()),
        ("External", "external", metric.external.is_some()),
    ];
    let type_ = metric.type_.as_str();
    match type_ {
        "" => return errs.required(&path.field("type")),
        "Resource" | "ContainerResource" => {}
        "Pods" | "Object" | "External" => {
            return errs.forbidden(
                &path.field("type"),
                format!(
                    "{type_} metrics need a custom or external metrics API, which keel does not \
                     have; keel scales on the pods' cpu and memory (Resource or ContainerResource)"
                ),
            );
        }
        other => {
            let types: Vec<&str> = given.iter().map(|(t, _, _)| *t).collect();
            return errs.unsupported(&path.field("type"), other, &types);
        }
    }
    for (t, field, set) in given {
        if set && t != type_ {
            errs.forbidden(
                &path.field(field),
                "must populate the given metric source only",
            );
        }
    }
    let (name, target, at) = match (&metric.resource, &metric.container_resource) {
        (Some(r), _) if type_ == "Resource" => (&r.name, &r.target, path.field("resource")),
        (_, Some(c)) if type_ == "ContainerResource" => {
            let at = path.field("containerResource");
            errs.required_name(
                &at.field("container"),
                Some(&c.container),
                names::dns1123_label,
            );
            (&c.name, &c.target, at)
        }
        _ => {
            let field = if type_ == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            return errs.required_because(
                &path.field(field),
                "must populate information for the given metric source",
            );
        }
    };
    match name.as_str() {
        "" => errs.required(&at.field("name")),
        n if !RESOURCES.contains(&n) => errs.unsupported(&at.field("name"), n, RESOURCES),
        _ => {}
    }
    validate_target(target, &at.field("target"), errs);
}

fn validate_target(target: &MetricTarget, path: &FieldPath, errs: &mut Errors) {
    match target.type_.as_str() {
        "" => errs.required(&path.field("type")),
        "Utilization" => match target.average_utilization {
            None => errs.required_because(
                &path.field("averageUtilization"),
                "must set averageUtilization when type is Utilization",
            ),
            Some(u) if u < 1 => errs.invalid(
                &path.field("averageUtilization"),
                i64::from(u),
                "must be greater than 0",
            ),
            Some(_) => {}
        },
        "AverageValue" => match &target.average_value {
            None => errs.required_because(
                &path.field("averageValue"),
                "must set averageValue when type is AverageValue",
            ),
            Some(q) => positive_quantity(q, &path.field("averageValue"), errs),
        },
        "Value" => errs.invalid(
            &path.field("type"),
            "Value",
            "must be either Utilization or AverageValue for resource metrics",
        ),
        other => errs.unsupported(&path.field("type"), other, &["Utilization", "AverageValue"]),
    }
    if target.type_ != "AverageValue" && target.average_value.is_some() {
        errs.forbidden(
            &path.field("averageValue"),
            "set only with type AverageValue",
        );
    }
    if target.type_ != "Utilization" && target.average_utilization.is_some() {
        errs.forbidden(
            &path.field("averageUtilization"),
            "set only with type Utilization",
        );
    }
    if target.value.is_some() {
        errs.forbidden(
            &path.field("value"),
            "resource metrics are averaged per pod",
        );
    }
}

fn positive_quantity(q: &Quantity, path: &FieldPath, errs: &mut Errors) {
    match q.millis() {
        Ok(m) if m > 0 => {}
        Ok(_) => errs.invalid(path, q.as_str(), "must be positive"),
        Err(e) => errs.invalid(path, q.as_str(), e),
    }
}

fn validate_rules(rules: &HpaScalingRules, path: &FieldPath, errs: &mut Errors) {
    if let Some(w) = rules.stabilization_window_seconds {
        let at = path.field("stabilizationWindowSeconds");
        if w < 0 {
            errs.invalid(&at, i64::from(w), "must be greater than or equal to zero");
        } else if i64::from(w) > MAX_WINDOW_SECONDS {
            errs.invalid(
                &at,
                i64::from(w),
                format!("must be less than or equal to {MAX_WINDOW_SECONDS}"),
            );
        }
    }
    errs.one_of(
        &path.field("selectPolicy"),
        rules.select_policy.as_deref(),
        &["Max", "Min", "Disabled"],
    );
    let Some(policies) = &rules.policies else {
        return;
    };
    if policies.is_empty() {
        errs.required_because(&path.field("policies"), "must specify at least one Policy");
    }
    for (i, policy) in policies.iter().enumerate() {
        let at = path.field("policies").index(i);
        match policy.type_.as_str() {
            "" => errs.required(&at.field("type")),
            "Pods" | "Percent" => {}
            other => errs.unsupported(&at.field("type"), other, &["Pods", "Percent"]),
        }
        if policy.value < 1 {
            errs.invalid(
                &at.field("value"),
                i64::from(policy.value),
                "must be greater than zero",
            );
        }
        let period = i64::from(policy.period_seconds);
        if period < 1 {
            errs.invalid(
                &at.field("periodSeconds"),
                period,
                "must be greater than zero",
            );
        } else if period > MAX_PERIOD_SECONDS {
            errs.invalid(
                &at.field("periodSeconds"),
                period,
                format!("must be less than or equal to {MAX_PERIOD_SECONDS}"),
            );
        }
    }
}
