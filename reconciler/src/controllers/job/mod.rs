//! Jobs: run pods until `completions` (default 1) succeeded, at most `parallelism` (default 1)
//! at a time, giving up after more than `backoffLimit` (default 6) failed pods or after
//! `activeDeadlineSeconds`, as Kubernetes' job controller does.
//!
//! - Pods are the Job's by controller reference; they carry `job-name` and `controller-uid`
//!   labels. Failed pods stay (they count, and their logs are there to read).
//! - Status: active, succeeded, failed, startTime, completionTime, and a `Complete` or
//!   `Failed` condition (`BackoffLimitExceeded`, `DeadlineExceeded`). The outcome is written
//!   before anything stops, and told (an Event) once, after it is written.
//!
//! [`accounting`] decides, purely; [`JobController::reconcile`] observes and acts.

pub mod accounting;

use chrono::Utc;
use keel_schema::types::batch::Job;
use keel_schema::types::core::EventType;
use keel_schema::types::pod::{Pod, PodTemplateSpec};
use keel_schema::{Kind, Object};
use keel_store::{ObjectKey, Stored};

use super::runtime::{Action, Controller, Ctx, Raced, ReconcileError, Result};
use super::{keys_of_kind, owner_keys, pods};
use crate::cache::{Cache, Change};
use accounting::{Decision, Finished, PodRef};

pub struct JobController;

impl Controller for JobController {
    type Key = ObjectKey;
    const NAME: &'static str = "job";
    const COMPONENT: &'static str = "job-controller";

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of_kind(cache, Kind::Job)
    }

    fn keys_for(&self, change: &Change, cache: &Cache, out: &mut Vec<ObjectKey>) {
        owner_keys(change, Kind::Job, Kind::Pod, cache, out);
    }

    fn subject(&self, key: &ObjectKey) -> Option<ObjectKey> {
        Some(key.clone())
    }

    async fn reconcile(&self, key: &ObjectKey, ctx: &Ctx) -> Result<Action> {
        let Some(stored) = ctx.cache().get(key) else {
            return Ok(Action::Done);
        };
        let Object::Job(job) = &stored.object else {
            return Ok(Action::Done);
        };
        let Some(template) = job.spec.template.as_ref() else {
            return Err(ReconcileError::invalid(
                "InvalidSpec",
                format!("{key}: spec.template: Required value"),
            ));
        };
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let dependents = ctx.cache().dependents(&uid);
        let refs: Vec<(&Pod, u64)> = dependents
            .iter()
            .filter_map(|s| match &s.object {
                Object::Pod(p) if pods::controlled_by(&p.metadata, &uid) => {
                    Some((p, s.resource_version))
                }
                _ => None,
            })
            .collect();
        let decision = accounting::decide(job, &refs, Utc::now());
        let act = Act {
            key,
            stored: &stored,
            job,
            ctx,
        };
        // Every step is tried; the first failure is returned after the others.
        let mut first_error = act.delete(&decision.delete).await.err();
        if let Err(e) = act.create(template, &uid, decision.create).await {
            first_error.get_or_insert(e);
        }
        match act.record(&decision).await {
            // Finished and written: nothing more runs.
            Ok(true) => {
                if let Err(e) = act.delete(&decision.stop).await {
                    first_error.get_or_insert(e);
                }
            }
            Ok(false) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(decision
                .next_look
                .map_or(Action::Done, Action::RequeueAfter)),
        }
    }
}

/// One Job as this pass acts on it.
struct Act<'a> {
    key: &'a ObjectKey,
    stored: &'a Stored,
    job: &'a Job,
    ctx: &'a Ctx,
}

impl Act<'_> {
    fn event(&self, type_: EventType, reason: &str, message: String) {
        let component = JobController::COMPONENT;
        self.ctx
            .events()
            .object(&self.stored.object, type_, reason, message, component);
    }

    /// Deletes `pods`; a pod that changed meanwhile stays (its change brings the Job back).
    async fn delete(&self, pods: &[PodRef]) -> Result<()> {
        let mut first_error = None;
        for p in pods {
            let key = ObjectKey::new(Kind::Pod, &self.key.namespace, &p.name);
            if let Err(e) = self.ctx.delete(&key, p.version).await.or_raced() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Makes `count` pods from the template, labelled with the Job's name and uid.
    async fn create(&self, template: &PodTemplateSpec, uid: &str, count: usize) -> Result<()> {
        for _ in 0..count {
            let mut pod = pods::from_template(
                template,
                &self.key.namespace,
                pods::generate_name(self.job.metadata.name()),
                pods::reference_to(&self.stored.object),
            );
            let labels = pod.metadata.labels.get_or_insert_with(Default::default);
            labels.insert("job-name".into(), self.job.metadata.name().into());
            labels.insert("controller-uid".into(), uid.to_string());
            let written = self.ctx.create(Object::Pod(pod)).await?;
            let message = format!("Created pod: {}", written.key.name);
            self.event(EventType::Normal, "SuccessfulCreate", message);
        }
        Ok(())
    }

    /// Writes the status when it changed, and tells a new outcome once it is written; true
    /// when the Job is finished and that is recorded.
    async fn record(&self, decision: &Decision) -> Result<bool> {
        let mut recorded = decision.finished_before;
        if self.job.status.as_ref() != Some(&decision.status) {
            let mut updated = self.job.clone();
            updated.status = Some(decision.status.clone());
            let written = self
                .ctx
                .update(Object::Job(updated), self.stored.resource_version)
                .await
                .or_raced()?;
            if written.is_some()
                && let Some(finished) = decision.finished.as_ref().filter(|_| !recorded)
            {
                recorded = true;
                match finished {
                    Finished::Failed { reason, message } => {
                        self.event(EventType::Warning, reason, message.clone())
                    }
                    Finished::Complete => {
                        self.event(EventType::Normal, "Completed", "Job completed".into())
                    }
                }
            }
        }
        Ok(decision.finished.is_some() && recorded)
    }
}
