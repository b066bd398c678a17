//! keel's volume provisioner, StorageClass `local-path` (as k3s' default): a claim is bound
//! when its first pod has been scheduled, to a new PersistentVolume `pvc-<claim uid>` on that
//! pod's node, a directory under the node agent's data dir (`volumes/<handle>`). From then
//! on the volume's node affinity keeps the claim's pods on that node (see `scheduling.rs`).
//!
//! A volume whose claim is gone (deleted, or replaced under the same name) is released once
//! no pod uses the claim's name: `Retain` keeps it, Released, with its data; `Delete` marks
//! it deleted, its node's agent removes the directory, and on the agent's report the volume
//! object goes (`nodes::reports`). A volume whose node was deleted (`keel delete node`) is
//! forgotten, and its claim is `Lost` (a StatefulSet makes its own claims again).
//!
//! [`decide`] decides, purely; [`VolumeController::reconcile`] observes and acts.

pub mod decide;

use std::collections::BTreeMap;

use chrono::Utc;
use keel_schema::types::meta::ObjectReference;
use keel_schema::types::storage::{
    CsiVolumeSource, LOCAL_PATH, LOCAL_PATH_DRIVER, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus,
    PersistentVolumeStatus, VolumeNodeAffinity,
};
use keel_schema::{Kind, Object};
use keel_store::ObjectKey;

use super::runtime::{Action, Controller, Ctx, Raced, Result};
use crate::cache::{Cache, Change};
use decide::{Claim, Step};

pub struct VolumeController;

/// The claim key a volume is bound to.
fn claim_key_of(pv: &PersistentVolume) -> Option<ObjectKey> {
    let r = pv.spec.claim_ref.as_ref()?;
    Some(ObjectKey::new(
        Kind::PersistentVolumeClaim,
        r.namespace.as_deref()?,
        r.name.as_deref()?,
    ))
}

/// The claims `pod` names.
fn claims_of(pod: &keel_schema::types::pod::Pod) -> impl Iterator<Item = ObjectKey> + '_ {
    pod.spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| {
            ObjectKey::new(
                Kind::PersistentVolumeClaim,
                pod.metadata.namespace(),
                &c.claim_name,
            )
        })
}

impl Controller for VolumeController {
    type Key = ObjectKey;
    const NAME: &'static str = "volumes";
    const COMPONENT: &'static str = "persistentvolume-controller";

    fn all_keys(&self, cache: &Cache) -> Vec<ObjectKey> {
        let mut keys = super::keys_of_kind(cache, Kind::PersistentVolumeClaim);
        for s in cache.list(Kind::PersistentVolume, None).iter() {
            if let Object::PersistentVolume(pv) = &s.object {
                keys.extend(claim_key_of(pv));
            }
        }
        keys
    }

    fn keys_for(&self, change: &Change, cache: &Cache, out: &mut Vec<ObjectKey>) {
        match change.kind() {
            Some(Kind::PersistentVolumeClaim) => out.extend(change.objects().map(ObjectKey::of)),
            Some(Kind::PersistentVolume) => {
                for o in change.objects() {
                    if let Object::PersistentVolume(pv) = o {
                        out.extend(claim_key_of(pv));
                    }
                }
            }
            Some(Kind::Pod) => {
                for o in change.objects() {
                    if let Object::Pod(p) = o {
                        out.extend(claims_of(p));
                    }
                }
            }
            // A node deleted: its volumes are forgotten.
            Some(Kind::Node) if matches!(change, Change::Object { new: None, .. }) => {
                out.extend(self.all_keys(cache))
            }
            Some(_) => {}
            None => out.extend(self.all_keys(cache)),
        }
    }

    fn subject(&self, key: &ObjectKey) -> Option<ObjectKey> {
        Some(key.clone())
    }

    async fn reconcile(&self, key: &ObjectKey, ctx: &Ctx) -> Result<Action> {
        let cache = ctx.cache();
        let stored = cache.get(key);
        let claim = stored.as_ref().and_then(|s| match &s.object {
            Object::PersistentVolumeClaim(c) => Some(c),
            _ => None,
        });
        let volumes: Vec<(PersistentVolume, u64)> = cache
            .list(Kind::PersistentVolume, None)
            .iter()
            .filter_map(|s| match &s.object {
                Object::PersistentVolume(pv) if claim_key_of(pv).as_ref() == Some(key) => {
                    Some((pv.clone(), s.resource_version))
                }
                _ => None,
            })
            .collect();
        // Pods that use the claim's name, and the node of the first one scheduled.
        let users: Vec<String> = cache
            .list(Kind::Pod, Some(&key.namespace))
            .iter()
            .filter_map(|s| match &s.object {
                Object::Pod(p) if super::pods::is_active(p) && claims_of(p).any(|k| &k == key) => {
                    Some(p.spec.node_name.clone().unwrap_or_default())
                }
                _ => None,
            })
            .collect();
        let view = claim.map(|c| Claim {
            uid: c.metadata.uid.clone().unwrap_or_default(),
            volume: c.spec.volume_name.clone(),
            phase: c.status.as_ref().and_then(|s| s.phase.clone()),
        });
        let node_exists = |n: &str| cache.get(&ObjectKey::new(Kind::Node, "", n)).is_some();
        let steps = decide::steps(view.as_ref(), &volumes, &users, node_exists);
        let mut first_error = None;
        for step in steps {
            let done = match step {
                Step::Provision { node } => match claim {
                    Some(c) => provision(key, c, &node, ctx).await,
                    None => Ok(()),
                },
                Step::Bind { volume } => match (claim, &stored) {
                    (Some(c), Some(s)) => bind(c, s.resource_version, &volume, &volumes, ctx).await,
                    _ => Ok(()),
                },
                Step::Pending => match (claim, &stored) {
                    (Some(c), Some(s)) => set_phase(c, s.resource_version, "Pending", ctx).await,
                    _ => Ok(()),
                },
                Step::Lost => match (claim, &stored) {
                    (Some(c), Some(s)) => set_phase(c, s.resource_version, "Lost", ctx).await,
                    _ => Ok(()),
                },
                Step::Release { volume, delete } => release(&volumes, &volume, delete, ctx).await,
                Step::Forget { volume } => forget(&volumes, &volume, ctx).await,
            };
            if let Err(e) = done {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(Action::Done),
        }
    }
}

/// The volume for `claim` on `node`: a directory there, `Delete` on release (the class's
/// policy, as k3s' local-path).
async fn provision(
    key: &ObjectKey,
    claim: &PersistentVolumeClaim,
    node: &str,
    ctx: &Ctx,
) -> Result<()> {
    let uid = claim.metadata.uid.clone().unwrap_or_default();
    let name = format!("pvc-{uid}");
    let mut pv = PersistentVolume::default();
    pv.metadata.name = Some(name.clone());
    pv.spec.capacity = claim
        .spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| BTreeMap::from([("storage".to_string(), q.clone())]));
    pv.spec.access_modes.clone_from(&claim.spec.access_modes);
    pv.spec.persistent_volume_reclaim_policy = Some("Delete".into());
    pv.spec.storage_class_name = Some(LOCAL_PATH.into());
    pv.spec.volume_mode = Some("Filesystem".into());
    pv.spec.claim_ref = Some(ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: Some(key.namespace.clone()),
        name: Some(key.name.clone()),
        uid: Some(uid),
        resource_version: None,
        field_path: None,
    });
    pv.spec.node_affinity = Some(VolumeNodeAffinity {
        required: Some(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: Some(vec![NodeSelectorRequirement {
                    key: "kubernetes.io/hostname".into(),
                    operator: "In".into(),
                    values: Some(vec![node.to_string()]),
                }]),
                match_fields: None,
            }],
        }),
    });
    pv.spec.csi = Some(CsiVolumeSource {
        driver: LOCAL_PATH_DRIVER.into(),
        volume_handle: name.clone(),
    });
    pv.status = Some(PersistentVolumeStatus {
        phase: Some("Bound".into()),
        message: None,
    });
    if ctx
        .create(Object::PersistentVolume(pv))
        .await
        .or_raced()?
        .is_some()
    {
        ctx.events().object(
            &Object::PersistentVolumeClaim(claim.clone()),
            keel_schema::types::core::EventType::Normal,
            "ProvisioningSucceeded",
            format!("Successfully provisioned volume {name} on node {node}"),
            VolumeController::COMPONENT,
        );
    }
    Ok(())
}

/// Records the binding on the claim: its volume, Bound, and what the volume offers.
async fn bind(
    claim: &PersistentVolumeClaim,
    version: u64,
    volume: &str,
    volumes: &[(PersistentVolume, u64)],
    ctx: &Ctx,
) -> Result<()> {
    let pv = volumes.iter().find(|(v, _)| v.metadata.name() == volume);
    let mut bound = claim.clone();
    bound.spec.volume_name = Some(volume.to_string());
    bound.status = Some(PersistentVolumeClaimStatus {
        phase: Some("Bound".into()),
        access_modes: pv.and_then(|(v, _)| v.spec.access_modes.clone()),
        capacity: pv.and_then(|(v, _)| v.spec.capacity.clone()),
    });
    if bound != *claim {
        ctx.update(Object::PersistentVolumeClaim(bound), version)
            .await
            .or_raced()?;
    }
    Ok(())
}

async fn set_phase(
    claim: &PersistentVolumeClaim,
    version: u64,
    phase: &str,
    ctx: &Ctx,
) -> Result<()> {
    let mut updated = claim.clone();
    updated.status.get_or_insert_with(Default::default).phase = Some(phase.to_string());
    if updated != *claim {
        ctx.update(Object::PersistentVolumeClaim(updated), version)
            .await
            .or_raced()?;
    }
    Ok(())
}

/// A volume whose node was deleted (`keel delete node`): its data went with the machine.
async fn forget(volumes: &[(PersistentVolume, u64)], name: &str, ctx: &Ctx) -> Result<()> {
    let Some((pv, version)) = volumes.iter().find(|(v, _)| v.metadata.name() == name) else {
        return Ok(());
    };
    tracing::warn!(
        volume = name,
        node = pv.node().unwrap_or(""),
        "forgetting a volume whose node was deleted"
    );
    let key = ObjectKey::new(Kind::PersistentVolume, "", name);
    ctx.delete(&key, *version).await.or_raced()?;
    Ok(())
}

/// Released: kept with its data (`Retain`), or marked deleted for its node to remove.
async fn release(
    volumes: &[(PersistentVolume, u64)],
    name: &str,
    delete: bool,
    ctx: &Ctx,
) -> Result<()> {
    let Some((pv, version)) = volumes.iter().find(|(v, _)| v.metadata.name() == name) else {
        return Ok(());
    };
    let mut released = pv.clone();
    released.status.get_or_insert_with(Default::default).phase = Some("Released".into());
    if delete && released.metadata.deletion_timestamp.is_none() {
        released.metadata.deletion_timestamp = Some(Utc::now());
    }
    if released != *pv {
        ctx.update(Object::PersistentVolume(released), *version)
            .await
            .or_raced()?;
    }
    Ok(())
}
