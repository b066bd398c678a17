use serde_json::json;

use super::*;

fn node(name: &str, cpu: &str, memory: &str, labels: serde_json::Value) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    }))
    .unwrap()
}

fn pod(name: &str, cpu: &str, memory: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "spec": {"containers": [{"name": "c", "image": "x:1",
            "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}
    }))
    .unwrap()
}

fn owned(mut p: Pod, owner: &str) -> Pod {
    p.metadata.owner_references = Some(vec![
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
            "uid": owner, "controller": true
        }))
        .unwrap(),
    ]);
    p
}

#[test]
fn a_pod_that_fits_nowhere_says_why_like_kubernetes() {
    let mut c = SchedulerCache::new();
    c.upsert_node(&node("a", "1", "1Gi", json!({})));
    c.upsert_node(&node("b", "1", "1Gi", json!({})));
    c.upsert_node(&node("c", "4", "8Gi", json!({"disk": "hdd"})));
    let mut p = pod("big", "500m", "2Gi");
    p.spec.node_selector = Some([("disk".to_string(), "ssd".to_string())].into());
    let err = c.schedule(&p).unwrap_err();
    // The first failing filter speaks for each node: the selector, before resources.
    assert_eq!(
        err.to_string(),
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    );
    let mut p = pod("big", "500m", "2Gi");
    p.spec.node_selector = Some([("disk".to_string(), "hdd".to_string())].into());
    p.spec.containers[0].resources = None;
    let mut c2 = SchedulerCache::new();
    c2.upsert_node(&node("a", "1", "1Gi", json!({"disk": "hdd"})));
    c2.upsert_node(&node("b", "1", "1Gi", json!({"disk": "hdd"})));
    c2.upsert_node(&node("c", "4", "8Gi", json!({})));
    let mut hungry = pod("hungry", "100m", "2Gi");
    hungry.spec.node_selector = p.spec.node_selector.clone();
    // Sorted as whole strings, as kube-scheduler prints them.
    assert_eq!(
        c2.schedule(&hungry).unwrap_err().to_string(),
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient memory."
    );
    let p = pod("big", "500m", "2Gi");
    let err = c.schedule(&pod("huge", "8", "1Mi")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "0/3 nodes are available: 3 Insufficient cpu."
    );
    assert_eq!(c.schedule(&p).unwrap(), "c");
    assert_eq!(
        SchedulerCache::new().schedule(&p).unwrap_err().to_string(),
        "no nodes available to schedule pods"
    );
}

#[test]
fn requests_add_up_and_removed_pods_free_their_share() {
    let mut c = SchedulerCache::new();
    c.upsert_node(&node("only", "1", "1Gi", json!({})));
    let first = pod("first", "600m", "100Mi");
    assert_eq!(c.schedule(&first).unwrap(), "only");
    let second = pod("second", "600m", "100Mi");
    assert!(c.schedule(&second).is_err(), "1000m cannot hold 1200m");
    c.remove_pod("uid-first");
    assert_eq!(c.schedule(&second).unwrap(), "only");
}

#[test]
fn init_containers_ask_their_largest_not_their_sum() {
    let mut c = SchedulerCache::new();
    c.upsert_node(&node("only", "1", "1Gi", json!({})));
    let mut p = pod("with-init", "300m", "100Mi");
    let init = |cpu: &str| -> keel_schema::types::pod::Container {
        serde_json::from_value(json!({"name": format!("init-{cpu}"), "image": "x:1",
            "resources": {"requests": {"cpu": cpu}}}))
        .unwrap()
    };
    // Two inits of 600m each run one after the other: 600m, not 1200m.
    p.spec.init_containers = Some(vec![init("600m"), init("600m")]);
    assert_eq!(c.schedule(&p).unwrap(), "only");
    c.remove_pod("uid-with-init");
    // One init larger than the node cannot run, however small the app container.
    p.spec.init_containers = Some(vec![init("1500m")]);
    assert_eq!(
        c.schedule(&p).unwrap_err().to_string(),
        "0/1 nodes are available: 1 Insufficient cpu."
    );
}

#[test]
fn bound_pods_count_and_updated_nodes_keep_them() {
    let mut c = SchedulerCache::new();
    c.upsert_node(&node("n", "1", "1Gi", json!({})));
    let mut bound = pod("bound", "800m", "1Mi");
    bound.spec.node_name = Some("n".into());
    c.add_pod(&bound);
    c.add_pod(&bound); // seen twice: counted once
    c.upsert_node(&node("n", "1", "1Gi", json!({"new": "label"})));
    assert!(c.schedule(&pod("p", "300m", "1Mi")).is_err());
    assert!(c.schedule(&pod("q", "200m", "1Mi")).is_ok());
}

#[test]
fn not_ready_unschedulable_and_tainted_nodes_are_skipped() {
    let mut c = SchedulerCache::new();
    let mut down = node("down", "4", "4Gi", json!({}));
    down.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
    c.upsert_node(&down);
    let mut cordoned = node("cordoned", "4", "4Gi", json!({}));
    cordoned.spec.unschedulable = Some(true);
    c.upsert_node(&cordoned);
    let mut tainted = node("tainted", "4", "4Gi", json!({}));
    tainted.spec.taints = Some(vec![
        serde_json::from_value(json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"}))
            .unwrap(),
    ]);
    c.upsert_node(&tainted);
    let p = pod("p", "100m", "1Mi");
    assert_eq!(
        c.schedule(&p).unwrap_err().to_string(),
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, \
         1 node(s) were not ready, 1 node(s) were unschedulable."
    );
    let mut tolerant = p.clone();
    tolerant.spec.tolerations =
        Some(vec![serde_json::from_value(
        json!({"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}),
    )
    .unwrap()]);
    assert_eq!(c.schedule(&tolerant).unwrap(), "tainted");
    let mut everything = pod("e", "100m", "1Mi");
    everything.spec.tolerations = Some(vec![
        serde_json::from_value(json!({"operator": "Exists"})).unwrap(),
    ]);
    assert_eq!(c.schedule(&everything).unwrap(), "tainted");
}

#[test]
fn host_ports_cannot_be_shared() {
    let mut c = SchedulerCache::new();
    c.upsert_node(&node("a", "4", "4Gi", json!({})));
    let with_port = |name: &str, proto: &str| {
        let mut p = pod(name, "100m", "1Mi");
        p.spec.containers[0].ports = Some(vec![
            serde_json::from_value(
                json!({"containerPort": 80, "hostPort": 8080, "protocol": proto}),
            )
            .unwrap(),
        ]);
        p
    };
    assert!(c.schedule(&with_port("one", "TCP")).is_ok());
    assert_eq!(
        c.schedule(&with_port("two", "TCP"))
            .unwrap_err()
            .to_string(),
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
    );
    assert!(
        c.schedule(&with_port("udp", "UDP")).is_ok(),
        "UDP 8080 is another port"
    );
}

#[test]
fn an_owners_pods_spread_across_nodes_and_load_goes_to_the_emptiest() {
    let mut c = SchedulerCache::new();
    for n in ["a", "b", "c"] {
        c.upsert_node(&node(n, "4", "8Gi", json!({})));
    }
    let mut placed = BTreeMap::new();
    for i in 0..6 {
        let node = c
            .schedule(&owned(pod(&format!("web-{i}"), "100m", "64Mi"), "rs-web"))
            .unwrap();
        *placed.entry(node).or_insert(0) += 1;
    }
    assert_eq!(
        placed.values().copied().collect::<Vec<_>>(),
        [2, 2, 2],
        "{placed:?}"
    );

    // A busy node is avoided by a pod of another owner.
    let mut c = SchedulerCache::new();
    c.upsert_node(&node("busy", "4", "8Gi", json!({})));
    c.upsert_node(&node("idle", "4", "8Gi", json!({})));
    let mut hog = pod("hog", "3", "6Gi");
    hog.spec.node_name = Some("busy".into());
    c.add_pod(&hog);
    assert_eq!(c.schedule(&pod("new", "100m", "64Mi")).unwrap(), "idle");
}

#[test]
fn large_clusters_score_a_sample_but_every_node_gets_its_turn() {
    let mut c = SchedulerCache::new();
    for i in 0..1000 {
        c.upsert_node(&node(&format!("n{i}"), "100", "100Gi", json!({})));
    }
    assert_eq!(c.feasible_to_find(), 420);
    let mut used = std::collections::HashSet::new();
    for i in 0..50 {
        used.insert(c.schedule(&pod(&format!("p{i}"), "1m", "1Ki")).unwrap());
    }
    assert!(
        used.len() > 10,
        "placements rotate over the nodes: {}",
        used.len()
    );
}

#[test]
fn removed_nodes_take_no_pods() {
    let mut c = SchedulerCache::new();
    c.upsert_node(&node("a", "1", "1Gi", json!({})));
    c.upsert_node(&node("b", "1", "1Gi", json!({})));
    c.remove_node("a");
    assert_eq!(c.node_count(), 1);
    for i in 0..3 {
        assert_eq!(
            c.schedule(&pod(&format!("p{i}"), "1m", "1Ki")).unwrap(),
            "b"
        );
    }
}

#[test]
fn pods_bound_before_their_node_is_known_count_when_it_appears() {
    let mut c = SchedulerCache::new();
    let mut early = pod("early", "900m", "1Mi");
    early.spec.node_name = Some("late-node".into());
    c.add_pod(&early);
    c.upsert_node(&node("late-node", "1", "1Gi", json!({})));
    assert!(
        c.schedule(&pod("p", "200m", "1Mi")).is_err(),
        "900m of 1000m already used"
    );
    c.remove_node("late-node");
    c.upsert_node(&node("late-node", "1", "1Gi", json!({})));
    assert!(
        c.schedule(&pod("q", "200m", "1Mi")).is_err(),
        "still counted after a re-add"
    );
}

#[test]
fn pods_without_requests_spread_and_finished_pods_hold_nothing() {
    let mut c = SchedulerCache::new();
    for n in ["a", "b", "c"] {
        c.upsert_node(&node(n, "4", "8Gi", json!({})));
    }
    let mut placed = BTreeMap::new();
    for i in 0..9 {
        let mut p = pod(&format!("free-{i}"), "1m", "1Ki");
        p.spec.containers[0].resources = None;
        *placed.entry(c.schedule(&p).unwrap()).or_insert(0) += 1;
    }
    assert_eq!(
        placed.values().copied().collect::<Vec<_>>(),
        [3, 3, 3],
        "{placed:?}"
    );

    let mut c = SchedulerCache::new();
    c.upsert_node(&node("n", "1", "1Gi", json!({})));
    let mut done = pod("done", "900m", "1Mi");
    done.spec.node_name = Some("n".into());
    c.add_pod(&done);
    assert!(c.schedule(&pod("p", "500m", "1Mi")).is_err());
    c.remove_pod("uid-p");
    done.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
    c.add_pod(&done);
    assert!(
        c.schedule(&pod("p", "500m", "1Mi")).is_ok(),
        "a finished pod frees its share"
    );
    // Scheduling the same pod again moves it rather than counting it twice.
    assert!(c.schedule(&pod("p", "500m", "1Mi")).is_ok());
}

#[test]
fn placed_pods_with_the_same_labels_share_one_copy_until_the_last_goes() {
    let mut c = SchedulerCache::new();
    c.upsert_node(&node("a", "4", "8Gi", json!({})));
    let labelled = |name: &str, app: &str| {
        let mut p = pod(name, "10m", "16Mi");
        p.metadata.labels = Some([("app".to_string(), app.to_string())].into());
        p
    };
    let (web1, web2, db) = (
        labelled("w1", "web"),
        labelled("w2", "web"),
        labelled("d", "db"),
    );
    for p in [&web1, &web2, &db] {
        let node = c.schedule(p).unwrap();
        assert_eq!(node, "a");
    }
    assert_eq!(c.label_sets.len(), 2);
    let labels = |c: &SchedulerCache, uid: &str| c.pods[uid].1.labels.clone();
    assert!(Arc::ptr_eq(&labels(&c, "uid-w1"), &labels(&c, "uid-w2")));
    assert_eq!(
        labels(&c, "uid-d").get("app").map(String::as_str),
        Some("db")
    );
    // A pod seen again (its bind) keeps sharing; the set goes with the last of its pods.
    let mut bound = web1.clone();
    bound.spec.node_name = Some("a".into());
    c.add_pod(&bound);
    assert!(Arc::ptr_eq(&labels(&c, "uid-w1"), &labels(&c, "uid-w2")));
    c.remove_pod("uid-w1");
    assert_eq!(c.label_sets.len(), 2);
    c.remove_pod("uid-w2");
    c.remove_pod("uid-d");
    assert!(c.label_sets.is_empty());
}
