//! What the ReplicaSet controller decides, from what it observed: pure, table-tested.

use std::cmp::Reverse;
use std::time::Duration;

use chrono::{DateTime, Utc};
use keel_schema::Object;
use keel_schema::selector::Selector;
use keel_schema::types::pod::{Pod, PodPhase, PodTemplateSpec};
use keel_schema::validate::meta::MANAGED_BY_LABEL;

use crate::cache::{LabelTally, PodTally};
use crate::controllers::pods;

/// The most pods one pass creates or deletes, as Kubernetes' burst; the next pass does the
/// rest. A larger owner gets [`burst`].
pub const BURST: usize = 500;

/// The most pods one pass creates or deletes for an owner of `replicas`: [`BURST`], or a
/// fiftieth of a larger owner. A pass that deletes looks at each of the owner's pods, so
/// 100,000 replicas 500 at a time would cost 200 passes over 100,000 pods; a fiftieth keeps
/// any size within about fifty.
pub fn burst(replicas: usize) -> usize {
    BURST.max(replicas / 50)
}

/// The parts of an RS or RC this controller uses.
#[derive(Debug)]
pub struct Owner {
    pub uid: String,
    pub selector: Selector,
    pub replicas: i64,
    pub template: PodTemplateSpec,
    pub min_ready_seconds: i64,
    pub generation: i64,
}

/// The owner `object` describes; `Ok(None)` for another kind; why it cannot be one.
pub fn owner_of(object: &Object) -> Result<Option<Owner>, String> {
    let (selector, replicas, template, min_ready) = match object {
        Object::ReplicaSet(rs) => (
            Selector::from_label_selector(rs.spec.selector.as_ref())
                .map_err(|e| format!("spec.selector: {e}"))?,
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
    let template = template.ok_or("spec.template: Required value")?;
    // An empty selector would take every pod in the namespace: validation refuses it, and
    // so does this controller for anything that got past validation.
    if selector.requirements().is_empty() {
        return Err("spec.selector: Required value: empty selectors select every pod".into());
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

/// Kubernetes' order for deleting extra pods: the first ones go first (unscheduled, then
/// pending, then not ready, then most restarted, then newest).
pub fn deletion_rank(pod: &Pod) -> impl Ord + use<> {
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
        pod.is_ready(),
        Reverse(restarts),
        Reverse(pod.metadata.creation_timestamp),
    )
}

/// What the status reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub replicas: i64,
    pub ready: i64,
    pub available: i64,
    pub fully_labeled: i64,
    pub generation: i64,
}

/// One pass's decisions, by pod name.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Matching orphans to take.
    pub adopt: Vec<String>,
    /// Owned pods that stopped matching, to let go.
    pub release: Vec<String>,
    /// How many pods to make from the template.
    pub create: usize,
    /// Extra pods to delete, in the order they go.
    pub delete: Vec<String>,
    pub counts: Counts,
    /// When a pod becomes available (minReadySeconds), to look again then.
    pub next_look: Option<Duration>,
}

/// The decisions for `owner` from the tally of the pods it controls and the orphans of its
/// namespace, when those are enough: none of its pods to release, none to delete (the
/// usual case: scaling up, pods starting, pods becoming ready). `None`: look at each pod
/// ([`plan`]).
pub fn plan_from_tally(
    owner: &Owner,
    tally: &PodTally,
    orphans: &[&Pod],
    now: DateTime<Utc>,
) -> Option<Plan> {
    let stopped_matching = tally
        .by_labels()
        .any(|(labels, t)| t.pods > 0 && !owner.selector.matches(labels));
    if stopped_matching {
        return None;
    }
    let mut plan = Plan::default();
    let adopted: Vec<&Pod> = orphans
        .iter()
        .copied()
        .filter(|p| adoptable(owner, p))
        .collect();
    plan.adopt = adopted
        .iter()
        .map(|p| p.metadata.name().to_string())
        .collect();
    let adopted = PodTally::of(adopted);
    let active = tally.active() + adopted.active();
    let want = usize::try_from(owner.replicas).unwrap_or(usize::MAX);
    if active > want {
        return None;
    }
    plan.counts = counts(owner, [tally, &adopted], now, &mut plan.next_look);
    plan.create = (want - active).min(burst(want));
    Some(plan)
}

/// A pod without a controller that `owner` takes. A pod git declares is git's: adopting it
/// would make apply see it as derived.
fn adoptable(owner: &Owner, pod: &Pod) -> bool {
    let labels = pod.metadata.labels();
    pods::is_active(pod) && !labels.contains_key(MANAGED_BY_LABEL) && owner.selector.matches(labels)
}

/// The decisions for `owner` over each pod it controls and the orphans of its namespace
/// (others' pods may be among them, and are left alone).
pub fn plan(owner: &Owner, pods: &[&Pod], now: DateTime<Utc>) -> Plan {
    let mut plan = Plan::default();
    let mut active: Vec<&Pod> = Vec::new();
    for pod in pods {
        // Each check once, cheapest first: this runs for every pod of the owner and every
        // orphan of its namespace.
        let owned = match pods::controller_of(&pod.metadata) {
            // Another controller's: not looked at further.
            Some(r) if r.uid != owner.uid => false,
            Some(_) => {
                let matches = owner.selector.matches(pod.metadata.labels());
                if !matches {
                    plan.release.push(pod.metadata.name().to_string());
                }
                matches
            }
            None => {
                let adopt = adoptable(owner, pod);
                if adopt {
                    plan.adopt.push(pod.metadata.name().to_string());
                }
                adopt
            }
        };
        if owned && pods::is_active(pod) {
            active.push(pod);
        }
    }
    let tally = PodTally::of(active.iter().copied());
    plan.counts = counts(owner, [&tally], now, &mut plan.next_look);
    let want = usize::try_from(owner.replicas).unwrap_or(usize::MAX);
    if active.len() < want {
        plan.create = (want - active.len()).min(burst(want));
    } else if active.len() > want {
        active.sort_by_cached_key(|p| deletion_rank(p));
        let extra = (active.len() - want).min(burst(active.len()));
        plan.delete = active[..extra]
            .iter()
            .map(|p| p.metadata.name().to_string())
            .collect();
    }
    plan
}

/// The status counts over the tallies of the owner's active pods (each of which matches its
/// selector), and when the next one becomes available.
fn counts<'a>(
    owner: &Owner,
    tallies: impl IntoIterator<Item = &'a PodTally>,
    now: DateTime<Utc>,
    next: &mut Option<Duration>,
) -> Counts {
    let mut c = Counts {
        generation: owner.generation,
        ..Counts::default()
    };
    let template_labels = owner.template.metadata.labels();
    for (labels, t) in tallies.into_iter().flat_map(PodTally::by_labels) {
        c.replicas += i64::from(t.active);
        c.ready += i64::from(t.ready);
        c.available += available(t, owner.min_ready_seconds, now, next);
        if template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            c.fully_labeled += i64::from(t.active);
        }
    }
    c
}

/// How many of the tallied Ready pods have been Ready for `min_ready_seconds` (Kubernetes'
/// "available"), as [`pods::available`] decides for one pod, from Ready times rounded up
/// to the second; `next` becomes the soonest any other one will be.
fn available(
    t: &LabelTally,
    min_ready_seconds: i64,
    now: DateTime<Utc>,
    next: &mut Option<Duration>,
) -> i64 {
    if min_ready_seconds <= 0 {
        return i64::from(t.ready);
    }
    let mut soonest = |d: Duration| *next = Some(next.map_or(d, |n| n.min(d)));
    let mut available = 0;
    // In time order, ready-without-a-time first: past the first one not yet available,
    // none is.
    for (since, n) in &t.ready_since {
        let Some(since) = since else {
            // Ready without a time: counted from now on.
            soonest(Duration::from_secs(min_ready_seconds.unsigned_abs()));
            continue;
        };
        // A minReadySeconds too large for a date means "not in this era".
        let Some(at) = since
            .checked_add(min_ready_seconds)
            .and_then(|at| DateTime::from_timestamp(at, 0))
        else {
            break;
        };
        if at <= now {
            available += i64::from(*n);
        } else {
            soonest((at - now).to_std().unwrap_or_default());
            break;
        }
    }
    available
}

#[cfg(test)]
mod tests;
