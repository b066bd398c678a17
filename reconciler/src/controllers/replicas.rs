//! ReplicaSets and ReplicationControllers: keep `replicas` pods matching the selector,
//! created from the template, as Kubernetes' ReplicaSet controller does (one controller, two
//! kinds: they differ only in selector syntax and status type).
//!
//! - Pods are the owner's when their controller reference names its uid. Matching pods
//!   without a controller are adopted; owned pods that stopped matching are released.
//! - Missing pods are created (at most [`BURST`] per pass), extra ones deleted in
//!   Kubernetes' order: unscheduled, then pending, then not ready, then most restarted, then
//!   newest first.
//! - Status: replicas, readyReplicas, availableReplicas (ready for minReadySeconds),
//!   fullyLabeledReplicas, observedGeneration.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;
use keel_schema::Object;
use keel_schema::selector::Selector;
use keel_schema::types::apps::ReplicaSetStatus;
use keel_schema::types::core::ReplicationControllerStatus;
use keel_schema::types::pod::{Pod, PodPhase, PodTemplateSpec};
use keel_schema::validate::meta::MANAGED_BY_LABEL;

use super::pods::{self, Availability};
use super::{Action, Controller, ControllerError, Ctx, Result, keys_of_kind, runner};
use crate::cache::{Change, Written};
use keel_schema::Kind;
use keel_schema::types::core::EventType;
use keel_store::{ObjectKey, StoreError, Stored};

/// The most pods one pass creates or deletes; the next pass does the rest.
pub const BURST: usize = 500;

pub struct ReplicaController;

/// The parts of an RS or RC this controller uses.
struct Owner {
    uid: String,
    selector: Selector,
    replicas: i64,
    template: PodTemplateSpec,
    min_ready_seconds: i64,
    generation: i64,
}

fn owner_of(object: &Object) -> Result<Option<Owner>> {
    let invalid = |e: keel_schema::selector::SelectorError| {
        ControllerError::Invalid(format!("{}: spec.selector: {e}", ObjectKey::of(object)))
    };
    let (selector, replicas, template, min_ready) = match object {
        Object::ReplicaSet(rs) => (
            Selector::from_label_selector(rs.spec.selector.as_ref()).map_err(invalid)?,
            rs.spec.replicas,
            rs.spec.template.clone(),
            rs.spec.min_ready_seconds,
        ),
        Object::ReplicationController(rc) => {
            let labels = rc
                .spec
                .selector
                .clone()
                .or_else(|| rc.spec.template.as_ref()?.metadata.labels.clone())
                .unwrap_or_default();
            (
                Selector::from_map(&labels),
                rc.spec.replicas,
                rc.spec.template.clone(),
                rc.spec.min_ready_seconds,
            )
        }
        _ => return Ok(None),
    };
    let Some(template) = template else {
        return Err(ControllerError::Invalid(format!(
            "{}: spec.template: Required value",
            ObjectKey::of(object)
        )));
    };
    // An empty selector would take every pod in the namespace: validation refuses it, and
    // so does this controller for anything that got past validation.
    if selector.requirements().is_empty() {
        return Err(ControllerError::Invalid(format!(
            "{}: spec.selector: Required value: empty selectors select every pod",
            ObjectKey::of(object)
        )));
    }
    Ok(Some(Owner {
        uid: object.meta().uid.clone().unwrap_or_default(),
        selector,
        replicas: replicas.unwrap_or(1).clamp(0, i64::from(i32::MAX)),
        template,
        min_ready_seconds: min_ready.unwrap_or(0),
        generation: object.meta().generation.unwrap_or(0),
    }))
}

/// Kubernetes' order for deleting extra pods: the first ones go first.
fn deletion_rank(pod: &Pod) -> impl Ord {
    let scheduled = pod.spec.node_name.as_deref().is_some_and(|n| !n.is_empty());
    let phase = match pod.phase() {
        Some(PodPhase::Pending) | None => 0,
        Some(PodPhase::Unknown) => 1,
        Some(PodPhase::Running | PodPhase::Succeeded | PodPhase::Failed) => 2,
    };
    let restarts: i64 = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .map(|c| c.restart_count)
        .sum();
    (
        scheduled,
        phase,
        pods::is_ready(pod),
        Reverse(restarts),
        Reverse(pod.metadata.creation_timestamp),
    )
}

impl ReplicaController {
    /// Takes matching orphans and lets go of owned pods that stopped matching.
    async fn adopt_and_release(
        owner_obj: &Object,
        owner: &Owner,
        namespace: &str,
        ctx: &Ctx,
        writes: &mut Vec<Written>,
    ) -> Result<()> {
        for stored in ctx.cache.list(Kind::Pod, Some(namespace)) {
            let Object::Pod(pod) = &stored.object else {
                continue;
            };
            let matches = owner.selector.matches(pod.metadata.labels());
            let controller = pods::controller_of(&pod.metadata);
            // A pod git declares is git's: adopting it would make apply see it as derived.
            let from_git = pod.metadata.labels().contains_key(MANAGED_BY_LABEL);
            let mut pod = pod.clone();
            match controller {
                None if matches && pods::is_active(&pod) && !from_git => {
                    pod.metadata
                        .owner_references
                        .get_or_insert_with(Vec::new)
                        .push(pods::reference_to(owner_obj));
                }
                Some(r) if r.uid == owner.uid && !matches => {
                    // Left as an empty list, not none: the store keeps the old owners when
                    // a write names none (a write from git never does), and the garbage
                    // collector leaves objects without owners alone.
                    pod.metadata
                        .owner_references
                        .get_or_insert_with(Vec::new)
                        .retain(|r| r.uid != owner.uid);
                }
                _ => continue,
            }
            match ctx.update(Object::Pod(pod), stored.resource_version).await {
                Ok(w) => writes.push(w),
                // Changed meanwhile: the change queues this owner again.
                Err(ControllerError::Store(
                    StoreError::Conflict { .. } | StoreError::NotFound(_),
                )) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn create_pods(
        owner_obj: &Object,
        owner: &Owner,
        count: usize,
        ctx: &Ctx,
        writes: &mut Vec<Written>,
    ) -> Result<()> {
        let namespace = owner_obj.namespace();
        let mut names = HashSet::new();
        let mut creates = Vec::with_capacity(count);
        while creates.len() < count {
            let name = pods::generate_name(owner_obj.name());
            if !names.insert(name.clone())
                || ctx
                    .cache
                    .get(&ObjectKey::new(Kind::Pod, namespace, &name))
                    .is_some()
            {
                continue;
            }
            let pod = pods::from_template(
                &owner.template,
                namespace,
                name,
                pods::reference_to(owner_obj),
            );
            creates.push(ctx.create(Object::Pod(pod)));
        }
        let mut first_error = None;
        for result in futures_util::future::join_all(creates).await {
            match result {
                Ok(w) => {
                    ctx.events.object(
                        owner_obj,
                        EventType::Normal,
                        "SuccessfulCreate",
                        format!("Created pod: {}", w.key.name),
                        "replicaset-controller",
                    );
                    writes.push(w);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Controller for ReplicaController {
    type Key = ObjectKey;
    const NAME: &'static str = "replicaset";

    fn all_keys(&self, ctx: &Ctx) -> Vec<ObjectKey> {
        let mut keys = keys_of_kind(ctx, Kind::ReplicaSet);
        keys.extend(keys_of_kind(ctx, Kind::ReplicationController));
        keys
    }

    fn keys_for(&self, change: &Change, ctx: &Ctx, out: &mut Vec<ObjectKey>) {
        match change.kind() {
            Some(Kind::ReplicaSet | Kind::ReplicationController) => {
                out.extend(change.objects().map(ObjectKey::of).take(1));
            }
            Some(Kind::Pod) => {
                for object in change.objects() {
                    let meta = object.meta();
                    let owner = pods::controller_of(meta).map(|r| (Kind::from_name(&r.kind), r));
                    match owner {
                        Some((
                            Some(kind @ (Kind::ReplicaSet | Kind::ReplicationController)),
                            r,
                        )) => {
                            out.push(ObjectKey::new(kind, object.namespace(), &r.name));
                        }
                        Some(_) => {}
                        // An orphan: any owner in its namespace may adopt it.
                        None => {
                            for kind in [Kind::ReplicaSet, Kind::ReplicationController] {
                                out.extend(
                                    ctx.cache
                                        .list(kind, Some(object.namespace()))
                                        .iter()
                                        .map(|s| ObjectKey::of(&s.object)),
                                );
                            }
                        }
                    }
                }
            }
            Some(_) => {}
            None => out.extend(self.all_keys(ctx)),
        }
    }

    async fn reconcile(&self, key: &ObjectKey, ctx: &Ctx) -> Result<Action> {
        let Some(stored) = ctx.cache.get(key) else {
            // Deleted: the garbage collector removes its pods.
            return Ok(Action::Done);
        };
        let Some(owner) = owner_of(&stored.object)? else {
            return Ok(Action::Done);
        };
        if stored.object.meta().deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        let namespace = key.namespace.as_str();
        let mut writes = Vec::new();
        Self::adopt_and_release(&stored.object, &owner, namespace, ctx, &mut writes).await?;
        runner::settle(ctx, &writes).await;
        writes.clear();

        let owned: Vec<Arc<Stored>> = ctx
            .cache
            .dependents(&owner.uid)
            .into_iter()
            .filter(|s| {
                matches!(&s.object, Object::Pod(p) if pods::controlled_by(&p.metadata, &owner.uid))
            })
            .collect();
        let mut active: Vec<(&Pod, u64)> = owned
            .iter()
            .filter_map(|s| match &s.object {
                Object::Pod(p) if pods::is_active(p) => Some((p, s.resource_version)),
                _ => None,
            })
            .collect();
        let now = Utc::now();
        let ready = active.iter().filter(|(p, _)| pods::is_ready(p)).count();
        let mut available = 0;
        let mut next_look = None;
        for (p, _) in &active {
            match pods::available(p, owner.min_ready_seconds, now) {
                Availability::Yes => available += 1,
                Availability::After(d) => {
                    next_look = Some(next_look.map_or(d, |n: std::time::Duration| n.min(d)));
                }
                Availability::No => {}
            }
        }
        let template_labels = owner.template.metadata.labels.clone().unwrap_or_default();
        let fully_labeled = active
            .iter()
            .filter(|(p, _)| {
                template_labels
                    .iter()
                    .all(|(k, v)| p.metadata.labels().get(k) == Some(v))
            })
            .count();
        let counts = Counts {
            replicas: active.len() as i64,
            ready: ready as i64,
            available: available as i64,
            fully_labeled: fully_labeled as i64,
            generation: owner.generation,
        };

        let want = usize::try_from(owner.replicas).unwrap_or(usize::MAX);
        let mut result = Ok(());
        if active.len() < want {
            let count = (want - active.len()).min(BURST);
            result = Self::create_pods(&stored.object, &owner, count, ctx, &mut writes).await;
        } else if active.len() > want {
            active.sort_by_cached_key(|(p, _)| deletion_rank(p));
            let extra = (active.len() - want).min(BURST);
            let deletes = active[..extra].iter().map(|(p, version)| {
                let key = ObjectKey::new(Kind::Pod, namespace, p.metadata.name());
                async move { ctx.delete(&key, *version).await }
            });
            for outcome in futures_util::future::join_all(deletes).await {
                match outcome {
                    Ok(Some(w)) => {
                        ctx.events.object(
                            &stored.object,
                            EventType::Normal,
                            "SuccessfulDelete",
                            format!("Deleted pod: {}", w.key.name),
                            "replicaset-controller",
                        );
                        writes.push(w);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        if result.is_ok() {
                            result = Err(e);
                        }
                    }
                }
            }
        }
        if let Some(w) = write_status(&stored, counts, ctx).await? {
            writes.push(w);
        }
        runner::settle(ctx, &writes).await;
        result?;
        Ok(next_look.map_or(Action::Done, Action::RequeueAfter))
    }
}

/// What the status reports.
struct Counts {
    replicas: i64,
    ready: i64,
    available: i64,
    fully_labeled: i64,
    generation: i64,
}

async fn write_status(stored: &Stored, c: Counts, ctx: &Ctx) -> Result<Option<Written>> {
    let mut object = stored.object.clone();
    let changed = match &mut object {
        Object::ReplicaSet(rs) => {
            let status = ReplicaSetStatus {
                replicas: c.replicas,
                ready_replicas: Some(c.ready),
                available_replicas: Some(c.available),
                fully_labeled_replicas: Some(c.fully_labeled),
                observed_generation: Some(c.generation),
                conditions: None,
            };
            let changed = rs.status.as_ref() != Some(&status);
            rs.status = Some(status);
            changed
        }
        Object::ReplicationController(rc) => {
            let status = ReplicationControllerStatus {
                replicas: c.replicas,
                ready_replicas: Some(c.ready),
                available_replicas: Some(c.available),
                fully_labeled_replicas: Some(c.fully_labeled),
                observed_generation: Some(c.generation),
                conditions: None,
            };
            let changed = rc.status.as_ref() != Some(&status);
            rc.status = Some(status);
            changed
        }
        _ => false,
    };
    if !changed {
        return Ok(None);
    }
    match ctx.update(object, stored.resource_version).await {
        Ok(w) => Ok(Some(w)),
        // The object changed meanwhile; that change queues it again.
        Err(ControllerError::Store(StoreError::Conflict { .. } | StoreError::NotFound(_))) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
