//! StatefulSets: pods with stable names (NAME-0 … NAME-N-1) and host names, made, removed
//! and updated in order (see [`decide`] for the rules).
//!
//! Each template the set has had is kept as a ControllerRevision (NAME-<hash>, numbered), as
//! in Kubernetes: pods below a rolling update's partition are made again from the current
//! revision's template, not the new one; old revisions beyond `revisionHistoryLimit` go.
//!
//! Each pod gets its claims from `volumeClaimTemplates`, made before it (see [`claims`]).
//!
//! [`decide`] decides, purely; [`StatefulSetController::reconcile`] observes and acts.

mod claims;
pub mod decide;

use chrono::Utc;
use keel_schema::types::apps::{
    ControllerRevision, ControllerRevisionData, ControllerRevisionSpec, StatefulSet,
    StatefulSetStatus,
};
use keel_schema::types::core::EventType;
use keel_schema::types::pod::{Pod, PodTemplateSpec};
use keel_schema::{Kind, Object};
use keel_store::{ObjectKey, Stored};

use super::deployment::template_hash;
use super::runtime::{Action, Controller, Ctx, Raced, ReconcileError, Result};
use super::{keys_of_kind, owner_keys, pods};
use crate::cache::{Cache, Change};
use decide::{From, Member, POD_INDEX_LABEL, POD_NAME_LABEL, REVISION_LABEL, Wanted};

pub struct StatefulSetController;

impl Controller for StatefulSetController {
    type Key = ObjectKey;
    const NAME: &'static str = "statefulset";
    const COMPONENT: &'static str = "statefulset-controller";

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        keys_of_kind(cache, Kind::StatefulSet)
    }

    fn keys_for(&self, change: &Change, cache: &Cache, out: &mut Vec<ObjectKey>) {
        match change.kind() {
            Some(Kind::ControllerRevision) => owner_keys(
                change,
                Kind::StatefulSet,
                Kind::ControllerRevision,
                cache,
                out,
            ),
            // A claim of the namespace changed (lost with its node, say): the sets there look.
            Some(Kind::PersistentVolumeClaim) => {
                for o in change.objects() {
                    out.extend(
                        cache
                            .list(Kind::StatefulSet, Some(o.namespace()))
                            .iter()
                            .map(|s| ObjectKey::of(&s.object)),
                    );
                }
            }
            _ => owner_keys(change, Kind::StatefulSet, Kind::Pod, cache, out),
        }
    }

    fn subject(&self, key: &ObjectKey) -> Option<ObjectKey> {
        Some(key.clone())
    }

    async fn reconcile(&self, key: &ObjectKey, ctx: &Ctx) -> Result<Action> {
        let Some(stored) = ctx.cache().get(key) else {
            // Deleted: the garbage collector removes its pods and revisions.
            return Ok(Action::Done);
        };
        let Object::StatefulSet(set) = &stored.object else {
            return Ok(Action::Done);
        };
        let Some(template) = set.spec.template.as_ref() else {
            let why = format!("{key}: spec.template: Required value");
            return Err(ReconcileError::invalid("InvalidSpec", why));
        };
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let dependents = ctx.cache().dependents(&uid);
        let mut revisions: Vec<(&ControllerRevision, u64)> = dependents
            .iter()
            .filter_map(|s| match &s.object {
                Object::ControllerRevision(r) if pods::controlled_by(&r.metadata, &uid) => {
                    Some((r, s.resource_version))
                }
                _ => None,
            })
            .collect();
        revisions.sort_by_key(|(r, _)| r.revision);
        let update = revision_name(set.metadata.name(), &template_hash(template));
        if ensure_revision(&stored, set, template, &update, &revisions, ctx).await? {
            // Written: the cache shows it on the next pass, which goes on from there.
            return Ok(Action::Done);
        }
        let current = set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.clone())
            .filter(|c| revisions.iter().any(|(r, _)| r.metadata.name() == c))
            .unwrap_or_else(|| update.clone());
        let members: Vec<Member<'_>> = dependents
            .iter()
            .filter_map(|s| match &s.object {
                Object::Pod(p) if pods::controlled_by(&p.metadata, &uid) => {
                    Some(Member::new(set.metadata.name(), p, s.resource_version))
                }
                _ => None,
            })
            .collect();
        if claims::replace_lost(set, &members, ctx).await? {
            // Gone: the next pass (on the deletions) makes them again.
            return Ok(Action::Done);
        }
        // Every member's claims exist (as Kubernetes: one made again if it went).
        for m in &members {
            if let Some(ordinal) = m.ordinal.filter(|_| !m.terminating()) {
                claims::ensure(&stored, set, ordinal, ctx).await?;
            }
        }
        let wanted = wanted(set);
        let plan = decide::plan(&wanted, &current, &update, &members, Utc::now());
        if let Some(why) = &plan.waiting {
            tracing::debug!(statefulset = %key, "{why}");
        }

        // Every step is tried; the first failure is returned after the others.
        let mut first_error = None;
        for doomed in &plan.delete {
            let Some(member) = members
                .iter()
                .find(|m| m.pod.metadata.name() == doomed.name)
            else {
                continue;
            };
            match terminate(key, member, ctx).await {
                Ok(Some(_)) => ctx.events().object(
                    &stored.object,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!(
                        "delete Pod {} in StatefulSet {} successful",
                        doomed.name, key.name
                    ),
                    Self::COMPONENT,
                ),
                Ok(None) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        for (ordinal, from) in &plan.create {
            let (revision, template) = match from {
                From::Current => revisions
                    .iter()
                    .find(|(r, _)| r.metadata.name() == current)
                    .and_then(|(r, _)| revision_template(r))
                    .map_or((update.as_str(), template), |t| (current.as_str(), t)),
                From::Update => (update.as_str(), template),
            };
            if let Err(e) = claims::ensure(&stored, set, *ordinal, ctx).await {
                first_error.get_or_insert(e);
                continue;
            }
            let pod = member_pod(&stored, set, template, revision, *ordinal);
            match ctx.create(Object::Pod(pod)).await.or_raced() {
                Ok(Some(written)) => ctx.events().object(
                    &stored.object,
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!(
                        "create Pod {} in StatefulSet {} successful",
                        written.key.name, key.name
                    ),
                    Self::COMPONENT,
                ),
                Ok(None) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let status = status_of(set, &plan, &current, &update);
        if set.status.as_deref() != Some(&status) {
            let mut updated = set.clone();
            updated.status = Some(Box::new(status.clone()));
            let written = ctx
                .update(Object::StatefulSet(updated), stored.resource_version)
                .await
                .or_raced();
            if let Err(e) = written {
                first_error.get_or_insert(e);
            }
        }
        if let Err(e) = claims::delete_scaled_down(set, &wanted, &members, ctx).await {
            first_error.get_or_insert(e);
        }
        let current_now = status.current_revision.as_deref().unwrap_or(&update);
        if let Err(e) = trim_history(set, &revisions, &members, current_now, &update, ctx).await {
            first_error.get_or_insert(e);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(plan.next_look.map_or(Action::Done, Action::RequeueAfter)),
        }
    }
}

/// Deletes a member gracefully: marked deleted, it stays until its node reports it stopped
/// (see `nodes::reports`), so its successor of the same name never runs beside it. A pod
/// on no node has nothing to stop and goes at once.
async fn terminate(
    set: &ObjectKey,
    member: &Member<'_>,
    ctx: &Ctx,
) -> Result<Option<crate::cache::Written>> {
    let pod_key = ObjectKey::new(Kind::Pod, &set.namespace, member.pod.metadata.name());
    if member
        .pod
        .spec
        .node_name
        .as_deref()
        .is_none_or(str::is_empty)
    {
        return ctx.delete(&pod_key, member.version).await.or_raced();
    }
    let mut marked = member.pod.clone();
    marked.metadata.deletion_timestamp = Some(Utc::now());
    ctx.update(Object::Pod(marked), member.version)
        .await
        .or_raced()
}

/// What `set` asks for, as the decision reads it.
fn wanted(set: &StatefulSet) -> Wanted {
    let spec = &set.spec;
    let strategy = spec.update_strategy.as_ref();
    let on_delete = strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete");
    let partition = strategy
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);
    Wanted {
        replicas: spec.replicas.unwrap_or(1),
        start: spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0),
        parallel: spec.pod_management_policy.as_deref() == Some("Parallel"),
        partition: (!on_delete).then_some(partition),
        min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
    }
}

/// NAME-<hash>, as Kubernetes names a controller's revisions.
fn revision_name(set: &str, hash: &str) -> String {
    format!("{set}-{hash}")
}

fn revision_template(r: &ControllerRevision) -> Option<&PodTemplateSpec> {
    r.data.as_ref()?.spec.template.as_ref()
}

/// Makes the revision of the declared template, or (a template that returns) renumbers it
/// as the newest; true when it wrote.
async fn ensure_revision(
    stored: &Stored,
    set: &StatefulSet,
    template: &PodTemplateSpec,
    name: &str,
    revisions: &[(&ControllerRevision, u64)],
    ctx: &Ctx,
) -> Result<bool> {
    let newest = revisions.last().map_or(0, |(r, _)| r.revision);
    match revisions.iter().find(|(r, _)| r.metadata.name() == name) {
        Some((r, _)) if r.revision == newest => Ok(false),
        Some((r, version)) => {
            let mut renumbered = (*r).clone();
            renumbered.revision = newest + 1;
            let written = ctx
                .update(Object::ControllerRevision(renumbered), *version)
                .await
                .or_raced()?;
            Ok(written.is_some())
        }
        None => {
            let mut revision = ControllerRevision::default();
            revision.metadata.name = Some(name.to_string());
            revision.metadata.namespace = Some(set.metadata.namespace().to_string());
            revision
                .metadata
                .labels
                .clone_from(&template.metadata.labels);
            revision.metadata.owner_references = Some(vec![pods::reference_to(&stored.object)]);
            pods::without_git_markers(&mut revision.metadata);
            revision.data = Some(ControllerRevisionData {
                spec: ControllerRevisionSpec {
                    template: Some(template.clone()),
                },
            });
            revision.revision = newest + 1;
            let written = ctx
                .create(Object::ControllerRevision(revision))
                .await
                .or_raced()?;
            Ok(written.is_some())
        }
    }
}

/// Pod NAME-<ordinal> from `template` at `revision`: its own host name, under the set's
/// Service as subdomain, labelled with its revision, name and ordinal.
fn member_pod(
    stored: &Stored,
    set: &StatefulSet,
    template: &PodTemplateSpec,
    revision: &str,
    ordinal: i64,
) -> Pod {
    let name = format!("{}-{ordinal}", set.metadata.name());
    let mut pod = pods::from_template(
        template,
        set.metadata.namespace(),
        name.clone(),
        pods::reference_to(&stored.object),
    );
    let labels = pod.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(REVISION_LABEL.into(), revision.to_string());
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    claims::add_volumes(&mut pod, set, ordinal);
    pod.spec.hostname = Some(name);
    pod.spec.subdomain = set.spec.service_name.clone().filter(|s| !s.is_empty());
    pod
}

fn status_of(
    set: &StatefulSet,
    plan: &decide::Plan,
    current: &str,
    update: &str,
) -> StatefulSetStatus {
    let c = &plan.counts;
    let (current, current_replicas) = if plan.update_done {
        (update, c.updated)
    } else {
        (current, c.current)
    };
    StatefulSetStatus {
        observed_generation: set.metadata.generation,
        replicas: c.replicas,
        ready_replicas: Some(c.ready),
        current_replicas: Some(current_replicas),
        updated_replicas: Some(c.updated),
        available_replicas: Some(c.available),
        current_revision: Some(current.to_string()),
        update_revision: Some(update.to_string()),
        collision_count: set.status.as_ref().and_then(|s| s.collision_count),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
    }
}

/// Deletes the oldest revisions beyond `revisionHistoryLimit`, never the current or update
/// one, nor one a pod still runs.
async fn trim_history(
    set: &StatefulSet,
    revisions: &[(&ControllerRevision, u64)],
    members: &[Member<'_>],
    current: &str,
    update: &str,
    ctx: &Ctx,
) -> Result<()> {
    let limit = usize::try_from(set.spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
    let in_use = |name: &str| {
        name == current
            || name == update
            || members.iter().any(|m| {
                m.pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(REVISION_LABEL))
                    == Some(&name.to_string())
            })
    };
    let old: Vec<&(&ControllerRevision, u64)> = revisions
        .iter()
        .filter(|(r, _)| !in_use(r.metadata.name()))
        .collect();
    let surplus = old.len().saturating_sub(limit);
    for (r, version) in old.into_iter().take(surplus) {
        let key = ObjectKey::new(
            Kind::ControllerRevision,
            set.metadata.namespace(),
            r.metadata.name(),
        );
        ctx.delete(&key, *version).await.or_raced()?;
    }
    Ok(())
}
