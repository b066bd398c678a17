//! The resource tree, as Argo CD draws an application: Deployment → ReplicaSets → Pods,
//! StatefulSet / DaemonSet / Job → Pods, CronJob → Jobs → Pods, Service → Endpoints → Pods,
//! and every other object on its own. The tree travels to the page as rows in depth-first
//! order, each with its depth, so the page can filter it and draw only the rows in view.

use std::collections::{BTreeSet, HashMap};

use keel_api::health::health;
use keel_schema::{Kind, Object};
use serde::Serialize;

/// One row of the tree. Short field names: 10,000 pods are 10,000 rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Depth: 0 for a root.
    pub d: u8,
    /// Kind.
    pub k: String,
    /// Namespace ("" for cluster-scoped objects).
    pub ns: String,
    /// Name.
    pub n: String,
    /// Health (Healthy, Progressing, Degraded, Missing, Unknown).
    pub h: &'static str,
    /// What to say beside it: a pod's phase and node, another object's health reason.
    pub s: String,
    /// Labels as `key=value`.
    pub l: Vec<String>,
}

/// The deepest a branch goes (CronJob → Job → Pod is 2; owner loops stop here).
const MAX_DEPTH: u8 = 4;

/// Kinds that are not resources of an app: never drawn.
fn drawn(kind: Kind) -> bool {
    !matches!(kind, Kind::Node | Kind::Namespace | Kind::Event)
}

/// Roots in this order of kinds, then the others by kind name.
fn rank(kind: Kind) -> u8 {
    match kind {
        Kind::Deployment => 0,
        Kind::StatefulSet => 1,
        Kind::DaemonSet => 2,
        Kind::CronJob => 3,
        Kind::Job => 4,
        Kind::Service => 5,
        Kind::Ingress => 6,
        Kind::HorizontalPodAutoscaler => 7,
        _ => 8,
    }
}

fn controller_uid(o: &Object) -> Option<&str> {
    o.meta()
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

/// The tree of `objects` (Events and Nodes are left out), roots sorted by namespace, kind
/// and name.
pub fn rows(objects: &[&Object]) -> Vec<Row> {
    let objects: Vec<&Object> = objects
        .iter()
        .copied()
        .filter(|o| drawn(o.kind()))
        .collect();
    let mut by_uid: HashMap<&str, usize> = HashMap::new();
    let mut by_name: HashMap<(Kind, &str, &str), usize> = HashMap::new();
    for (i, o) in objects.iter().enumerate() {
        if let Some(uid) = o.meta().uid.as_deref() {
            by_uid.insert(uid, i);
        }
        by_name.insert((o.kind(), o.namespace(), o.name()), i);
    }
    let mut owned: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut is_child = vec![false; objects.len()];
    for (i, o) in objects.iter().enumerate() {
        if let Some(&owner) = controller_uid(o).and_then(|uid| by_uid.get(uid)) {
            owned.entry(owner).or_default().push(i);
            is_child[i] = true;
        }
    }
    // A Service's Endpoints hang under it, and the pods they name under them.
    for (i, o) in objects.iter().enumerate() {
        match o {
            Object::Service(_) => {
                if let Some(&e) = by_name.get(&(Kind::Endpoints, o.namespace(), o.name())) {
                    owned.entry(i).or_default().push(e);
                    is_child[e] = true;
                }
            }
            Object::Endpoints(e) => {
                let pods: BTreeSet<usize> = e
                    .subsets
                    .iter()
                    .flatten()
                    .flat_map(|s| {
                        s.addresses
                            .iter()
                            .flatten()
                            .chain(s.not_ready_addresses.iter().flatten())
                    })
                    .filter_map(|a| a.target_ref.as_ref())
                    .filter(|r| r.kind.as_deref() == Some("Pod"))
                    .filter_map(|r| {
                        let ns = r.namespace.as_deref().unwrap_or(o.namespace());
                        by_name
                            .get(&(Kind::Pod, ns, r.name.as_deref().unwrap_or_default()))
                            .copied()
                    })
                    .collect();
                owned.entry(i).or_default().extend(pods);
            }
            _ => {}
        }
    }
    let order = |&a: &usize, &b: &usize| {
        let (x, y) = (objects[a], objects[b]);
        (x.namespace(), rank(x.kind()), x.kind().as_str(), x.name()).cmp(&(
            y.namespace(),
            rank(y.kind()),
            y.kind().as_str(),
            y.name(),
        ))
    };
    for children in owned.values_mut() {
        children.sort_by(order);
        children.dedup();
    }
    let mut roots: Vec<usize> = (0..objects.len()).filter(|&i| !is_child[i]).collect();
    roots.sort_by(order);
    let mut rows = Vec::with_capacity(objects.len());
    let mut path = Vec::new();
    let mut drawn = vec![false; objects.len()];
    for root in roots {
        walk(root, 0, &objects, &owned, &mut path, &mut rows, &mut drawn);
    }
    // Objects only reachable through an owner loop: each shown as a root, so nothing held is
    // missing from the tree.
    for i in 0..objects.len() {
        if !drawn[i] {
            walk(i, 0, &objects, &owned, &mut path, &mut rows, &mut drawn);
        }
    }
    rows
}

fn walk(
    i: usize,
    depth: u8,
    objects: &[&Object],
    owned: &HashMap<usize, Vec<usize>>,
    path: &mut Vec<usize>,
    rows: &mut Vec<Row>,
    drawn: &mut [bool],
) {
    let o = objects[i];
    drawn[i] = true;
    rows.push(row(o, depth));
    if depth >= MAX_DEPTH || path.contains(&i) {
        return;
    }
    path.push(i);
    for &child in owned.get(&i).into_iter().flatten() {
        walk(child, depth + 1, objects, owned, path, rows, drawn);
    }
    path.pop();
}

fn row(o: &Object, depth: u8) -> Row {
    let (h, why) = health(o);
    let s = match o {
        Object::Pod(p) => {
            let phase = p
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .map(|p| format!("{p:?}"))
                .unwrap_or_else(|| "Pending".into());
            match p.spec.node_name.as_deref() {
                Some(node) => format!("{phase} on {node}"),
                None => phase,
            }
        }
        _ => why,
    };
    Row {
        d: depth,
        k: o.kind().as_str().to_string(),
        ns: o.namespace().to_string(),
        n: o.name().to_string(),
        h: h.as_str(),
        s,
        l: o.meta()
            .labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: serde_json::Value) -> Object {
        Object::from_json(v).unwrap()
    }

    fn owned(kind: &str, name: &str, uid: &str, owner: (&str, &str, &str)) -> Object {
        let mut v = json!({"apiVersion": if kind == "Pod" { "v1" } else { "apps/v1" }, "kind": kind,
            "metadata": {"name": name, "namespace": "default", "uid": uid, "labels": {"app": "web"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner.0, "name": owner.1,
                                              "uid": owner.2, "controller": true}]}});
        v["spec"] = if kind == "Pod" {
            json!({"containers": [{"name": "c", "image": "x:1"}], "nodeName": "n1"})
        } else {
            json!({"selector": {"matchLabels": {"app": "web"}},
                   "template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "c", "image": "x:1"}]}}})
        };
        object(v)
    }

    #[test]
    fn workloads_and_services_lead_to_their_pods() {
        let objects = [
            owned("Pod", "web-1", "p1", ("ReplicaSet", "web-a", "rs")),
            object(json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})),
            object(json!({"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "web", "namespace": "default"},
                "subsets": [{"addresses": [{"ip": "10.0.0.1",
                    "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "default"}}]}]})),
            owned("ReplicaSet", "web-a", "rs", ("Deployment", "web", "d")),
            owned("Pod", "web-2", "p2", ("ReplicaSet", "web-a", "rs")),
            object(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default", "uid": "d"},
                "spec": {"selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}})),
            object(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})),
            // Owned by something not held: a root of its own.
            owned("Pod", "orphan", "p3", ("ReplicaSet", "gone", "nobody")),
        ];
        let refs: Vec<&Object> = objects.iter().collect();
        let drawn: Vec<(u8, String, String)> =
            rows(&refs).into_iter().map(|r| (r.d, r.k, r.n)).collect();
        let expected = [
            (0, "Deployment", "web"),
            (1, "ReplicaSet", "web-a"),
            (2, "Pod", "web-1"),
            (2, "Pod", "web-2"),
            (0, "Service", "web"),
            (1, "Endpoints", "web"),
            (2, "Pod", "web-1"),
            (0, "Pod", "orphan"),
        ]
        .map(|(d, k, n)| (d, k.to_string(), n.to_string()));
        assert_eq!(drawn, expected);
        let pod = &rows(&refs)[2];
        assert_eq!(pod.s, "Pending on n1");
        assert_eq!(pod.l, ["app=web"]);
    }

    #[test]
    fn objects_in_an_owner_loop_show_and_the_walk_ends() {
        let objects = [
            owned("ReplicaSet", "a", "ua", ("ReplicaSet", "b", "ub")),
            owned("ReplicaSet", "b", "ub", ("ReplicaSet", "a", "ua")),
        ];
        let refs: Vec<&Object> = objects.iter().collect();
        // Both own each other, so neither is a root: both still show, and nothing loops.
        let drawn = rows(&refs);
        assert!(drawn.iter().any(|r| r.n == "a") && drawn.iter().any(|r| r.n == "b"));
        assert!(drawn.len() <= 2 * (MAX_DEPTH as usize + 1));
    }
}
