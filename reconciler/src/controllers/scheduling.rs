//! Binds pending pods to nodes: [`keel_scheduler`] picks the node, this controller writes
//! `spec.nodeName` (with the `PodScheduled` condition) over the version it read, so a pod
//! changed or deleted meanwhile is never bound blindly.
//!
//! The scheduler's view of nodes and bound pods is kept by the runner's feeder (every change
//! passes through [`Controller::keys_for`] in store order), so workers only read it. A pod
//! that fits nowhere gets `PodScheduled=False`, reason `Unschedulable`, with kube-scheduler's
//! message, and is tried again whenever a node changes or a pod goes away.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use keel_scheduler::SchedulerCache;
use keel_schema::types::core::EventType;
use keel_schema::types::meta::Condition;
use keel_schema::types::pod::{Pod, PodPhase, PodStatus};
use keel_schema::{Kind, Object};
use keel_store::{ObjectKey, Stored};

use super::pods;
use super::runtime::{Action, Controller, Ctx, Raced, Result};
use crate::cache::{Cache, Change};

/// Binds in flight at once (they share group commits in the store).
pub const WORKERS: usize = 32;
/// How often a pod that fits nowhere is tried again without any change.
const UNSCHEDULABLE_RETRY: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct SchedulingController {
    nodes: Mutex<SchedulerCache>,
    unschedulable: Mutex<HashSet<ObjectKey>>,
    /// Pods placed whose binding is being written, by uid: a rebuild of the view keeps
    /// counting them (else their room would be given away twice).
    binding: Mutex<HashMap<String, Pod>>,
}

/// The node the pod's bound volumes live on, if any; why it cannot be placed when a claim
/// is missing or its volumes are on different nodes.
fn volume_node(
    pod: &Pod,
    cache: &Cache,
    binding: &HashMap<String, Pod>,
) -> std::result::Result<Option<String>, String> {
    let mut node: Option<String> = None;
    for v in pod.spec.volumes.iter().flatten() {
        let Some(source) = &v.persistent_volume_claim else {
            continue;
        };
        let key = ObjectKey::new(
            Kind::PersistentVolumeClaim,
            pod.metadata.namespace(),
            &source.claim_name,
        );
        let claim = match cache.get(&key).map(|s| s.object.clone()) {
            Some(Object::PersistentVolumeClaim(c)) => c,
            _ => {
                return Err(format!(
                    "persistentvolumeclaim {:?} not found",
                    source.claim_name
                ));
            }
        };
        let Some(volume) = claim.spec.volume_name.as_deref() else {
            // Not bound yet: its volume will be made where its first pod went, so a pod
            // sharing it follows that one.
            let uid = pod.metadata.uid.as_deref();
            let scheduled = cache.list(Kind::Pod, Some(pod.metadata.namespace()));
            let others = scheduled
                .iter()
                .filter_map(|s| match &s.object {
                    Object::Pod(p) => Some(p),
                    _ => None,
                })
                .chain(binding.values())
                .filter(|p| p.metadata.uid.as_deref() != uid && pods::is_active(p))
                .filter(|p| p.metadata.namespace() == pod.metadata.namespace())
                .filter(|p| {
                    p.spec.volumes.iter().flatten().any(|v| {
                        v.persistent_volume_claim
                            .as_ref()
                            .is_some_and(|c| c.claim_name == source.claim_name)
                    })
                });
            if let Some(there) = others.filter_map(|p| p.spec.node_name.clone()).min() {
                match &node {
                    Some(a) if *a != there => {
                        return Err(format!(
                            "the pod's volumes are on different nodes ({a}, {there})"
                        ));
                    }
                    _ => node = Some(there),
                }
            }
            continue;
        };
        let here = match cache.get(&ObjectKey::new(Kind::PersistentVolume, "", volume)) {
            Some(s) => match &s.object {
                Object::PersistentVolume(pv) => pv.node().map(str::to_string),
                _ => None,
            },
            None => {
                return Err(format!(
                    "persistentvolumeclaim {:?} is bound to volume {volume:?}, which is gone (its \
                     node was deleted); delete the claim to start it afresh (a StatefulSet makes \
                     its own claims again)",
                    source.claim_name
                ));
            }
        };
        match (&node, here) {
            (Some(a), Some(b)) if *a != b => {
                return Err(format!(
                    "the pod's volumes are on different nodes ({a}, {b})"
                ));
            }
            (None, Some(b)) => node = Some(b),
            _ => {}
        }
    }
    Ok(node)
}

fn pending(pod: &Pod) -> bool {
    pod.spec.node_name.as_deref().is_none_or(str::is_empty) && pods::is_active(pod)
}

fn set_scheduled(pod: &mut Pod, scheduled: bool, message: Option<String>) {
    let status = pod.status.get_or_insert_with(PodStatus::default);
    if status.phase.is_none() {
        status.phase = Some(PodPhase::Pending);
    }
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let value = if scheduled { "True" } else { "False" };
    let previous = conditions.iter().position(|c| c.type_ == "PodScheduled");
    let transition = match previous.map(|i| &conditions[i]) {
        Some(c) if c.status == value => c.last_transition_time,
        _ => Some(Utc::now()),
    };
    let condition = Condition {
        type_: "PodScheduled".into(),
        status: value.into(),
        last_transition_time: transition,
        reason: (!scheduled).then(|| "Unschedulable".into()),
        message,
        ..Default::default()
    };
    match previous {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

fn unschedulable_message(pod: &Pod) -> Option<&str> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")?
        .message
        .as_deref()
}

impl SchedulingController {
    fn scheduler(&self) -> std::sync::MutexGuard<'_, SchedulerCache> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashSet<ObjectKey>> {
        self.unschedulable.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn binding(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pod>> {
        self.binding.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Builds the scheduler's view from the whole cache (after a relist or missed changes).
    fn rebuild(&self, cache: &Cache) {
        let mut sched = SchedulerCache::new();
        for s in cache.list(Kind::Node, None) {
            if let Object::Node(n) = &s.object {
                sched.upsert_node(n);
            }
        }
        for s in cache.list(Kind::Pod, None) {
            if let Object::Pod(p) = &s.object {
                sched.add_pod(p);
            }
        }
        let mut current = self.scheduler();
        for pod in self.binding().values() {
            sched.add_pod(pod);
        }
        *current = sched;
    }

    /// Every pod waiting for room: something that may make room happened.
    fn retry_waiting(&self, out: &mut Vec<ObjectKey>) {
        out.extend(self.waiting().drain());
    }
}

impl Controller for SchedulingController {
    type Key = ObjectKey;
    const NAME: &'static str = "scheduler";
    const COMPONENT: &'static str = "default-scheduler";

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        cache
            .list(Kind::Pod, None)
            .iter()
            .filter(|s| matches!(&s.object, Object::Pod(p) if pending(p)))
            .map(|s| ObjectKey::of(&s.object))
            .collect()
    }

    fn keys_for(&self, change: &Change, cache: &Cache, out: &mut Vec<ObjectKey>) {
        let Change::Object { old, new } = change else {
            self.rebuild(cache);
            out.extend(self.all_keys(cache));
            return;
        };
        match change.kind() {
            Some(Kind::Node) => {
                {
                    let mut sched = self.scheduler();
                    match new.as_ref().map(|s| &s.object) {
                        Some(Object::Node(n)) => sched.upsert_node(n),
                        _ => {
                            if let Some(old) = old {
                                sched.remove_node(old.object.name());
                            }
                        }
                    }
                }
                self.retry_waiting(out);
            }
            Some(Kind::Pod) => match new.as_ref().map(|s| &s.object) {
                Some(Object::Pod(p)) => {
                    let was_holding = old.as_ref().is_some_and(|o| match &o.object {
                        Object::Pod(op) => !pending(op) && pods::is_active(op),
                        _ => false,
                    });
                    if p.spec.node_name.as_deref().is_some_and(|n| !n.is_empty()) {
                        self.scheduler().add_pod(p);
                    }
                    if pending(p) {
                        out.push(ObjectKey::new(
                            Kind::Pod,
                            p.metadata.namespace(),
                            p.metadata.name(),
                        ));
                    } else if was_holding && !pods::is_active(p) {
                        // Finished: its room is free.
                        self.retry_waiting(out);
                    }
                }
                _ => {
                    if let Some(Object::Pod(p)) = old.as_ref().map(|s| &s.object) {
                        self.scheduler()
                            .remove_pod(p.metadata.uid.as_deref().unwrap_or(""));
                        let key =
                            ObjectKey::new(Kind::Pod, p.metadata.namespace(), p.metadata.name());
                        self.waiting().remove(&key);
                        self.retry_waiting(out);
                    }
                }
            },
            // A claim or volume that came or moved may let a waiting pod go.
            Some(Kind::PersistentVolumeClaim | Kind::PersistentVolume) => self.retry_waiting(out),
            _ => {}
        }
    }

    fn subject(&self, key: &ObjectKey) -> Option<ObjectKey> {
        Some(key.clone())
    }

    async fn reconcile(&self, key: &ObjectKey, ctx: &Ctx) -> Result<Action> {
        let Some(stored) = ctx.cache().get(key) else {
            self.waiting().remove(key);
            return Ok(Action::Done);
        };
        let Object::Pod(pod) = &stored.object else {
            return Ok(Action::Done);
        };
        if !pending(pod) {
            self.waiting().remove(key);
            return Ok(Action::Done);
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        // Volumes first: a claim that is not there holds the pod; a bound one pins it to
        // its volume's node.
        // Only a pod with claims looks at the volumes (and at the binds in flight).
        let has_claims = pod
            .spec
            .volumes
            .iter()
            .flatten()
            .any(|v| v.persistent_volume_claim.is_some());
        let placed_by_volume = if has_claims {
            let in_flight = self.binding().clone();
            volume_node(pod, ctx.cache(), &in_flight)
        } else {
            Ok(None)
        };
        let pinned = match placed_by_volume {
            Ok(node) => node,
            Err(why) => {
                self.waiting().insert(key.clone());
                self.mark_unschedulable(key, &stored, pod, why, ctx).await?;
                return Ok(Action::RequeueAfter(UNSCHEDULABLE_RETRY));
            }
        };
        let placed = {
            // Placed and marked as binding under one lock: a rebuild never misses it.
            let mut sched = self.scheduler();
            let placed = match pinned {
                Some(node) => {
                    let mut on_node = pod.clone();
                    on_node
                        .spec
                        .node_selector
                        .get_or_insert_with(Default::default)
                        .insert("kubernetes.io/hostname".into(), node);
                    sched.schedule(&on_node)
                }
                None => sched.schedule(pod),
            };
            if let Ok(node) = &placed {
                let mut bound = pod.clone();
                bound.spec.node_name = Some(node.clone());
                self.binding().insert(uid.clone(), bound);
            }
            placed
        };
        match placed {
            Ok(node) => self.bind(key, &stored, pod, &uid, node, ctx).await,
            // `schedule` placed nothing: no room to give back.
            Err(fit) => {
                self.waiting().insert(key.clone());
                self.mark_unschedulable(key, &stored, pod, fit.to_string(), ctx)
                    .await?;
                Ok(Action::RequeueAfter(UNSCHEDULABLE_RETRY))
            }
        }
    }
}

impl SchedulingController {
    /// Writes the binding over the version read; a pod changed meanwhile holds no room.
    async fn bind(
        &self,
        key: &ObjectKey,
        stored: &Stored,
        pod: &Pod,
        uid: &str,
        node: String,
        ctx: &Ctx,
    ) -> Result<Action> {
        self.waiting().remove(key);
        let mut pod = pod.clone();
        pod.spec.node_name = Some(node.clone());
        set_scheduled(&mut pod, true, None);
        let bound = ctx
            .update(Object::Pod(pod), stored.resource_version)
            .await
            .or_raced();
        self.binding().remove(uid);
        if !matches!(bound, Ok(Some(_))) {
            // Not bound (failed, or the pod changed or went): it holds no room there.
            self.scheduler().remove_pod(uid);
            return bound.map(|_| Action::Done);
        }
        tracing::debug!(pod = %key, node, "Scheduled");
        ctx.events().object(
            &stored.object,
            EventType::Normal,
            "Scheduled",
            format!(
                "Successfully assigned {}/{} to {node}",
                key.namespace, key.name
            ),
            Self::COMPONENT,
        );
        if let (Some(h), Some(created)) = (
            &ctx.config().scheduling_seconds,
            stored.object.meta().creation_timestamp,
        ) {
            let waited = (Utc::now() - created).to_std().unwrap_or_default();
            h.observe(waited.as_secs_f64());
        }
        Ok(Action::Done)
    }

    /// `PodScheduled=False` with kube-scheduler's message, and a `FailedScheduling` event,
    /// when the message is new.
    async fn mark_unschedulable(
        &self,
        key: &ObjectKey,
        stored: &Stored,
        pod: &Pod,
        message: String,
        ctx: &Ctx,
    ) -> Result<()> {
        if unschedulable_message(pod) == Some(message.as_str()) {
            return Ok(());
        }
        tracing::info!(pod = %key, %message, "FailedScheduling");
        ctx.events().object(
            &stored.object,
            EventType::Warning,
            "FailedScheduling",
            message.clone(),
            Self::COMPONENT,
        );
        let mut pod = pod.clone();
        set_scheduled(&mut pod, false, Some(message));
        ctx.update(Object::Pod(pod), stored.resource_version)
            .await
            .or_raced()?;
        Ok(())
    }
}
