//! `keel get hpa` columns, as kubectl shows them: the target, each metric's current and
//! target value (`cpu: 45%/50%`), the bounds and the replicas.

use keel_schema::types::autoscaling::{
    HorizontalPodAutoscaler, MetricSpec, MetricStatus, MetricTarget, MetricValueStatus,
};

use super::{Columns, age, name};

/// How many metrics kubectl lists before `+ N more...`.
const SHOWN: usize = 2;

pub(super) const AUTOSCALER: Columns<HorizontalPodAutoscaler> = Columns {
    normal: &[
        ("NAME", |h, _| name(&h.metadata)),
        ("REFERENCE", |h, _| {
            let target = &h.spec.scale_target_ref;
            format!("{}/{}", target.kind, target.name)
        }),
        ("TARGETS", |h, _| targets(h)),
        ("MINPODS", |h, _| {
            h.spec.min_replicas.unwrap_or(1).to_string()
        }),
        ("MAXPODS", |h, _| h.spec.max_replicas.to_string()),
        ("REPLICAS", |h, _| {
            let current = h.status.as_ref().and_then(|s| s.current_replicas);
            current.unwrap_or(0).to_string()
        }),
        ("AGE", |h, now| age(&h.metadata, now)),
    ],
    wide: &[],
};

/// `cpu: 45%/50%, memory: 30Mi/100Mi`; `<unknown>` before the first measurement.
pub fn targets(h: &HorizontalPodAutoscaler) -> String {
    let metrics = h.spec.metrics.as_deref().unwrap_or_default();
    if metrics.is_empty() {
        return "<none>".to_string();
    }
    let current = h
        .status
        .as_ref()
        .and_then(|s| s.current_metrics.as_deref())
        .unwrap_or_default();
    let mut parts: Vec<String> = metrics
        .iter()
        .take(SHOWN)
        .enumerate()
        .map(|(i, spec)| metric(spec, current.get(i)))
        .collect();
    if metrics.len() > SHOWN {
        parts.push(format!("+ {} more...", metrics.len() - SHOWN));
    }
    parts.join(", ")
}

fn metric(spec: &MetricSpec, status: Option<&MetricStatus>) -> String {
    let (name, target, current) = match (&spec.resource, &spec.container_resource) {
        (Some(r), _) => (
            r.name.as_str(),
            &r.target,
            status.and_then(|s| s.resource.as_ref()).map(|r| &r.current),
        ),
        (_, Some(c)) => (
            c.name.as_str(),
            &c.target,
            status
                .and_then(|s| s.container_resource.as_ref())
                .map(|c| &c.current),
        ),
        _ => return format!("{}: <unsupported>", spec.type_),
    };
    format!(
        "{name}: {}/{}",
        shown_current(target, current),
        shown_target(target)
    )
}

fn shown_target(target: &MetricTarget) -> String {
    match (&target.average_utilization, &target.average_value) {
        (Some(u), _) => format!("{u}%"),
        (_, Some(v)) => v.as_str().to_string(),
        _ => "<unset>".to_string(),
    }
}

fn shown_current(target: &MetricTarget, current: Option<&MetricValueStatus>) -> String {
    let shown = current.and_then(|c| match target.type_.as_str() {
        "Utilization" => c.average_utilization.map(|u| format!("{u}%")),
        _ => c.average_value.as_ref().map(|v| v.as_str().to_string()),
    });
    shown.unwrap_or_else(|| "<unknown>".to_string())
}
