//! Scheduling throughput, the workload: 5,000 nodes and 10,000 pods, in process, with
//! full filtering and scoring (`cargo bench -p keel-scheduler --bench scheduler`).
//! kube-scheduler's CI floor for this workload is 680 pods/s.

use std::time::Instant;

use keel_scheduler::SchedulerCache;
use keel_schema::types::core::Node;
use keel_schema::types::pod::Pod;
use serde_json::json;

fn main() {
    let nodes = 5_000;
    let pods = 10_000;
    let mut cache = SchedulerCache::new();
    for i in 0..nodes {
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": format!("node-{i}"),
                         "labels": {"zone": format!("zone-{}", i % 3)}},
            "status": {
                "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        }))
        .unwrap();
        cache.upsert_node(&node);
    }
    // Pods of 100 owners, with requests, some with a node selector.
    let batch: Vec<Pod> = (0..pods)
        .map(|i| {
            let mut spec = json!({"containers": [{"name": "app", "image": "app:1",
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]});
            if i % 4 == 0 {
                spec["nodeSelector"] = json!({"zone": "zone-1"});
            }
            serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("pod-{i}"), "namespace": "default",
                             "uid": format!("uid-{i}"),
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "name": format!("rs-{}", i % 100), "uid": format!("rs-{}", i % 100),
                                 "controller": true}]},
                "spec": spec
            }))
            .unwrap()
        })
        .collect();
    let started = Instant::now();
    let mut placed = 0;
    for p in &batch {
        if cache.schedule(p).is_ok() {
            placed += 1;
        }
    }
    let took = started.elapsed();
    println!(
        "scheduler: {placed}/{pods} pods on {nodes} nodes in {:.0} ms = {:.0} pods/s",
        took.as_secs_f64() * 1e3,
        placed as f64 / took.as_secs_f64()
    );
    assert_eq!(placed, pods, "every pod fits this cluster");
}
