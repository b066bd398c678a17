//! DaemonSets: one pod on every ready node that matches the template's `nodeSelector` and
//! whose `NoSchedule`/`NoExecute` taints the template tolerates. Pods are bound to their node
//! at creation (the scheduler leaves bound pods alone). Pods on nodes that no longer qualify
//! are deleted; a second pod on one node too.
//!
//! A changed template rolls out with `RollingUpdate` (default): at most `maxUnavailable`
//! (default 1) nodes at a time lose their pod, which the next pass makes again from the new
//! template. `OnDelete` replaces a pod only when it is deleted. Pods carry the template hash
//! in `controller-revision-hash`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use keel_schema::Object;
use keel_schema::types::apps::{DaemonSet, DaemonSetStatus};
use keel_schema::types::core::Node;

use super::deployment::template_hash;
use super::pods::{self, Availability};
use super::{Action, Controller, ControllerError, Ctx, Result, keys_of_kind, owner_keys, runner};
use crate::cache::Change;
use keel_schema::Kind;
use keel_schema::types::core::EventType;
use keel_store::{ObjectKey, StoreError, Stored};

pub const REVISION_LABEL: &str = "controller-revision-hash";

pub struct DaemonSetController;

/// Where `ds`'s pods belong on `node`: (it qualifies, it is ready). A pod is made only on
/// a ready node, but one already there stays while the node is not ready (the eviction
/// timeout decides about those, as for any pod).
fn wanted_on(ds: &DaemonSet, node: &Node) -> (bool, bool) {
    let Some(template) = ds.spec.template.as_ref() else {
        return (false, false);
    };
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let labels = node.metadata.labels();
    let selected = template
        .spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let tolerations = template.spec.tolerations.clone().unwrap_or_default();
    let tolerated = node.spec.taints.iter().flatten().all(|t| {
        !(t.effect == "NoSchedule" || t.effect == "NoExecute")
            || keel_scheduler::tolerates(
                &tolerations,
                &t.key,
                t.value.as_deref().unwrap_or(""),
                &t.effect,
            )
    });
    (selected && tolerated, ready)
}

impl Controller for DaemonSetController {
    type Key = ObjectKey;
    const NAME: &'static str = "daemonset";

    fn all_keys(&self, ctx: &Ctx) -> Vec<ObjectKey> {
        keys_of_kind(ctx, Kind::DaemonSet)
    }

    fn keys_for(&self, change: &Change, ctx: &Ctx, out: &mut Vec<ObjectKey>) {
        match change.kind() {
            // A node came, went or changed: every DaemonSet may want it.
            Some(Kind::Node) => out.extend(self.all_keys(ctx)),
            _ => owner_keys(change, Kind::DaemonSet, Kind::Pod, ctx, out),
        }
    }

    async fn reconcile(&self, key: &ObjectKey, ctx: &Ctx) -> Result<Action> {
        let Some(stored) = ctx.cache.get(key) else {
            return Ok(Action::Done);
        };
        let Object::DaemonSet(ds) = &stored.object else {
            return Ok(Action::Done);
        };
        let Some(template) = ds.spec.template.as_ref() else {
            return Err(ControllerError::Invalid(format!(
                "{key}: spec.template: Required value"
            )));
        };
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let hash = template_hash(template);
        let nodes: BTreeMap<String, (bool, bool)> = ctx
            .cache
            .list(Kind::Node, None)
            .iter()
            .filter_map(|s| match &s.object {
                Object::Node(n) => Some((n.metadata.name().to_string(), wanted_on(ds, n))),
                _ => None,
            })
            .collect();
        // Active pods by node, oldest first.
        let mut by_node: BTreeMap<String, Vec<Arc<Stored>>> = BTreeMap::new();
        for s in ctx.cache.dependents(&uid) {
            if let Object::Pod(p) = &s.object
                && pods::controlled_by(&p.metadata, &uid)
                && pods::is_active(p)
            {
                let node = p.spec.node_name.clone().unwrap_or_default();
                by_node.entry(node).or_default().push(s.clone());
            }
        }
        for list in by_node.values_mut() {
            list.sort_by_key(|s| s.object.meta().creation_timestamp);
        }
        let now = Utc::now();
        let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
        let pod_of = |s: &Arc<Stored>| match &s.object {
            Object::Pod(p) => Some(p.clone()),
            _ => None,
        };
        let mut writes = Vec::new();
        let mut deletes: Vec<Arc<Stored>> = Vec::new();
        let mut creates: Vec<String> = Vec::new();
        let (mut desired, mut current, mut misscheduled, mut ready, mut available, mut updated) =
            (0i64, 0i64, 0i64, 0i64, 0i64, 0i64);
        let mut next_look = None;
        let mut unavailable = 0i64;
        let mut outdated: Vec<Arc<Stored>> = Vec::new();
        for (node, (qualifies, node_ready)) in &nodes {
            let list = by_node.remove(node).unwrap_or_default();
            if !qualifies {
                misscheduled += list.len() as i64;
                deletes.extend(list);
                continue;
            }
            let Some(first) = list.first() else {
                if *node_ready {
                    desired += 1;
                    creates.push(node.clone());
                    unavailable += 1;
                }
                continue;
            };
            desired += 1;
            current += 1;
            deletes.extend(list.iter().skip(1).cloned());
            let Some(p) = pod_of(first) else { continue };
            if pods::is_ready(&p) {
                ready += 1;
            }
            match pods::available(&p, min_ready, now) {
                Availability::Yes => available += 1,
                Availability::After(d) => {
                    unavailable += 1;
                    next_look = Some(next_look.map_or(d, |n: std::time::Duration| n.min(d)));
                }
                Availability::No => unavailable += 1,
            }
            if p.metadata.labels().get(REVISION_LABEL).map(String::as_str) == Some(hash.as_str()) {
                updated += 1;
            } else {
                outdated.push(first.clone());
            }
        }
        // Pods on nodes that are gone.
        for (_, list) in by_node {
            misscheduled += list.len() as i64;
            deletes.extend(list);
        }
        let strategy = ds.spec.update_strategy.as_ref();
        let on_delete = strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete");
        if !on_delete {
            let max_unavailable = strategy
                .and_then(|s| s.rolling_update.as_ref())
                .and_then(|r| r.max_unavailable.as_ref())
                .map(|m| m.scaled(desired, true))
                .transpose()
                .map_err(|_| {
                    ControllerError::Invalid(format!(
                        "{key}: spec.updateStrategy.rollingUpdate.maxUnavailable: invalid value"
                    ))
                })?
                .unwrap_or(1)
                .max(1);
            // Unavailable outdated pods go first; they cost no availability.
            outdated.sort_by_key(|s| pod_of(s).is_some_and(|p| pods::is_ready(&p)));
            let mut budget = max_unavailable - unavailable;
            for s in outdated {
                let is_unavailable = pod_of(&s).is_none_or(|p| !pods::is_ready(&p));
                if is_unavailable {
                    deletes.push(s);
                } else if budget > 0 {
                    budget -= 1;
                    deletes.push(s);
                }
            }
        }
        let mut first_error: Option<ControllerError> = None;
        for node in creates {
            let mut pod = pods::from_template(
                template,
                &key.namespace,
                pods::generate_name(ds.metadata.name()),
                pods::reference_to(&stored.object),
            );
            pod.metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert(REVISION_LABEL.into(), hash.clone());
            pod.spec.node_name = Some(node);
            let w = match ctx.create(Object::Pod(pod)).await {
                Ok(w) => w,
                Err(e) => {
                    first_error = Some(e);
                    break;
                }
            };
            ctx.events.object(
                &stored.object,
                EventType::Normal,
                "SuccessfulCreate",
                format!("Created pod: {}", w.key.name),
                "daemonset-controller",
            );
            writes.push(w);
        }
        for s in deletes {
            match ctx
                .delete(&ObjectKey::of(&s.object), s.resource_version)
                .await
            {
                Ok(Some(w)) => writes.push(w),
                Ok(None) => {}
                // Changed meanwhile: that change brings the DaemonSet back.
                Err(ControllerError::Store(StoreError::Conflict { .. })) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let status = DaemonSetStatus {
            current_number_scheduled: current,
            desired_number_scheduled: desired,
            number_misscheduled: misscheduled,
            number_ready: ready,
            number_available: Some(available),
            updated_number_scheduled: Some(updated),
            observed_generation: ds.metadata.generation,
            conditions: None,
        };
        if ds.status.as_ref() != Some(&status) {
            let mut ds = ds.clone();
            ds.status = Some(status);
            match ctx
                .update(Object::DaemonSet(ds), stored.resource_version)
                .await
            {
                Ok(w) => writes.push(w),
                Err(ControllerError::Store(
                    StoreError::Conflict { .. } | StoreError::NotFound(_),
                )) => {}
                Err(e) => return Err(e),
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
