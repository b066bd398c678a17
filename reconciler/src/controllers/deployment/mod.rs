//! Deployments: one ReplicaSet per pod template (named and labelled by the template's hash,
//! `pod-template-hash`), rolled over as Kubernetes' deployment controller does.
//!
//! - RollingUpdate: the new ReplicaSet grows while the total stays within
//!   `replicas + maxSurge` (rounded up); old ones shrink while at least
//!   `replicas - maxUnavailable` (rounded down) pods stay available; unhealthy old pods go
//!   first. Both zero means maxUnavailable 1, as Kubernetes.
//! - Recreate: old ReplicaSets go to zero, and the new one grows only once their pods are gone.
//! - A template seen before (a `git revert`) finds its old ReplicaSet by hash and scales it
//!   back up: no new ReplicaSet, and its revision becomes the newest.
//! - Old ReplicaSets at zero beyond `revisionHistoryLimit` are deleted, oldest first.
//! - Status: replicas, updatedReplicas, readyReplicas, availableReplicas,
//!   unavailableReplicas, observedGeneration, and the Available and Progressing conditions.
//!
//! [`rollout`] and [`status`] decide, purely; [`DeploymentController::reconcile`] observes
//! and acts.

pub mod rollout;
pub mod status;

use std::collections::BTreeMap;

use chrono::Utc;
use keel_schema::types::apps::Deployment;
use keel_schema::types::core::EventType;
use keel_schema::types::pod::PodTemplateSpec;
use keel_schema::{Kind, Object};
use keel_store::{ObjectKey, StoreError, Stored};

use super::runtime::{Action, Controller, Ctx, Raced, ReconcileError, Result};
use super::{keys_of_kind, owner_keys, pods};
use crate::cache::{Cache, Change};
use rollout::{BadFencepost, Rs};
pub use rollout::{REVISION_ANNOTATION, TEMPLATE_HASH_LABEL, template_hash};

pub struct DeploymentController;

impl Controller for DeploymentController {
    type Key = ObjectKey;
    const NAME: &'static str = "deployment";
    const COMPONENT: &'static str = "deployment-controller";

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of_kind(cache, Kind::Deployment)
    }

    fn keys_for(&self, change: &Change, cache: &Cache, out: &mut Vec<ObjectKey>) {
        owner_keys(change, Kind::Deployment, Kind::ReplicaSet, cache, out);
    }

    fn subject(&self, key: &ObjectKey) -> Option<ObjectKey> {
        Some(key.clone())
    }

    async fn reconcile(&self, key: &ObjectKey, ctx: &Ctx) -> Result<Action> {
        let Some(stored) = ctx.cache().get(key) else {
            return Ok(Action::Done);
        };
        let Object::Deployment(d) = &stored.object else {
            return Ok(Action::Done);
        };
        let Some(template) = d.spec.template.as_ref() else {
            return Err(invalid(key, "spec.template: Required value"));
        };
        // Kubernetes' replicas are int32: so bounded, no sum below can overflow.
        let replicas = d.spec.replicas.unwrap_or(1).clamp(0, i64::from(i32::MAX));
        let hash = template_hash(template);
        let mut rss = owned_replica_sets(d, ctx);
        let max_revision = rss.iter().map(|r| r.revision).max().unwrap_or(0);
        let pass = Pass {
            key,
            stored: &stored,
            d,
            replicas,
            max_revision,
            ctx,
        };
        let Some(new_index) = rss.iter().position(|r| r.has_hash(&hash)) else {
            if d.spec.paused != Some(true) {
                pass.create_replica_set(template, &hash, &rss).await?;
            }
            return Ok(Action::Done);
        };
        let new = rss.swap_remove(new_index);
        pass.roll(&new, &rss).await?;
        Ok(Action::Done)
    }
}

fn invalid(key: &ObjectKey, why: impl std::fmt::Display) -> ReconcileError {
    ReconcileError::invalid("InvalidSpec", format!("{key}: {why}"))
}

/// The ReplicaSets `d` controls.
fn owned_replica_sets(d: &Deployment, ctx: &Ctx) -> Vec<Rs> {
    let uid = d.metadata.uid.clone().unwrap_or_default();
    ctx.cache()
        .dependents(&uid)
        .into_iter()
        .filter_map(|s| match &s.object {
            Object::ReplicaSet(rs) if pods::controlled_by(&rs.metadata, &uid) => {
                Some(Rs::new(rs.clone(), s.resource_version))
            }
            _ => None,
        })
        .collect()
}

/// One Deployment as this pass sees it.
struct Pass<'a> {
    key: &'a ObjectKey,
    stored: &'a Stored,
    d: &'a Deployment,
    /// `spec.replicas`, defaulted and bounded.
    replicas: i64,
    /// The newest revision among its ReplicaSets.
    max_revision: i64,
    ctx: &'a Ctx,
}

impl Pass<'_> {
    fn bad_fencepost(&self, e: BadFencepost) -> ReconcileError {
        invalid(
            self.key,
            format!("spec.strategy.rollingUpdate.{}: invalid value", e.0),
        )
    }

    fn event(&self, message: String) {
        self.ctx.events().object(
            &self.stored.object,
            EventType::Normal,
            "ScalingReplicaSet",
            message,
            DeploymentController::COMPONENT,
        );
    }

    /// The first pass for a template: its ReplicaSet, at the size the strategy allows now
    /// (the next passes roll the rest).
    async fn create_replica_set(
        &self,
        template: &PodTemplateSpec,
        hash: &str,
        old: &[Rs],
    ) -> Result<()> {
        let start =
            rollout::first_size(self.d, self.replicas, old).map_err(|e| self.bad_fencepost(e))?;
        let owner = pods::reference_to(&self.stored.object);
        let rs =
            rollout::new_replica_set(self.d, owner, template, hash, start, self.max_revision + 1);
        let rs_name = rs.metadata.name().to_string();
        match self.ctx.create(Object::ReplicaSet(rs)).await {
            Ok(_) => {
                self.event(format!("Scaled up replica set {rs_name} to {start}"));
                Ok(())
            }
            Err(ReconcileError::Store(StoreError::AlreadyExists(k))) => {
                Err(ReconcileError::invalid(
                    "NameConflict",
                    format!("{k} exists and is not this Deployment's; rename or delete it"),
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// One step of the rollout: resizes, the newest revision for a template brought back,
    /// the history kept, the status.
    async fn roll(&self, new: &Rs, old: &[Rs]) -> Result<()> {
        let paused = self.d.spec.paused == Some(true);
        let scale = if paused {
            BTreeMap::new()
        } else {
            let old_active_pods = old
                .iter()
                .filter_map(|rs| rs.rs.metadata.uid.as_deref())
                .flat_map(|uid| self.ctx.cache().dependents(uid))
                .filter(|s| matches!(&s.object, Object::Pod(p) if pods::is_active(p)))
                .count();
            rollout::plan_rollout(self.d, self.replicas, new, old, old_active_pods)
                .map_err(|e| self.bad_fencepost(e))?
        };
        // A template brought back (a revert) becomes the newest revision again.
        let bump = !paused && new.revision < self.max_revision;
        for rs in std::iter::once(new).chain(old) {
            let is_new = std::ptr::eq(rs, new);
            let revision = (is_new && bump).then_some(self.max_revision + 1);
            self.resize(rs, scale.get(rs.name()).copied(), revision)
                .await?;
        }
        for rs in rollout::excess_history(self.d, old, &scale) {
            let rs_key = ObjectKey::new(Kind::ReplicaSet, &self.key.namespace, rs.name());
            self.ctx.delete(&rs_key, rs.version).await.or_raced()?;
        }
        let status = status::compute(self.d, self.replicas, new, old, Utc::now())
            .map_err(|e| self.bad_fencepost(e))?;
        if let Some(status) = status {
            let mut updated = self.d.clone();
            updated.status = Some(status);
            self.ctx
                .update(Object::Deployment(updated), self.stored.resource_version)
                .await
                .or_raced()?;
        }
        Ok(())
    }

    /// Writes `rs` with a new size and/or a new revision, when either is given.
    async fn resize(&self, rs: &Rs, size: Option<i64>, revision: Option<i64>) -> Result<()> {
        if size.is_none() && revision.is_none() {
            return Ok(());
        }
        let mut updated = rs.rs.clone();
        if let Some(n) = size {
            updated.spec.replicas = Some(n);
            let from = rs.spec_replicas();
            let way = if n > from { "up" } else { "down" };
            let name = rs.name();
            tracing::info!(deployment = %self.key, replicaset = name, from, to = n, "ScalingReplicaSet");
            self.event(format!(
                "Scaled {way} replica set {name} to {n} from {from}"
            ));
        }
        if let Some(revision) = revision {
            updated
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(REVISION_ANNOTATION.into(), revision.to_string());
        }
        self.ctx
            .update(Object::ReplicaSet(updated), rs.version)
            .await
            .or_raced()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
