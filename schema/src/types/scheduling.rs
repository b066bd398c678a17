//! Where a pod may and would rather run: `affinity` (node, pod, anti) and
//! `topologySpreadConstraints`, as Kubernetes' scheduler reads them.

use super::storage::{NodeSelector, NodeSelectorTerm};
use crate::selector::LabelSelector;

model! {
    pub struct Affinity {
        pub node_affinity: Option<NodeAffinity>,
        pub pod_affinity: Option<PodAffinity>,
        pub pod_anti_affinity: Option<PodAffinity>,
    }
}

model! {
    pub struct NodeAffinity {
        /// The pod runs only on a node matching one of the terms.
        pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
        pub preferred_during_scheduling_ignored_during_execution:
            Option<Vec<PreferredSchedulingTerm>>,
    }
}

model! {
    pub struct PreferredSchedulingTerm {
        /// 1–100.
        #[serde(default)]
        pub weight: i64,
        #[serde(default)]
        pub preference: NodeSelectorTerm,
    }
}

model! {
    /// `podAffinity` or `podAntiAffinity`.
    pub struct PodAffinity {
        pub required_during_scheduling_ignored_during_execution: Option<Vec<PodAffinityTerm>>,
        pub preferred_during_scheduling_ignored_during_execution:
            Option<Vec<WeightedPodAffinityTerm>>,
    }
}

model! {
    pub struct PodAffinityTerm {
        /// The pods it is about (none: no pod).
        pub label_selector: Option<LabelSelector>,
        /// Their namespaces (none: the pod's own).
        pub namespaces: Option<Vec<String>>,
        /// `{}` for every namespace; keel reads no namespace labels, so only that.
        pub namespace_selector: Option<LabelSelector>,
        /// Nodes with the same value of this label are one place (`kubernetes.io/hostname`:
        /// a node; `topology.kubernetes.io/zone`: a zone).
        #[serde(default)]
        pub topology_key: String,
    }
}

model! {
    pub struct WeightedPodAffinityTerm {
        /// 1–100.
        #[serde(default)]
        pub weight: i64,
        #[serde(default)]
        pub pod_affinity_term: PodAffinityTerm,
    }
}

model! {
    pub struct TopologySpreadConstraint {
        /// The most the number of matching pods may differ between two places.
        #[serde(default)]
        pub max_skew: i64,
        #[serde(default)]
        pub topology_key: String,
        /// `DoNotSchedule` (a filter) or `ScheduleAnyway` (a preference).
        #[serde(default)]
        #[schemars(extend("enum" = ["DoNotSchedule", "ScheduleAnyway"]))]
        pub when_unsatisfiable: String,
        pub label_selector: Option<LabelSelector>,
        /// Fewer places than this count as places with no pod.
        pub min_domains: Option<i64>,
        /// Labels of the pod whose values join the selector (pods of the same revision).
        pub match_label_keys: Option<Vec<String>>,
        /// `Honor` (default: only nodes the pod may run on count) or `Ignore`.
        #[schemars(extend("enum" = ["Honor", "Ignore", null]))]
        pub node_affinity_policy: Option<String>,
        /// `Ignore` (default) or `Honor` (nodes with taints it does not tolerate do not count).
        #[schemars(extend("enum" = ["Honor", "Ignore", null]))]
        pub node_taints_policy: Option<String>,
    }
}
