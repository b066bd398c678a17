//! Node affinity, inter-pod affinity and anti-affinity, and topology spread constraints, as
//! kube-scheduler's NodeAffinity, InterPodAffinity and PodTopologySpread plugins judge them.
//!
//! Pod-to-pod rules need the whole cluster's pods, so for a pod that has any (or when some
//! bound pod has a required anti-affinity) a [`Placement`] is worked out once per scheduling
//! from the bound pods, then asked about each candidate node.

use std::collections::{HashMap, HashSet};

use super::NodeInfo;
use super::fit::Reason;
use super::request::{PodRequest, Spread, Term};

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

impl Placement {
    /// `None` when no pod-to-pod rule concerns this pod (the usual case: nothing to count).
    pub fn new(
        r: &PodRequest,
        nodes: &[NodeInfo],
        by_name: &HashMap<String, usize>,
        pods: &HashMap<String, (String, PodRequest)>,
        anti_holders: &HashSet<String>,
    ) -> Option<Placement> {
        let own_rules = !(r.affinity.is_empty()
            && r.anti.is_empty()
            && r.spread.is_empty()
            && r.preferred.is_empty());
        if !own_rules && anti_holders.is_empty() {
            return None;
        }
        let value_on = |node: &str, key: &str| -> Option<&String> {
            nodes.get(*by_name.get(node)?)?.labels.get(key)
        };
        let mut p = Placement::default();
        let values_of = |term: &Term| -> HashMap<String, i64> {
            let mut counts = HashMap::new();
            for (node, other) in pods.values() {
                if term.matches(&other.namespace, &other.labels)
                    && let Some(v) = value_on(node, &term.key)
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
        // Only the holders are looked at: a pod without rules costs a pass over them alone.
        for uid in anti_holders {
            if let Some((node, other)) = pods.get(uid) {
                for term in &other.anti {
                    if term.matches(&r.namespace, &r.labels)
                        && let Some(v) = value_on(node, &term.key)
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
            // Pods being deleted do not count (as kube-scheduler), nor those on nodes that
            // do not count.
            for (node, other) in pods.values() {
                let counted = by_name.get(node.as_str()).is_some_and(|&i| {
                    (!s.honor_affinity || super::fit::selected(&nodes[i], r))
                        && (!s.honor_taints || super::fit::tolerated(&nodes[i], r))
                });
                if counted
                    && !other.terminating
                    && other.namespace == r.namespace
                    && s.selector.matches(&other.labels)
                    && let Some(v) = value_on(node, &s.key)
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
    /// better); `None` when the node lacks a constraint's key.
    pub fn crowding(&self, node: &NodeInfo) -> Option<i64> {
        let mut sum = 0i64;
        for (s, counts, _) in self.spread.iter().filter(|(s, _, _)| !s.hard) {
            let v = node.labels.get(&s.key)?;
            sum = sum.saturating_add(counts.get(v).copied().unwrap_or(0));
        }
        Some(sum)
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
