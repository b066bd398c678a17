//! Jobs: run pods until `completions` (default 1) succeeded, at most `parallelism` (default 1)
//! at a time, giving up after more than `backoffLimit` (default 6) failed pods or after
//! `activeDeadlineSeconds`, as Kubernetes' job controller does.
//!
//! - Pods are the Job's by controller reference; they carry `job-name` and `controller-uid`
//!   labels. Failed pods stay (they count, and their logs are there to read).
//! - A failed pod is replaced after a back-off of 10 s doubling per failure (at most 6 min).
//! - Status: active, succeeded, failed, startTime, completionTime, and a `Complete` or
//!   `Failed` condition (`BackoffLimitExceeded`, `DeadlineExceeded`); then active pods stop.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use keel_schema::Object;
use keel_schema::types::batch::Job;
use keel_schema::types::meta::Condition;
use keel_schema::types::pod::{Pod, PodPhase};

use super::pods;
use super::{Action, Controller, ControllerError, Ctx, Result, keys_of_kind, owner_keys, runner};
use crate::cache::Change;
use keel_schema::Kind;
use keel_schema::types::core::EventType;
use keel_store::{ObjectKey, StoreError};

pub struct JobController;

const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(360);

fn finished(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

/// When a pod finished (its last container's end), for the retry back-off.
fn finished_at(pod: &Pod) -> Option<DateTime<Utc>> {
    pod.status
        .as_ref()?
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at)
        .max()
}

fn condition(type_: &str, reason: &str, message: &str) -> Condition {
    let now = Utc::now();
    Condition {
        type_: type_.into(),
        status: "True".into(),
        last_probe_time: Some(now),
        last_transition_time: Some(now),
        reason: (!reason.is_empty()).then(|| reason.into()),
        message: (!message.is_empty()).then(|| message.into()),
        ..Default::default()
    }
}

impl Controller for JobController {
    type Key = ObjectKey;
    const NAME: &'static str = "job";

    fn all_keys(&self, ctx: &Ctx) -> Vec<ObjectKey> {
        keys_of_kind(ctx, Kind::Job)
    }

    fn keys_for(&self, change: &Change, ctx: &Ctx, out: &mut Vec<ObjectKey>) {
        owner_keys(change, Kind::Job, Kind::Pod, ctx, out);
    }

    async fn reconcile(&self, key: &ObjectKey, ctx: &Ctx) -> Result<Action> {
        let Some(stored) = ctx.cache.get(key) else {
            return Ok(Action::Done);
        };
        let Object::Job(job) = &stored.object else {
            return Ok(Action::Done);
        };
        let Some(template) = job.spec.template.as_ref() else {
            return Err(ControllerError::Invalid(format!(
                "{key}: spec.template: Required value"
            )));
        };
        let uid = job.metadata.uid.clone().unwrap_or_default();
        // Without completions, a work queue: `parallelism` pods, done when one succeeded
        // and none runs any more.
        let work_queue = job.spec.completions.is_none();
        let completions = job
            .spec
            .completions
            .unwrap_or(1)
            .clamp(0, i64::from(i32::MAX));
        let parallelism = job
            .spec
            .parallelism
            .unwrap_or(1)
            .clamp(0, i64::from(i32::MAX));
        let backoff_limit = job.spec.backoff_limit.unwrap_or(6).max(0);
        let owned: Vec<(Pod, u64)> = ctx
            .cache
            .dependents(&uid)
            .iter()
            .filter_map(|s| match &s.object {
                Object::Pod(p) if pods::controlled_by(&p.metadata, &uid) => {
                    Some((p.clone(), s.resource_version))
                }
                _ => None,
            })
            .collect();
        let phase_is = |p: &Pod, phase: PodPhase| p.phase() == Some(phase);
        let succeeded = owned
            .iter()
            .filter(|(p, _)| phase_is(p, PodPhase::Succeeded))
            .count() as i64;
        let failed_pods: Vec<&Pod> = owned
            .iter()
            .filter(|(p, _)| phase_is(p, PodPhase::Failed))
            .map(|(p, _)| p)
            .collect();
        // Under OnFailure a failing container restarts in place: its restarts are the
        // failures that count toward backoffLimit, as in Kubernetes.
        let on_failure = template.spec.restart_policy.as_deref() == Some("OnFailure");
        let restarts: i64 = if on_failure {
            owned
                .iter()
                .filter(|(p, _)| pods::is_active(p))
                .flat_map(|(p, _)| {
                    p.status
                        .iter()
                        .flat_map(|s| s.container_statuses.iter().flatten())
                })
                .map(|c| c.restart_count.max(0))
                .fold(0i64, i64::saturating_add)
        } else {
            0
        };
        let failed = failed_pods.len() as i64;
        let mut active: Vec<&(Pod, u64)> =
            owned.iter().filter(|(p, _)| pods::is_active(p)).collect();
        let now = Utc::now();
        let mut status = job.status.clone().unwrap_or_default();
        let start = *status.start_time.get_or_insert(now);
        let mut writes = Vec::new();
        let mut next_look: Option<Duration> = None;

        let outcome = if let Some(done) = finished(job) {
            Some(done.to_string())
        } else if (!work_queue && succeeded >= completions)
            || (work_queue && succeeded > 0 && active.is_empty())
        {
            status.completion_time = Some(now);
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(condition("Complete", "", ""));
            Some("Complete".into())
        } else if failed.saturating_add(restarts) > backoff_limit {
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(condition(
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                ));
            Some("Failed".into())
        } else if let Some(deadline) = job
            .spec
            .active_deadline_seconds
            .and_then(chrono::Duration::try_seconds)
            .and_then(|d| start.checked_add_signed(d))
            && deadline <= now
        {
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(condition(
                    "Failed",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                ));
            Some("Failed".into())
        } else {
            None
        };

        let mut first_error: Option<ControllerError> = None;
        if outcome.is_none() {
            let want = if work_queue {
                // After one success no new worker starts; running ones finish their work.
                if succeeded > 0 {
                    active.len() as i64
                } else {
                    parallelism
                }
            } else {
                parallelism.min(completions - succeeded).max(0)
            } as usize;
            if active.len() > want {
                // Newest first, as for ReplicaSets.
                active.sort_by_key(|(p, _)| std::cmp::Reverse(p.metadata.creation_timestamp));
                let extra = active.len() - want;
                for (p, version) in active.drain(..).take(extra) {
                    let key = ObjectKey::new(Kind::Pod, &key.namespace, p.metadata.name());
                    match ctx.delete(&key, *version).await {
                        Ok(Some(w)) => writes.push(w),
                        Ok(None) => {}
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
            } else if active.len() < want {
                // After failures, wait out the back-off since the last one.
                let wait = if failed > 0 {
                    let delay = BACKOFF_BASE
                        .saturating_mul(1u32 << (failed - 1).min(10) as u32)
                        .min(BACKOFF_MAX);
                    let last = failed_pods.iter().filter_map(|p| finished_at(p)).max();
                    last.and_then(|t| {
                        // A finish time the agent reported far in the future: no wait.
                        let ready_at =
                            t.checked_add_signed(chrono::Duration::from_std(delay).ok()?)?;
                        (ready_at > now).then(|| (ready_at - now).to_std().unwrap_or_default())
                    })
                } else {
                    None
                };
                match wait {
                    Some(d) => next_look = Some(d),
                    None => {
                        for _ in active.len()..want {
                            let mut pod = pods::from_template(
                                template,
                                &key.namespace,
                                pods::generate_name(job.metadata.name()),
                                pods::reference_to(&stored.object),
                            );
                            let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
                            labels.insert("job-name".into(), job.metadata.name().into());
                            labels.insert("controller-uid".into(), uid.clone());
                            match ctx.create(Object::Pod(pod)).await {
                                Ok(w) => {
                                    ctx.events.object(
                                        &stored.object,
                                        EventType::Normal,
                                        "SuccessfulCreate",
                                        format!("Created pod: {}", w.key.name),
                                        "job-controller",
                                    );
                                    writes.push(w);
                                }
                                Err(e) => {
                                    first_error = Some(e);
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            if let Some(deadline) = job.spec.active_deadline_seconds {
                let left = chrono::Duration::try_seconds(deadline)
                    .and_then(|d| start.checked_add_signed(d))
                    .and_then(|at| (at - now).to_std().ok());
                if let Some(left) = left {
                    next_look = Some(next_look.map_or(left, |n| n.min(left)));
                }
            }
        }
        let active_now = owned.iter().filter(|(p, _)| pods::is_active(p)).count() as i64;
        status.active = Some(if outcome.is_some() { 0 } else { active_now });
        // A finished Job's counts are its record: pods removed afterwards (by hand, or with
        // their node) do not undo work that was done.
        let kept = |now: i64, before: Option<i64>| {
            if finished(job).is_some() {
                now.max(before.unwrap_or(0))
            } else {
                now
            }
        };
        status.succeeded = Some(kept(
            succeeded,
            job.status.as_ref().and_then(|s| s.succeeded),
        ));
        status.failed = Some(kept(failed, job.status.as_ref().and_then(|s| s.failed)));
        // The outcome is written before anything else happens, and told once, after it is
        // written: a failure below then never repeats the event.
        let mut recorded = finished(job).is_some();
        if job.status.as_ref() != Some(&status) {
            let mut updated = job.clone();
            updated.status = Some(status.clone());
            match ctx
                .update(Object::Job(updated), stored.resource_version)
                .await
            {
                Ok(w) => {
                    writes.push(w);
                    if let Some(done) = outcome.as_deref()
                        && !recorded
                    {
                        recorded = true;
                        let (type_, reason, message) =
                            match status.conditions.iter().flatten().last() {
                                Some(c) if done == "Failed" => (
                                    EventType::Warning,
                                    c.reason.clone().unwrap_or_default(),
                                    c.message.clone().unwrap_or_default(),
                                ),
                                _ => (
                                    EventType::Normal,
                                    "Completed".to_string(),
                                    "Job completed".to_string(),
                                ),
                            };
                        ctx.events.object(
                            &stored.object,
                            type_,
                            &reason,
                            message,
                            "job-controller",
                        );
                    }
                }
                Err(ControllerError::Store(
                    StoreError::Conflict { .. } | StoreError::NotFound(_),
                )) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if outcome.is_some() && recorded {
            // Finished and written: nothing more runs.
            for (p, version) in active.drain(..) {
                let key = ObjectKey::new(Kind::Pod, &key.namespace, p.metadata.name());
                match ctx.delete(&key, *version).await {
                    Ok(Some(w)) => writes.push(w),
                    Ok(None) => {}
                    // Changed meanwhile (its status, say): the change brings the Job back.
                    Err(ControllerError::Store(StoreError::Conflict { .. })) => {}
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        // Settled even after an error, so a retry never acts on a view without these writes.
        runner::settle(ctx, &writes).await;
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(next_look.map_or(Action::Done, Action::RequeueAfter))
    }
}
