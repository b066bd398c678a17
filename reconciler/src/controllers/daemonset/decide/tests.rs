use chrono::{Duration as Age, Utc};
use keel_schema::types::apps::DaemonSet;
use keel_schema::types::core::Node;
use keel_schema::types::pod::Pod;
use serde_json::json;

use super::*;

fn daemon_set(strategy: serde_json::Value) -> DaemonSet {
    serde_json::from_value(json!({
        "metadata": {"name": "agent", "namespace": "default", "generation": 4},
        "spec": {"updateStrategy": strategy,
                 "template": {"spec": {"nodeSelector": {"disk": "ssd"},
                                       "tolerations": [{"key": "dedicated", "operator": "Exists"}]}}}
    }))
    .unwrap()
}

fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value, ready: bool) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
    }))
    .unwrap()
}

fn fit(name: &str, qualifies: bool, ready: bool) -> NodeFit {
    NodeFit {
        name: name.into(),
        qualifies,
        ready,
    }
}

/// A pod on `node` with template `hash`, `age` seconds old, ready or not.
fn pod(name: &str, node: &str, hash: &str, age: i64, ready: bool) -> Pod {
    let created = (Utc::now() - Age::seconds(age)).to_rfc3339();
    serde_json::from_value(json!({
        "metadata": {"name": name, "creationTimestamp": created, "labels": {REVISION_LABEL: hash}},
        "spec": {"nodeName": node},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
    }))
    .unwrap()
}

#[test]
fn nodes_qualify_by_selector_and_tolerated_taints() {
    let ds = daemon_set(json!(null));
    let ssd = json!({"disk": "ssd"});
    for (what, n, expect) in [
        (
            "matching and ready",
            node("a", ssd.clone(), json!(null), true),
            (true, true),
        ),
        (
            "not selected",
            node("b", json!({"disk": "hdd"}), json!(null), true),
            (false, true),
        ),
        (
            "a tolerated taint",
            node(
                "c",
                ssd.clone(),
                json!([{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]),
                true,
            ),
            (true, true),
        ),
        (
            "an untolerated taint",
            node(
                "d",
                ssd.clone(),
                json!([{"key": "gpu", "effect": "NoExecute"}]),
                true,
            ),
            (false, true),
        ),
        (
            "PreferNoSchedule is no bar",
            node(
                "e",
                ssd.clone(),
                json!([{"key": "gpu", "effect": "PreferNoSchedule"}]),
                true,
            ),
            (true, true),
        ),
        (
            "not ready",
            node("f", ssd, json!(null), false),
            (true, false),
        ),
    ] {
        assert_eq!(wanted_on(&ds, &n), expect, "{what}");
    }
}

#[test]
fn one_pod_per_qualifying_ready_node() {
    let ds = daemon_set(json!(null));
    let nodes = [
        fit("empty", true, true),
        fit("empty-not-ready", true, false),
        fit("twice", true, true),
        fit("unwanted", false, true),
    ];
    let pods = [
        pod("older", "twice", "h1", 100, true),
        pod("newer", "twice", "h1", 10, true),
        pod("stray", "unwanted", "h1", 10, true),
        pod("orphan", "gone", "h1", 10, true),
    ];
    let refs: Vec<(&Pod, u64)> = pods.iter().map(|p| (p, 1)).collect();
    let plan = plan(&ds, "h1", &nodes, &refs, Utc::now()).unwrap();
    assert_eq!(plan.create, ["empty"]);
    let deleted: Vec<&str> = plan.delete.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(deleted, ["newer", "stray", "orphan"]);
    let s = &plan.status;
    assert_eq!(
        (
            s.desired_number_scheduled,
            s.current_number_scheduled,
            s.number_misscheduled,
            s.number_ready
        ),
        (2, 1, 2, 1)
    );
    assert_eq!(s.observed_generation, Some(4));
}

#[test]
fn a_new_template_rolls_within_max_unavailable() {
    let nodes = [
        fit("a", true, true),
        fit("b", true, true),
        fit("c", true, true),
    ];
    let pods = [
        pod("pa", "a", "old", 50, true),
        pod("pb", "b", "old", 50, false),
        pod("pc", "c", "old", 50, true),
    ];
    let refs: Vec<(&Pod, u64)> = pods.iter().map(|p| (p, 1)).collect();
    let rolling =
        daemon_set(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}));
    let plan_for = |ds: &DaemonSet| {
        let plan = plan(ds, "new", &nodes, &refs, Utc::now()).unwrap();
        plan.delete
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
    };
    // The unavailable one goes first and costs nothing; one more fits the budget of 2.
    assert_eq!(plan_for(&rolling), ["pb", "pa"]);
    assert_eq!(
        plan_for(&daemon_set(json!(null))),
        ["pb"],
        "the default budget is 1"
    );
    assert!(plan_for(&daemon_set(json!({"type": "OnDelete"}))).is_empty());
    let bad =
        daemon_set(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "x%"}}));
    assert_eq!(
        plan(&bad, "new", &nodes, &refs, Utc::now()),
        Err(BadMaxUnavailable)
    );
}
