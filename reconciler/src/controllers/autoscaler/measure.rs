//! One metric of an autoscaler, measured on its target's pods from the agents' samples:
//! each pod's use and base (its request, for utilization), whether it counts as ready, and
//! what the metric is called in conditions and Events.

use std::collections::HashMap;

use keel_agent_protocol::PodMetrics;
use keel_schema::quantity::Quantity;
use keel_schema::types::autoscaling::{
    ContainerResourceMetricStatus, MetricSpec, MetricStatus, MetricTarget, MetricValueStatus,
    ResourceMetricStatus,
};
use keel_schema::types::pod::{Pod, PodPhase};

use super::replicas::{Goal, PodPart, Standing};

/// The agents' latest samples, by pod namespace and name.
pub type Samples<'a> = HashMap<(&'a str, &'a str), &'a PodMetrics>;

/// A metric made ready for the calculator.
#[derive(Debug)]
pub struct Measured {
    pub parts: Vec<PodPart>,
    pub goal: Goal,
    /// As Kubernetes names it in messages: `cpu resource utilization (percentage of request)`.
    pub title: String,
}

/// Which resource of which containers a metric is about.
struct Source<'a> {
    resource: &'a str,
    container: Option<&'a str>,
    target: &'a MetricTarget,
}

fn source(metric: &MetricSpec) -> Result<Source<'_>, String> {
    match (&metric.resource, &metric.container_resource) {
        (Some(r), _) => Ok(Source {
            resource: &r.name,
            container: None,
            target: &r.target,
        }),
        (_, Some(c)) => Ok(Source {
            resource: &c.name,
            container: Some(&c.container),
            target: &c.target,
        }),
        _ => Err(format!(
            "metrics of type {:?} are not measured by keel",
            metric.type_
        )),
    }
}

/// The resource a metric is about (`cpu`), or its type when keel does not measure it.
pub fn resource_name(metric: &MetricSpec) -> &str {
    source(metric).map_or(metric.type_.as_str(), |s| s.resource)
}

/// In the calculator's units: millicores of CPU, bytes of memory.
fn amount(resource: &str, q: &Quantity) -> Result<f64, String> {
    let value = if resource == "cpu" {
        q.millis()
    } else {
        q.value()
    };
    value
        .map(|v| v as f64)
        .map_err(|e| format!("{resource} quantity {:?}: {e}", q.as_str()))
}

fn sampled(resource: &str, usage: Option<&keel_agent_protocol::ResourceUsage>) -> f64 {
    let u = usage.copied().unwrap_or_default();
    if resource == "cpu" {
        u.cpu_nanocores as f64 / 1e6
    } else {
        u.memory_bytes as f64
    }
}

/// `metric` on `pods` (the target's active pods), from `samples`.
pub fn measure(
    metric: &MetricSpec,
    pods: &[&Pod],
    samples: &Samples<'_>,
) -> Result<Measured, String> {
    let src = source(metric)?;
    let utilization = src.target.type_ == "Utilization";
    let goal = if utilization {
        let percent = f64::from(src.target.average_utilization.unwrap_or(0).max(1)) / 100.0;
        Goal {
            per_base: percent,
            missing_on_scale_down: percent.max(1.0),
        }
    } else {
        let value = match &src.target.average_value {
            Some(q) => amount(src.resource, q)?,
            None => return Err("no averageValue to scale to".to_string()),
        };
        Goal {
            per_base: value,
            missing_on_scale_down: value,
        }
    };
    let mut parts = Vec::with_capacity(pods.len());
    for pod in pods {
        let name = pod.metadata.name();
        let containers: Vec<&str> = match src.container {
            Some(c) if pod.spec.containers.iter().any(|k| k.name == c) => vec![c],
            Some(c) => return Err(format!("container {c} not present in pod {name}")),
            None => pod
                .spec
                .containers
                .iter()
                .map(|c| c.name.as_str())
                .collect(),
        };
        let base = if utilization {
            let mut request = 0.0;
            for c in &containers {
                let requested = pod
                    .spec
                    .containers
                    .iter()
                    .find(|k| k.name == *c)
                    .and_then(|k| k.resources.as_ref())
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| r.get(src.resource));
                match requested {
                    Some(q) => request += amount(src.resource, q)?,
                    None => {
                        return Err(format!(
                            "missing request for {} in container {c} of Pod {name}",
                            src.resource
                        ));
                    }
                }
            }
            request
        } else {
            1.0
        };
        let sample = samples.get(&(pod.metadata.namespace(), name));
        // Measured only when every container counted has its sample.
        let usage = sample.and_then(|s| {
            containers.iter().try_fold(0.0, |sum, c| {
                let m = s.containers.iter().find(|m| m.name == *c)?;
                Some(sum + sampled(src.resource, m.usage.as_ref()))
            })
        });
        let pending = pod.phase() == Some(PodPhase::Pending);
        // CPU of a pod not ready yet (starting up, or failing its probe) is not trusted.
        let standing = if pending || (src.resource == "cpu" && !pod.is_ready()) {
            Standing::Unready
        } else {
            Standing::Ready(usage)
        };
        parts.push(PodPart { standing, base });
    }
    let title = match (src.container, utilization) {
        (None, true) => format!(
            "{} resource utilization (percentage of request)",
            src.resource
        ),
        (None, false) => format!("{} resource", src.resource),
        (Some(_), true) => format!(
            "{} container resource utilization (percentage of request)",
            src.resource
        ),
        (Some(_), false) => format!("{} container resource", src.resource),
    };
    Ok(Measured { parts, goal, title })
}

/// The metric's status: what was measured, per unit of base (`measured`), shown as the
/// target is written.
pub fn status(metric: &MetricSpec, measured: f64, parts: &[PodPart]) -> MetricStatus {
    let Ok(src) = source(metric) else {
        return MetricStatus {
            type_: metric.type_.clone(),
            ..Default::default()
        };
    };
    let utilization = src.target.type_ == "Utilization";
    // The average use per measured pod: the utilization times the average request.
    let average = if utilization {
        let bases: Vec<f64> = parts
            .iter()
            .filter(|p| matches!(p.standing, Standing::Ready(Some(_))))
            .map(|p| p.base)
            .collect();
        let mean_base = bases.iter().sum::<f64>() / bases.len().max(1) as f64;
        measured * mean_base
    } else {
        measured
    };
    let shown = if src.resource == "cpu" {
        Quantity::new(format!("{}m", average.round() as i64))
    } else {
        Quantity::new(format!("{}Ki", (average / 1024.0).round() as i64))
    };
    let current = MetricValueStatus {
        average_utilization: utilization.then(|| (measured * 100.0).floor() as i32),
        average_value: Some(shown),
        value: None,
    };
    match src.container {
        None => MetricStatus {
            type_: "Resource".into(),
            resource: Some(ResourceMetricStatus {
                name: src.resource.to_string(),
                current,
            }),
            ..Default::default()
        },
        Some(container) => MetricStatus {
            type_: "ContainerResource".into(),
            container_resource: Some(ContainerResourceMetricStatus {
                name: src.resource.to_string(),
                container: container.to_string(),
                current,
            }),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use keel_agent_protocol::{ContainerMetrics, ResourceUsage};
    use keel_schema::Object;

    use super::*;

    fn pod(name: &str, ready: bool, cpu_request: Option<&str>) -> Pod {
        let resources = cpu_request.map(|r| serde_json::json!({"requests": {"cpu": r}}));
        let object = Object::from_json(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [
                {"name": "app", "image": "x:1", "resources": resources.clone().unwrap_or_default()},
                {"name": "sidecar", "image": "y:1", "resources": resources.unwrap_or_default()}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap();
        match object {
            Object::Pod(p) => p,
            _ => unreachable!(),
        }
    }

    fn sample(name: &str, millicores: &[(&str, u64)]) -> PodMetrics {
        PodMetrics {
            namespace: "default".into(),
            name: name.into(),
            uid: String::new(),
            containers: millicores
                .iter()
                .map(|(c, m)| ContainerMetrics {
                    name: (*c).into(),
                    usage: Some(ResourceUsage {
                        cpu_nanocores: m * 1_000_000,
                        memory_bytes: 0,
                    }),
                })
                .collect(),
        }
    }

    fn metric(yaml: &str) -> MetricSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn pods_are_measured_whole_against_their_requests() {
        let cpu = metric(
            "{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}",
        );
        let (a, b, c) = (
            pod("a", true, Some("100m")),
            pod("b", true, Some("100m")),
            pod("c", false, Some("100m")),
        );
        let samples_a = sample("a", &[("app", 80), ("sidecar", 20)]);
        // b's sidecar has no sample yet: b is not measured.
        let samples_b = sample("b", &[("app", 80)]);
        let samples: Samples<'_> = [
            (("default", "a"), &samples_a),
            (("default", "b"), &samples_b),
        ]
        .into();
        let m = measure(&cpu, &[&a, &b, &c], &samples).unwrap();
        assert_eq!(m.title, "cpu resource utilization (percentage of request)");
        assert_eq!(
            m.parts,
            [
                PodPart {
                    standing: Standing::Ready(Some(100.0)),
                    base: 200.0
                },
                PodPart {
                    standing: Standing::Ready(None),
                    base: 200.0
                },
                PodPart {
                    standing: Standing::Unready,
                    base: 200.0
                },
            ]
        );
        let shown = status(&cpu, 0.5, &m.parts);
        let current = shown.resource.unwrap().current;
        assert_eq!(current.average_utilization, Some(50));
        assert_eq!(current.average_value.unwrap().as_str(), "100m");
        // One container's use, against that container's request.
        let app = metric(
            "{type: ContainerResource, containerResource: {name: cpu, container: app, target: {type: Utilization, averageUtilization: 50}}}",
        );
        let m = measure(&app, &[&a], &samples).unwrap();
        assert_eq!(
            m.parts[0],
            PodPart {
                standing: Standing::Ready(Some(80.0)),
                base: 100.0
            }
        );
    }

    #[test]
    fn what_cannot_be_measured_is_said() {
        let cpu = metric(
            "{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}}",
        );
        let bare = pod("bare", true, None);
        let e = measure(&cpu, &[&bare], &Samples::new()).unwrap_err();
        assert_eq!(e, "missing request for cpu in container app of Pod bare");
        let other = metric(
            "{type: ContainerResource, containerResource: {name: cpu, container: db, target: {type: AverageValue, averageValue: 100m}}}",
        );
        let e = measure(&other, &[&bare], &Samples::new()).unwrap_err();
        assert_eq!(e, "container db not present in pod bare");
    }
}
