//! What the provisioner does for one claim name, from the claim (if any), the volumes bound
//! to that name and the nodes of the pods that use it: pure, table-tested.

use keel_schema::types::storage::PersistentVolume;

/// The claim as the decision needs it.
#[derive(Debug, Clone)]
pub struct Claim {
    pub uid: String,
    /// `spec.volumeName`.
    pub volume: Option<String>,
    pub phase: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Make the claim's volume on this node.
    Provision { node: String },
    /// Record the claim bound to this volume.
    Bind { volume: String },
    /// No pod of the claim is scheduled yet.
    Pending,
    /// The claim names a volume that is gone.
    Lost,
    /// A volume whose claim is gone: kept (`delete` false) or to be removed.
    Release { volume: String, delete: bool },
    /// A volume on a node that was deleted: nobody can reach its data; the object goes.
    Forget { volume: String },
}

/// `users`: the nodes of the active pods that name the claim (empty for pods not yet
/// scheduled).
pub fn steps(
    claim: Option<&Claim>,
    volumes: &[(PersistentVolume, u64)],
    users: &[String],
    node_exists: impl Fn(&str) -> bool,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let bound_to = |pv: &PersistentVolume, uid: &str| {
        pv.spec
            .claim_ref
            .as_ref()
            .and_then(|r| r.uid.as_deref())
            .is_some_and(|u| u == uid)
    };
    for (pv, _) in volumes {
        if pv.node().is_some_and(|n| !node_exists(n)) {
            steps.push(Step::Forget {
                volume: pv.metadata.name().to_string(),
            });
            continue;
        }
        let ours = claim.is_some_and(|c| bound_to(pv, &c.uid));
        // Gone, or replaced by a new claim of that name, and no pod left on the name (one
        // still running may have this volume mounted).
        let released = !ours && users.is_empty();
        if !released {
            continue;
        }
        let delete = pv.spec.persistent_volume_reclaim_policy.as_deref() != Some("Retain");
        let phase = pv.status.as_ref().and_then(|s| s.phase.as_deref());
        let done =
            phase == Some("Released") && (!delete || pv.metadata.deletion_timestamp.is_some());
        if !done {
            steps.push(Step::Release {
                volume: pv.metadata.name().to_string(),
                delete,
            });
        }
    }
    let Some(claim) = claim else {
        return steps;
    };
    let ours = volumes.iter().find(|(pv, _)| {
        bound_to(pv, &claim.uid)
            && pv.metadata.deletion_timestamp.is_none()
            && pv.node().is_none_or(&node_exists)
    });
    match (&claim.volume, ours) {
        (Some(named), Some((pv, _))) if pv.metadata.name() == named => steps.push(Step::Bind {
            volume: named.clone(),
        }),
        (Some(_), _) => {
            if claim.phase.as_deref() != Some("Lost") {
                steps.push(Step::Lost);
            }
        }
        // Made before, its binding not recorded yet.
        (None, Some((pv, _))) => steps.push(Step::Bind {
            volume: pv.metadata.name().to_string(),
        }),
        // The scheduler sends later pods of an unbound claim where the first went (the same
        // choice: the least node name among its scheduled pods).
        (None, None) => match users.iter().filter(|n| !n.is_empty()).min() {
            Some(node) => steps.push(Step::Provision { node: node.clone() }),
            None if claim.phase.as_deref() != Some("Pending") => steps.push(Step::Pending),
            None => {}
        },
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every node exists but `gone`.
    fn steps_(
        claim: Option<&Claim>,
        volumes: &[(PersistentVolume, u64)],
        users: &[String],
    ) -> Vec<Step> {
        steps(claim, volumes, users, |n| n != "gone")
    }

    fn volume(
        name: &str,
        claim_uid: &str,
        policy: &str,
        phase: &str,
        deleted: bool,
    ) -> (PersistentVolume, u64) {
        let mut pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"persistentVolumeReclaimPolicy": policy,
                     "claimRef": {"namespace": "default", "name": "data", "uid": claim_uid}},
            "status": {"phase": phase}
        }))
        .unwrap();
        if deleted {
            pv.metadata.deletion_timestamp = Some(chrono::Utc::now());
        }
        (pv, 1)
    }

    fn claim(uid: &str, volume: Option<&str>, phase: Option<&str>) -> Claim {
        Claim {
            uid: uid.into(),
            volume: volume.map(str::to_string),
            phase: phase.map(str::to_string),
        }
    }

    #[test]
    fn a_claim_waits_for_its_first_scheduled_pod_then_gets_a_volume_on_its_node() {
        let c = claim("u1", None, None);
        assert_eq!(steps_(Some(&c), &[], &[]), [Step::Pending]);
        assert_eq!(steps_(Some(&c), &[], &["".into()]), [Step::Pending]);
        let c = claim("u1", None, Some("Pending"));
        assert!(steps_(Some(&c), &[], &["".into()]).is_empty());
        assert_eq!(
            steps_(Some(&c), &[], &["".into(), "node-2".into()]),
            [Step::Provision {
                node: "node-2".into()
            }]
        );
        // Made, not yet recorded: bound, not made twice.
        let made = [volume("pvc-u1", "u1", "Delete", "Bound", false)];
        assert_eq!(
            steps_(Some(&c), &made, &["node-2".into()]),
            [Step::Bind {
                volume: "pvc-u1".into()
            }]
        );
    }

    #[test]
    fn a_volume_on_a_deleted_node_is_forgotten_and_its_claim_lost() {
        let mut pv = volume("pvc-u1", "u1", "Delete", "Bound", false);
        pv.0.spec.node_affinity = serde_json::from_value(json!({"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["gone"]}]}]}}))
        .unwrap();
        let c = claim("u1", Some("pvc-u1"), Some("Bound"));
        assert_eq!(
            steps_(Some(&c), std::slice::from_ref(&pv), &[]),
            [
                Step::Forget {
                    volume: "pvc-u1".into()
                },
                Step::Lost
            ]
        );
        // Released before its node went: forgotten all the same.
        let mut released = pv.clone();
        released.0.status = serde_json::from_value(json!({"phase": "Released"})).unwrap();
        released.0.metadata.deletion_timestamp = Some(chrono::Utc::now());
        assert_eq!(
            steps_(None, &[released], &[]),
            [Step::Forget {
                volume: "pvc-u1".into()
            }]
        );
    }

    #[test]
    fn a_bound_claim_whose_volume_is_gone_is_lost() {
        let c = claim("u1", Some("pvc-u1"), Some("Bound"));
        assert_eq!(steps_(Some(&c), &[], &[]), [Step::Lost]);
    }

    #[test]
    fn a_volume_is_released_once_its_claim_and_pods_are_gone() {
        let vols = [volume("pvc-u1", "u1", "Delete", "Bound", false)];
        // The claim is gone but a pod still uses its name: kept for now.
        assert!(steps_(None, &vols, &["node-1".into()]).is_empty());
        assert_eq!(
            steps_(None, &vols, &[]),
            [Step::Release {
                volume: "pvc-u1".into(),
                delete: true
            }]
        );
        let retained = [volume("pvc-u1", "u1", "Retain", "Bound", false)];
        assert_eq!(
            steps_(None, &retained, &[]),
            [Step::Release {
                volume: "pvc-u1".into(),
                delete: false
            }]
        );
        // Released already: nothing more.
        assert!(
            steps_(
                None,
                &[volume("pvc-u1", "u1", "Retain", "Released", false)],
                &[]
            )
            .is_empty()
        );
        assert!(
            steps_(
                None,
                &[volume("pvc-u1", "u1", "Delete", "Released", true)],
                &[]
            )
            .is_empty()
        );
    }

    #[test]
    fn a_claim_made_again_under_its_name_gets_a_new_volume_and_the_old_one_goes_once_unused() {
        let vols = [volume("pvc-u1", "u1", "Delete", "Bound", false)];
        let c = claim("u2", None, None);
        // A pod still runs on the name (it may have the old volume mounted): kept for now.
        assert_eq!(
            steps_(Some(&c), &vols, &["node-1".into()]),
            [Step::Provision {
                node: "node-1".into()
            }]
        );
        let c = claim("u2", None, Some("Pending"));
        assert_eq!(
            steps_(Some(&c), &vols, &[]),
            [Step::Release {
                volume: "pvc-u1".into(),
                delete: true
            }]
        );
    }
}
