//! What the Job controller decides from a Job and its pods: pure, table-tested.
//!
//! Kubernetes' rules: `completions` (default 1) successes, at most `parallelism` (default 1)
//! pods at a time; without `completions` a work queue (done when one pod succeeded and none
//! runs). More than `backoffLimit` (default 6) failures fail the Job, counting restarts in
//! place under `restartPolicy: OnFailure`; so does running past `activeDeadlineSeconds`. A
//! failed pod is replaced after a back-off of 10 s doubling per failure (at most 6 min).

use std::time::Duration;

use chrono::{DateTime, Utc};
use keel_schema::types::batch::{Job, JobStatus};
use keel_schema::types::meta::Condition;
use keel_schema::types::pod::{Pod, PodPhase};

use crate::controllers::pods;

const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(360);

/// How a Job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    Complete,
    Failed { reason: String, message: String },
}

/// A pod to act on: its name and the version read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub name: String,
    pub version: u64,
}

/// One pass's decisions.
#[derive(Debug, PartialEq)]
pub struct Decision {
    /// The status to hold (written when it differs).
    pub status: JobStatus,
    /// How the Job ended, now or before.
    pub finished: Option<Finished>,
    /// It had ended before this pass (its status already says so).
    pub finished_before: bool,
    /// Pods to make from the template.
    pub create: usize,
    /// Extra active pods to delete, newest first.
    pub delete: Vec<PodRef>,
    /// Active pods to stop once the outcome is written.
    pub stop: Vec<PodRef>,
    /// When to look again (a back-off ending, the deadline).
    pub next_look: Option<Duration>,
}

/// The Job's spec, defaulted and bounded.
struct Spec {
    work_queue: bool,
    completions: i64,
    parallelism: i64,
    backoff_limit: i64,
    on_failure: bool,
}

impl Spec {
    fn of(job: &Job) -> Spec {
        let bounded = |v: Option<i64>| v.unwrap_or(1).clamp(0, i64::from(i32::MAX));
        let on_failure = job
            .spec
            .template
            .as_ref()
            .and_then(|t| t.spec.restart_policy.as_deref())
            == Some("OnFailure");
        Spec {
            work_queue: job.spec.completions.is_none(),
            completions: bounded(job.spec.completions),
            parallelism: bounded(job.spec.parallelism),
            backoff_limit: job.spec.backoff_limit.unwrap_or(6).max(0),
            on_failure,
        }
    }
}

/// What the pods say.
struct Tally {
    succeeded: i64,
    failed: i64,
    /// Restarts in place of active pods, counted under OnFailure.
    restarts: i64,
    /// When the last failed pod finished.
    last_failure: Option<DateTime<Utc>>,
    active: Vec<(DateTime<Utc>, PodRef)>,
}

impl Tally {
    fn of(owned: &[(&Pod, u64)], spec: &Spec) -> Tally {
        let phase_is = |p: &Pod, phase| p.phase() == Some(phase);
        let failed: Vec<&Pod> = owned
            .iter()
            .filter(|(p, _)| phase_is(p, PodPhase::Failed))
            .map(|(p, _)| *p)
            .collect();
        let active = owned.iter().filter(|(p, _)| pods::is_active(p));
        // Under OnFailure a failing container restarts in place: its restarts are the
        // failures that count toward backoffLimit, as in Kubernetes.
        let restarts = if spec.on_failure {
            active
                .clone()
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
        Tally {
            succeeded: owned
                .iter()
                .filter(|(p, _)| phase_is(p, PodPhase::Succeeded))
                .count() as i64,
            failed: failed.len() as i64,
            restarts,
            last_failure: failed.iter().filter_map(|p| finished_at(p)).max(),
            active: active
                .map(|(p, version)| {
                    let created = p.metadata.creation_timestamp.unwrap_or_default();
                    let name = p.metadata.name().to_string();
                    (
                        created,
                        PodRef {
                            name,
                            version: *version,
                        },
                    )
                })
                .collect(),
        }
    }
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

/// How the Job ended, as its status says.
pub fn finished(job: &Job) -> Option<Finished> {
    let c = job
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?;
    Some(if c.type_ == "Complete" {
        Finished::Complete
    } else {
        Finished::Failed {
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
        }
    })
}

/// How the Job ends in this pass, if it does.
fn reached(
    job: &Job,
    spec: &Spec,
    tally: &Tally,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Finished> {
    let done = if spec.work_queue {
        tally.succeeded > 0 && tally.active.is_empty()
    } else {
        tally.succeeded >= spec.completions
    };
    if done {
        return Some(Finished::Complete);
    }
    if tally.failed.saturating_add(tally.restarts) > spec.backoff_limit {
        return Some(Finished::Failed {
            reason: "BackoffLimitExceeded".into(),
            message: "Job has reached the specified backoff limit".into(),
        });
    }
    let deadline = job
        .spec
        .active_deadline_seconds
        .and_then(chrono::Duration::try_seconds)
        .and_then(|d| start.checked_add_signed(d));
    if deadline.is_some_and(|d| d <= now) {
        return Some(Finished::Failed {
            reason: "DeadlineExceeded".into(),
            message: "Job was active longer than specified deadline".into(),
        });
    }
    None
}

fn condition(finished: &Finished, now: DateTime<Utc>) -> Condition {
    let (type_, reason, message) = match finished {
        Finished::Complete => ("Complete", None, None),
        Finished::Failed { reason, message } => {
            ("Failed", Some(reason.clone()), Some(message.clone()))
        }
    };
    Condition {
        type_: type_.into(),
        status: "True".into(),
        last_probe_time: Some(now),
        last_transition_time: Some(now),
        reason,
        message,
        ..Default::default()
    }
}

/// The decisions for `job` over the pods it controls (each with the version read).
pub fn decide(job: &Job, owned: &[(&Pod, u64)], now: DateTime<Utc>) -> Decision {
    let spec = Spec::of(job);
    let mut tally = Tally::of(owned, &spec);
    let mut status = job.status.clone().unwrap_or_default();
    let start = *status.start_time.get_or_insert(now);
    let before = finished(job);
    let finished = before
        .clone()
        .or_else(|| reached(job, &spec, &tally, start, now));
    if let (Some(f), None) = (&finished, &before) {
        if *f == Finished::Complete {
            status.completion_time = Some(now);
        }
        status
            .conditions
            .get_or_insert_with(Vec::new)
            .push(condition(f, now));
    }
    let mut decision = Decision {
        status,
        finished_before: before.is_some(),
        finished: finished.clone(),
        create: 0,
        delete: Vec::new(),
        stop: Vec::new(),
        next_look: None,
    };
    if finished.is_some() {
        decision.stop = tally.active.iter().map(|(_, p)| p.clone()).collect();
    } else {
        run_pods(&spec, &mut tally, start, job, now, &mut decision);
    }
    count(&mut decision, job, &tally);
    decision
}

/// How many pods run: extras go (newest first), missing ones are made after the back-off.
fn run_pods(
    spec: &Spec,
    tally: &mut Tally,
    start: DateTime<Utc>,
    job: &Job,
    now: DateTime<Utc>,
    decision: &mut Decision,
) {
    let active = tally.active.len() as i64;
    let want = if spec.work_queue {
        // After one success no new worker starts; running ones finish their work.
        if tally.succeeded > 0 {
            active
        } else {
            spec.parallelism
        }
    } else {
        spec.parallelism
            .min(spec.completions - tally.succeeded)
            .max(0)
    };
    if active > want {
        tally
            .active
            .sort_by_key(|(created, _)| std::cmp::Reverse(*created));
        let extra = usize::try_from(active - want).unwrap_or(0);
        decision.delete = tally
            .active
            .iter()
            .take(extra)
            .map(|(_, p)| p.clone())
            .collect();
    } else if active < want {
        match backoff_left(tally, now) {
            Some(wait) => decision.next_look = Some(wait),
            None => decision.create = usize::try_from(want - active).unwrap_or(0),
        }
    }
    if let Some(deadline) = job.spec.active_deadline_seconds {
        let left = chrono::Duration::try_seconds(deadline)
            .and_then(|d| start.checked_add_signed(d))
            .and_then(|at| (at - now).to_std().ok());
        if let Some(left) = left {
            decision.next_look = Some(decision.next_look.map_or(left, |n| n.min(left)));
        }
    }
}

/// After failures, how long is left of the back-off since the last one.
fn backoff_left(tally: &Tally, now: DateTime<Utc>) -> Option<Duration> {
    if tally.failed == 0 {
        return None;
    }
    let delay = BACKOFF_BASE
        .saturating_mul(1u32 << (tally.failed - 1).min(10) as u32)
        .min(BACKOFF_MAX);
    let ready_at = tally
        .last_failure?
        .checked_add_signed(chrono::Duration::from_std(delay).ok()?)?;
    // A finish time the agent reported far in the future: no wait.
    (ready_at > now).then(|| (ready_at - now).to_std().unwrap_or_default())
}

/// The counts in the status. A finished Job's counts are its record: pods removed afterwards
/// (by hand, or with their node) do not undo work that was done.
fn count(decision: &mut Decision, job: &Job, tally: &Tally) {
    let finished_before = decision.finished_before;
    let kept = |now: i64, before: Option<i64>| {
        if finished_before {
            now.max(before.unwrap_or(0))
        } else {
            now
        }
    };
    let before = job.status.as_ref();
    let status = &mut decision.status;
    status.active = Some(if decision.finished.is_some() {
        0
    } else {
        tally.active.len() as i64
    });
    status.succeeded = Some(kept(tally.succeeded, before.and_then(|s| s.succeeded)));
    status.failed = Some(kept(tally.failed, before.and_then(|s| s.failed)));
}

#[cfg(test)]
mod tests;
