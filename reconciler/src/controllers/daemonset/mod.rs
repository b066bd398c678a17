//! DaemonSets: one pod on every ready node that matches the template's `nodeSelector` and
//! whose `NoSchedule`/`NoExecute` taints the template tolerates. Pods are bound to their node
//! at creation (the scheduler leaves bound pods alone). Pods on nodes that no longer qualify
//! are deleted; a second pod on one node too.
//!
//! A changed template rolls out with `RollingUpdate` (default): at most `maxUnavailable`
//! (default 1) nodes at a time lose their pod, which the next pass makes again from the new
//! template. `OnDelete` replaces a pod only when it is deleted. Pods carry the template hash
//! in `controller-revision-hash`.
//!
//! [`decide`] decides, purely; [`DaemonSetController::reconcile`] observes and acts.

pub mod decide;

use chrono::Utc;
use keel_schema::types::apps::DaemonSet;
use keel_schema::types::core::EventType;
use keel_schema::types::pod::{Pod, PodTemplateSpec};
use keel_schema::{Kind, Object};
use keel_store::{ObjectKey, Stored};

use super::deployment::template_hash;
use super::runtime::{Action, Controller, Ctx, Raced, ReconcileError, Result};
use super::{keys_of_kind, owner_keys, pods};
use crate::cache::{Cache, Change};
use decide::{NodeFit, REVISION_LABEL};

pub struct DaemonSetController;

impl Controller for DaemonSetController {
    type Key = ObjectKey;
    const NAME: &'static str = "daemonset";
    const COMPONENT: &'static str = "daemonset-controller";

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of_kind(cache, Kind::DaemonSet)
    }

    fn keys_for(&self, change: &Change, cache: &Cache, out: &mut Vec<ObjectKey>) {
        match change.kind() {
            // A node came, went or changed: every DaemonSet may want it.
            Some(Kind::Node) => out.extend(self.all_keys(cache)),
            _ => owner_keys(change, Kind::DaemonSet, Kind::Pod, cache, out),
        }
    }

    fn subject(&self, key: &ObjectKey) -> Option<ObjectKey> {
        Some(key.clone())
    }

    async fn reconcile(&self, key: &ObjectKey, ctx: &Ctx) -> Result<Action> {
        let Some(stored) = ctx.cache().get(key) else {
            return Ok(Action::Done);
        };
        let Object::DaemonSet(ds) = &stored.object else {
            return Ok(Action::Done);
        };
        let Some(template) = ds.spec.template.as_ref() else {
            let why = format!("{key}: spec.template: Required value");
            return Err(ReconcileError::invalid("InvalidSpec", why));
        };
        let hash = template_hash(template);
        let nodes: Vec<NodeFit> = ctx
            .cache()
            .list(Kind::Node, None)
            .iter()
            .filter_map(|s| match &s.object {
                Object::Node(n) => {
                    let (qualifies, ready) = decide::wanted_on(ds, n);
                    let name = n.metadata.name().to_string();
                    Some(NodeFit {
                        name,
                        qualifies,
                        ready,
                    })
                }
                _ => None,
            })
            .collect();
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let dependents = ctx.cache().dependents(&uid);
        let refs: Vec<(&Pod, u64)> = dependents
            .iter()
            .filter_map(|s| match &s.object {
                Object::Pod(p) if pods::controlled_by(&p.metadata, &uid) && pods::is_active(p) => {
                    Some((p, s.resource_version))
                }
                _ => None,
            })
            .collect();
        let plan = decide::plan(ds, &hash, &nodes, &refs, Utc::now()).map_err(|_| {
            let why =
                format!("{key}: spec.updateStrategy.rollingUpdate.maxUnavailable: invalid value");
            ReconcileError::invalid("InvalidSpec", why)
        })?;
        // Every step is tried; the first failure is returned after the others.
        let mut first_error = create(&stored, ds, template, &hash, &plan.create, ctx)
            .await
            .err();
        for p in &plan.delete {
            let pod_key = ObjectKey::new(Kind::Pod, &key.namespace, &p.name);
            if let Err(e) = ctx.delete(&pod_key, p.version).await.or_raced() {
                first_error.get_or_insert(e);
            }
        }
        if ds.status.as_ref() != Some(&plan.status) {
            let mut updated = ds.clone();
            updated.status = Some(plan.status);
            let written = ctx
                .update(Object::DaemonSet(updated), stored.resource_version)
                .await
                .or_raced();
            if let Err(e) = written {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(plan.next_look.map_or(Action::Done, Action::RequeueAfter)),
        }
    }
}

/// A pod from the template on each of `nodes`, bound at creation; stops at the first failure.
async fn create(
    stored: &Stored,
    ds: &DaemonSet,
    template: &PodTemplateSpec,
    hash: &str,
    nodes: &[String],
    ctx: &Ctx,
) -> Result<()> {
    for node in nodes {
        let mut pod = pods::from_template(
            template,
            ds.metadata.namespace(),
            pods::generate_name(ds.metadata.name()),
            pods::reference_to(&stored.object),
        );
        pod.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(REVISION_LABEL.into(), hash.to_string());
        pod.spec.node_name = Some(node.clone());
        let written = ctx.create(Object::Pod(pod)).await?;
        ctx.events().object(
            &stored.object,
            EventType::Normal,
            "SuccessfulCreate",
            format!("Created pod: {}", written.key.name),
            DaemonSetController::COMPONENT,
        );
    }
    Ok(())
}
