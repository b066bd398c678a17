//! Whether a pod fits a node (filters, with Kubernetes' reasons) and how well (scores).

use std::fmt;

use keel_schema::types::pod::Toleration;

use super::NodeInfo;
use super::request::{PodRequest, term_matches};

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
/// pod's owner: it has `owned`, the most any feasible node has `max_owned`), as
/// kube-scheduler weighs NodeResourcesFit and PodTopologySpread.
pub(super) fn score(node: &NodeInfo, r: &PodRequest, owned: u32, max_owned: u32) -> i64 {
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
        Some(_) if max_owned > 0 => {
            (i64::from(max_owned) - i64::from(owned)) * 100 / i64::from(max_owned)
        }
        _ => 100,
    };
    least + 2 * spread
}
