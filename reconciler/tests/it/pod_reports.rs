//! Pod statuses from agents over the real `ControlPlane` gRPC API: written only for pods bound
//! to the node that reports them, and only with addresses a Service may send traffic to.

use std::time::Duration;

use keel_agent_protocol::status_report::Report;
use keel_agent_protocol::{PodStatusUpdate, StatusReport};
use keel_schema::Kind;
use keel_schema::object::Object;
use keel_schema::types::pod::PodPhase;
use keel_store::ObjectKey;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::nodes::{ControlPlane, control_plane, registration};

/// One status stream carrying `reports`, to its end.
async fn stream(cp: &mut ControlPlane, reports: Vec<StatusReport>) {
    let (tx, rx) = mpsc::channel(reports.len().max(1));
    for r in reports {
        tx.send(r).await.unwrap();
    }
    drop(tx);
    cp.client
        .report_status(ReceiverStream::new(rx))
        .await
        .unwrap();
}

/// Pod default/web as stored.
async fn web(cp: &ControlPlane) -> keel_schema::types::pod::Pod {
    let key = ObjectKey::new(Kind::Pod, "default", "web");
    match cp.store.get(&key).await.unwrap().expect("pod web").object {
        Object::Pod(p) => p,
        other => panic!("not a pod: {other:?}"),
    }
}

#[tokio::test]
async fn pod_statuses_are_written_only_for_pods_bound_to_the_reporting_node() {
    let mut cp = control_plane(Duration::from_secs(10)).await;
    cp.client.register(registration("n1")).await.unwrap();
    let pod: Object = Object::from_json(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "app:1"}]}
    }))
    .unwrap();
    let stored = cp.store.create(pod).await.unwrap();
    let uid = stored
        .object
        .meta()
        .uid
        .clone()
        .expect("the store sets a uid");
    // n1 registered first: its pod range is the first of the default plan.
    let report_ip = |node: &str, uid: &str, phase: &str, ip: &str| StatusReport {
        node_name: node.into(),
        report: Some(Report::PodStatus(PodStatusUpdate {
            namespace: "default".into(),
            name: "web".into(),
            uid: uid.into(),
            status: serde_json::to_vec(&json!({"phase": phase, "podIP": ip})).unwrap(),
            deleted: false,
        })),
    };
    let report = |node: &str, uid: &str, phase: &str| report_ip(node, uid, phase, "10.244.0.9");
    // A stale uid (an earlier pod of that name) changes nothing; the real one is written.
    stream(
        &mut cp,
        vec![
            report("n1", "some-old-uid", "Failed"),
            report("n1", &uid, "Running"),
        ],
    )
    .await;
    let p = web(&cp).await;
    let status = p.status.expect("status written");
    assert_eq!(status.phase, Some(PodPhase::Running));
    assert_eq!(status.pod_ip.as_deref(), Some("10.244.0.9"));
    assert_eq!(
        p.spec.containers[0].image.as_deref(),
        Some("app:1"),
        "spec untouched"
    );

    // Another node cannot write it, nor its own node with an address outside its range
    // (other nodes would route that address elsewhere).
    cp.client.register(registration("n2")).await.unwrap();
    stream(&mut cp, vec![report("n2", &uid, "Failed")]).await;
    stream(&mut cp, vec![report_ip("n1", &uid, "Failed", "172.17.0.9")]).await;
    assert_eq!(
        web(&cp).await.status.unwrap().phase,
        Some(PodPhase::Running)
    );
}

/// A node cannot make every node's proxy send a Service's traffic to their own loopback, a
/// metadata service, or anything but its pod's real address.
#[tokio::test]
async fn pod_addresses_no_service_may_reach_are_refused() {
    let mut cp = control_plane(Duration::from_secs(10)).await;
    cp.client.register(registration("n1")).await.unwrap();
    let mut uids = std::collections::HashMap::new();
    for (name, host_network) in [("web", false), ("exporter", true)] {
        let pod = Object::from_json(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": "n1", "hostNetwork": host_network,
                     "containers": [{"name": "app", "image": "app:1"}]}
        }))
        .unwrap();
        let stored = cp.store.create(pod).await.unwrap();
        uids.insert(name, stored.object.meta().uid.clone().unwrap());
    }
    let pod_ip = |name: &str| {
        let store = cp.store.clone();
        let name = name.to_string();
        async move {
            let stored = store
                .get(&ObjectKey::new(Kind::Pod, "default", &name))
                .await
                .unwrap()
                .unwrap();
            let Object::Pod(p) = stored.object else {
                panic!("not a pod")
            };
            p.status.and_then(|s| s.pod_ip)
        }
    };
    let mut send = async |name: &str, ip: &str| {
        let (tx, rx) = mpsc::channel(1);
        tx.send(StatusReport {
            node_name: "n1".into(),
            report: Some(Report::PodStatus(PodStatusUpdate {
                namespace: "default".into(),
                name: name.into(),
                uid: uids[name].clone(),
                status: serde_json::to_vec(&json!({"phase": "Running", "podIP": ip})).unwrap(),
                deleted: false,
            })),
        })
        .await
        .unwrap();
        drop(tx);
        cp.client
            .report_status(ReceiverStream::new(rx))
            .await
            .unwrap();
    };
    for bad in [
        "127.0.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "not-an-ip",
    ] {
        send("web", bad).await;
        assert_eq!(pod_ip("web").await, None, "{bad} refused for a pod");
        send("exporter", bad).await;
        assert_eq!(
            pod_ip("exporter").await,
            None,
            "{bad} refused for a hostNetwork pod"
        );
    }
    // A hostNetwork pod has its node's address and no other, even one in the pod range.
    send("exporter", "10.244.0.9").await;
    assert_eq!(pod_ip("exporter").await, None);
    send("exporter", "10.0.0.7").await;
    assert_eq!(pod_ip("exporter").await.as_deref(), Some("10.0.0.7"));
    send("web", "10.244.0.9").await;
    assert_eq!(pod_ip("web").await.as_deref(), Some("10.244.0.9"));
}
