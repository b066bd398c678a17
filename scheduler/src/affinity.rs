//! Node affinity, inter-pod affinity and anti-affinity, and topology spread constraints, as
//! kube-scheduler's NodeAffinity, InterPodAffinity and PodTopologySpread plugins judge them.
//!
//! Pod-to-pod rules need the whole cluster's pods, so for a pod that has any (or when some
//! bound pod has a required anti-affinity) a [`Placement`] is worked out once per scheduling
//! from the bound pods, then asked about each candidate node.

use std::collections::{BTreeMap, HashMap, HashSet};

use keel_schema::selector::{Labels, Selector};
use keel_schema::types::scheduling::PodAffinityTerm;
use keel_schema::types::storage::{NodeSelectorRequirement, NodeSelectorTerm};

use super::NodeInfo;
use super::fit::{PodRequest, Reason};

/// Whether a node selector term holds for a node (`matchExpressions` on its labels,
/// `matchFields` on its name); a term with neither matches nothing, as in Kubernetes.
pub fn term_matches(term: &NodeSelectorTerm, name: &str, labels: &Labels) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_holds(r, labels.get(&r.key).map(String::as_str)))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement_holds(r, Some(name)))
}

fn requirement_holds(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let number = |v: &str| v.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| values.iter().all(|x| x != v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(limit)) = (
                value.and_then(number),
                values.first().and_then(|v| number(v)),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                have > limit
            } else {
                have < limit
            }
        }
        _ => false,
    }
}

/// A pod-affinity term made ready to match: its selector and namespaces.
#[derive(Debug, Clone)]
pub(super) struct Term {
    pub key: String,
    selector: Selector,
    /// `None`: every namespace.
    namespaces: Option<HashSet<String>>,
}

impl Term {
    /// The term of a pod in `namespace` (its own namespace when the term names none).
    pub fn of(term: &PodAffinityTerm, namespace: &str) -> Term {
        let selector = match &term.label_selector {
            // No selector: no pod.
            None => Selector::nothing(),
            Some(sel) => {
                Selector::from_label_selector(Some(sel)).unwrap_or_else(|_| Selector::nothing())
            }
        };
        let listed = term
            .namespaces
            .iter()
            .flatten()
            .cloned()
            .collect::<HashSet<_>>();
        let namespaces = if term.namespace_selector.is_some() {
            None
        } else if listed.is_empty() {
            Some(HashSet::from([namespace.to_string()]))
        } else {
            Some(listed)
        };
        Term {
            key: term.topology_key.clone(),
            selector,
            namespaces,
        }
    }

    fn matches(&self, namespace: &str, labels: &Labels) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|n| n.contains(namespace))
            && self.selector.matches(labels)
    }
}

/// A topology spread constraint made ready to count.
#[derive(Debug, Clone)]
pub(super) struct Spread {
    pub key: String,
    pub max_skew: i64,
    pub hard: bool,
    pub min_domains: i64,
    selector: Selector,
    /// `nodeAffinityPolicy: Honor` (the default): only nodes the pod may run on count.
    honor_affinity: bool,
    /// `nodeTaintsPolicy: Honor`: only nodes whose taints the pod tolerates count.
    honor_taints: bool,
}

impl Spread {
    pub fn of(
        c: &keel_schema::types::scheduling::TopologySpreadConstraint,
        labels: &Labels,
    ) -> Spread {
        let mut selector = c.label_selector.clone().unwrap_or_default();
        // matchLabelKeys: the pod's own values of those labels join the selector.
        for key in c.match_label_keys.iter().flatten() {
            if let Some(v) = labels.get(key) {
                selector
                    .match_labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key.clone(), v.clone());
            }
        }
        let selector = match &c.label_selector {
            None if c.match_label_keys.is_none() => Selector::nothing(),
            _ => Selector::from_label_selector(Some(&selector))
                .unwrap_or_else(|_| Selector::nothing()),
        };
        Spread {
            key: c.topology_key.clone(),
            max_skew: c.max_skew.max(1),
            hard: c.when_unsatisfiable != "ScheduleAnyway",
            min_domains: c.min_domains.unwrap_or(1).max(1),
            selector,
            honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        }
    }
}

/// What the pod-to-pod rules say of the cluster for one pod: per rule, the matching pods
/// counted by topology value.
#[derive(Debug, Default)]
pub(super) struct Placement {
    /// Required affinity: the values holding a matching pod; `true` when no pod matches
    /// anywhere but the pod matches its own term (the first of a group may go anywhere).
    affinity: Vec<(String, HashSet<String>, bool)>,
    /// Required anti-affinity: the values holding a matching pod.
    anti: Vec<(String, HashSet<String>)>,
    /// Bound pods' required anti-affinity that this pod matches: (key, value) taken.
    taken: HashSet<(String, String)>,
    /// Spread constraints with their counts per value, and the values that count.
    spread: Vec<(Spread, HashMap<String, i64>, bool)>,
    /// Preferred (anti-)affinity: signed weight, key, matching pods per value.
    preferred: Vec<(i64, String, HashMap<String, i64>)>,
}

/// The value of `key` on the node a bound pod is on.
fn value_on<'a>(nodes: &'a HashMap<&str, &NodeInfo>, node: &str, key: &str) -> Option<&'a String> {
    nodes.get(node).and_then(|n| n.labels.get(key))
}

impl Placement {
    /// `None` when no pod-to-pod rule concerns this pod (the usual case: nothing to count).
    pub fn new(
        r: &PodRequest,
        nodes: &[NodeInfo],
        pods: &HashMap<String, (String, PodRequest)>,
        anti_holders: usize,
    ) -> Option<Placement> {
        if r.affinity.is_empty()
            && r.anti.is_empty()
            && r.spread.is_empty()
            && r.preferred.is_empty()
            && anti_holders == 0
        {
            return None;
        }
        let by_name: HashMap<&str, &NodeInfo> =
            nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        let mut p = Placement::default();
        let values_of = |term: &Term| -> HashMap<String, i64> {
            let mut counts = HashMap::new();
            for (node, other) in pods.values() {
                if term.matches(&other.namespace, &other.labels)
                    && let Some(v) = value_on(&by_name, node, &term.key)
                {
                    *counts.entry(v.clone()).or_insert(0) += 1;
                }
            }
            counts
        };
        for term in &r.affinity {
            let values: HashSet<String> = values_of(term).into_keys().collect();
            let alone = values.is_empty() && term.matches(&r.namespace, &r.labels);
            p.affinity.push((term.key.clone(), values, alone));
        }
        for term in &r.anti {
            p.anti
                .push((term.key.clone(), values_of(term).into_keys().collect()));
        }
        if anti_holders > 0 {
            for (node, other) in pods.values() {
                for term in &other.anti {
                    if term.matches(&r.namespace, &r.labels)
                        && let Some(v) = value_on(&by_name, node, &term.key)
                    {
                        p.taken.insert((term.key.clone(), v.clone()));
                    }
                }
            }
        }
        for (weight, term) in &r.preferred {
            p.preferred
                .push((*weight, term.key.clone(), values_of(term)));
        }
        for s in &r.spread {
            // The places: values of the key on the nodes that count.
            let mut counts: HashMap<String, i64> = HashMap::new();
            for n in nodes {
                let eligible = (!s.honor_affinity || super::fit::selected(n, r))
                    && (!s.honor_taints || super::fit::tolerated(n, r));
                if let (true, Some(v)) = (eligible, n.labels.get(&s.key)) {
                    counts.entry(v.clone()).or_insert(0);
                }
            }
            for (node, other) in pods.values() {
                if other.namespace == r.namespace
                    && s.selector.matches(&other.labels)
                    && let Some(v) = value_on(&by_name, node, &s.key)
                    && let Some(c) = counts.get_mut(v)
                {
                    *c += 1;
                }
            }
            let counts_self = s.selector.matches(&r.labels);
            p.spread.push((s.clone(), counts, counts_self));
        }
        Some(p)
    }

    /// Why `node` breaks a required rule, if it does.
    pub fn filter(&self, node: &NodeInfo) -> Option<Reason> {
        let value = |key: &str| node.labels.get(key);
        for (key, values, alone) in &self.affinity {
            let ok = value(key).is_some_and(|v| values.contains(v) || *alone);
            if !ok {
                return Some("node(s) didn't match pod affinity rules".into());
            }
        }
        for (key, values) in &self.anti {
            if value(key).is_some_and(|v| values.contains(v)) {
                return Some("node(s) didn't match pod anti-affinity rules".into());
            }
        }
        if self
            .taken
            .iter()
            .any(|(key, v)| value(key).is_some_and(|mine| mine == v))
        {
            return Some("node(s) didn't satisfy existing pods anti-affinity rules".into());
        }
        for (s, counts, counts_self) in self.spread.iter().filter(|(s, _, _)| s.hard) {
            let Some(v) = value(&s.key) else {
                return Some(
                    "node(s) didn't match pod topology spread constraints (missing required label)"
                        .into(),
                );
            };
            let min = if (counts.len() as i64) < s.min_domains {
                0
            } else {
                counts.values().copied().min().unwrap_or(0)
            };
            let here = counts.get(v).copied().unwrap_or(0) + i64::from(*counts_self);
            if here - min > s.max_skew {
                return Some("node(s) didn't match pod topology spread constraints".into());
            }
        }
        None
    }

    /// Preferred inter-pod (anti-)affinity: the signed weighted count of matching pods in
    /// the node's places.
    pub fn pod_preference(&self, node: &NodeInfo) -> i64 {
        self.preferred
            .iter()
            .map(|(weight, key, counts)| {
                let n = node
                    .labels
                    .get(key)
                    .and_then(|v| counts.get(v))
                    .copied()
                    .unwrap_or(0);
                weight * n
            })
            .sum()
    }

    /// Soft spreading: how many matching pods already are in the node's places (fewer is
    /// better).
    pub fn crowding(&self, node: &NodeInfo) -> i64 {
        self.spread
            .iter()
            .filter(|(s, _, _)| !s.hard)
            .map(|(s, counts, _)| {
                node.labels
                    .get(&s.key)
                    .and_then(|v| counts.get(v))
                    .copied()
                    .unwrap_or(0)
            })
            .sum()
    }
}

/// Scales raw scores of the feasible nodes to 0–100 (best 100), as kube-scheduler
/// normalizes a plugin's scores; all equal → all 0 (no preference).
pub(super) fn normalize(raw: &[i64], higher_is_better: bool) -> Vec<i64> {
    let (Some(&min), Some(&max)) = (raw.iter().min(), raw.iter().max()) else {
        return Vec::new();
    };
    if min == max {
        return vec![0; raw.len()];
    }
    raw.iter()
        .map(|&v| {
            let from_min = (v - min) * 100 / (max - min);
            if higher_is_better {
                from_min
            } else {
                100 - from_min
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
