//! The scheduler: binds pending pods to nodes.
//!
//! For each pod it filters the nodes (Ready, schedulable, CPU and memory requests fit what is
//! left of allocatable, pod count, nodeSelector, hostPort conflicts, taints and tolerations),
//! scores the feasible ones (least allocated, plus spreading the pods of one owner across
//! nodes) and picks the best. As kube-scheduler does on large clusters, it stops filtering once
//! it has found enough feasible nodes (`percentageOfNodesToScore`), starting each search where
//! the last one stopped, so every node gets its turn.
//!
//! [`SchedulerCache`] is the scheduler's view of nodes and bound pods. It is pure (no store,
//! no I/O): the caller feeds it nodes and pods, asks it to place a pod, and binds the result
//! with optimistic concurrency. A placed pod is counted at once ("assumed"), so pods placed in
//! a burst do not all land on the same emptiest node.
#![forbid(unsafe_code)]

mod affinity;
mod fit;
mod request;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use keel_schema::types::core::Node;
use keel_schema::types::pod::Pod;

use fit::Reason;
pub use fit::{FitError, tolerates};
pub use request::PodRequest;

/// kube-scheduler's default pod limit per node when a node does not say.
pub const DEFAULT_MAX_PODS: u32 = 110;

/// One node as the scheduler sees it.
#[derive(Debug, Clone)]
struct NodeInfo {
    name: String,
    labels: keel_schema::selector::Labels,
    /// `NoSchedule` and `NoExecute` taints: (key, value, effect).
    taints: Vec<(String, String, String)>,
    ready: bool,
    unschedulable: bool,
    allocatable_cpu: i64,
    allocatable_memory: i64,
    max_pods: u32,
    requested_cpu: i64,
    requested_memory: i64,
    pods: u32,
    /// (protocol, port, host IP) in use.
    host_ports: Vec<(String, i64, String)>,
    /// Pods per owner uid, for spreading. Looked up for every feasible node of every pod
    /// placed (500 nodes a pod with 5,000): a fast hash, as SipHash over a uid took a tenth
    /// of the control plane's time at 100,000 pods.
    owners: HashMap<String, u32, foldhash::fast::RandomState>,
}

impl NodeInfo {
    fn from_node(node: &Node) -> Self {
        let status = node.status.as_ref();
        let quantity = |key: &str, millis: bool| {
            status
                .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
                .and_then(|a| a.get(key))
                .and_then(|q| if millis { q.millis() } else { q.value() }.ok())
                .unwrap_or(0)
        };
        let ready = node.is_ready();
        let taints = node
            .spec
            .taints
            .iter()
            .flatten()
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .map(|t| {
                (
                    t.key.clone(),
                    t.value.clone().unwrap_or_default(),
                    t.effect.clone(),
                )
            })
            .collect();
        NodeInfo {
            name: node.metadata.name().to_string(),
            labels: node.metadata.labels().clone(),
            taints,
            ready,
            unschedulable: node.spec.unschedulable.unwrap_or(false),
            allocatable_cpu: quantity("cpu", true),
            allocatable_memory: quantity("memory", false),
            max_pods: u32::try_from(quantity("pods", false))
                .ok()
                .filter(|p| *p > 0)
                .unwrap_or(DEFAULT_MAX_PODS),
            requested_cpu: 0,
            requested_memory: 0,
            pods: 0,
            host_ports: Vec::new(),
            owners: HashMap::default(),
        }
    }

    fn add(&mut self, r: &PodRequest) {
        self.requested_cpu += r.cpu_millis;
        self.requested_memory += r.memory_bytes;
        self.pods += 1;
        self.host_ports.extend(r.host_ports.iter().cloned());
        if let Some(owner) = &r.owner {
            *self.owners.entry(owner.clone()).or_default() += 1;
        }
    }

    fn remove(&mut self, r: &PodRequest) {
        self.requested_cpu -= r.cpu_millis;
        self.requested_memory -= r.memory_bytes;
        self.pods = self.pods.saturating_sub(1);
        for hp in &r.host_ports {
            if let Some(i) = self.host_ports.iter().position(|x| x == hp) {
                self.host_ports.swap_remove(i);
            }
        }
        if let Some(owner) = &r.owner
            && let Some(n) = self.owners.get_mut(owner)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.owners.remove(owner);
            }
        }
    }
}

/// The scheduler's view of the cluster: nodes and the pods bound to them.
#[derive(Debug, Default)]
pub struct SchedulerCache {
    nodes: Vec<NodeInfo>,
    by_name: HashMap<String, usize>,
    /// Bound (or assumed) pods by uid: their node and what they request.
    pods: HashMap<String, (String, PodRequest)>,
    /// Where the next search starts.
    next_start: usize,
    /// Picks among equally good nodes in turn (kube-scheduler picks at random).
    ties: usize,
    /// Bound (or assumed) pods with a required anti-affinity, by uid: every placement must
    /// respect theirs.
    anti_holders: HashSet<String>,
    /// One copy of each placed pod's labels: a map with one label takes some 550 bytes (a
    /// B-tree leaf), and most pods share theirs with the rest of their owner's.
    label_sets: HashSet<Arc<keel_schema::selector::Labels>>,
}

impl SchedulerCache {
    pub fn new() -> Self {
        Self::default()
    }

    #[cfg(test)]
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Adds or updates a node, keeping what its pods request.
    pub fn upsert_node(&mut self, node: &Node) {
        let mut info = NodeInfo::from_node(node);
        match self.by_name.get(&info.name) {
            Some(&i) => {
                let old = &self.nodes[i];
                info.requested_cpu = old.requested_cpu;
                info.requested_memory = old.requested_memory;
                info.pods = old.pods;
                info.host_ports = old.host_ports.clone();
                info.owners = old.owners.clone();
                self.nodes[i] = info;
            }
            None => {
                // Pods bound before the node was known (or while it was gone) count now.
                for (node, request) in self.pods.values() {
                    if *node == info.name {
                        info.add(request);
                    }
                }
                self.by_name.insert(info.name.clone(), self.nodes.len());
                self.nodes.push(info);
            }
        }
    }

    /// Forgets a node (its pods stay known until removed, but no pod is placed there).
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.by_name.remove(name) else {
            return;
        };
        self.nodes.swap_remove(i);
        if i < self.nodes.len() {
            let moved = self.nodes[i].name.clone();
            self.by_name.insert(moved, i);
        }
    }

    /// Counts a pod bound to a node (by `spec.nodeName`); a pod seen again is updated.
    pub fn add_pod(&mut self, pod: &Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.remove_pod(&uid);
        // Finished pods hold nothing, as in kube-scheduler.
        if pod.is_finished() {
            return;
        }
        let Some(node) = pod.spec.node_name.clone().filter(|n| !n.is_empty()) else {
            return;
        };
        let request = PodRequest::of(pod);
        if let Some(&i) = self.by_name.get(&node) {
            self.nodes[i].add(&request);
        }
        self.insert_pod(uid, node, request);
    }

    /// Counts a pod on `node` (the caller has added its request to the node).
    fn insert_pod(&mut self, uid: String, node: String, mut request: PodRequest) {
        match self.label_sets.get(&request.labels) {
            Some(shared) => request.labels = shared.clone(),
            None => {
                self.label_sets.insert(request.labels.clone());
            }
        }
        if request.anti.is_empty() {
            self.anti_holders.remove(&uid);
        } else {
            self.anti_holders.insert(uid.clone());
        }
        self.pods.insert(uid, (node, request));
    }

    /// Forgets a pod (deleted, or finished).
    pub fn remove_pod(&mut self, uid: &str) {
        if let Some((node, request)) = self.pods.remove(uid) {
            self.anti_holders.remove(uid);
            // The last placed pod with these labels: the set's own copy is the other.
            if Arc::strong_count(&request.labels) == 2 {
                self.label_sets.remove(&request.labels);
            }
            if let Some(&i) = self.by_name.get(&node) {
                self.nodes[i].remove(&request);
            }
        }
    }

    /// How many nodes to find feasible before scoring, as kube-scheduler's adaptive
    /// `percentageOfNodesToScore`: all of up to 100 nodes, else 50% minus 1% per 125 nodes,
    /// at least 5% and at least 100 nodes.
    fn feasible_to_find(&self) -> usize {
        let n = self.nodes.len();
        if n <= 100 {
            return n;
        }
        let percent = (50 - (n / 125) as i64).max(5) as usize;
        (n * percent / 100).max(100)
    }

    /// Picks a node for `pod` and counts the pod there. The caller binds it (and calls
    /// [`SchedulerCache::remove_pod`] if the bind fails).
    pub fn schedule(&mut self, pod: &Pod) -> Result<String, FitError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        // Placed again (a bind that failed, say): its earlier place no longer counts.
        self.remove_pod(&uid);
        let request = PodRequest::of(pod);
        let placement = affinity::Placement::new(
            &request,
            &self.nodes,
            &self.by_name,
            &self.pods,
            &self.anti_holders,
        );
        let n = self.nodes.len();
        let want = self.feasible_to_find();
        let mut feasible: Vec<usize> = Vec::with_capacity(want.min(n));
        let mut reasons: BTreeMap<Reason, usize> = BTreeMap::new();
        let start = if n == 0 { 0 } else { self.next_start % n };
        let mut looked = 0;
        for k in 0..n {
            let i = (start + k) % n;
            looked += 1;
            let fits = fit::check(&self.nodes[i], &request).and_then(|()| {
                match placement.as_ref().and_then(|p| p.filter(&self.nodes[i])) {
                    Some(why) => Err(vec![why]),
                    None => Ok(()),
                }
            });
            match fits {
                Ok(()) => {
                    feasible.push(i);
                    if feasible.len() >= want {
                        break;
                    }
                }
                Err(why) => {
                    for r in why {
                        *reasons.entry(r).or_default() += 1;
                    }
                }
            }
        }
        self.next_start = start + looked;
        if feasible.is_empty() {
            return Err(FitError {
                nodes: n,
                reasons: reasons.into_iter().collect(),
            });
        }
        // The pod's owner's pods on each feasible node, looked up once.
        let owned: Vec<u32> = match &request.owner {
            Some(o) => feasible
                .iter()
                .map(|&i| self.nodes[i].owners.get(o).copied().unwrap_or(0))
                .collect(),
            None => vec![0; feasible.len()],
        };
        let max_owned = owned.iter().copied().max().unwrap_or(0);
        // Preferences, each scaled to 0–100 over the feasible nodes and weighed 2, as
        // kube-scheduler weighs NodeAffinity, InterPodAffinity and PodTopologySpread.
        let raw = |f: &dyn Fn(&NodeInfo) -> i64| -> Vec<i64> {
            feasible.iter().map(|&i| f(&self.nodes[i])).collect()
        };
        let node_pref = affinity::normalize(&raw(&|n| fit::node_preference(n, &request)), true);
        let (pod_pref, crowding) = match &placement {
            Some(p) => {
                // A node without a soft constraint's key is the least wanted (as
                // kube-scheduler scores it), after the most crowded one.
                let crowd: Vec<Option<i64>> = feasible
                    .iter()
                    .map(|&i| p.crowding(&self.nodes[i]))
                    .collect();
                let worst = crowd
                    .iter()
                    .flatten()
                    .max()
                    .copied()
                    .unwrap_or(0)
                    .saturating_add(1);
                let crowd: Vec<i64> = crowd.into_iter().map(|c| c.unwrap_or(worst)).collect();
                (
                    affinity::normalize(&raw(&|n| p.pod_preference(n)), true),
                    affinity::normalize(&crowd, false),
                )
            }
            None => (vec![0; feasible.len()], vec![0; feasible.len()]),
        };
        let scores: Vec<i64> = feasible
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                fit::score(&self.nodes[i], &request, owned[k], max_owned)
                    + 2 * (node_pref[k] + pod_pref[k] + crowding[k])
            })
            .collect();
        let top = scores.iter().copied().max().unwrap_or(0);
        let tied: Vec<usize> = feasible
            .iter()
            .zip(&scores)
            .filter(|(_, s)| **s == top)
            .map(|(i, _)| *i)
            .collect();
        let best = tied[self.ties % tied.len()];
        self.ties = self.ties.wrapping_add(1);
        let node = self.nodes[best].name.clone();
        self.nodes[best].add(&request);
        self.insert_pod(uid, node.clone(), request);
        Ok(node)
    }
}

#[cfg(test)]
mod tests;
