//! Whether a pod fits a node (filters, with Kubernetes' reasons) and how well (scores).

use std::collections::BTreeMap;
use std::fmt;

use keel_schema::selector::Labels;
use keel_schema::types::pod::{Container, Pod, Toleration};
use keel_schema::types::storage::NodeSelectorTerm;

use super::NodeInfo;
use super::affinity::{Spread, Term, term_matches};

/// What a pod asks of a node.
#[derive(Debug, Clone, Default)]
pub(super) struct PodRequest {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    /// (protocol, port, host IP; empty for all addresses).
    pub host_ports: Vec<(String, i64, String)>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    /// The controlling owner's uid, for spreading its pods.
    pub owner: Option<String>,
    pub namespace: String,
    pub labels: Labels,
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
        r.labels = pod.metadata.labels().clone();
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

/// Why a node does not fit, in kube-scheduler's words.
pub type Reason = String;

/// No node fits; displays as kube-scheduler's `FailedScheduling` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub nodes: usize,
    /// Each reason with the number of nodes it ruled out, sorted by reason.
    pub reasons: Vec<(Reason, usize)>,
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available", self.nodes)?;
        if self.reasons.is_empty() {
            return f.write_str(".");
        }
        // kube-scheduler sorts the whole "N reason" strings.
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        parts.sort();
        write!(f, ": {}.", parts.join(", "))
    }
}

impl std::error::Error for FitError {}

pub fn tolerates(tolerations: &[Toleration], key: &str, value: &str, effect: &str) -> bool {
    tolerations.iter().any(|t| {
        let effect_ok = t
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == effect);
        let t_key = t.key.as_deref().unwrap_or("");
        match t.operator.as_deref().unwrap_or("Equal") {
            // An empty key with Exists tolerates every taint.
            "Exists" => effect_ok && (t_key.is_empty() || t_key == key),
            _ => effect_ok && t_key == key && t.value.as_deref().unwrap_or("") == value,
        }
    })
}

fn ports_clash(a: &(String, i64, String), b: &(String, i64, String)) -> bool {
    let any = |ip: &str| ip.is_empty() || ip == "0.0.0.0";
    a.0 == b.0 && a.1 == b.1 && (any(&a.2) || any(&b.2) || a.2 == b.2)
}

/// Whether the pod's nodeSelector and required node affinity allow `node`.
pub(super) fn selected(node: &NodeInfo, r: &PodRequest) -> bool {
    r.node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
        && (r.node_required.is_empty()
            || r.node_required
                .iter()
                .any(|t| term_matches(t, &node.name, &node.labels)))
}

/// Whether the pod tolerates every `NoSchedule`/`NoExecute` taint of `node`.
pub(super) fn tolerated(node: &NodeInfo, r: &PodRequest) -> bool {
    node.taints
        .iter()
        .all(|(k, v, e)| tolerates(&r.tolerations, k, v, e))
}

/// The sum of the weights of the pod's preferred node affinity terms `node` matches.
pub(super) fn node_preference(node: &NodeInfo, r: &PodRequest) -> i64 {
    r.node_preferred
        .iter()
        .filter(|(_, t)| term_matches(t, &node.name, &node.labels))
        .map(|(w, _)| w)
        .sum()
}

/// Every reason `node` cannot take the pod (empty: it fits).
pub(super) fn check(node: &NodeInfo, r: &PodRequest) -> Result<(), Vec<Reason>> {
    // As kube-scheduler: the first filter that fails gives the node's reasons, in this order;
    // only the resource filter can give several at once.
    if node.unschedulable {
        return Err(vec!["node(s) were unschedulable".into()]);
    }
    if !node.ready {
        return Err(vec!["node(s) were not ready".into()]);
    }
    if let Some((k, v, _)) = node
        .taints
        .iter()
        .find(|(k, v, e)| !tolerates(&r.tolerations, k, v, e))
    {
        return Err(vec![format!("node(s) had untolerated taint {{{k}: {v}}}")]);
    }
    if !selected(node, r) {
        return Err(vec![
            "node(s) didn't match Pod's node affinity/selector".into(),
        ]);
    }
    if r.host_ports
        .iter()
        .any(|want| node.host_ports.iter().any(|used| ports_clash(want, used)))
    {
        return Err(vec![
            "node(s) didn't have free ports for the requested pod ports".into(),
        ]);
    }
    let mut why = Vec::new();
    if node.pods >= node.max_pods {
        why.push("Too many pods".into());
    }
    if r.cpu_millis > 0 && node.requested_cpu.saturating_add(r.cpu_millis) > node.allocatable_cpu {
        why.push("Insufficient cpu".into());
    }
    if r.memory_bytes > 0
        && node.requested_memory.saturating_add(r.memory_bytes) > node.allocatable_memory
    {
        why.push("Insufficient memory".into());
    }
    if why.is_empty() { Ok(()) } else { Err(why) }
}

/// How well `node` suits the pod: least allocated (0–100, CPU and memory averaged, after
/// placing the pod) plus twice the spreading score (100 for a node with the fewest pods of the
/// pod's owner), as kube-scheduler weighs NodeResourcesFit and PodTopologySpread.
pub(super) fn score(node: &NodeInfo, r: &PodRequest, max_owned: u32) -> i64 {
    let free = |alloc: i64, used: i64| {
        if alloc <= 0 {
            0
        } else {
            ((alloc - used).max(0) * 100) / alloc
        }
    };
    let least = (free(node.allocatable_cpu, node.requested_cpu + r.cpu_millis)
        + free(
            node.allocatable_memory,
            node.requested_memory + r.memory_bytes,
        ))
        / 2;
    let spread = match &r.owner {
        Some(owner) if max_owned > 0 => {
            let mine = i64::from(node.owners.get(owner).copied().unwrap_or(0));
            (i64::from(max_owned) - mine) * 100 / i64::from(max_owned)
        }
        _ => 100,
    };
    least + 2 * spread
}
