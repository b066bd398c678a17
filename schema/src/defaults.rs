//! Kubernetes defaults, filled in after validation so that a manifest that leaves a field out
//! and one that spells out the default are the same object (the diff in step C relies on it).

use base64::Engine;

use crate::intorstr::IntOrString;
use crate::object::Object;
use crate::types::apps::{
    DaemonSet, DaemonSetUpdateStrategy, Deployment, DeploymentStrategy, RollingUpdate, StatefulSet,
    StatefulSetUpdateStrategy,
};
use crate::types::core::{ClientIpConfig, ReplicationController, SecretData, ServiceSpec};
use crate::types::pod::{PodSpec, PodTemplateSpec, Probe};
use crate::types::storage::PersistentVolumeClaimSpec;

pub const DEFAULT_NAMESPACE: &str = "default";
pub const DEFAULT_GRACE_SECONDS: i64 = 30;
const DEFAULT_FILE_MODE: i64 = 0o644;

fn set<T>(field: &mut Option<T>, value: T) {
    if field.is_none() {
        *field = Some(value);
    }
}

/// `Always` for `:latest` or untagged images, else `IfNotPresent`, as Kubernetes does.
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn probe_defaults(p: &mut Probe) {
    set(&mut p.initial_delay_seconds, 0);
    set(&mut p.period_seconds, 10);
    set(&mut p.timeout_seconds, 1);
    set(&mut p.success_threshold, 1);
    set(&mut p.failure_threshold, 3);
    if let Some(h) = &mut p.http_get {
        set(&mut h.path, "/".to_string());
        set(&mut h.scheme, "HTTP".to_string());
    }
}

pub fn pod_spec_defaults(spec: &mut PodSpec, restart_default: Option<&str>) {
    if let Some(r) = restart_default {
        set(&mut spec.restart_policy, r.to_string());
    }
    set(
        &mut spec.termination_grace_period_seconds,
        DEFAULT_GRACE_SECONDS,
    );
    for c in spec.all_containers_mut() {
        if let Some(image) = c.image.as_deref() {
            let policy = default_pull_policy(image).to_string();
            set(&mut c.image_pull_policy, policy);
        }
        for p in c.ports.iter_mut().flatten() {
            set(&mut p.protocol, "TCP".to_string());
        }
        for probe in [
            &mut c.liveness_probe,
            &mut c.readiness_probe,
            &mut c.startup_probe,
        ]
        .into_iter()
        .flatten()
        {
            probe_defaults(probe);
        }
    }
    for v in spec.volumes.iter_mut().flatten() {
        if let Some(cm) = &mut v.config_map {
            set(&mut cm.default_mode, DEFAULT_FILE_MODE);
        }
        if let Some(s) = &mut v.secret {
            set(&mut s.default_mode, DEFAULT_FILE_MODE);
        }
    }
}

/// A User or Group subject's API group is RBAC's when left out.
fn subject_defaults(subjects: Option<&mut Vec<crate::types::rbac::Subject>>) {
    for s in subjects.into_iter().flatten() {
        if matches!(s.kind.as_str(), "User" | "Group") {
            set(&mut s.api_group, "rbac.authorization.k8s.io".to_string());
        }
    }
}

/// A Job's defaults, for a Job and for a CronJob's template alike.
fn job_spec_defaults(spec: &mut crate::types::batch::JobSpec) {
    // As Kubernetes: both absent means one pod to completion; parallelism alone is a work
    // queue (completions stays unset).
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    set(&mut spec.parallelism, 1);
    set(&mut spec.backoff_limit, 6);
    template_defaults(&mut spec.template, None);
}

fn template_defaults(t: &mut Option<PodTemplateSpec>, restart_default: Option<&str>) {
    if let Some(t) = t {
        pod_spec_defaults(&mut t.spec, restart_default);
    }
}

fn service_defaults(spec: &mut ServiceSpec) {
    set(&mut spec.type_, "ClusterIP".to_string());
    set(&mut spec.session_affinity, "None".to_string());
    if spec.session_affinity.as_deref() == Some("ClientIP") {
        let config = spec
            .session_affinity_config
            .get_or_insert_with(Default::default);
        let client = config.client_ip.get_or_insert_with(ClientIpConfig::default);
        set(&mut client.timeout_seconds, 10800);
    }
    for p in spec.ports.iter_mut().flatten() {
        set(&mut p.protocol, "TCP".to_string());
        let unset = match &p.target_port {
            None | Some(IntOrString::Int(0)) => true,
            Some(IntOrString::Str(s)) => s.is_empty(),
            Some(IntOrString::Int(_)) => false,
        };
        if unset {
            p.target_port = Some(IntOrString::Int(p.port));
        }
    }
}

fn quarter() -> IntOrString {
    IntOrString::Str("25%".to_string())
}

/// Fills in every default of `obj` and merges a Secret's `stringData` into `data`.
pub fn apply_defaults(obj: &mut Object) {
    if obj.info().namespaced {
        let meta = obj.meta_mut();
        if meta.namespace.as_deref().is_none_or(str::is_empty) {
            meta.namespace = Some(DEFAULT_NAMESPACE.to_string());
        }
    }
    match obj {
        Object::Pod(p) => pod_spec_defaults(&mut p.spec, Some("Always")),
        Object::RoleBinding(b) => subject_defaults(b.subjects.as_mut()),
        Object::ClusterRoleBinding(b) => subject_defaults(b.subjects.as_mut()),
        Object::HorizontalPodAutoscaler(h) => crate::types::autoscaling::set_defaults(&mut h.spec),
        Object::Ingress(_)
        | Object::IngressClass(_)
        | Object::NetworkPolicy(_)
        | Object::PodDisruptionBudget(_)
        | Object::ResourceQuota(_)
        | Object::LimitRange(_)
        | Object::ServiceAccount(_)
        | Object::Role(_)
        | Object::ClusterRole(_)
        | Object::CustomResourceDefinition(_)
        | Object::Custom(_) => {}
        Object::Service(s) => service_defaults(&mut s.spec),
        Object::ReplicationController(rc) => rc_defaults(rc),
        Object::ReplicaSet(rs) => {
            set(&mut rs.spec.replicas, 1);
            template_defaults(&mut rs.spec.template, Some("Always"));
        }
        Object::Deployment(d) => deployment_defaults(d),
        Object::DaemonSet(ds) => daemon_set_defaults(ds),
        Object::StatefulSet(s) => stateful_set_defaults(s),
        Object::PersistentVolumeClaim(c) => claim_defaults(&mut c.spec),
        Object::CronJob(c) => {
            set(&mut c.spec.concurrency_policy, "Allow".to_string());
            set(&mut c.spec.suspend, false);
            set(&mut c.spec.successful_jobs_history_limit, 3);
            set(&mut c.spec.failed_jobs_history_limit, 1);
            job_spec_defaults(&mut c.spec.job_template.spec);
        }
        Object::Job(j) => job_spec_defaults(&mut j.spec),
        Object::Secret(s) => {
            set(&mut s.type_, "Opaque".to_string());
            if let Some(plain) = s.string_data.take() {
                let data = s.data.get_or_insert_with(SecretData::default);
                for (k, v) in plain.0 {
                    data.0
                        .insert(k, base64::engine::general_purpose::STANDARD.encode(v));
                }
            }
        }
        Object::ConfigMap(_)
        | Object::Namespace(_)
        | Object::Node(_)
        | Object::Endpoints(_)
        | Object::Event(_)
        | Object::ControllerRevision(_)
        | Object::PersistentVolume(_) => {}
    }
}

/// As Kubernetes' default StorageClass admission (keel's is `local-path`).
fn claim_defaults(spec: &mut PersistentVolumeClaimSpec) {
    set(
        &mut spec.storage_class_name,
        crate::types::storage::LOCAL_PATH.to_string(),
    );
    set(&mut spec.volume_mode, "Filesystem".to_string());
}

fn stateful_set_defaults(sts: &mut StatefulSet) {
    let spec = &mut sts.spec;
    set(&mut spec.replicas, 1);
    set(&mut spec.revision_history_limit, 10);
    set(&mut spec.pod_management_policy, "OrderedReady".to_string());
    template_defaults(&mut spec.template, Some("Always"));
    let strategy = spec
        .update_strategy
        .get_or_insert_with(StatefulSetUpdateStrategy::default);
    set(&mut strategy.type_, "RollingUpdate".to_string());
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy.rolling_update.get_or_insert_with(Default::default);
        set(&mut ru.partition, 0);
    }
    for claim in spec.volume_claim_templates.iter_mut().flatten() {
        claim_defaults(&mut claim.spec);
    }
    let retention = spec
        .persistent_volume_claim_retention_policy
        .get_or_insert_with(Default::default);
    set(&mut retention.when_deleted, "Retain".to_string());
    set(&mut retention.when_scaled, "Retain".to_string());
}

fn rc_defaults(rc: &mut ReplicationController) {
    set(&mut rc.spec.replicas, 1);
    template_defaults(&mut rc.spec.template, Some("Always"));
    // As Kubernetes: selector and the RC's own labels default to the template's.
    let labels = rc
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.labels.clone());
    if let Some(labels) = labels.filter(|l| !l.is_empty()) {
        if rc.spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
            rc.spec.selector = Some(labels.clone());
        }
        if rc.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            rc.metadata.labels = Some(labels);
        }
    }
}

fn deployment_defaults(d: &mut Deployment) {
    set(&mut d.spec.replicas, 1);
    set(&mut d.spec.revision_history_limit, 10);
    set(&mut d.spec.progress_deadline_seconds, 600);
    template_defaults(&mut d.spec.template, Some("Always"));
    let strategy = d
        .spec
        .strategy
        .get_or_insert_with(DeploymentStrategy::default);
    set(&mut strategy.type_, "RollingUpdate".to_string());
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdate::default);
        set(&mut ru.max_surge, quarter());
        set(&mut ru.max_unavailable, quarter());
    }
}

fn daemon_set_defaults(ds: &mut DaemonSet) {
    set(&mut ds.spec.revision_history_limit, 10);
    template_defaults(&mut ds.spec.template, Some("Always"));
    let strategy = ds
        .spec
        .update_strategy
        .get_or_insert_with(DaemonSetUpdateStrategy::default);
    set(&mut strategy.type_, "RollingUpdate".to_string());
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdate::default);
        set(&mut ru.max_unavailable, IntOrString::Int(1));
        set(&mut ru.max_surge, IntOrString::Int(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        let table = [
            ("busybox", "Always"),
            ("busybox:latest", "Always"),
            ("busybox:1.36", "IfNotPresent"),
            ("localhost:5000/web", "Always"),
            ("localhost:5000/web:2", "IfNotPresent"),
            ("web@sha256:abcd", "IfNotPresent"),
        ];
        for (image, want) in table {
            assert_eq!(default_pull_policy(image), want, "{image}");
        }
    }
}
