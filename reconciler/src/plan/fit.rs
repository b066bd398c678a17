//! "Will it fit?": the pods a revision would start, run through the scheduler against the
//! live nodes, before anything is applied. A plan made against a server says which
//! workloads would leave pods Pending, in the scheduler's own words.
//!
//! The end state is what is checked: pods of workloads the plan changes or deletes are
//! taken off their nodes (their replacements are counted instead); every other pod stays.
//! LimitRange defaults of the revision apply, as admission would apply them.

use std::collections::{BTreeMap, HashSet};

use keel_scheduler::SchedulerCache;
use keel_schema::types::pod::Pod;
use keel_schema::types::policy::LimitRange;
use keel_schema::{Kind, Object, PodTemplateRef};

use super::diff::{Action, Change};
use crate::controllers::pods::{controller_of, from_template, reference_to};

/// A workload whose pods would not all find a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// How many of its pods would stay Pending.
    pub pods: usize,
    /// The scheduler's reason for the first of them.
    pub message: String,
}

impl Pending {
    /// "3 pods of Deployment prod/web would stay Pending: 0/3 nodes are available: …".
    pub fn note(&self) -> String {
        let pods = if self.pods == 1 {
            "1 pod".to_string()
        } else {
            format!("{} pods", self.pods)
        };
        let ns = if self.namespace.is_empty() {
            String::new()
        } else {
            format!("{}/", self.namespace)
        };
        format!(
            "{pods} of {} {ns}{} would stay Pending: {}",
            self.kind, self.name, self.message
        )
    }
}

/// Places the pods `changes` would start on `nodes`, beside the `live` pods that stay.
/// `owners` maps a ReplicaSet (namespace, name) to the Deployment that owns it, so a
/// Deployment's pods are known as its own. `revision` is every object of the new revision
/// (for its LimitRanges).
pub fn pending(
    changes: &[Change],
    revision: &[Object],
    nodes: &[Object],
    live: &[Pod],
    owners: &BTreeMap<(String, String), String>,
) -> Vec<Pending> {
    // Workloads whose pods the plan replaces or removes.
    let replaced: HashSet<(Kind, String, String)> = changes
        .iter()
        .filter(|c| c.object().pod_template().is_some())
        .map(|c| {
            let o = c.object();
            (o.kind(), o.namespace().to_string(), o.name().to_string())
        })
        .collect();
    let mut cache = SchedulerCache::new();
    for node in nodes {
        if let Object::Node(n) = node {
            cache.upsert_node(n);
        }
    }
    for pod in live {
        if !replaced.contains(&owner_of(pod, owners)) {
            cache.add_pod(pod);
        }
    }
    let ranges: Vec<&LimitRange> = revision
        .iter()
        .filter_map(|o| match o {
            Object::LimitRange(r) => Some(r),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for change in changes.iter().filter(|c| c.action != Action::Delete) {
        let Some(workload) = &change.new else {
            continue;
        };
        let mut stuck = 0;
        let mut message = None;
        for (i, mut pod) in pods_of(workload).into_iter().enumerate() {
            if pod.spec.node_name.as_deref().is_some_and(|n| !n.is_empty()) {
                continue;
            }
            let in_namespace: Vec<&LimitRange> = ranges
                .iter()
                .copied()
                .filter(|r| r.metadata.namespace() == workload.namespace())
                .collect();
            keel_schema::limits::apply_defaults(&mut pod.spec, &in_namespace);
            pod.metadata.uid = Some(format!(
                "plan/{}/{}/{}/{i}",
                workload.kind(),
                workload.namespace(),
                workload.name()
            ));
            if let Err(e) = cache.schedule(&pod) {
                stuck += 1;
                message.get_or_insert_with(|| e.to_string());
            }
        }
        if let Some(message) = message {
            out.push(Pending {
                kind: workload.kind(),
                namespace: workload.namespace().to_string(),
                name: workload.name().to_string(),
                pods: stuck,
                message,
            });
        }
    }
    out
}

/// The workload a live pod belongs to (a Deployment's through its ReplicaSet).
fn owner_of(pod: &Pod, owners: &BTreeMap<(String, String), String>) -> (Kind, String, String) {
    let namespace = pod.metadata.namespace().to_string();
    let Some(owner) = controller_of(&pod.metadata) else {
        return (Kind::Pod, namespace, pod.metadata.name().to_string());
    };
    if owner.kind == "ReplicaSet"
        && let Some(deployment) = owners.get(&(namespace.clone(), owner.name.clone()))
    {
        return (Kind::Deployment, namespace, deployment.clone());
    }
    let kind = Kind::from_name(&owner.kind).unwrap_or(Kind::Pod);
    (kind, namespace, owner.name.clone())
}

/// The pods a workload runs once rolled out. DaemonSets (one pod per node, placed by their
/// controller) and CronJobs (pods only when they fire) are not counted.
fn pods_of(workload: &Object) -> Vec<Pod> {
    let count = |replicas: Option<i64>| usize::try_from(replicas.unwrap_or(1)).unwrap_or(0);
    let (template, n) = match (workload, workload.pod_template()) {
        (Object::Pod(p), _) => return vec![p.clone()],
        (Object::Deployment(d), Some(PodTemplateRef::Template(t))) => (t, count(d.spec.replicas)),
        (Object::ReplicaSet(r), Some(PodTemplateRef::Template(t))) => (t, count(r.spec.replicas)),
        (Object::StatefulSet(s), Some(PodTemplateRef::Template(t))) => (t, count(s.spec.replicas)),
        (Object::ReplicationController(r), Some(PodTemplateRef::Template(t))) => {
            (t, count(r.spec.replicas))
        }
        (Object::Job(j), Some(PodTemplateRef::Template(t))) => (t, count(j.spec.parallelism)),
        _ => return Vec::new(),
    };
    // Bounded: a revision asking for more pods than a cluster could hold is answered by
    // the first of them.
    (0..n.min(10_000))
        .map(|i| {
            from_template(
                template,
                workload.namespace(),
                format!("{}-{i}", workload.name()),
                reference_to(workload),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> Object {
        Object::from_json(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name},
            "status": {
                "allocatable": {"cpu": "2", "memory": "1Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        }))
        .unwrap()
    }

    fn deployment(name: &str, replicas: i64, memory: &str) -> Object {
        Object::from_json(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "x:1",
                        "resources": {"requests": {"memory": memory}}}]}
                }
            }
        }))
        .unwrap()
    }

    /// A running pod of `owner`'s ReplicaSet `owner-abc` on `node`.
    fn running(name: &str, owner: &str, node: &str, memory: &str) -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": format!("{owner}-abc"), "uid": "rs", "controller": true}]},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x:1",
                "resources": {"requests": {"memory": memory}}}]},
            "status": {"phase": "Running"}
        }))
        .unwrap()
    }

    fn change(action: Action, old: Option<Object>, new: Option<Object>) -> Change {
        Change { action, old, new }
    }

    #[test]
    fn pods_that_would_not_fit_are_named_with_the_schedulers_reason() {
        let nodes = vec![node("n0"), node("n1"), node("n2")];
        // The cache, unchanged by the plan, holds 512Mi on n0.
        let live = vec![running("cache-1", "cache", "n0", "512Mi")];
        let owners = BTreeMap::from([(
            ("default".to_string(), "cache-abc".to_string()),
            "cache".to_string(),
        )]);
        let web = deployment("web", 3, "900Mi");
        let changes = vec![change(Action::Create, None, Some(web.clone()))];
        let found = pending(&changes, std::slice::from_ref(&web), &nodes, &live, &owners);
        assert_eq!(
            found.iter().map(Pending::note).collect::<Vec<_>>(),
            vec![
                "1 pod of Deployment default/web would stay Pending: 0/3 nodes are available: 3 Insufficient memory."
            ]
        );

        // Two replicas fit beside the cache.
        let smaller = deployment("web", 2, "900Mi");
        let changes = vec![change(Action::Create, None, Some(smaller.clone()))];
        assert!(pending(&changes, &[smaller], &nodes, &live, &owners).is_empty());
    }

    #[test]
    fn a_changed_workloads_own_pods_make_way_for_their_replacements() {
        let nodes = vec![node("n0")];
        // web runs one 900Mi pod; the new revision asks for 1000Mi instead. The old pod
        // goes when the new one comes, so it fits; a second workload's pod stays and counts.
        let live = vec![running("web-1", "web", "n0", "900Mi")];
        let owners = BTreeMap::from([(
            ("default".to_string(), "web-abc".to_string()),
            "web".to_string(),
        )]);
        let (old, new) = (
            deployment("web", 1, "900Mi"),
            deployment("web", 1, "1000Mi"),
        );
        let changes = vec![change(Action::Update, Some(old), Some(new.clone()))];
        assert!(pending(&changes, std::slice::from_ref(&new), &nodes, &live, &owners).is_empty());

        let other = deployment("other", 1, "200Mi");
        let changes = vec![change(Action::Create, None, Some(other.clone()))];
        let stuck = pending(&changes, &[other], &nodes, &live, &owners);
        assert_eq!(stuck.len(), 1, "900Mi of web stay: {stuck:?}");
        assert_eq!(
            stuck[0].message,
            "0/1 nodes are available: 1 Insufficient memory."
        );
    }
}
