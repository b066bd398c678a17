//! A StatefulSet's `volumeClaimTemplates`: each pod NAME-N gets the claims TEMPLATE-NAME-N,
//! made before the pod and kept across its replacements, so a pod made again finds its
//! data (on the node its volume lives on). `persistentVolumeClaimRetentionPolicy` says
//! whether they go with the set (`whenDeleted: Delete`: the set owns them) or when a
//! scale-down removes their pod (`whenScaled: Delete`); both default to `Retain`.

use keel_schema::types::apps::StatefulSet;
use keel_schema::types::pod::{PersistentVolumeClaimVolumeSource, Pod, Volume};
use keel_schema::types::storage::PersistentVolumeClaim;
use keel_schema::{Kind, Object};
use keel_store::{ObjectKey, Stored};

use super::decide::{Member, Wanted};
use crate::controllers::pods;
use crate::controllers::runtime::{Ctx, Raced, Result};

fn claim_name(template: &str, set: &str, ordinal: i64) -> String {
    format!("{template}-{set}-{ordinal}")
}

fn policy<'a>(
    set: &'a StatefulSet,
    field: fn(&'a keel_schema::types::apps::ClaimRetentionPolicy) -> &'a Option<String>,
) -> &'a str {
    set.spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .and_then(|p| field(p).as_deref())
        .unwrap_or("Retain")
}

/// Gives pod NAME-`ordinal` a volume per claim template, named as the template.
pub(super) fn add_volumes(pod: &mut Pod, set: &StatefulSet, ordinal: i64) {
    for t in set.spec.volume_claim_templates.iter().flatten() {
        let name = t.metadata.name();
        let volumes = pod.spec.volumes.get_or_insert_with(Vec::new);
        if volumes.iter().any(|v| v.name == name) {
            continue;
        }
        volumes.push(Volume {
            name: name.to_string(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(name, set.metadata.name(), ordinal),
                read_only: None,
            }),
            ..Default::default()
        });
    }
}

/// Makes the claims of NAME-`ordinal` that do not exist yet.
pub(super) async fn ensure(
    stored: &Stored,
    set: &StatefulSet,
    ordinal: i64,
    ctx: &Ctx,
) -> Result<()> {
    let namespace = set.metadata.namespace();
    for t in set.spec.volume_claim_templates.iter().flatten() {
        let name = claim_name(t.metadata.name(), set.metadata.name(), ordinal);
        let key = ObjectKey::new(Kind::PersistentVolumeClaim, namespace, &name);
        if ctx.cache().get(&key).is_some() {
            continue;
        }
        let mut claim = PersistentVolumeClaim::default();
        claim.metadata.name = Some(name);
        claim.metadata.namespace = Some(namespace.to_string());
        claim
            .metadata
            .annotations
            .clone_from(&t.metadata.annotations);
        // As Kubernetes: the template's labels and the set's selector labels.
        let mut labels: keel_schema::StringMap = t.metadata.labels.clone().unwrap_or_default();
        for (k, v) in set
            .spec
            .selector
            .iter()
            .flat_map(|s| s.match_labels.iter().flatten())
        {
            labels.insert(k.clone(), v.clone());
        }
        claim.metadata.labels = (!labels.is_empty()).then_some(labels);
        if policy(set, |p| &p.when_deleted) == "Delete" {
            let mut owner = pods::reference_to(&stored.object);
            owner.controller = None;
            claim.metadata.owner_references = Some(vec![owner]);
        }
        pods::without_git_markers(&mut claim.metadata);
        claim.spec = t.spec.clone();
        ctx.create(Object::PersistentVolumeClaim(claim))
            .await
            .or_raced()?;
    }
    Ok(())
}

/// A member that cannot be placed because its own claim is `Lost` (its volume's node was
/// deleted: the data is gone) is made again from scratch: the claim and the pod go, and
/// the next pass makes both anew. True when it deleted anything.
pub(super) async fn replace_lost(
    set: &StatefulSet,
    members: &[Member<'_>],
    ctx: &Ctx,
) -> Result<bool> {
    let namespace = set.metadata.namespace();
    let mut acted = false;
    for m in members {
        let Some(ordinal) = m.ordinal else { continue };
        if m.pod
            .spec
            .node_name
            .as_deref()
            .is_some_and(|n| !n.is_empty())
        {
            continue;
        }
        for t in set.spec.volume_claim_templates.iter().flatten() {
            let name = claim_name(t.metadata.name(), set.metadata.name(), ordinal);
            let key = ObjectKey::new(Kind::PersistentVolumeClaim, namespace, &name);
            let Some(stored) = ctx.cache().get(&key) else {
                continue;
            };
            let Object::PersistentVolumeClaim(c) = &stored.object else {
                continue;
            };
            let lost = c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Lost");
            if !lost || !made_by(set, &c.metadata) {
                continue;
            }
            // The pod first: if it changed meanwhile (its status, say), nothing goes and the
            // next pass tries again; a claim never goes from under a pod that stays.
            let pod = ObjectKey::new(Kind::Pod, namespace, m.pod.metadata.name());
            if ctx.delete(&pod, m.version).await.or_raced()?.is_some() {
                tracing::warn!(claim = %key, pod = m.pod.metadata.name(), "a StatefulSet claim lost with its node; making it and its pod again");
                ctx.delete(&key, stored.resource_version).await.or_raced()?;
            }
            acted = true;
            break;
        }
    }
    Ok(acted)
}

/// Whether a claim of the set's name pattern is one the set made: labelled with its
/// selector's labels, and not declared in git.
fn made_by(set: &StatefulSet, meta: &keel_schema::types::meta::ObjectMeta) -> bool {
    let labels = meta.labels();
    let git = labels.contains_key(keel_schema::validate::meta::MANAGED_BY_LABEL);
    let selected = set
        .spec
        .selector
        .iter()
        .flat_map(|s| s.match_labels.iter().flatten())
        .all(|(k, v)| labels.get(k) == Some(v));
    !git && selected
}

/// With `whenScaled: Delete`, the claims of ordinals a scale-down removed go once their pod
/// is gone.
pub(super) async fn delete_scaled_down(
    set: &StatefulSet,
    wanted: &Wanted,
    members: &[Member<'_>],
    ctx: &Ctx,
) -> Result<()> {
    if policy(set, |p| &p.when_scaled) != "Delete" {
        return Ok(());
    }
    let namespace = set.metadata.namespace();
    let end = wanted.start.saturating_add(wanted.replicas.max(0));
    for t in set.spec.volume_claim_templates.iter().flatten() {
        let prefix = format!("{}-{}", t.metadata.name(), set.metadata.name());
        for s in ctx
            .cache()
            .list(Kind::PersistentVolumeClaim, Some(namespace))
            .iter()
        {
            let Some(ordinal) = super::decide::ordinal_of(&prefix, s.object.name()) else {
                continue;
            };
            let kept = (wanted.start..end).contains(&ordinal);
            let pod_left = members.iter().any(|m| m.ordinal == Some(ordinal));
            if kept || pod_left || !made_by(set, s.object.meta()) {
                continue;
            }
            let key = ObjectKey::of(&s.object);
            ctx.delete(&key, s.resource_version).await.or_raced()?;
        }
    }
    Ok(())
}
