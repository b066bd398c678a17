//! What a pod asks of the scheduler, read once from its spec: resources, host ports, node
//! selection, and its pod-to-pod rules made ready to match.

use std::collections::HashSet;
use std::sync::Arc;

use keel_schema::selector::{Labels, Selector};
use keel_schema::types::pod::{Container, Pod, Toleration};
use keel_schema::types::scheduling::PodAffinityTerm;
use keel_schema::types::storage::{NodeSelectorRequirement, NodeSelectorTerm};

/// What a pod asks of a node.
#[derive(Debug, Clone, Default)]
pub struct PodRequest {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    /// (protocol, port, host IP; empty for all addresses).
    pub host_ports: Vec<(String, i64, String)>,
    pub node_selector: keel_schema::selector::Labels,
    pub tolerations: Vec<Toleration>,
    /// The controlling owner's uid, for spreading its pods.
    pub owner: Option<String>,
    pub namespace: String,
    /// Shared by the placed pods that have the same labels ([`crate::SchedulerCache`]
    /// keeps one copy of each set): a ReplicaSet's 100,000 pods have one.
    pub labels: Arc<Labels>,
    /// Being deleted: not counted for spreading.
    pub terminating: bool,
    /// Required node affinity: a node must match one of these terms.
    pub node_required: Vec<NodeSelectorTerm>,
    /// Preferred node affinity: weight and term.
    pub node_preferred: Vec<(i64, NodeSelectorTerm)>,
    /// Required pod affinity and anti-affinity.
    pub affinity: Vec<Term>,
    pub anti: Vec<Term>,
    /// Preferred pod affinity (positive weight) and anti-affinity (negative).
    pub preferred: Vec<(i64, Term)>,
    pub spread: Vec<Spread>,
}

impl PodRequest {
    pub fn of(pod: &Pod) -> Self {
        let mut r = PodRequest::default();
        // As Kubernetes: a limit without a request requests the limit.
        let amount = |c: &Container, key: &str, millis: bool| {
            let res = c.resources.as_ref();
            res.and_then(|r| r.requests.as_ref().and_then(|m| m.get(key)))
                .or_else(|| res.and_then(|r| r.limits.as_ref().and_then(|m| m.get(key))))
                .and_then(|q| if millis { q.millis() } else { q.value() }.ok())
                .unwrap_or(0)
        };
        // Init containers run one at a time, before the others: the pod needs the most any
        // one of them asks, or what its containers ask together, whichever is more.
        for c in pod.spec.init_containers.iter().flatten() {
            r.cpu_millis = r.cpu_millis.max(amount(c, "cpu", true));
            r.memory_bytes = r.memory_bytes.max(amount(c, "memory", false));
        }
        let (mut cpu, mut memory) = (0i64, 0i64);
        for c in &pod.spec.containers {
            cpu = cpu.saturating_add(amount(c, "cpu", true));
            memory = memory.saturating_add(amount(c, "memory", false));
            for p in c.ports.iter().flatten() {
                if let Some(hp) = p.host_port.filter(|h| *h > 0) {
                    r.host_ports.push((
                        p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        hp,
                        p.host_ip.clone().unwrap_or_default(),
                    ));
                }
            }
        }
        r.cpu_millis = r.cpu_millis.max(cpu);
        r.memory_bytes = r.memory_bytes.max(memory);
        r.node_selector = pod.spec.node_selector.clone().unwrap_or_default();
        r.tolerations = pod.spec.tolerations.clone().unwrap_or_default();
        r.owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| o.uid.clone());
        r.namespace = pod.metadata.namespace().to_string();
        r.labels = Arc::new(pod.metadata.labels().clone());
        r.terminating = pod.metadata.deletion_timestamp.is_some();
        let namespace = r.namespace.clone();
        if let Some(affinity) = &pod.spec.affinity {
            if let Some(node) = &affinity.node_affinity {
                if let Some(required) = &node.required_during_scheduling_ignored_during_execution {
                    r.node_required.clone_from(&required.node_selector_terms);
                    if r.node_required.is_empty() {
                        // No term at all matches no node (validation refuses it anyway).
                        r.node_required.push(NodeSelectorTerm::default());
                    }
                }
                for p in node
                    .preferred_during_scheduling_ignored_during_execution
                    .iter()
                    .flatten()
                {
                    r.node_preferred.push((p.weight, p.preference.clone()));
                }
            }
            for (sign, rules) in [
                (1, &affinity.pod_affinity),
                (-1, &affinity.pod_anti_affinity),
            ] {
                let Some(rules) = rules else { continue };
                let required = rules
                    .required_during_scheduling_ignored_during_execution
                    .iter()
                    .flatten()
                    .map(|t| Term::of(t, &namespace));
                if sign > 0 {
                    r.affinity.extend(required);
                } else {
                    r.anti.extend(required);
                }
                for w in rules
                    .preferred_during_scheduling_ignored_during_execution
                    .iter()
                    .flatten()
                {
                    r.preferred
                        .push((sign * w.weight, Term::of(&w.pod_affinity_term, &namespace)));
                }
            }
        }
        for c in pod.spec.topology_spread_constraints.iter().flatten() {
            r.spread.push(Spread::of(c, &r.labels));
        }
        r
    }
}

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
pub struct Term {
    pub key: String,
    pub selector: Selector,
    /// `None`: every namespace.
    pub namespaces: Option<HashSet<String>>,
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

    pub fn matches(&self, namespace: &str, labels: &Labels) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|n| n.contains(namespace))
            && self.selector.matches(labels)
    }
}

/// A topology spread constraint made ready to count.
#[derive(Debug, Clone)]
pub struct Spread {
    pub key: String,
    pub max_skew: i64,
    pub hard: bool,
    pub min_domains: i64,
    pub selector: Selector,
    /// `nodeAffinityPolicy: Honor` (the default): only nodes the pod may run on count.
    pub honor_affinity: bool,
    /// `nodeTaintsPolicy: Honor`: only nodes whose taints the pod tolerates count.
    pub honor_taints: bool,
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
                    .get_or_insert_with(Default::default)
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
