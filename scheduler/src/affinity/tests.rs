//! Affinity and spreading as a user writes them, placed by the whole scheduler.

use keel_schema::types::core::Node;
use keel_schema::types::pod::Pod;
use serde_json::{Value, json};

use crate::SchedulerCache;

fn node(name: &str, zone: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone, "size": if name.ends_with('1') {"10"} else {"2"}}},
        "status": {
            "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    }))
    .unwrap()
}

fn pod(name: &str, app: &str, spec: Value) -> Pod {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "c", "image": "x:1"}]);
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "labels": {"app": app}},
        "spec": spec
    }))
    .unwrap()
}

/// Three nodes in zones a, a, b.
fn cluster() -> SchedulerCache {
    let mut c = SchedulerCache::new();
    for (n, z) in [("n1", "a"), ("n2", "a"), ("n3", "b")] {
        c.upsert_node(&node(n, z));
    }
    c
}

fn place(c: &mut SchedulerCache, p: &Pod) -> String {
    let node = c
        .schedule(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.metadata.name()));
    let mut bound = p.clone();
    bound.spec.node_name = Some(node.clone());
    c.add_pod(&bound);
    node
}

fn anti_by(key: &str, app: &str) -> Value {
    json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}})
}

#[test]
fn required_node_affinity_filters_with_every_operator() {
    let mut c = cluster();
    let affinity = |exprs: Value| {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": exprs}]}}}})
    };
    let p = pod(
        "big",
        "x",
        affinity(json!([{"key": "size", "operator": "Gt", "values": ["5"]}])),
    );
    assert_eq!(place(&mut c, &p), "n1");
    let p = pod(
        "b",
        "x",
        affinity(
            json!([{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["b"]}]),
        ),
    );
    assert_eq!(place(&mut c, &p), "n3");
    let p = pod(
        "none",
        "x",
        affinity(json!([{"key": "gpu", "operator": "Exists"}])),
    );
    assert_eq!(
        c.schedule(&p).unwrap_err().to_string(),
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    );
    let by_name = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}}});
    assert_eq!(place(&mut c, &pod("pinned", "x", by_name)), "n2");
}

#[test]
fn preferred_node_affinity_wins_when_it_can() {
    let mut c = cluster();
    let p = pod(
        "p",
        "x",
        json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["b"]}]}}]}}}),
    );
    for i in 0..3 {
        let mut p = p.clone();
        p.metadata.uid = Some(format!("uid-p{i}"));
        assert_eq!(place(&mut c, &p), "n3", "pod {i}");
    }
}

#[test]
fn anti_affinity_by_host_puts_one_replica_per_node_then_refuses() {
    let mut c = cluster();
    let mut nodes = Vec::new();
    for i in 0..3 {
        let p = pod(
            &format!("web-{i}"),
            "web",
            json!({"affinity": anti_by("kubernetes.io/hostname", "web")}),
        );
        nodes.push(place(&mut c, &p));
    }
    nodes.sort();
    assert_eq!(nodes, ["n1", "n2", "n3"]);
    let fourth = pod(
        "web-3",
        "web",
        json!({"affinity": anti_by("kubernetes.io/hostname", "web")}),
    );
    assert_eq!(
        c.schedule(&fourth).unwrap_err().to_string(),
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
    );
    // The existing pods' anti-affinity holds even for a pod that says nothing itself.
    let plain = pod("web-plain", "web", json!({}));
    assert_eq!(
        c.schedule(&plain).unwrap_err().to_string(),
        "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules."
    );
    // Another app is not concerned.
    place(&mut c, &pod("db-0", "db", json!({})));
}

#[test]
fn anti_affinity_by_zone_and_affinity_to_another_app() {
    let mut c = cluster();
    let zone_anti = json!({"affinity": anti_by("topology.kubernetes.io/zone", "cache")});
    let first = place(&mut c, &pod("cache-0", "cache", zone_anti.clone()));
    let second = place(&mut c, &pod("cache-1", "cache", zone_anti.clone()));
    let zone = |n: &str| if n == "n3" { "b" } else { "a" };
    assert_ne!(zone(&first), zone(&second), "one per zone");
    // Next to the cache on n3: only there.
    let near = json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    let on = place(&mut c, &pod("api-0", "api", near.clone()));
    assert!(on == first || on == second, "{on}");
    // Affinity to a group nobody runs yet: the first of that group may go anywhere; others
    // of another group may not.
    let to_self = json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "solo"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    let solo = place(&mut c, &pod("solo-0", "solo", to_self.clone()));
    assert_eq!(place(&mut c, &pod("solo-1", "solo", to_self.clone())), solo);
    let stranger = json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "nobody"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    assert_eq!(
        c.schedule(&pod("x-0", "x", stranger))
            .unwrap_err()
            .to_string(),
        "0/3 nodes are available: 3 node(s) didn't match pod affinity rules."
    );
}

#[test]
fn topology_spread_keeps_the_skew_and_says_why_it_cannot() {
    let mut c = cluster();
    let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]});
    let mut zones = std::collections::BTreeMap::new();
    for i in 0..6 {
        let n = place(&mut c, &pod(&format!("web-{i}"), "web", spread.clone()));
        *zones.entry(if n == "n3" { "b" } else { "a" }).or_insert(0) += 1;
    }
    assert_eq!(
        zones,
        [("a", 3), ("b", 3)].into(),
        "zone a has two nodes, b one: 3 and 3"
    );
    // Zone b full for this app's skew once n3 cannot take more: a pod that must go to b
    // (by node affinity) breaks the skew only if b is ahead.
    let mut only_b = spread.clone();
    only_b["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["b"]}]}]}}});
    // With Honor (the default) zone a does not count for it: it may go.
    assert_eq!(place(&mut c, &pod("web-b", "web", only_b.clone())), "n3");
    only_b["topologySpreadConstraints"][0]["nodeAffinityPolicy"] = json!("Ignore");
    assert_eq!(
        c.schedule(&pod("web-b2", "web", only_b))
            .unwrap_err()
            .to_string(),
        "0/3 nodes are available: 1 node(s) didn't match pod topology spread constraints, 2 node(s) didn't match Pod's node affinity/selector."
    );
    let missing = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "rack",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]});
    assert!(
        c.schedule(&pod("web-r", "web", missing))
            .unwrap_err()
            .to_string()
            .contains("missing required label")
    );
}

#[test]
fn soft_spread_and_preferred_anti_affinity_only_lean() {
    let mut c = cluster();
    let lean = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "w"}}}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "w"}}, "topologyKey": "kubernetes.io/hostname"}}]}}});
    let mut per = std::collections::BTreeMap::new();
    for i in 0..7 {
        *per.entry(place(&mut c, &pod(&format!("w-{i}"), "w", lean.clone())))
            .or_insert(0) += 1;
    }
    assert_eq!(per.len(), 3, "{per:?}");
    assert!(per.values().all(|n| (2..=3).contains(n)), "{per:?}");
}

#[test]
fn every_placed_holders_anti_affinity_counts_until_it_goes() {
    let mut c = cluster();
    // Two pods keep `app: db` off their nodes; both placed (assumed) before any bind.
    let keep_db_off = json!({"affinity": anti_by("kubernetes.io/hostname", "db")});
    let a1 = pod("a1", "a", keep_db_off.clone());
    let on_a1 = c.schedule(&a1).unwrap();
    let on_a2 = c.schedule(&pod("a2", "a", keep_db_off)).unwrap();
    // The first goes; the second still holds its node.
    c.remove_pod("uid-a1");
    for i in 0..6 {
        let node = place(&mut c, &pod(&format!("db-{i}"), "db", json!({})));
        assert_ne!(node, on_a2, "db-{i} beside a2 (a1 was on {on_a1})");
    }
}

#[test]
fn soft_spreading_does_not_favour_nodes_without_the_key() {
    let mut c = cluster();
    let mut bare = node("n4", "a");
    bare.metadata
        .labels
        .as_mut()
        .unwrap()
        .remove("topology.kubernetes.io/zone");
    c.upsert_node(&bare);
    let lean = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "z"}}}]});
    let on_bare = (0..6)
        .map(|i| place(&mut c, &pod(&format!("z-{i}"), "z", lean.clone())))
        .filter(|n| n == "n4")
        .count();
    assert!(on_bare <= 1, "{on_bare} of 6 on the node without a zone");
}
