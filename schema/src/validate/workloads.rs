//! Controllers of pods: ReplicationController, ReplicaSet, Deployment, DaemonSet,
//! StatefulSet, Job, CronJob.

use super::meta::{validate_label_map, validate_labels_and_annotations, validate_selector_parts};
use super::pod::{JOB_RESTART, validate_pod_spec};
use super::{Errors, names};
use crate::intorstr::IntOrString;
use crate::path::FieldPath;
use crate::selector::{LabelSelector, Selector};
use crate::types::apps::{DaemonSetSpec, DeploymentSpec, ReplicaSetSpec, RollingUpdate};
use crate::types::batch::JobSpec;
use crate::types::core::ReplicationControllerSpec;
use crate::types::pod::PodTemplateSpec;

/// Controllers that keep pods running allow only `Always`.
pub const KEEP_RUNNING: &[&str] = &["Always"];

fn template_labels(t: &PodTemplateSpec) -> crate::selector::Labels {
    t.metadata.labels.clone().unwrap_or_default()
}

/// Validates `spec.template`, returning it when present.
fn validate_template<'a>(
    template: Option<&'a PodTemplateSpec>,
    spec: &FieldPath,
    errs: &mut Errors,
    restart: &[&str],
) -> Option<&'a PodTemplateSpec> {
    let path = spec.field("template");
    let Some(t) = template else {
        errs.required(&path);
        return None;
    };
    validate_labels_and_annotations(&t.metadata, &path.field("metadata"), errs);
    validate_pod_spec(&t.spec, &path.field("spec"), errs, restart);
    Some(t)
}

fn show_labels(labels: &crate::selector::Labels) -> String {
    serde_json::to_string(labels).unwrap_or_default()
}

fn selector_mismatch(spec: &FieldPath, labels: &crate::selector::Labels, errs: &mut Errors) {
    errs.push(
        &spec.field("template").field("metadata").field("labels"),
        format!(
            "Invalid value: {}: `selector` does not match template `labels`",
            show_labels(labels)
        ),
    );
}

/// The `apps/v1` object selector: required, non-empty, well-formed, matching the template.
fn validate_label_selector(
    sel: Option<&LabelSelector>,
    template: Option<&PodTemplateSpec>,
    spec: &FieldPath,
    kind: &str,
    errs: &mut Errors,
) {
    let path = spec.field("selector");
    let Some(sel) = sel else {
        errs.required(&path);
        return;
    };
    let exprs = sel.match_expressions.as_deref().unwrap_or(&[]);
    let labels = sel.match_labels.as_ref();
    if exprs.is_empty() && labels.is_none_or(|l| l.is_empty()) {
        errs.invalid(&path, "{}", format!("empty selector is invalid for {kind}"));
        return;
    }
    let well_formed = validate_selector_parts(sel, &path, errs);
    if let (true, Some(t)) = (well_formed, template) {
        let labels = template_labels(t);
        if let Ok(compiled) = Selector::from_label_selector(Some(sel))
            && !compiled.matches(&labels)
        {
            selector_mismatch(spec, &labels, errs);
        }
    }
}

pub fn validate_rc(spec: &ReplicationControllerSpec, path: &FieldPath, errs: &mut Errors) {
    errs.non_negative(&path.field("replicas"), spec.replicas);
    errs.non_negative(&path.field("minReadySeconds"), spec.min_ready_seconds);
    let template = validate_template(spec.template.as_ref(), path, errs, KEEP_RUNNING);
    let selector = spec.selector.clone().unwrap_or_default();
    validate_label_map(&selector, &path.field("selector"), errs);
    if let Some(t) = template {
        let labels = template_labels(t);
        // As in Kubernetes, an absent selector defaults to the template's labels.
        if selector.is_empty() && labels.is_empty() {
            errs.required(&path.field("selector"));
        } else if !selector.is_empty() && !Selector::from_map(&selector).matches(&labels) {
            selector_mismatch(path, &labels, errs);
        }
    }
}

pub fn validate_rs(spec: &ReplicaSetSpec, path: &FieldPath, errs: &mut Errors) {
    errs.non_negative(&path.field("replicas"), spec.replicas);
    errs.non_negative(&path.field("minReadySeconds"), spec.min_ready_seconds);
    let template = validate_template(spec.template.as_ref(), path, errs, KEEP_RUNNING);
    validate_label_selector(spec.selector.as_ref(), template, path, "replicaset", errs);
}

/// `maxSurge`/`maxUnavailable`: counts or percentages, not both zero.
fn validate_rolling(
    ru: &RollingUpdate,
    path: &FieldPath,
    errs: &mut Errors,
    surge_defaults_to_zero: bool,
) {
    let mut zero = [false, false];
    for (i, (field, value)) in [
        ("maxUnavailable", &ru.max_unavailable),
        ("maxSurge", &ru.max_surge),
    ]
    .into_iter()
    .enumerate()
    {
        let at = path.field(field);
        match value {
            None => {}
            Some(IntOrString::Int(n)) => {
                errs.non_negative(&at, Some(*n));
                zero[i] = *n == 0;
            }
            Some(v @ IntOrString::Str(s)) => match v.percent() {
                Some(Ok(p)) => {
                    zero[i] = p == 0;
                    if field == "maxUnavailable" && p > 100 {
                        errs.invalid(&at, s, "must not be greater than 100%");
                    }
                }
                _ => errs.invalid(
                    &at,
                    s,
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%')",
                ),
            },
        }
    }
    // An absent field takes its default: 25% for Deployments; for DaemonSets maxSurge
    // defaults to 0 and maxUnavailable to 1.
    let surge_zero = zero[1] || (ru.max_surge.is_none() && surge_defaults_to_zero);
    if zero[0] && surge_zero {
        errs.invalid(
            &path.field("maxUnavailable"),
            0,
            "may not be 0 when `maxSurge` is 0",
        );
    }
}

pub fn validate_deployment(spec: &DeploymentSpec, path: &FieldPath, errs: &mut Errors) {
    errs.non_negative(&path.field("replicas"), spec.replicas);
    errs.non_negative(&path.field("minReadySeconds"), spec.min_ready_seconds);
    errs.non_negative(
        &path.field("revisionHistoryLimit"),
        spec.revision_history_limit,
    );
    if let Some(p) = spec.progress_deadline_seconds {
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        if p <= min_ready {
            errs.invalid(
                &path.field("progressDeadlineSeconds"),
                p,
                "must be greater than minReadySeconds",
            );
        }
    }
    let template = validate_template(spec.template.as_ref(), path, errs, KEEP_RUNNING);
    validate_label_selector(spec.selector.as_ref(), template, path, "deployment", errs);
    if let Some(strategy) = &spec.strategy {
        let strategy = Strategy {
            field: "strategy",
            kind: strategy.type_.as_deref(),
            rolling_update: strategy.rolling_update.as_ref(),
            other: "Recreate",
            surge_defaults_to_zero: false,
        };
        strategy.validate(path, errs);
    }
}

/// A Deployment's `strategy` or a DaemonSet's `updateStrategy`: `RollingUpdate` (the
/// default) with its parameters, or the one other type, which takes none.
struct Strategy<'a> {
    field: &'static str,
    kind: Option<&'a str>,
    rolling_update: Option<&'a RollingUpdate>,
    other: &'static str,
    surge_defaults_to_zero: bool,
}

impl Strategy<'_> {
    fn validate(&self, spec: &FieldPath, errs: &mut Errors) {
        let sp = spec.field(self.field);
        match self.kind.unwrap_or("RollingUpdate") {
            "RollingUpdate" => {
                if let Some(ru) = self.rolling_update {
                    validate_rolling(
                        ru,
                        &sp.field("rollingUpdate"),
                        errs,
                        self.surge_defaults_to_zero,
                    );
                }
            }
            kind if kind == self.other => {
                if self.rolling_update.is_some() {
                    errs.forbidden(
                        &sp.field("rollingUpdate"),
                        format!(
                            "may not be specified when {} `type` is '{kind}'",
                            self.field
                        ),
                    );
                }
            }
            other => errs.unsupported(&sp.field("type"), other, &[self.other, "RollingUpdate"]),
        }
    }
}

pub fn validate_daemonset(spec: &DaemonSetSpec, path: &FieldPath, errs: &mut Errors) {
    errs.non_negative(&path.field("minReadySeconds"), spec.min_ready_seconds);
    errs.non_negative(
        &path.field("revisionHistoryLimit"),
        spec.revision_history_limit,
    );
    let template = validate_template(spec.template.as_ref(), path, errs, KEEP_RUNNING);
    validate_label_selector(spec.selector.as_ref(), template, path, "daemonset", errs);
    if let Some(strategy) = &spec.update_strategy {
        let strategy = Strategy {
            field: "updateStrategy",
            kind: strategy.type_.as_deref(),
            rolling_update: strategy.rolling_update.as_ref(),
            other: "OnDelete",
            surge_defaults_to_zero: true,
        };
        strategy.validate(path, errs);
    }
}

/// A StatefulSet. Its pods are named NAME-<ordinal> and are their own host names, so the
/// name is a DNS label short enough for both and for its revisions' label.
pub fn validate_statefulset(
    set: &crate::types::apps::StatefulSet,
    path: &FieldPath,
    errs: &mut Errors,
) {
    let name = set.metadata.name();
    // NAME-<10-character revision hash> is a label value (at most 63).
    if name.len() > 52 {
        let at = FieldPath::new("metadata").field("name");
        errs.invalid(&at, name, "must be no more than 52 characters");
    } else if !name.is_empty() && names::dns1123_label(name).is_some() {
        let at = FieldPath::new("metadata").field("name");
        errs.name(&at, name, names::dns1123_label);
    }
    let spec = &set.spec;
    errs.non_negative(&path.field("replicas"), spec.replicas);
    errs.non_negative(&path.field("minReadySeconds"), spec.min_ready_seconds);
    errs.non_negative(
        &path.field("revisionHistoryLimit"),
        spec.revision_history_limit,
    );
    if let Some(service) = spec.service_name.as_deref().filter(|s| !s.is_empty()) {
        errs.name(&path.field("serviceName"), service, names::dns1035_label);
    }
    errs.one_of(
        &path.field("podManagementPolicy"),
        spec.pod_management_policy.as_deref(),
        &["OrderedReady", "Parallel"],
    );
    // Both are int32 in Kubernetes.
    let at_most_int32 = |at: &FieldPath, value: Option<i64>, errs: &mut Errors| {
        if let Some(v) = value.filter(|v| *v > i64::from(i32::MAX)) {
            errs.invalid(at, v, "must be less than or equal to 2147483647");
        }
    };
    if let Some(ordinals) = &spec.ordinals {
        let at = path.field("ordinals").field("start");
        errs.non_negative(&at, ordinals.start);
        at_most_int32(&at, ordinals.start, errs);
    }
    if let Some(policy) = &spec.persistent_volume_claim_retention_policy {
        let at = path.field("persistentVolumeClaimRetentionPolicy");
        for (field, value) in [
            ("whenDeleted", &policy.when_deleted),
            ("whenScaled", &policy.when_scaled),
        ] {
            errs.one_of(&at.field(field), value.as_deref(), &["Retain", "Delete"]);
        }
    }
    let claims = validate_claim_templates(spec, path, errs);
    if let Some(strategy) = &spec.update_strategy {
        let at = path.field("updateStrategy");
        match strategy.type_.as_deref().unwrap_or("RollingUpdate") {
            "RollingUpdate" => {
                if let Some(ru) = &strategy.rolling_update {
                    let at = at.field("rollingUpdate");
                    errs.non_negative(&at.field("partition"), ru.partition);
                    at_most_int32(&at.field("partition"), ru.partition, errs);
                    if ru.max_unavailable.is_some() {
                        errs.forbidden(
                            &at.field("maxUnavailable"),
                            "keel updates a StatefulSet one pod at a time (maxUnavailable is alpha in Kubernetes, off by default)",
                        );
                    }
                }
            }
            "OnDelete" => {
                if strategy.rolling_update.is_some() {
                    errs.forbidden(
                        &at.field("rollingUpdate"),
                        "may not be specified when updateStrategy `type` is 'OnDelete'",
                    );
                }
            }
            other => errs.unsupported(&at.field("type"), other, &["OnDelete", "RollingUpdate"]),
        }
    }
    // The pods get a volume per claim template, which their mounts may name.
    let with_claims = spec.template.clone().map(|mut t| {
        let volumes = t.spec.volumes.get_or_insert_with(Vec::new);
        for name in claims {
            volumes.push(crate::types::pod::Volume {
                name: name.clone(),
                persistent_volume_claim: Some(
                    crate::types::pod::PersistentVolumeClaimVolumeSource {
                        claim_name: format!("{name}-{}-0", set.metadata.name()),
                        read_only: None,
                    },
                ),
                ..Default::default()
            });
        }
        t
    });
    let template = validate_template(with_claims.as_ref(), path, errs, KEEP_RUNNING);
    validate_label_selector(spec.selector.as_ref(), template, path, "statefulset", errs);
}

/// `volumeClaimTemplates`: each a claim keel can provide, named as a pod volume that the
/// template does not already have; returns the names of the valid ones.
fn validate_claim_templates(
    spec: &crate::types::apps::StatefulSetSpec,
    path: &FieldPath,
    errs: &mut Errors,
) -> Vec<String> {
    let declared: std::collections::BTreeSet<&str> = spec
        .template
        .iter()
        .flat_map(|t| t.spec.volumes.iter().flatten())
        .map(|v| v.name.as_str())
        .collect();
    let mut names = Vec::new();
    for (i, claim) in spec.volume_claim_templates.iter().flatten().enumerate() {
        let at = path.field("volumeClaimTemplates").index(i);
        let name = claim.metadata.name();
        let name_at = at.field("metadata").field("name");
        if name.is_empty() {
            errs.required(&name_at);
        } else if names::dns1123_label(name).is_some() {
            errs.name(&name_at, name, names::dns1123_label);
        } else if declared.contains(name) || names.iter().any(|n| n == name) {
            errs.duplicate(&name_at, name);
        } else {
            names.push(name.to_string());
        }
        super::claims::validate_claim_spec(&claim.spec, &at.field("spec"), errs);
    }
    names
}

pub fn validate_job(spec: &JobSpec, path: &FieldPath, errs: &mut Errors) {
    errs.non_negative(&path.field("completions"), spec.completions);
    errs.non_negative(&path.field("parallelism"), spec.parallelism);
    errs.non_negative(&path.field("backoffLimit"), spec.backoff_limit);
    errs.positive(
        &path.field("activeDeadlineSeconds"),
        spec.active_deadline_seconds,
    );
    validate_template(spec.template.as_ref(), path, errs, JOB_RESTART);
}

/// A CronJob: its schedule and time zone as the controller will read them, its policies,
/// and its Job template as a Job's.
pub fn validate_cronjob(job: &crate::types::batch::CronJob, path: &FieldPath, errs: &mut Errors) {
    // Its Jobs are named NAME-<minutes since the epoch>: 11 characters more.
    if job.metadata.name().len() > 52 {
        errs.invalid(
            &FieldPath::new("metadata").field("name"),
            job.metadata.name(),
            "must be no more than 52 characters",
        );
    }
    let spec = &job.spec;
    if spec.schedule.trim().is_empty() {
        errs.required(&path.field("schedule"));
    } else if let Err(why) = crate::cron::Schedule::parse(&spec.schedule, None) {
        errs.invalid(&path.field("schedule"), spec.schedule.as_str(), why);
    }
    if let Some(zone) = spec.time_zone.as_deref()
        && let Err(why) = crate::cron::Schedule::parse("* * * * *", Some(zone))
    {
        errs.invalid(&path.field("timeZone"), zone, why);
    }
    errs.one_of(
        &path.field("concurrencyPolicy"),
        spec.concurrency_policy.as_deref(),
        &["Allow", "Forbid", "Replace"],
    );
    errs.non_negative(
        &path.field("startingDeadlineSeconds"),
        spec.starting_deadline_seconds,
    );
    errs.non_negative(
        &path.field("successfulJobsHistoryLimit"),
        spec.successful_jobs_history_limit,
    );
    errs.non_negative(
        &path.field("failedJobsHistoryLimit"),
        spec.failed_jobs_history_limit,
    );
    let job_spec = path.field("jobTemplate").field("spec");
    validate_job(&spec.job_template.spec, &job_spec, errs);
}
