//! The health of a declared object, as Argo CD shows an application's resources: Healthy,
//! Progressing, Degraded, Missing, or (an object of a custom kind that says nothing of
//! itself) Unknown. One exhaustive rule per kind.

use keel_schema::types::apps::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use keel_schema::types::batch::Job;
use keel_schema::types::core::ReplicationController;
use keel_schema::types::meta::ObjectMeta;
use keel_schema::types::pod::{Pod, PodPhase};
use keel_schema::{Object, Resource};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Health {
    Healthy,
    Progressing,
    Degraded,
    /// Declared in git, absent from the cluster.
    Missing,
    /// An object of a custom kind without a `Ready` or `Available` condition: whatever acts
    /// on it has not said.
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "Healthy",
            Health::Progressing => "Progressing",
            Health::Degraded => "Degraded",
            Health::Missing => "Missing",
            Health::Unknown => "Unknown",
        }
    }

    /// Whether it stands in the way of "everything is fine" (`keel status`'s exit code):
    /// Unknown does not, since nothing may ever report on such an object.
    pub fn is_trouble(self) -> bool {
        !matches!(self, Health::Healthy | Health::Unknown)
    }
}

/// The health of `object`, with why.
pub fn health(object: &Object) -> (Health, String) {
    match object {
        Object::Deployment(d) => deployment(d),
        Object::ReplicaSet(r) => replicas(&r.metadata, r.spec.replicas, replica_set_counts(r)),
        Object::ReplicationController(r) => replicas(&r.metadata, r.spec.replicas, rc_counts(r)),
        Object::DaemonSet(d) => daemon_set(d),
        Object::StatefulSet(s) => stateful_set(s),
        Object::PersistentVolumeClaim(c) => claim(c),
        Object::Job(j) => job(j),
        Object::CronJob(c) => cron_job(c),
        Object::Pod(p) => pod(p),
        Object::Service(s) => service(s),
        Object::Ingress(i) => ingress(i),
        Object::HorizontalPodAutoscaler(h) => autoscaler(h),
        Object::ServiceAccount(_)
        | Object::NetworkPolicy(_)
        | Object::PodDisruptionBudget(_)
        | Object::Role(_)
        | Object::ClusterRole(_)
        | Object::RoleBinding(_)
        | Object::ClusterRoleBinding(_)
        | Object::CustomResourceDefinition(_) => (
            Health::Healthy,
            keel_schema::kinds::NOT_ENFORCED.to_string(),
        ),
        // Objects without a rollout are healthy once they exist.
        Object::IngressClass(_)
        | Object::ConfigMap(_)
        | Object::Secret(_)
        | Object::Namespace(_)
        | Object::Node(_)
        | Object::Endpoints(_)
        | Object::Event(_)
        | Object::ControllerRevision(_)
        | Object::PersistentVolume(_) => (Health::Healthy, String::new()),
        Object::ResourceQuota(_) => (
            Health::Healthy,
            "enforced when a revision is applied".to_string(),
        ),
        Object::LimitRange(_) => (
            Health::Healthy,
            "defaults given to new pods; bounds checked when a revision is applied".to_string(),
        ),
        Object::Custom(c) => custom(c),
    }
}

/// A custom object is as its `Ready` (or else `Available`) condition says: True is Healthy,
/// False Degraded, anything else Progressing; without either, Unknown.
fn custom(object: &keel_schema::types::custom::CustomObject) -> (Health, String) {
    let condition = ["Ready", "Available"]
        .iter()
        .find_map(|t| object.conditions().iter().find(|c| c.type_ == *t));
    let Some(c) = condition else {
        return (
            Health::Unknown,
            "no Ready or Available condition in its status".to_string(),
        );
    };
    let why = c
        .message
        .clone()
        .or_else(|| c.reason.clone())
        .unwrap_or_default();
    let health = match c.status.as_str() {
        "True" => Health::Healthy,
        "False" => Health::Degraded,
        _ => Health::Progressing,
    };
    (
        health,
        format!("{} {}: {why}", c.type_, c.status)
            .trim_end_matches([':', ' '])
            .to_string(),
    )
}

/// A LoadBalancer Service is Progressing until it has an external address, with the reason
/// the controller gave (no pool, pool exhausted); other Services are healthy once they exist.
fn service(s: &keel_schema::types::core::Service) -> (Health, String) {
    if s.spec.type_.as_deref() != Some("LoadBalancer") {
        return (Health::Healthy, String::new());
    }
    let ips = s.load_balancer_ips();
    if !ips.is_empty() {
        return (Health::Healthy, format!("external IP {}", ips.join(", ")));
    }
    let why = s
        .status
        .as_ref()
        .and_then(|st| st.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "LoadBalancerReady")
        .and_then(|c| c.message.clone())
        .unwrap_or_else(|| "waiting for an external address".to_string());
    (Health::Progressing, why)
}

/// As Argo CD: an Ingress is Progressing until a controller gives it an address.
fn ingress(i: &keel_schema::types::networking::Ingress) -> (Health, String) {
    let ips = i.load_balancer_ips();
    if ips.is_empty() {
        (
            Health::Progressing,
            "no address yet (no Ready node, or another ingress controller's class)".into(),
        )
    } else {
        (Health::Healthy, format!("address {}", ips.join(", ")))
    }
}

/// What an autoscaler says while its target's pods have no sample yet (up to 30 s after
/// they start): Progressing, not Degraded.
pub const NOT_MEASURED_YET: &str =
    "no measurement for any ready pod yet (a pod is measured from its second sample)";

/// Healthy while it can measure and scale; Degraded with the autoscaler's reason when it
/// cannot (a target without requests, a missing target); Progressing until the first
/// measurement.
fn autoscaler(h: &keel_schema::types::autoscaling::HorizontalPodAutoscaler) -> (Health, String) {
    let failing = ["AbleToScale", "ScalingActive"]
        .into_iter()
        .filter_map(|t| h.condition(t))
        .find(|c| c.status == "False");
    if let Some(c) = failing {
        let why = c
            .message
            .as_deref()
            .or(c.reason.as_deref())
            .unwrap_or_default();
        if why.contains(NOT_MEASURED_YET) {
            return (Health::Progressing, why.to_string());
        }
        return (Health::Degraded, why.to_string());
    }
    let Some(status) = &h.status else {
        return (
            Health::Progressing,
            "waiting for the first measurement".into(),
        );
    };
    let targets = crate::columns::autoscaling::targets(h);
    (
        Health::Healthy,
        format!("{} replicas; {targets}", status.desired_replicas),
    )
}

/// The controller has seen the object's latest spec (or does not say).
fn generation_seen(meta: &ObjectMeta, observed: Option<i64>) -> bool {
    observed.is_none_or(|g| g >= meta.generation.unwrap_or(0))
}

fn deployment(d: &Deployment) -> (Health, String) {
    let status = d.status.as_ref();
    let n = |v: Option<i64>| v.unwrap_or(0);
    let want = d.spec.replicas.unwrap_or(1);
    let updated = n(status.and_then(|s| s.updated_replicas));
    let available = n(status.and_then(|s| s.available_replicas));
    let total = n(status.and_then(|s| s.replicas));
    let progressing = d.condition("Progressing");
    if let Some(c) = progressing.filter(|c| c.status == "False") {
        return (Health::Degraded, c.message.clone().unwrap_or_default());
    }
    let message = format!("{available}/{want} available, {updated} updated");
    let seen = generation_seen(&d.metadata, status.and_then(|s| s.observed_generation));
    if seen && updated == want && available == want && total == want {
        (Health::Healthy, message)
    } else {
        (Health::Progressing, message)
    }
}

/// `(observedGeneration, replicas, ready)` of a ReplicaSet or ReplicationController.
type ReplicaCounts = (Option<i64>, i64, i64);

fn replica_set_counts(r: &ReplicaSet) -> ReplicaCounts {
    let s = r.status.as_ref();
    (
        s.and_then(|s| s.observed_generation),
        s.map_or(0, |s| s.replicas),
        s.and_then(|s| s.ready_replicas).unwrap_or(0),
    )
}

fn rc_counts(r: &ReplicationController) -> ReplicaCounts {
    let s = r.status.as_ref();
    (
        s.and_then(|s| s.observed_generation),
        s.map_or(0, |s| s.replicas),
        s.and_then(|s| s.ready_replicas).unwrap_or(0),
    )
}

fn replicas(
    meta: &ObjectMeta,
    spec_replicas: Option<i64>,
    counts: ReplicaCounts,
) -> (Health, String) {
    let (observed, total, ready) = counts;
    let want = spec_replicas.unwrap_or(1);
    let message = format!("{ready}/{want} ready");
    if generation_seen(meta, observed) && ready == want && total == want {
        (Health::Healthy, message)
    } else {
        (Health::Progressing, message)
    }
}

fn daemon_set(d: &DaemonSet) -> (Health, String) {
    let status = d.status.as_ref();
    let want = status.map_or(0, |s| s.desired_number_scheduled);
    let ready = status.map_or(0, |s| s.number_ready);
    let misscheduled = status.map_or(0, |s| s.number_misscheduled);
    let message = format!("{ready}/{want} ready");
    let seen = generation_seen(&d.metadata, status.and_then(|s| s.observed_generation));
    if seen && ready == want && misscheduled == 0 {
        (Health::Healthy, message)
    } else {
        (Health::Progressing, message)
    }
}

/// Healthy when every pod is ready and the update has reached every pod it may: all of
/// them, or those at and above the partition (OnDelete waits for deletions, so it is not
/// counted).
fn stateful_set(s: &StatefulSet) -> (Health, String) {
    let status = s.status.as_ref();
    let want = s.spec.replicas.unwrap_or(1);
    let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let total = status.map_or(0, |s| s.replicas);
    let updated = status.and_then(|s| s.updated_replicas).unwrap_or(0);
    let strategy = s.spec.update_strategy.as_ref();
    let on_delete = strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete");
    let partition = strategy
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);
    // The first `partition` pods (from ordinals.start) stay at the current revision.
    let below = partition.clamp(0, want);
    let rolled = on_delete || updated >= want - below;
    let mut message = format!("{ready}/{want} ready");
    if !on_delete && updated < want {
        message.push_str(&format!(", {updated}/{want} updated"));
    }
    let seen = generation_seen(&s.metadata, status.and_then(|s| s.observed_generation));
    if seen && ready == want && total == want && rolled {
        (Health::Healthy, message)
    } else {
        (Health::Progressing, message)
    }
}

/// Bound is healthy; a claim waits, Progressing, for its first pod to land on a node (the
/// local-path class binds there).
fn claim(c: &keel_schema::types::storage::PersistentVolumeClaim) -> (Health, String) {
    let phase = c.status.as_ref().and_then(|s| s.phase.as_deref());
    match (phase, c.spec.volume_name.as_deref()) {
        (Some("Bound"), Some(volume)) => (Health::Healthy, format!("bound to {volume}")),
        (Some("Lost"), _) => (Health::Degraded, "its volume is gone".to_string()),
        _ => (
            Health::Progressing,
            "waiting for its first pod to be scheduled (the volume is made on that node)"
                .to_string(),
        ),
    }
}

fn job(j: &Job) -> (Health, String) {
    let status = j.status.as_ref();
    let done = status.and_then(|s| s.succeeded).unwrap_or(0);
    let want = j.spec.completions.unwrap_or(1);
    let is_true = |type_: &str| j.condition(type_).filter(|c| c.status == "True");
    if let Some(failed) = is_true("Failed") {
        let reason = failed.reason.as_deref().unwrap_or("");
        (Health::Degraded, format!("failed: {reason}"))
    } else if is_true("Complete").is_some() {
        (Health::Healthy, format!("{done}/{want} complete"))
    } else {
        (Health::Progressing, format!("{done}/{want} complete"))
    }
}

/// A CronJob is healthy once it exists (its Jobs have their own health); suspended, it
/// says so.
fn cron_job(c: &keel_schema::types::batch::CronJob) -> (Health, String) {
    let last = c.status.as_ref().and_then(|s| s.last_schedule_time);
    let said = match (c.spec.suspend == Some(true), last) {
        (true, _) => "suspended".to_string(),
        (false, Some(t)) => format!("last scheduled {}", t.to_rfc3339()),
        (false, None) => "not scheduled yet".to_string(),
    };
    (Health::Healthy, said)
}

/// Waiting reasons that mean a container will not start without a change.
const STUCK: &[&str] = &[
    "CrashLoopBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

fn pod(p: &Pod) -> (Health, String) {
    let status = p.status.as_ref();
    let phase = p.phase().unwrap_or(PodPhase::Pending);
    let stuck = status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.as_deref())
        .find(|r| STUCK.contains(r));
    let ready = p.is_ready();
    match (phase, stuck) {
        (_, Some(reason)) => (Health::Degraded, reason.to_string()),
        (PodPhase::Failed, _) => (Health::Degraded, "Failed".into()),
        (PodPhase::Succeeded, _) => (Health::Healthy, "Succeeded".into()),
        (PodPhase::Running, _) if ready => (Health::Healthy, "Running".into()),
        (PodPhase::Pending | PodPhase::Running | PodPhase::Unknown, _) => {
            let unschedulable = p
                .condition("PodScheduled")
                .filter(|c| c.status == "False")
                .and_then(|c| c.message.clone());
            (
                Health::Progressing,
                unschedulable.unwrap_or_else(|| phase.to_string()),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(json: serde_json::Value) -> Object {
        Object::from_json(json).expect("a Service")
    }

    #[test]
    fn a_load_balancer_is_progressing_with_the_reason_until_it_has_an_address() {
        let pending = service(serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
            "status": {"conditions": [{"type": "LoadBalancerReady", "status": "False",
                "message": "keel server runs without --loadbalancer-pool"}]}}));
        let (h, why) = health(&pending);
        assert_eq!(h, Health::Progressing);
        assert!(why.contains("--loadbalancer-pool"), "{why}");
        let ready = service(serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.240"}]}}}));
        assert_eq!(
            health(&ready),
            (Health::Healthy, "external IP 10.0.0.240".to_string())
        );
        let plain = service(serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}));
        assert_eq!(health(&plain).0, Health::Healthy);
    }

    #[test]
    fn an_autoscaler_waits_for_its_first_measurement_and_is_degraded_when_it_cannot_measure() {
        let hpa = |status: serde_json::Value| {
            Object::from_json(serde_json::json!({"apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                         "maxReplicas": 4,
                         "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                             "target": {"type": "Utilization", "averageUtilization": 50}}}]},
                "status": status}))
            .expect("an autoscaler")
        };
        let failing = |message: &str| {
            hpa(serde_json::json!({"desiredReplicas": 2, "conditions": [
                {"type": "ScalingActive", "status": "False", "message": message}]}))
        };
        let waiting = format!("failed to get cpu utilization: {NOT_MEASURED_YET}");
        assert_eq!(health(&failing(&waiting)).0, Health::Progressing);
        let missing = "failed to get cpu utilization: missing request for cpu in container web";
        assert_eq!(
            health(&failing(missing)),
            (Health::Degraded, missing.to_string())
        );
        let working = hpa(
            serde_json::json!({"desiredReplicas": 3, "currentReplicas": 2,
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": 75}}}]}),
        );
        assert_eq!(
            health(&working),
            (Health::Healthy, "3 replicas; cpu: 75%/50%".to_string())
        );
    }

    #[test]
    fn a_custom_object_is_as_its_ready_or_available_condition_says() {
        let object = |status: serde_json::Value| {
            Object::from_json(serde_json::json!({"apiVersion": "stable.example.com/v1",
                "kind": "CronTab", "metadata": {"name": "nightly", "namespace": "default"},
                "spec": {"cronSpec": "* * * * *"}, "status": status}))
            .expect("a custom object")
        };
        let condition = |t: &str, s: &str| serde_json::json!({"conditions": [{"type": t, "status": s, "message": "m"}]});
        assert_eq!(
            health(&object(condition("Ready", "True"))),
            (Health::Healthy, "Ready True: m".to_string())
        );
        assert_eq!(
            health(&object(condition("Available", "False"))).0,
            Health::Degraded
        );
        assert_eq!(
            health(&object(condition("Ready", "Unknown"))).0,
            Health::Progressing
        );
        let (h, why) = health(&object(serde_json::json!({"phase": "Running"})));
        assert_eq!(h, Health::Unknown, "{why}");
        assert!(!h.is_trouble());
        assert!(Health::Missing.is_trouble());
    }
}
