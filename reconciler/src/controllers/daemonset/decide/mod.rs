//! What the DaemonSet controller decides, from its DaemonSet, the nodes and its pods: pure,
//! table-tested.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use keel_schema::types::apps::{DaemonSet, DaemonSetStatus};
use keel_schema::types::core::Node;
use keel_schema::types::pod::Pod;

use crate::controllers::pods::{self, Availability};

pub const REVISION_LABEL: &str = "controller-revision-hash";

/// Where `ds`'s pods belong on `node`: (it qualifies, it is ready). A pod is made only on a
/// ready node, but one already there stays while the node is not ready (the eviction timeout
/// decides about those, as for any pod).
pub fn wanted_on(ds: &DaemonSet, node: &Node) -> (bool, bool) {
    let Some(template) = ds.spec.template.as_ref() else {
        return (false, false);
    };
    let ready = node.is_ready();
    let labels = node.metadata.labels();
    let selected = template
        .spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let tolerations = template.spec.tolerations.clone().unwrap_or_default();
    let tolerated = node.spec.taints.iter().flatten().all(|t| {
        !(t.effect == "NoSchedule" || t.effect == "NoExecute")
            || keel_scheduler::tolerates(
                &tolerations,
                &t.key,
                t.value.as_deref().unwrap_or(""),
                &t.effect,
            )
    });
    (selected && tolerated, ready)
}

/// A node as the DaemonSet sees it.
#[derive(Debug, Clone)]
pub struct NodeFit {
    pub name: String,
    pub qualifies: bool,
    pub ready: bool,
}

/// A pod to act on: its name and the version read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub name: String,
    pub version: u64,
}

/// One pass's decisions.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Nodes to make a pod on.
    pub create: Vec<String>,
    /// Pods to delete: on nodes that no longer qualify or are gone, second pods on a node,
    /// and outdated pods rolled out within maxUnavailable.
    pub delete: Vec<PodRef>,
    pub status: DaemonSetStatus,
    pub next_look: Option<Duration>,
}

/// `maxUnavailable` is not a count or percentage keel can use.
#[derive(Debug, PartialEq, Eq)]
pub struct BadMaxUnavailable;

/// What the status counts, and the outdated pods a rollout may replace.
#[derive(Default)]
struct Tally<'a> {
    desired: i64,
    current: i64,
    misscheduled: i64,
    ready: i64,
    available: i64,
    updated: i64,
    unavailable: i64,
    outdated: Vec<(&'a Pod, u64)>,
}

/// The decisions for `ds` (its template hashed `hash`) over `nodes` and the active pods it
/// controls (each with the version read).
pub fn plan(
    ds: &DaemonSet,
    hash: &str,
    nodes: &[NodeFit],
    owned: &[(&Pod, u64)],
    now: DateTime<Utc>,
) -> Result<Plan, BadMaxUnavailable> {
    let mut plan = Plan::default();
    // Active pods by node, oldest first.
    let mut by_node: BTreeMap<&str, Vec<(&Pod, u64)>> = BTreeMap::new();
    for (p, v) in owned {
        let node = p.spec.node_name.as_deref().unwrap_or("");
        by_node.entry(node).or_default().push((p, *v));
    }
    for list in by_node.values_mut() {
        list.sort_by_key(|(p, _)| p.metadata.creation_timestamp);
    }
    let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
    let mut tally = Tally::default();
    for node in nodes {
        let list = by_node.remove(node.name.as_str()).unwrap_or_default();
        place(node, list, hash, min_ready, now, &mut tally, &mut plan);
    }
    // Pods on nodes that are gone.
    for (_, list) in by_node {
        tally.misscheduled += list.len() as i64;
        plan.delete.extend(list.into_iter().map(pod_ref));
    }
    roll(ds, &mut tally, &mut plan)?;
    plan.status = DaemonSetStatus {
        current_number_scheduled: tally.current,
        desired_number_scheduled: tally.desired,
        number_misscheduled: tally.misscheduled,
        number_ready: tally.ready,
        number_available: Some(tally.available),
        updated_number_scheduled: Some(tally.updated),
        observed_generation: ds.metadata.generation,
        conditions: None,
    };
    Ok(plan)
}

fn pod_ref((p, version): (&Pod, u64)) -> PodRef {
    PodRef {
        name: p.metadata.name().to_string(),
        version,
    }
}

/// One node: a pod made where one is wanted and missing, extra ones and ones on a node that
/// no longer qualifies deleted, and the one kept counted.
fn place<'a>(
    node: &NodeFit,
    list: Vec<(&'a Pod, u64)>,
    hash: &str,
    min_ready: i64,
    now: DateTime<Utc>,
    tally: &mut Tally<'a>,
    plan: &mut Plan,
) {
    if !node.qualifies {
        tally.misscheduled += list.len() as i64;
        plan.delete.extend(list.into_iter().map(pod_ref));
        return;
    }
    let Some(&(first, version)) = list.first() else {
        if node.ready {
            tally.desired += 1;
            tally.unavailable += 1;
            plan.create.push(node.name.clone());
        }
        return;
    };
    tally.desired += 1;
    tally.current += 1;
    plan.delete.extend(list.into_iter().skip(1).map(pod_ref));
    if first.is_ready() {
        tally.ready += 1;
    }
    match pods::available(first, min_ready, now) {
        Availability::Yes => tally.available += 1,
        Availability::After(d) => {
            tally.unavailable += 1;
            plan.next_look = Some(plan.next_look.map_or(d, |n| n.min(d)));
        }
        Availability::No => tally.unavailable += 1,
    }
    if first
        .metadata
        .labels()
        .get(REVISION_LABEL)
        .map(String::as_str)
        == Some(hash)
    {
        tally.updated += 1;
    } else {
        tally.outdated.push((first, version));
    }
}

/// RollingUpdate (the default): outdated pods go, unavailable ones first (they cost no
/// availability), available ones while fewer than `maxUnavailable` (default 1) nodes lack
/// a pod. OnDelete: none.
fn roll(ds: &DaemonSet, tally: &mut Tally<'_>, plan: &mut Plan) -> Result<(), BadMaxUnavailable> {
    let strategy = ds.spec.update_strategy.as_ref();
    if strategy.and_then(|s| s.type_.as_deref()) == Some("OnDelete") {
        return Ok(());
    }
    let max_unavailable = strategy
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.as_ref())
        .map(|m| m.scaled(tally.desired, true))
        .transpose()
        .map_err(|_| BadMaxUnavailable)?
        .unwrap_or(1)
        .max(1);
    tally.outdated.sort_by_key(|(p, _)| p.is_ready());
    let mut budget = max_unavailable - tally.unavailable;
    for &(p, version) in &tally.outdated {
        if !p.is_ready() {
            plan.delete.push(pod_ref((p, version)));
        } else if budget > 0 {
            budget -= 1;
            plan.delete.push(pod_ref((p, version)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
