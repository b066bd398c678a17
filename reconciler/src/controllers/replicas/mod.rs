//! ReplicaSets and ReplicationControllers: keep `replicas` pods matching the selector,
//! created from the template, as Kubernetes' ReplicaSet controller does (one controller, two
//! kinds: they differ only in selector syntax and status type).
//!
//! - Pods are the owner's when their controller reference names its uid. Matching pods
//!   without a controller are adopted; owned pods that stopped matching are released.
//! - Missing pods are created (at most [`decide::burst`] per pass: 500, or a fiftieth of a
//!   larger owner), extra ones deleted in Kubernetes' order: unscheduled, then pending,
//!   then not ready, then most restarted, then newest first.
//! - Status: replicas, readyReplicas, availableReplicas (ready for minReadySeconds),
//!   fullyLabeledReplicas, observedGeneration.
//!
//! - A pass reads the cache's tally of the owner's pods ([`crate::cache::PodTally`]: a few
//!   numbers per label set) and the namespace's orphans, not each pod: at 100,000 replicas
//!   that is microseconds where counting each pod took about 400 ms. It reads each of the
//!   owner's pods only to release or delete some.
//!
//! [`decide`] makes every decision from what was observed; [`ReplicaController::reconcile`]
//! observes and acts.

pub mod decide;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use keel_schema::types::apps::ReplicaSetStatus;
use keel_schema::types::core::{EventType, ReplicationControllerStatus};
use keel_schema::types::pod::Pod;
use keel_schema::{Kind, Object, Resource};
use keel_store::{ObjectKey, Stored};

use super::runtime::{Action, Controller, Ctx, Raced, ReconcileError, Result};
use super::{keys_of_kind, pods};
use crate::cache::{Cache, Change};
use decide::{Counts, Owner, Plan};

pub struct ReplicaController;

impl Controller for ReplicaController {
    type Key = ObjectKey;
    const NAME: &'static str = "replicaset";
    const COMPONENT: &'static str = "replicaset-controller";

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        let mut keys = keys_of_kind(cache, Kind::ReplicaSet);
        keys.extend(keys_of_kind(cache, Kind::ReplicationController));
        keys
    }

    fn keys_for(&self, change: &Change, cache: &Cache, out: &mut Vec<ObjectKey>) {
        match change.kind() {
            Some(Kind::ReplicaSet | Kind::ReplicationController) => {
                out.extend(change.objects().map(ObjectKey::of).take(1));
            }
            Some(Kind::Pod) => {
                for object in change.objects() {
                    let owner =
                        pods::controller_of(object.meta()).map(|r| (Kind::from_name(&r.kind), r));
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
                                    cache
                                        .list(kind, Some(object.namespace()))
                                        .iter()
                                        .map(|s| ObjectKey::of(&s.object)),
                                );
                            }
                        }
                    }
                }
                // A pod's old and new versions mostly name the same owner: queued once, its
                // settle time (which compares the two versions) is worked out once.
                out.sort();
                out.dedup();
            }
            Some(_) => {}
            None => out.extend(self.all_keys(cache)),
        }
    }

    /// A pod's status report or bind, and the owner's own status write, wait up to 10 µs
    /// per replica of the owner (1 s at 100,000), so that one pass and one status write
    /// (which the Deployment above then reads) stand for many of them: none changes what
    /// the owner creates or deletes, and the owner's status write would otherwise queue a
    /// pass after each pass. Anything else, and any small owner, goes at once.
    fn settle(&self, change: &Change, key: &ObjectKey, cache: &Cache) -> Duration {
        let Change::Object {
            old: Some(old),
            new: Some(new),
        } = change
        else {
            return Duration::ZERO;
        };
        let only_status = match (&old.object, &new.object) {
            (Object::Pod(a), Object::Pod(b)) => a.same_but_status_and_node(b),
            (Object::ReplicaSet(a), Object::ReplicaSet(b)) => {
                a.same_body(b) && a.metadata.same_but_version(&b.metadata)
            }
            (Object::ReplicationController(a), Object::ReplicationController(b)) => {
                a.same_body(b) && a.metadata.same_but_version(&b.metadata)
            }
            _ => false,
        };
        if !only_status {
            return Duration::ZERO;
        }
        let replicas = cache.get(key).map_or(0, |s| match &s.object {
            Object::ReplicaSet(rs) => rs.spec.replicas.unwrap_or(1),
            Object::ReplicationController(rc) => rc.spec.replicas.unwrap_or(1),
            _ => 0,
        });
        Duration::from_micros(u64::try_from(replicas).unwrap_or(0) * 10).min(Duration::from_secs(1))
    }

    fn subject(&self, key: &ObjectKey) -> Option<ObjectKey> {
        Some(key.clone())
    }

    async fn reconcile(&self, key: &ObjectKey, ctx: &Ctx) -> Result<Action> {
        let Some(stored) = ctx.cache().get(key) else {
            // Deleted: the garbage collector removes its pods.
            return Ok(Action::Done);
        };
        if stored.object.meta().deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        let owner = match decide::owner_of(&stored.object) {
            Ok(Some(owner)) => owner,
            Ok(None) => return Ok(Action::Done),
            Err(why) => {
                return Err(ReconcileError::invalid(
                    "InvalidSpec",
                    format!("{key}: {why}"),
                ));
            }
        };
        // Observe: the tally of the owner's pods and the orphans it may adopt; each of its
        // pods only when some are to be released or deleted.
        let now = Utc::now();
        let observed = ctx.cache().controller_pods(&owner.uid, &key.namespace);
        let orphans = with_versions(&observed.orphans);
        let refs: Vec<&Pod> = orphans.iter().map(|(p, _)| *p).collect();
        let listed;
        let (plan, pods) = match decide::plan_from_tally(&owner, &observed.tally, &refs, now) {
            Some(plan) => (plan, orphans),
            None => {
                listed = ctx
                    .cache()
                    .controlled_or_orphan_pods(&owner.uid, &key.namespace);
                let pods = with_versions(&listed);
                let refs: Vec<&Pod> = pods.iter().map(|(p, _)| *p).collect();
                (decide::plan(&owner, &refs, now), pods)
            }
        };
        // Act: ownership first, then creates or deletes, then the status.
        let versions = set_owners(&stored.object, &owner, &plan, &pods, ctx).await?;
        let result = scale(&stored.object, &owner, &plan, &versions, ctx).await;
        write_status(&stored, plan.counts, ctx).await?;
        result?;
        Ok(plan.next_look.map_or(Action::Done, Action::RequeueAfter))
    }
}

/// The pods among `listed`, each with the version read.
fn with_versions(listed: &[Arc<Stored>]) -> Vec<(&Pod, u64)> {
    listed
        .iter()
        .filter_map(|s| match &s.object {
            Object::Pod(p) => Some((p, s.resource_version)),
            _ => None,
        })
        .collect()
}

/// Adopts and releases as planned; the version each pod to delete has now, by name (only
/// those: a pass over a large owner would otherwise copy every pod's name).
async fn set_owners(
    owner_obj: &Object,
    owner: &Owner,
    plan: &Plan,
    pods: &[(&Pod, u64)],
    ctx: &Ctx,
) -> Result<HashMap<String, u64>> {
    let deleting: HashSet<&str> = plan.delete.iter().map(String::as_str).collect();
    let mut versions: HashMap<String, u64> = pods
        .iter()
        .filter(|(p, _)| deleting.contains(p.metadata.name()))
        .map(|(p, v)| (p.metadata.name().to_string(), *v))
        .collect();
    let adopt: HashSet<&str> = plan.adopt.iter().map(String::as_str).collect();
    let release: HashSet<&str> = plan.release.iter().map(String::as_str).collect();
    for (pod, version) in pods {
        let name = pod.metadata.name();
        let adopting = adopt.contains(name);
        if !adopting && !release.contains(name) {
            continue;
        }
        let mut pod = (*pod).clone();
        let references = pod.metadata.owner_references.get_or_insert_with(Vec::new);
        if adopting {
            references.push(pods::reference_to(owner_obj));
        } else {
            // Left as an empty list, not none: the store keeps the old owners when a write
            // names none (a write from git never does), and the garbage collector leaves
            // objects without owners alone.
            references.retain(|r| r.uid != owner.uid);
        }
        if let Some(written) = ctx.update(Object::Pod(pod), *version).await.or_raced()? {
            versions.insert(name.to_string(), written.revision);
        }
    }
    Ok(versions)
}

/// Creates or deletes pods as planned; the first failure, after trying them all.
async fn scale(
    owner_obj: &Object,
    owner: &Owner,
    plan: &Plan,
    versions: &HashMap<String, u64>,
    ctx: &Ctx,
) -> Result<()> {
    let namespace = owner_obj.namespace();
    let mut names = HashSet::new();
    let mut creates = Vec::with_capacity(plan.create);
    while creates.len() < plan.create {
        let name = pods::generate_name(owner_obj.name());
        let taken = ctx
            .cache()
            .get(&ObjectKey::new(Kind::Pod, namespace, &name))
            .is_some();
        if taken || !names.insert(name.clone()) {
            continue;
        }
        let owner_ref = pods::reference_to(owner_obj);
        let pod = pods::from_template(&owner.template, namespace, name, owner_ref);
        creates.push(ctx.create(Object::Pod(pod)));
    }
    let deletes = plan.delete.iter().filter_map(|name| {
        let version = *versions.get(name)?;
        let key = ObjectKey::new(Kind::Pod, namespace, name);
        Some(async move { ctx.delete(&key, version).await.or_raced() })
    });
    let mut first_error = None;
    for created in futures_util::future::join_all(creates).await {
        match created {
            Ok(w) => event(
                ctx,
                owner_obj,
                "SuccessfulCreate",
                format!("Created pod: {}", w.key.name),
            ),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    for deleted in futures_util::future::join_all(deletes).await {
        match deleted {
            Ok(Some(w)) => event(
                ctx,
                owner_obj,
                "SuccessfulDelete",
                format!("Deleted pod: {}", w.key.name),
            ),
            Ok(None) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn event(ctx: &Ctx, owner: &Object, reason: &str, message: String) {
    let component = ReplicaController::COMPONENT;
    ctx.events()
        .object(owner, EventType::Normal, reason, message, component);
}

/// Writes the status when it changed; losing a race is fine (that change queues the owner).
async fn write_status(stored: &Stored, c: Counts, ctx: &Ctx) -> Result<()> {
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
    if changed {
        ctx.update(object, stored.resource_version)
            .await
            .or_raced()?;
    }
    Ok(())
}
