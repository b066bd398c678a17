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

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use keel_schema::Object;
use keel_schema::intorstr::IntOrString;
use keel_schema::selector::LabelSelector;
use keel_schema::types::apps::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use keel_schema::types::meta::Condition;
use keel_schema::types::pod::PodTemplateSpec;
use sha2::Digest;

use super::pods;
use super::{Action, Controller, ControllerError, Ctx, Result, keys_of_kind, owner_keys, runner};
use crate::cache::{Change, Written};
use keel_schema::Kind;
use keel_schema::types::core::EventType;
use keel_store::{ObjectKey, StoreError, Stored};

pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

pub struct DeploymentController;

/// A stable hash of a pod template: the same template gives the same ReplicaSet, across
/// restarts and reverts.
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    let digest = sha2::Sha256::digest(&json);
    digest[..10]
        .iter()
        .map(|b| pods::ALPHABET[usize::from(*b) % pods::ALPHABET.len()] as char)
        .collect()
}

/// One owned ReplicaSet as the rollout sees it.
struct Rs {
    stored: Arc<Stored>,
    rs: ReplicaSet,
    revision: i64,
}

impl Rs {
    fn spec_replicas(&self) -> i64 {
        self.rs
            .spec
            .replicas
            .unwrap_or(1)
            .clamp(0, i64::from(i32::MAX))
    }
    fn status(&self) -> (i64, i64, i64) {
        let s = self.rs.status.as_ref();
        (
            s.map_or(0, |s| s.replicas),
            s.and_then(|s| s.ready_replicas).unwrap_or(0),
            s.and_then(|s| s.available_replicas).unwrap_or(0),
        )
    }
    fn available(&self) -> i64 {
        self.status().2
    }
}

/// `maxSurge` and `maxUnavailable` as numbers, as Kubernetes' `ResolveFenceposts`.
fn fenceposts(d: &Deployment, replicas: i64) -> Result<(i64, i64)> {
    let ru = d
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let quarter = IntOrString::Str("25%".into());
    let bad = |field: &str| {
        ControllerError::Invalid(format!(
            "Deployment {}/{}: spec.strategy.rollingUpdate.{field}: invalid value",
            d.metadata.namespace(),
            d.metadata.name()
        ))
    };
    let surge = ru
        .and_then(|r| r.max_surge.as_ref())
        .unwrap_or(&quarter)
        .scaled(replicas, true)
        .map_err(|_| bad("maxSurge"))?;
    let unavailable = ru
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&quarter)
        .scaled(replicas, false)
        .map_err(|_| bad("maxUnavailable"))?;
    // Beyond `replicas` neither changes anything; clamped, no sum below can overflow.
    let (surge, unavailable) = (surge.clamp(0, replicas), unavailable.clamp(0, replicas));
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

fn is_recreate(d: &Deployment) -> bool {
    d.spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate")
}

/// The ReplicaSet for `template` under deployment `d`.
fn new_replica_set(
    d_obj: &Object,
    d: &Deployment,
    template: &PodTemplateSpec,
    hash: &str,
    replicas: i64,
    revision: i64,
) -> ReplicaSet {
    let mut template = template.clone();
    template
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    let mut selector = d.spec.selector.clone().unwrap_or_default();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    let mut rs = ReplicaSet::default();
    rs.metadata.name = Some(format!("{}-{hash}", d.metadata.name()));
    rs.metadata.namespace = Some(d.metadata.namespace().to_string());
    rs.metadata.labels.clone_from(&template.metadata.labels);
    rs.metadata.annotations = Some(BTreeMap::from([(
        REVISION_ANNOTATION.to_string(),
        revision.to_string(),
    )]));
    rs.metadata.owner_references = Some(vec![pods::reference_to(d_obj)]);
    pods::without_git_markers(&mut rs.metadata);
    pods::without_git_markers(&mut template.metadata);
    rs.spec = ReplicaSetSpec {
        replicas: Some(replicas),
        selector: Some(LabelSelector { ..selector }),
        template: Some(template),
        min_ready_seconds: d.spec.min_ready_seconds,
    };
    rs
}

/// The rollout's decisions for one pass: new spec.replicas per ReplicaSet name.
fn plan_rollout(
    d: &Deployment,
    replicas: i64,
    new: &Rs,
    old: &[Rs],
    old_active_pods: usize,
) -> Result<BTreeMap<String, i64>> {
    let mut scale = BTreeMap::new();
    if is_recreate(d) {
        for rs in old.iter().filter(|rs| rs.spec_replicas() > 0) {
            scale.insert(rs.rs.metadata.name().to_string(), 0);
        }
        if scale.is_empty() && old_active_pods == 0 && new.spec_replicas() != replicas {
            scale.insert(new.rs.metadata.name().to_string(), replicas);
        }
        return Ok(scale);
    }
    let (max_surge, max_unavailable) = fenceposts(d, replicas)?;
    let total: i64 = old.iter().map(Rs::spec_replicas).sum::<i64>() + new.spec_replicas();
    // The new ReplicaSet: grow within the surge, or shrink to the target.
    let mut new_replicas = new.spec_replicas();
    if new_replicas > replicas {
        new_replicas = replicas;
    } else if new_replicas < replicas {
        let room = replicas + max_surge - total;
        if room > 0 {
            new_replicas += room.min(replicas - new_replicas);
        }
    }
    if new_replicas != new.spec_replicas() {
        scale.insert(new.rs.metadata.name().to_string(), new_replicas);
    }
    // Old ReplicaSets: shrink while enough stays available.
    let old_total: i64 = old.iter().map(Rs::spec_replicas).sum();
    if old_total == 0 {
        return Ok(scale);
    }
    let min_available = replicas - max_unavailable;
    let new_unavailable = new.spec_replicas() - new.available();
    let mut budget = total - min_available - new_unavailable;
    if budget <= 0 {
        return Ok(scale);
    }
    let mut sizes: Vec<(String, i64, i64, i64)> = old
        .iter()
        .map(|rs| {
            (
                rs.rs.metadata.name().to_string(),
                rs.spec_replicas(),
                rs.available(),
                rs.revision,
            )
        })
        .collect();
    sizes.sort_by_key(|(_, _, _, revision)| *revision);
    // First the pods that are not available anyway.
    for (_, size, available, _) in &mut sizes {
        if budget == 0 {
            break;
        }
        let unhealthy = (*size - *available).clamp(0, budget);
        *size -= unhealthy;
        budget -= unhealthy;
    }
    // Then available ones, oldest ReplicaSet first, keeping minAvailable.
    let available_now: i64 = old.iter().map(Rs::available).sum::<i64>() + new.available();
    let mut down = (available_now - min_available).max(0);
    for (_, size, _, _) in &mut sizes {
        if down == 0 {
            break;
        }
        let step = (*size).min(down);
        *size -= step;
        down -= step;
    }
    for ((name, size, _, _), rs) in sizes.into_iter().zip(sorted_by_revision(old)) {
        if size != rs.spec_replicas() {
            scale.insert(name, size);
        }
    }
    Ok(scale)
}

fn sorted_by_revision(rss: &[Rs]) -> Vec<&Rs> {
    let mut v: Vec<&Rs> = rss.iter().collect();
    v.sort_by_key(|rs| rs.revision);
    v
}

fn condition(
    previous: Option<&Vec<Condition>>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    progressed: bool,
) -> Condition {
    let now = Utc::now();
    let status = if status { "True" } else { "False" };
    let old = previous.and_then(|cs| cs.iter().find(|c| c.type_ == type_));
    let same = old.is_some_and(|c| c.status == status);
    Condition {
        type_: type_.into(),
        status: status.into(),
        last_transition_time: if same {
            old.and_then(|c| c.last_transition_time)
        } else {
            Some(now)
        },
        last_update_time: if same
            && !progressed
            && old.is_some_and(|c| c.reason.as_deref() == Some(reason))
        {
            old.and_then(|c| c.last_update_time)
        } else {
            Some(now)
        },
        last_heartbeat_time: None,
        last_probe_time: None,
        reason: Some(reason.into()),
        message: Some(message),
    }
}

impl Controller for DeploymentController {
    type Key = ObjectKey;
    const NAME: &'static str = "deployment";

    fn all_keys(&self, ctx: &Ctx) -> Vec<ObjectKey> {
        keys_of_kind(ctx, Kind::Deployment)
    }

    fn keys_for(&self, change: &Change, ctx: &Ctx, out: &mut Vec<ObjectKey>) {
        owner_keys(change, Kind::Deployment, Kind::ReplicaSet, ctx, out);
    }

    async fn reconcile(&self, key: &ObjectKey, ctx: &Ctx) -> Result<Action> {
        let Some(stored) = ctx.cache.get(key) else {
            return Ok(Action::Done);
        };
        let Object::Deployment(d) = &stored.object else {
            return Ok(Action::Done);
        };
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let Some(template) = d.spec.template.as_ref() else {
            return Err(ControllerError::Invalid(format!(
                "{key}: spec.template: Required value"
            )));
        };
        // Kubernetes' replicas are int32: so bounded, no sum below can overflow.
        let replicas = d.spec.replicas.unwrap_or(1).clamp(0, i64::from(i32::MAX));
        let hash = template_hash(template);
        let mut rss: Vec<Rs> = ctx
            .cache
            .dependents(&uid)
            .into_iter()
            .filter_map(|s| match &s.object {
                Object::ReplicaSet(rs) if pods::controlled_by(&rs.metadata, &uid) => {
                    let revision = rs
                        .metadata
                        .annotation(REVISION_ANNOTATION)
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(0);
                    Some(Rs {
                        rs: rs.clone(),
                        stored: s.clone(),
                        revision,
                    })
                }
                _ => None,
            })
            .collect();
        let max_revision = rss.iter().map(|r| r.revision).max().unwrap_or(0);
        let new_index = rss.iter().position(|r| {
            r.rs.metadata
                .labels()
                .get(TEMPLATE_HASH_LABEL)
                .map(String::as_str)
                == Some(&hash)
        });
        let mut writes: Vec<Written> = Vec::new();
        let paused = d.spec.paused == Some(true);
        let Some(new_index) = new_index else {
            if paused {
                return Ok(Action::Done);
            }
            // The first pass for this template: its ReplicaSet, at the size the strategy
            // allows now (the next passes roll the rest).
            let old_total: i64 = rss.iter().map(Rs::spec_replicas).sum();
            let start = if rss.is_empty() {
                replicas
            } else if is_recreate(d) {
                0
            } else {
                let (surge, _) = fenceposts(d, replicas)?;
                (replicas + surge - old_total).clamp(0, replicas)
            };
            let rs = new_replica_set(&stored.object, d, template, &hash, start, max_revision + 1);
            let rs_name = rs.metadata.name().to_string();
            match ctx.create(Object::ReplicaSet(rs)).await {
                Ok(w) => {
                    ctx.events.object(
                        &stored.object,
                        EventType::Normal,
                        "ScalingReplicaSet",
                        format!("Scaled up replica set {rs_name} to {start}"),
                        "deployment-controller",
                    );
                    writes.push(w);
                }
                Err(ControllerError::Store(StoreError::AlreadyExists(k))) => {
                    return Err(ControllerError::Invalid(format!(
                        "{k} exists and is not this Deployment's; rename or delete it"
                    )));
                }
                Err(e) => return Err(e),
            }
            runner::settle(ctx, &writes).await;
            return Ok(Action::Done);
        };
        let new = rss.swap_remove(new_index);
        let old = rss;
        let old_uids: Vec<String> = old
            .iter()
            .map(|rs| rs.rs.metadata.uid.clone().unwrap_or_default())
            .collect();
        let old_active_pods = old_uids
            .iter()
            .flat_map(|u| ctx.cache.dependents(u))
            .filter(|s| matches!(&s.object, Object::Pod(p) if pods::is_active(p)))
            .count();
        let scale = if paused {
            BTreeMap::new()
        } else {
            plan_rollout(d, replicas, &new, &old, old_active_pods)?
        };
        // A template brought back (a revert) becomes the newest revision again.
        let bump = !paused && new.revision < max_revision;
        for rs in std::iter::once(&new).chain(old.iter()) {
            let name = rs.rs.metadata.name();
            let resize = scale.get(name).copied();
            let is_new = std::ptr::eq(rs, &new);
            if resize.is_none() && !(is_new && bump) {
                continue;
            }
            let mut updated = rs.rs.clone();
            if let Some(n) = resize {
                updated.spec.replicas = Some(n);
                let from = rs.spec_replicas();
                let way = if n > from { "up" } else { "down" };
                tracing::info!(deployment = %key, replicaset = name, from, to = n, "ScalingReplicaSet");
                ctx.events.object(
                    &stored.object,
                    EventType::Normal,
                    "ScalingReplicaSet",
                    format!("Scaled {way} replica set {name} to {n} from {from}"),
                    "deployment-controller",
                );
            }
            if is_new && bump {
                updated
                    .metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(REVISION_ANNOTATION.into(), (max_revision + 1).to_string());
            }
            match ctx
                .update(Object::ReplicaSet(updated), rs.stored.resource_version)
                .await
            {
                Ok(w) => writes.push(w),
                Err(ControllerError::Store(
                    StoreError::Conflict { .. } | StoreError::NotFound(_),
                )) => {}
                Err(e) => return Err(e),
            }
        }
        // History: old ReplicaSets at zero, beyond the limit, oldest first.
        let limit = usize::try_from(d.spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
        let mut idle: Vec<&Rs> = old
            .iter()
            .filter(|rs| rs.spec_replicas() == 0 && rs.status().0 == 0)
            .filter(|rs| !scale.contains_key(rs.rs.metadata.name()))
            .collect();
        if idle.len() > limit {
            idle.sort_by_key(|rs| rs.revision);
            let excess = idle.len() - limit;
            for rs in &idle[..excess] {
                let key = ObjectKey::of(&rs.stored.object);
                if let Some(w) = ctx.delete(&key, rs.stored.resource_version).await? {
                    writes.push(w);
                }
            }
        }
        if let Some(w) = self
            .write_status(&stored, d, replicas, &new, &old, ctx)
            .await?
        {
            writes.push(w);
        }
        runner::settle(ctx, &writes).await;
        Ok(Action::Done)
    }
}

impl DeploymentController {
    async fn write_status(
        &self,
        stored: &Stored,
        d: &Deployment,
        replicas: i64,
        new: &Rs,
        old: &[Rs],
        ctx: &Ctx,
    ) -> Result<Option<Written>> {
        let all = || std::iter::once(new).chain(old.iter());
        let total: i64 = all().map(|rs| rs.status().0).sum();
        let ready: i64 = all().map(|rs| rs.status().1).sum();
        let available: i64 = all().map(|rs| rs.status().2).sum();
        let updated = new.status().0;
        let (_, max_unavailable) = if is_recreate(d) {
            (0, 0)
        } else {
            fenceposts(d, replicas)?
        };
        let previous = d.status.as_ref().and_then(|s| s.conditions.as_ref());
        let counts_before = d.status.as_ref().map(|s| {
            (
                s.replicas.unwrap_or(0),
                s.updated_replicas.unwrap_or(0),
                s.available_replicas.unwrap_or(0),
            )
        });
        let progressed = counts_before != Some((total, updated, available));
        let rs_name = new.rs.metadata.name();
        let complete = updated == replicas
            && available >= replicas
            && total == replicas
            && old.iter().all(|rs| rs.status().0 == 0);
        let available_cond = condition(
            previous,
            "Available",
            available >= replicas - max_unavailable,
            if available >= replicas - max_unavailable {
                "MinimumReplicasAvailable"
            } else {
                "MinimumReplicasUnavailable"
            },
            if available >= replicas - max_unavailable {
                "Deployment has minimum availability.".into()
            } else {
                "Deployment does not have minimum availability.".into()
            },
            false,
        );
        let deadline = d.spec.progress_deadline_seconds.unwrap_or(600);
        let stuck_since = previous
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Progressing"))
            .filter(|c| c.reason.as_deref() == Some("ReplicaSetUpdated"))
            .and_then(|c| c.last_update_time);
        let stuck = !complete
            && !progressed
            && stuck_since.is_some_and(|t| {
                chrono::Duration::try_seconds(deadline).is_some_and(|d| Utc::now() - t > d)
            });
        let already_stuck = previous
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Progressing"))
            .is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
        let progressing = if complete {
            condition(
                previous,
                "Progressing",
                true,
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                false,
            )
        } else if stuck || (already_stuck && !progressed) {
            condition(
                previous,
                "Progressing",
                false,
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                false,
            )
        } else {
            condition(
                previous,
                "Progressing",
                true,
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{rs_name}\" is progressing."),
                progressed,
            )
        };
        let status = DeploymentStatus {
            observed_generation: d.metadata.generation,
            replicas: Some(total),
            updated_replicas: Some(updated),
            ready_replicas: Some(ready),
            available_replicas: Some(available),
            unavailable_replicas: Some((replicas - available).max(0)),
            conditions: Some(vec![available_cond, progressing]),
        };
        let same = d.status.as_ref().is_some_and(|s| {
            let strip = |cs: &Option<Vec<Condition>>| {
                cs.iter()
                    .flatten()
                    .map(|c| {
                        (
                            c.type_.clone(),
                            c.status.clone(),
                            c.reason.clone(),
                            c.last_update_time,
                        )
                    })
                    .collect::<Vec<_>>()
            };
            (
                s.observed_generation,
                s.replicas,
                s.updated_replicas,
                s.ready_replicas,
                s.available_replicas,
                s.unavailable_replicas,
            ) == (
                status.observed_generation,
                status.replicas,
                status.updated_replicas,
                status.ready_replicas,
                status.available_replicas,
                status.unavailable_replicas,
            ) && strip(&s.conditions) == strip(&status.conditions)
        });
        if same {
            return Ok(None);
        }
        let mut updated_d = d.clone();
        updated_d.status = Some(status);
        match ctx
            .update(Object::Deployment(updated_d), stored.resource_version)
            .await
        {
            Ok(w) => Ok(Some(w)),
            Err(ControllerError::Store(StoreError::Conflict { .. } | StoreError::NotFound(_))) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
