//! What a CronJob's pass does, decided purely from the CronJob, its Jobs and the time, so
//! any moment can be tested: the run that is due (the most recent unmet schedule time, not
//! older than `startingDeadlineSeconds`), what `concurrencyPolicy` makes of active Jobs,
//! which finished Jobs the history limits let go, and the status.

use std::time::Duration;

use chrono::{DateTime, Utc};
use keel_schema::cron::Schedule;
use keel_schema::types::batch::{CronJob, CronJobStatus};
use keel_schema::types::meta::ObjectReference;

/// The annotation a CronJob's Job carries with the time it was scheduled for.
pub const SCHEDULED_AT: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Kubernetes' bound on missed times it will count before it says so.
const MAX_MISSED: usize = 100;

/// How far back a pass looks for a missed time.
const LOOK_BACK_DAYS: i64 = 90;

/// One of the CronJob's Jobs, as the decision needs it.
#[derive(Debug, Clone)]
pub struct JobInfo {
    pub name: String,
    pub uid: String,
    pub version: u64,
    pub scheduled: Option<DateTime<Utc>>,
    pub created: Option<DateTime<Utc>>,
    /// `Some(true)` complete, `Some(false)` failed, `None` still active.
    pub succeeded: Option<bool>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Something to tell in an Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// Start the run scheduled for this time (the Job's name says it).
    pub create: Option<DateTime<Utc>>,
    /// Jobs to delete: active ones `Replace` stops, finished ones past the history limits.
    pub delete: Vec<(String, u64)>,
    pub status: CronJobStatus,
    pub notes: Vec<Note>,
    /// When the next run is due.
    pub next_look: Option<Duration>,
}

/// The name of the Job scheduled for `at`: the CronJob's name and the minute, as
/// Kubernetes names them, so a run is made once whoever makes it.
pub fn job_name(cron: &str, at: DateTime<Utc>) -> String {
    format!("{cron}-{}", at.timestamp().div_euclid(60))
}

pub fn decide(cron: &CronJob, jobs: &[JobInfo], now: DateTime<Utc>) -> Decision {
    let spec = &cron.spec;
    let name = cron.metadata.name();
    let previous = cron.status.clone().unwrap_or_default();
    let mut d = Decision::default();
    let active: Vec<&JobInfo> = jobs.iter().filter(|j| j.succeeded.is_none()).collect();
    history(
        jobs,
        spec.successful_jobs_history_limit.unwrap_or(3),
        Some(true),
        &mut d,
    );
    history(
        jobs,
        spec.failed_jobs_history_limit.unwrap_or(1),
        Some(false),
        &mut d,
    );
    let last_success = jobs
        .iter()
        .filter(|j| j.succeeded == Some(true))
        .filter_map(|j| j.finished_at)
        .chain(previous.last_successful_time)
        .max();
    d.status = CronJobStatus {
        active: None,
        last_schedule_time: previous.last_schedule_time,
        last_successful_time: last_success,
    };
    let mut still_active: Vec<&JobInfo> = active.clone();
    let schedule = match Schedule::parse(&spec.schedule, spec.time_zone.as_deref()) {
        Ok(s) => s,
        Err(why) => {
            d.notes.push(Note {
                warning: true,
                reason: "InvalidSchedule",
                message: format!("invalid schedule {:?}: {why}", spec.schedule),
            });
            d.status.active = refs(&still_active, cron);
            return d;
        }
    };
    let next = schedule.next_after(now);
    d.next_look = next.map(|t| (t - now).to_std().unwrap_or_default());
    if spec.suspend == Some(true) {
        d.status.active = refs(&still_active, cron);
        return d;
    }
    // The most recent time not yet run: after the last one scheduled (or the CronJob's
    // creation), no earlier than the starting deadline allows.
    let mut earliest = previous
        .last_schedule_time
        .or(cron.metadata.creation_timestamp)
        .unwrap_or(now);
    if let Some(deadline) = spec.starting_deadline_seconds {
        earliest = earliest.max(now - chrono::Duration::seconds(deadline.max(0)));
    }
    // After a long outage, times older than this are not looked at (a per-minute
    // schedule is then 130,000 steps, once).
    earliest = earliest.max(now - chrono::Duration::days(LOOK_BACK_DAYS));
    let mut due = None;
    let mut missed = 0;
    let mut at = earliest;
    while let Some(t) = schedule.next_after(at).filter(|t| *t <= now) {
        due = Some(t);
        missed += 1;
        at = t;
    }
    if missed > MAX_MISSED {
        d.notes.push(Note {
            warning: true,
            reason: "TooManyMissedTimes",
            message: format!(
                "too many missed start times ({missed}); set or lower startingDeadlineSeconds or check clock skew"
            ),
        });
    }
    let Some(due) = due else {
        d.status.active = refs(&still_active, cron);
        return d;
    };
    let wanted = job_name(name, due);
    if jobs.iter().any(|j| j.name == wanted) {
        d.status.last_schedule_time = Some(due);
        d.status.active = refs(&still_active, cron);
        return d;
    }
    match spec.concurrency_policy.as_deref().unwrap_or("Allow") {
        "Forbid" if !active.is_empty() => {
            // Skipped, not recorded: once the active run ends, this time may still be due.
            d.notes.push(Note {
                warning: false,
                reason: "JobAlreadyActive",
                message: format!(
                    "Not starting the run for {}: a Job is still active and concurrencyPolicy is Forbid",
                    due.to_rfc3339()
                ),
            });
            d.status.active = refs(&still_active, cron);
            return d;
        }
        "Replace" => {
            for j in &active {
                d.delete.push((j.name.clone(), j.version));
                d.notes.push(Note {
                    warning: false,
                    reason: "SuccessfulDelete",
                    message: format!("Deleted job {}", j.name),
                });
            }
            still_active.clear();
        }
        _ => {}
    }
    d.create = Some(due);
    d.status.last_schedule_time = Some(due);
    d.status.active = refs(&still_active, cron);
    d
}

/// Finished Jobs of one outcome beyond `limit`, oldest first, to delete.
fn history(jobs: &[JobInfo], limit: i64, outcome: Option<bool>, d: &mut Decision) {
    let mut finished: Vec<&JobInfo> = jobs.iter().filter(|j| j.succeeded == outcome).collect();
    finished.sort_by_key(|j| (j.finished_at.or(j.created), j.name.clone()));
    let keep = usize::try_from(limit.max(0)).unwrap_or(usize::MAX);
    let excess = finished.len().saturating_sub(keep);
    d.delete.extend(
        finished[..excess]
            .iter()
            .map(|j| (j.name.clone(), j.version)),
    );
}

fn refs(active: &[&JobInfo], cron: &CronJob) -> Option<Vec<ObjectReference>> {
    let list: Vec<ObjectReference> = active
        .iter()
        .map(|j| ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            namespace: cron.metadata.namespace.clone(),
            name: Some(j.name.clone()),
            uid: Some(j.uid.clone()),
            ..Default::default()
        })
        .collect();
    (!list.is_empty()).then_some(list)
}

#[cfg(test)]
mod tests;
