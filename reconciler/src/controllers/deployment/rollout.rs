//! The Deployment controller's rollout decisions: pure, table-tested.

use std::collections::BTreeMap;

use keel_schema::intorstr::IntOrString;
use keel_schema::selector::LabelSelector;
use keel_schema::types::apps::{Deployment, ReplicaSet, ReplicaSetSpec};
use keel_schema::types::meta::OwnerReference;
use keel_schema::types::pod::PodTemplateSpec;

use crate::controllers::pods;

pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

/// One owned ReplicaSet as the rollout sees it.
#[derive(Debug, Clone)]
pub struct Rs {
    pub rs: ReplicaSet,
    /// The version read, for writes.
    pub version: u64,
    /// Its `deployment.kubernetes.io/revision`.
    pub revision: i64,
}

impl Rs {
    pub fn new(rs: ReplicaSet, version: u64) -> Rs {
        let revision = rs
            .metadata
            .annotation(REVISION_ANNOTATION)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        Rs {
            rs,
            version,
            revision,
        }
    }

    pub fn name(&self) -> &str {
        self.rs.metadata.name()
    }

    pub fn spec_replicas(&self) -> i64 {
        self.rs
            .spec
            .replicas
            .unwrap_or(1)
            .clamp(0, i64::from(i32::MAX))
    }

    /// (replicas, ready, available) as its status says.
    pub fn status(&self) -> (i64, i64, i64) {
        let s = self.rs.status.as_ref();
        (
            s.map_or(0, |s| s.replicas),
            s.and_then(|s| s.ready_replicas).unwrap_or(0),
            s.and_then(|s| s.available_replicas).unwrap_or(0),
        )
    }

    pub fn available(&self) -> i64 {
        self.status().2
    }

    /// Whether this is the ReplicaSet of the template hashed `hash`.
    pub fn has_hash(&self, hash: &str) -> bool {
        self.rs
            .metadata
            .labels()
            .get(TEMPLATE_HASH_LABEL)
            .map(String::as_str)
            == Some(hash)
    }
}

/// A stable hash of a pod template: the same template gives the same ReplicaSet, across
/// restarts and reverts.
pub fn template_hash(template: &PodTemplateSpec) -> String {
    use sha2::Digest;
    let json = serde_json::to_vec(template).unwrap_or_default();
    let digest = sha2::Sha256::digest(&json);
    digest[..10]
        .iter()
        .map(|b| pods::ALPHABET[usize::from(*b) % pods::ALPHABET.len()] as char)
        .collect()
}

/// The field of `rollingUpdate` that is not a count or percentage keel can use.
#[derive(Debug, PartialEq, Eq)]
pub struct BadFencepost(pub &'static str);

/// `maxSurge` and `maxUnavailable` as numbers, as Kubernetes' `ResolveFenceposts`.
pub fn fenceposts(d: &Deployment, replicas: i64) -> Result<(i64, i64), BadFencepost> {
    let ru = d
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let quarter = IntOrString::Str("25%".into());
    let surge = ru
        .and_then(|r| r.max_surge.as_ref())
        .unwrap_or(&quarter)
        .scaled(replicas, true)
        .map_err(|_| BadFencepost("maxSurge"))?;
    let unavailable = ru
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&quarter)
        .scaled(replicas, false)
        .map_err(|_| BadFencepost("maxUnavailable"))?;
    // Beyond `replicas` neither changes anything; clamped, no sum below can overflow.
    let (surge, unavailable) = (surge.clamp(0, replicas), unavailable.clamp(0, replicas));
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

pub fn is_recreate(d: &Deployment) -> bool {
    d.spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate")
}

/// The size a template's first ReplicaSet starts at: all of `replicas` for the first
/// template, nothing under Recreate (old pods go first), else what the surge allows.
pub fn first_size(d: &Deployment, replicas: i64, old: &[Rs]) -> Result<i64, BadFencepost> {
    if old.is_empty() {
        return Ok(replicas);
    }
    if is_recreate(d) {
        return Ok(0);
    }
    let old_total: i64 = old.iter().map(Rs::spec_replicas).sum();
    let (surge, _) = fenceposts(d, replicas)?;
    Ok((replicas + surge - old_total).clamp(0, replicas))
}

/// The ReplicaSet for `template` under deployment `d`, owned through `owner`.
pub fn new_replica_set(
    d: &Deployment,
    owner: OwnerReference,
    template: &PodTemplateSpec,
    hash: &str,
    replicas: i64,
    revision: i64,
) -> ReplicaSet {
    let mut template = template.clone();
    template
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    let mut selector = d.spec.selector.clone().unwrap_or_default();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    let mut rs = ReplicaSet::default();
    rs.metadata.name = Some(format!("{}-{hash}", d.metadata.name()));
    rs.metadata.namespace = Some(d.metadata.namespace().to_string());
    rs.metadata.labels.clone_from(&template.metadata.labels);
    rs.metadata.annotations = Some(keel_schema::StringMap::from([(
        REVISION_ANNOTATION.to_string(),
        revision.to_string(),
    )]));
    rs.metadata.owner_references = Some(vec![owner]);
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

/// The rollout's decisions for one pass: new `spec.replicas` per ReplicaSet name.
///
/// RollingUpdate: the new ReplicaSet grows while the total stays within `replicas +
/// maxSurge`; old ones shrink while at least `replicas - maxUnavailable` pods stay available,
/// unhealthy old pods first, then the oldest ReplicaSets. Recreate: old ones go to zero, and
/// the new one grows only once their pods are gone.
pub fn plan_rollout(
    d: &Deployment,
    replicas: i64,
    new: &Rs,
    old: &[Rs],
    old_active_pods: usize,
) -> Result<BTreeMap<String, i64>, BadFencepost> {
    let mut scale = BTreeMap::new();
    if is_recreate(d) {
        for rs in old.iter().filter(|rs| rs.spec_replicas() > 0) {
            scale.insert(rs.name().to_string(), 0);
        }
        if scale.is_empty() && old_active_pods == 0 && new.spec_replicas() != replicas {
            scale.insert(new.name().to_string(), replicas);
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
        scale.insert(new.name().to_string(), new_replicas);
    }
    scale_down_old(replicas, max_unavailable, total, new, old, &mut scale);
    Ok(scale)
}

/// Old ReplicaSets shrink while enough stays available: first the pods that are not
/// available anyway, then available ones, oldest ReplicaSet first.
fn scale_down_old(
    replicas: i64,
    max_unavailable: i64,
    total: i64,
    new: &Rs,
    old: &[Rs],
    scale: &mut BTreeMap<String, i64>,
) {
    if old.iter().map(Rs::spec_replicas).sum::<i64>() == 0 {
        return;
    }
    let min_available = replicas - max_unavailable;
    let new_unavailable = new.spec_replicas() - new.available();
    let mut budget = total - min_available - new_unavailable;
    if budget <= 0 {
        return;
    }
    let mut sizes: Vec<(&Rs, i64)> = old.iter().map(|rs| (rs, rs.spec_replicas())).collect();
    sizes.sort_by_key(|(rs, _)| rs.revision);
    for (rs, size) in &mut sizes {
        if budget == 0 {
            break;
        }
        let unhealthy = (*size - rs.available()).clamp(0, budget);
        *size -= unhealthy;
        budget -= unhealthy;
    }
    let available_now: i64 = old.iter().map(Rs::available).sum::<i64>() + new.available();
    let mut down = (available_now - min_available).max(0);
    for (_, size) in &mut sizes {
        if down == 0 {
            break;
        }
        let step = (*size).min(down);
        *size -= step;
        down -= step;
    }
    for (rs, size) in sizes {
        if size != rs.spec_replicas() {
            scale.insert(rs.name().to_string(), size);
        }
    }
}

/// Old ReplicaSets at zero (and not being resized) beyond `revisionHistoryLimit`, oldest
/// first: the ones to delete.
pub fn excess_history<'a>(
    d: &Deployment,
    old: &'a [Rs],
    scale: &BTreeMap<String, i64>,
) -> Vec<&'a Rs> {
    let limit = usize::try_from(d.spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
    let mut idle: Vec<&Rs> = old
        .iter()
        .filter(|rs| rs.spec_replicas() == 0 && rs.status().0 == 0)
        .filter(|rs| !scale.contains_key(rs.name()))
        .collect();
    if idle.len() <= limit {
        return Vec::new();
    }
    idle.sort_by_key(|rs| rs.revision);
    let excess = idle.len() - limit;
    idle.truncate(excess);
    idle
}
