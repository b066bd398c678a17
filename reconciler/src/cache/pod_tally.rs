//! [`PodTally`]: one controller's pods as a few numbers per label set, kept by the cache as
//! pods change, so that a ReplicaSet learns how many of its pods are active, ready and
//! available without reading each of them.
//!
//! The pods of one controller share one label set or a few (a StatefulSet's carry their
//! own names, one set each): the tally is a handful of entries where the pods are
//! thousands. Counting every pod on each status report was a sixth of the control plane's
//! CPU at 100,000 pods.

use std::collections::{BTreeMap, HashMap};

use keel_schema::StringMap;
use keel_schema::types::pod::Pod;

use crate::controllers::pods;

/// A controller's pods with one label set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelTally {
    /// Every pod, finished and deleting ones too.
    pub pods: u32,
    /// Neither finished nor being deleted ([`pods::is_active`]).
    pub active: u32,
    /// Active and Ready.
    pub ready: u32,
    /// The active, Ready pods by when they became Ready, in seconds since the epoch rounded
    /// up (agents report whole seconds, as Kubernetes' API does; a finer time makes a pod
    /// available up to a second late, never early); `None` for Ready without a time.
    pub ready_since: BTreeMap<Option<i64>, u32>,
}

/// Pods by label set (see the module).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodTally {
    by_labels: HashMap<StringMap, LabelTally>,
}

impl PodTally {
    /// A tally of `pods`.
    pub fn of<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Self {
        let mut tally = Self::default();
        for pod in pods {
            tally.add(pod);
        }
        tally
    }

    pub fn add(&mut self, pod: &Pod) {
        let labels = pod.metadata.labels();
        if let Some(entry) = self.by_labels.get_mut(labels) {
            entry.count(pod, true);
            return;
        }
        let mut entry = LabelTally::default();
        entry.count(pod, true);
        self.by_labels.insert(labels.clone(), entry);
    }

    /// Takes back what [`PodTally::add`] counted for the same version of `pod`.
    pub fn remove(&mut self, pod: &Pod) {
        let labels = pod.metadata.labels();
        let Some(entry) = self.by_labels.get_mut(labels) else {
            debug_assert!(false, "removing a pod the tally never counted");
            return;
        };
        entry.count(pod, false);
        if entry.pods == 0 {
            self.by_labels.remove(labels);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_labels.is_empty()
    }

    /// Each label set with its pods' numbers, in no particular order.
    pub fn by_labels(&self) -> impl Iterator<Item = (&StringMap, &LabelTally)> {
        self.by_labels.iter()
    }

    /// Active pods, over every label set.
    pub fn active(&self) -> usize {
        self.by_labels.values().map(|t| t.active as usize).sum()
    }
}

impl LabelTally {
    fn count(&mut self, pod: &Pod, add: bool) {
        let bump = |n: &mut u32| {
            debug_assert!(add || *n > 0, "the tally went below zero");
            *n = if add {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            };
        };
        bump(&mut self.pods);
        if !pods::is_active(pod) {
            return;
        }
        bump(&mut self.active);
        let Some(since) = pods::ready_since(pod) else {
            return;
        };
        bump(&mut self.ready);
        let second = since.map(|t| t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0));
        let at = self.ready_since.entry(second).or_default();
        bump(at);
        if *at == 0 {
            self.ready_since.remove(&second);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(labels: serde_json::Value, phase: &str, ready_at: Option<&str>) -> Pod {
        let conditions = ready_at
            .map(|at| json!([{"type": "Ready", "status": "True", "lastTransitionTime": at}]));
        serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": labels},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": phase, "conditions": conditions},
        }))
        .unwrap()
    }

    #[test]
    fn counts_by_label_set_and_takes_back_exactly_what_it_counted() {
        let web = json!({"app": "web"});
        // 10.7 s counts from 11 s: never available before it is.
        let ready = pod(web.clone(), "Running", Some("2026-01-01T00:00:10.700Z"));
        let ready_same_second = pod(web.clone(), "Running", Some("2026-01-01T00:00:11Z"));
        let starting = pod(web.clone(), "Pending", None);
        let failed = pod(web, "Failed", None);
        let other = pod(json!({"app": "api"}), "Running", None);
        let mut tally = PodTally::of([&ready, &ready_same_second, &starting, &failed, &other]);
        let mut sets: Vec<_> = tally
            .by_labels()
            .map(|(l, t)| (l.clone(), t.clone()))
            .collect();
        sets.sort_by(|a, b| a.0.cmp(&b.0));
        let second = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:11Z")
            .unwrap()
            .timestamp();
        assert_eq!(sets.len(), 2);
        assert_eq!(
            sets[1].1,
            LabelTally {
                pods: 4,
                active: 3,
                ready: 2,
                ready_since: [(Some(second), 2)].into(),
            },
            "app=web: the failed pod is a pod but not active; both ready ones count from 11 s"
        );
        assert_eq!(tally.active(), 4);
        for p in [&ready, &starting, &failed, &other, &ready_same_second] {
            tally.remove(p);
        }
        assert!(tally.is_empty(), "{tally:?}");
    }
}
