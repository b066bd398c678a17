//! What the StatefulSet controller decides from its StatefulSet and its pods: pure,
//! table-tested. It follows Kubernetes' StatefulSet control:
//!
//! - pods are NAME-<ordinal>, one per ordinal of `[start, start + replicas)`;
//! - `OrderedReady` makes them one at a time in ordinal order, each waiting for the ones
//!   before it to be Running and Ready, and removes surplus ones one at a time from the
//!   highest ordinal, while every kept pod is healthy; `Parallel` makes and removes all at
//!   once;
//! - a changed template rolls out (`RollingUpdate`) one pod at a time from the highest
//!   ordinal down to the partition, each waiting for the one above it to be Running and
//!   Ready again; pods below the partition keep (and are made again at) the current
//!   revision. `OnDelete` replaces a pod only when it is deleted;
//! - failed or finished pods are deleted, to be made again;
//! - a pod is deleted gracefully: it stays, terminating, until its node has stopped it, and
//!   only then is its name free for the next one (never two pods of one name at once).
//!   Ordered, nothing else moves while a pod terminates.

use std::time::Duration;

use chrono::{DateTime, Utc};
use keel_schema::types::pod::Pod;

use crate::controllers::pods::{self, Availability};

/// The pod label naming the revision a pod was made from (as Kubernetes).
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The pod label naming the pod itself, for a Service per pod.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The pod label holding its ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// What the StatefulSet asks for, as numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub replicas: i64,
    /// The first ordinal (`spec.ordinals.start`).
    pub start: i64,
    /// `Parallel` pod management.
    pub parallel: bool,
    /// `Some(partition)` for `RollingUpdate`, `None` for `OnDelete`.
    pub partition: Option<i64>,
    pub min_ready_seconds: i64,
}

/// One of the set's pods, as the decision needs it.
#[derive(Debug, Clone)]
pub struct Member<'a> {
    pub ordinal: Option<i64>,
    pub pod: &'a Pod,
    pub version: u64,
}

impl<'a> Member<'a> {
    pub fn new(set_name: &str, pod: &'a Pod, version: u64) -> Member<'a> {
        Member {
            ordinal: ordinal_of(set_name, pod.metadata.name()),
            pod,
            version,
        }
    }
}

impl Member<'_> {
    fn name(&self) -> &str {
        self.pod.metadata.name()
    }

    fn revision(&self) -> Option<&str> {
        self.pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_LABEL))
            .map(String::as_str)
    }

    /// Running and Ready (Kubernetes' `isRunningAndReady`).
    fn healthy(&self) -> bool {
        self.pod.phase() == Some(keel_schema::types::pod::PodPhase::Running) && self.pod.is_ready()
    }

    fn failed_or_done(&self) -> bool {
        self.pod.is_finished() && !self.terminating()
    }

    /// Deleted, and its node not done stopping it yet.
    pub fn terminating(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }
}

/// Which revision a pod to be made comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    Current,
    Update,
}

/// A pod to delete: its name and the version read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doomed {
    pub name: String,
    pub version: u64,
}

/// The counts of `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i64,
    pub ready: i64,
    pub available: i64,
    pub current: i64,
    pub updated: i64,
}

/// One pass's decisions.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Ordinals to make, and from which revision.
    pub create: Vec<(i64, From)>,
    pub delete: Vec<Doomed>,
    pub counts: Counts,
    /// Every pod is at the update revision and ready: it becomes the current one.
    pub update_done: bool,
    /// When to look again without a change (a pod becoming available).
    pub next_look: Option<Duration>,
    /// Why the pass stopped short, for the logs and tests (`waiting for web-1 …`).
    pub waiting: Option<String>,
}

/// Decides one pass over `members` (the set's pods, terminating ones too).
pub fn plan(
    wanted: &Wanted,
    current: &str,
    update: &str,
    members: &[Member<'_>],
    now: DateTime<Utc>,
) -> Plan {
    let mut plan = Plan {
        counts: counts(wanted, current, update, members, now),
        ..Plan::default()
    };
    plan.next_look = members
        .iter()
        .filter_map(
            |m| match pods::available(m.pod, wanted.min_ready_seconds, now) {
                Availability::After(d) => Some(d),
                _ => None,
            },
        )
        .min();
    let end = wanted.start.saturating_add(wanted.replicas.max(0));
    let slot = |ordinal: i64| -> Option<&Member<'_>> {
        members.iter().find(|m| m.ordinal == Some(ordinal))
    };
    let make_from = |ordinal: i64| match wanted.partition {
        Some(p) if ordinal < wanted.start.saturating_add(p) => From::Current,
        _ => From::Update,
    };
    let c = &plan.counts;
    plan.update_done =
        c.updated == c.replicas && c.ready == c.replicas && c.replicas == wanted.replicas;

    // Ordered, a pod that is stopping holds everything up until it is gone.
    if !wanted.parallel
        && let Some(m) = members.iter().find(|m| m.terminating())
    {
        plan.waiting = Some(format!("waiting for {} to stop", m.name()));
        return plan;
    }
    // Failed or finished pods go, to be made again.
    for m in members.iter().filter(|m| m.failed_or_done()) {
        plan.delete.push(doomed(m));
        if !wanted.parallel {
            plan.waiting = Some(format!("{} failed; it is made again", m.name()));
            return plan;
        }
    }
    // Missing pods are made: all at once, or the first missing one after healthy ones.
    for ordinal in wanted.start..end {
        match slot(ordinal) {
            None => {
                plan.create.push((ordinal, make_from(ordinal)));
                if !wanted.parallel {
                    plan.waiting = Some(format!("waiting for ordinal {ordinal} to start"));
                    return plan;
                }
            }
            // Its name is free once its node has stopped it.
            Some(m) if m.terminating() => {}
            Some(m) if !wanted.parallel && !m.healthy() && !m.failed_or_done() => {
                plan.waiting = Some(format!("waiting for {} to be Running and Ready", m.name()));
                return plan;
            }
            Some(_) => {}
        }
    }
    // Surplus pods (beyond the replicas, or not of the set's names) go from the highest
    // ordinal; ordered, one at a time.
    let mut surplus: Vec<&Member<'_>> = members
        .iter()
        .filter(|m| m.ordinal.is_none_or(|o| o < wanted.start || o >= end))
        .filter(|m| !m.failed_or_done() && !m.terminating())
        .collect();
    surplus.sort_by_key(|m| std::cmp::Reverse(m.ordinal));
    if let Some(first) = surplus.first() {
        if wanted.parallel {
            plan.delete.extend(surplus.iter().map(|m| doomed(m)));
        } else {
            plan.delete.push(doomed(first));
            plan.waiting = Some(format!("scaling down: {} stops first", first.name()));
            return plan;
        }
    }
    // The update: from the highest ordinal down to the partition, one pod at a time.
    let Some(partition) = wanted.partition else {
        return plan;
    };
    if !plan.create.is_empty() {
        return plan;
    }
    let lowest = wanted.start.saturating_add(partition.max(0));
    for ordinal in (lowest.max(wanted.start)..end).rev() {
        let Some(m) = slot(ordinal).filter(|m| !m.terminating()) else {
            plan.waiting = Some(format!("waiting for ordinal {ordinal} to be made again"));
            return plan;
        };
        if m.revision() != Some(update) {
            plan.delete.push(doomed(m));
            plan.waiting = Some(format!("updating {}", m.name()));
            return plan;
        }
        if !m.healthy() {
            plan.waiting = Some(format!(
                "waiting for {} to be Running and Ready after its update",
                m.name()
            ));
            return plan;
        }
    }
    plan
}

fn doomed(m: &Member<'_>) -> Doomed {
    Doomed {
        name: m.name().to_string(),
        version: m.version,
    }
}

fn counts(
    wanted: &Wanted,
    current: &str,
    update: &str,
    members: &[Member<'_>],
    now: DateTime<Utc>,
) -> Counts {
    let mut c = Counts::default();
    for m in members.iter().filter(|m| !m.terminating()) {
        c.replicas += 1;
        if m.healthy() {
            c.ready += 1;
        }
        if m.healthy() && pods::available(m.pod, wanted.min_ready_seconds, now) == Availability::Yes
        {
            c.available += 1;
        }
        match m.revision() {
            Some(r) if r == update => c.updated += 1,
            Some(r) if r == current => c.current += 1,
            _ => {}
        }
    }
    // Pods at the update revision are also at the current one once they are the same.
    if current == update {
        c.current = c.updated;
    }
    c
}

/// The ordinal in `pod_name` when it is `set_name-<ordinal>` (no leading zeros).
pub fn ordinal_of(set_name: &str, pod_name: &str) -> Option<i64> {
    let digits = pod_name.strip_prefix(set_name)?.strip_prefix('-')?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
}

#[cfg(test)]
mod tests;
