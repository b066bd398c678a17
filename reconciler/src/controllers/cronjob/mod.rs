//! CronJobs: a Job from `jobTemplate` at each time of `schedule` (in `timeZone`), as
//! Kubernetes' cronjob controller makes them.
//!
//! - Each run's Job is named `NAME-<minutes since the epoch>` and controlled by the
//!   CronJob, so a time runs once whoever (whichever leader) makes it; it carries the
//!   scheduled time as an annotation.
//! - Only the most recent missed time runs, and not when it is older than
//!   `startingDeadlineSeconds`; `concurrencyPolicy` Forbid skips a run while one is active,
//!   Replace deletes the active ones first; `suspend` starts nothing.
//! - Finished Jobs beyond `successfulJobsHistoryLimit` (3) and `failedJobsHistoryLimit` (1)
//!   are deleted, oldest first; their pods go with them.
//!
//! [`schedule`] decides, purely and with the time given; [`CronJobController::reconcile`]
//! observes and acts, and looks again when the next run is due.

pub mod schedule;

use chrono::{DateTime, Utc};
use keel_schema::types::batch::{CronJob, Job};
use keel_schema::types::core::EventType;
use keel_schema::{Kind, Object};
use keel_store::{ObjectKey, Stored};

use super::runtime::{Action, Controller, Ctx, Raced, Result};
use super::{keys_of_kind, owner_keys, pods};
use crate::cache::{Cache, Change};
use schedule::{JobInfo, SCHEDULED_AT};

pub struct CronJobController;

impl Controller for CronJobController {
    type Key = ObjectKey;
    const NAME: &'static str = "cronjob";
    const COMPONENT: &'static str = "cronjob-controller";

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of_kind(cache, Kind::CronJob)
    }

    fn keys_for(&self, change: &Change, cache: &Cache, out: &mut Vec<ObjectKey>) {
        owner_keys(change, Kind::CronJob, Kind::Job, cache, out);
    }

    fn subject(&self, key: &ObjectKey) -> Option<ObjectKey> {
        Some(key.clone())
    }

    async fn reconcile(&self, key: &ObjectKey, ctx: &Ctx) -> Result<Action> {
        let Some(stored) = ctx.cache().get(key) else {
            return Ok(Action::Done);
        };
        let Object::CronJob(cron) = &stored.object else {
            return Ok(Action::Done);
        };
        let uid = cron.metadata.uid.clone().unwrap_or_default();
        let jobs: Vec<JobInfo> = ctx
            .cache()
            .dependents(&uid)
            .iter()
            .filter_map(|s| match &s.object {
                Object::Job(j) if pods::controlled_by(&j.metadata, &uid) => {
                    Some(job_info(j, s.resource_version))
                }
                _ => None,
            })
            .collect();
        let now = Utc::now();
        let decision = schedule::decide(cron, &jobs, now);
        let component = Self::COMPONENT;
        for note in &decision.notes {
            let type_ = if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            };
            ctx.events().object(
                &stored.object,
                type_,
                note.reason,
                note.message.clone(),
                component,
            );
        }
        let mut first_error = None;
        for (name, version) in &decision.delete {
            let job = ObjectKey::new(Kind::Job, &key.namespace, name);
            if let Err(e) = ctx.delete(&job, *version).await.or_raced() {
                first_error.get_or_insert(e);
            }
        }
        if let Some(at) = decision.create {
            let job = job_for(cron, &stored, at);
            let name = job.metadata.name().to_string();
            match ctx.create(Object::Job(job)).await.or_raced() {
                Ok(Some(_)) => ctx.events().object(
                    &stored.object,
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!("Created job {name}"),
                    component,
                ),
                // Made already (by an earlier pass that lost its status write).
                Ok(None) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if first_error.is_none() && cron.status.as_ref() != Some(&decision.status) {
            let mut updated = cron.clone();
            updated.status = Some(decision.status.clone());
            if let Err(e) = ctx
                .update(Object::CronJob(updated), stored.resource_version)
                .await
                .or_raced()
            {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(decision
                .next_look
                // A moment past the minute, so the time is due when the pass runs (and
                // never a tight loop, whatever the clock says).
                .map(|d| {
                    d.max(std::time::Duration::from_secs(1)) + std::time::Duration::from_millis(200)
                })
                .map_or(Action::Done, Action::RequeueAfter)),
        }
    }
}

/// What the decision needs of a Job.
fn job_info(job: &Job, version: u64) -> JobInfo {
    let annotated = job
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SCHEDULED_AT))
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let is_true = |type_: &str| {
        job.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == "True")
            .map(|c| c.last_transition_time)
    };
    let (succeeded, finished_at) = match (is_true("Complete"), is_true("Failed")) {
        (Some(t), _) => (
            Some(true),
            t.or(job.status.as_ref().and_then(|s| s.completion_time)),
        ),
        (None, Some(t)) => (Some(false), t),
        (None, None) => (None, None),
    };
    JobInfo {
        name: job.metadata.name().to_string(),
        uid: job.metadata.uid.clone().unwrap_or_default(),
        version,
        scheduled: annotated,
        created: job.metadata.creation_timestamp,
        succeeded,
        finished_at,
    }
}

/// The Job of the run scheduled for `at`: the template's labels, annotations and spec,
/// controlled by the CronJob.
fn job_for(cron: &CronJob, stored: &Stored, at: DateTime<Utc>) -> Job {
    let template = &cron.spec.job_template;
    let mut job = Job {
        spec: template.spec.clone(),
        ..Default::default()
    };
    job.metadata.name = Some(schedule::job_name(cron.metadata.name(), at));
    job.metadata.namespace = cron.metadata.namespace.clone();
    job.metadata.labels.clone_from(&template.metadata.labels);
    let annotations = job
        .metadata
        .annotations
        .insert(template.metadata.annotations.clone().unwrap_or_default());
    annotations.insert(
        SCHEDULED_AT.to_string(),
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    job.metadata.owner_references = Some(vec![pods::reference_to(&stored.object)]);
    job
}
