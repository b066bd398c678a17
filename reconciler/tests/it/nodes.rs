//! Agents registering and reporting over the real `ControlPlane` gRPC API (a plain gRPC client
//! plays the agent: the reconciler never links the agent itself).

use std::time::Duration;

use keel_agent_protocol::control_plane_client::ControlPlaneClient;
use keel_agent_protocol::status_report::Report;
use keel_agent_protocol::{Heartbeat, RegisterRequest, StatusReport};
use keel_reconciler::nodes::{self, NodeRegistry};
use keel_schema::Kind;
use keel_schema::object::Object;
use keel_schema::types::core::Node;
use keel_store::{ObjectKey, Store, StoreSpec};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

pub(crate) struct ControlPlane {
    pub(crate) store: Store,
    pub(crate) client: ControlPlaneClient<Channel>,
    /// The registry the gRPC API records into (node sync reads agents' heartbeats from it).
    pub(crate) registry: NodeRegistry,
    _dir: tempfile::TempDir,
}

/// A store of its own, in a directory that lasts as long as the returned guard.
async fn store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreSpec::Redb {
        data_dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    (store, dir)
}

pub(crate) async fn control_plane(grace: Duration) -> ControlPlane {
    let (store, dir) = store().await;
    let registry = NodeRegistry::new(store.clone(), grace).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let lifecycle = registry.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let lifecycle_stop = stop.clone();
    tokio::spawn(async move { lifecycle.run_lifecycle(lifecycle_stop).await });
    let join_tokens = std::sync::Arc::new(keel_reconciler::auth::stored_tokens::StoredTokens::new(
        store.clone(),
        dir.path(),
    ));
    let (_, serving) = tokio::sync::watch::channel(nodes::grpc::Serving::Leader {
        registry: registry.clone(),
        term: stop.child_token(),
    });
    tokio::spawn(async move {
        // Plaintext: these tests are about the registry; mutual TLS has its own end-to-end
        // tests with real agents.
        nodes::grpc::serve(listener, serving, None, join_tokens, stop).await
    });
    let client = ControlPlaneClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    ControlPlane {
        store,
        client,
        registry,
        _dir: dir,
    }
}

pub(crate) fn registration(name: &str) -> RegisterRequest {
    RegisterRequest {
        node_name: name.into(),
        address: "10.0.0.7:7401".into(),
        cpu_millis: 2500,
        memory_bytes: 8 << 30,
        max_pods: 50,
        labels: [("zone".to_string(), "a".to_string())].into(),
        agent_version: "0.1.0".into(),
        runtime: "docker".into(),
        takes_sets: false,
    }
}

async fn node(store: &Store, name: &str) -> Node {
    match store
        .get(&ObjectKey::new(Kind::Node, "", name))
        .await
        .unwrap()
        .expect("node stored")
        .object
    {
        Object::Node(n) => n,
        other => panic!("not a node: {other:?}"),
    }
}

fn ready(n: &Node) -> String {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

async fn wait_ready(store: &Store, name: &str, want: &str) -> Node {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n = node(store, name).await;
        if ready(&n) == want {
            return n;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {name} never became Ready={want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_registered_node_is_stored_with_its_capacity_and_labels() {
    let mut cp = control_plane(Duration::from_secs(10)).await;
    cp.client.register(registration("node-1")).await.unwrap();
    let n = node(&cp.store, "node-1").await;
    assert_eq!(ready(&n), "True");
    let status = n.status.clone().unwrap();
    let alloc = status.allocatable.unwrap();
    assert_eq!(alloc["cpu"].millis().unwrap(), 2500);
    assert_eq!(alloc["memory"].value().unwrap(), 8 << 30);
    assert_eq!(alloc["pods"].value().unwrap(), 50);
    assert_eq!(
        n.metadata.labels().get("zone").map(String::as_str),
        Some("a")
    );
    assert_eq!(
        n.metadata.annotation(nodes::AGENT_ADDRESS),
        Some("10.0.0.7:7401")
    );
    assert_eq!(status.addresses.unwrap()[0].address, "10.0.0.7");

    // Registering again (an agent restart) updates it in place.
    let mut again = registration("node-1");
    again.labels = [("zone".to_string(), "b".to_string())].into();
    cp.client.register(again).await.unwrap();
    let n = node(&cp.store, "node-1").await;
    assert_eq!(
        n.metadata.labels().get("zone").map(String::as_str),
        Some("b")
    );
}

#[tokio::test]
async fn bad_registrations_are_refused_with_the_field_named() {
    let mut cp = control_plane(Duration::from_secs(10)).await;
    let cases: Vec<(RegisterRequest, &str)> = vec![
        (
            RegisterRequest {
                node_name: "Bad_Name".into(),
                ..registration("x")
            },
            "node_name \"Bad_Name\"",
        ),
        (
            RegisterRequest {
                address: "nowhere".into(),
                ..registration("x")
            },
            "address \"nowhere\": must be host:port",
        ),
        (
            RegisterRequest {
                memory_bytes: 0,
                ..registration("x")
            },
            "memory_bytes: must be more than zero",
        ),
        (
            RegisterRequest {
                labels: [("bad key!".to_string(), "v".to_string())].into(),
                ..registration("x")
            },
            "labels: key \"bad key!\"",
        ),
    ];
    // A node cannot give itself labels reserved for keel or an admin, nor claim a machine
    // no one has (it would draw every pod to itself).
    let label = |k: &str| RegisterRequest {
        labels: [(k.to_string(), "true".to_string())].into(),
        ..registration("x")
    };
    let mut cases = cases;
    cases.extend([
        (
            RegisterRequest {
                address: "169.254.169.254:10250".into(),
                ..registration("x")
            },
            "a link-local address",
        ),
        (
            RegisterRequest {
                address: "0.0.0.0:10250".into(),
                ..registration("x")
            },
            "the unspecified address",
        ),
        (label("keel.dev/trusted"), "keel.dev labels are keel's own"),
        (label("sub.keel.dev/x"), "keel.dev labels are keel's own"),
        (
            label("node-restriction.kubernetes.io/pci"),
            "set by an admin, never by the node",
        ),
        (
            label("node-role.kubernetes.io/control-plane"),
            "a node may set only",
        ),
        (label("kubernetes.io/hostname"), "a node may set only"),
        (
            RegisterRequest {
                cpu_millis: 1_024_001,
                ..registration("x")
            },
            "cpu_millis: 1024001 is more than the 1024000 allowed",
        ),
        (
            RegisterRequest {
                memory_bytes: (64 << 40) + 1,
                ..registration("x")
            },
            "memory_bytes: ",
        ),
        (
            RegisterRequest {
                max_pods: 5_001,
                ..registration("x")
            },
            "max_pods: 5001 is more than the 5000 allowed",
        ),
    ]);
    for (req, expected) in cases {
        let err = cp.client.register(req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains(expected), "{}", err.message());
    }
    assert!(
        cp.store
            .list(Kind::Node, None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn labels_a_kubelet_may_set_are_taken() {
    let mut cp = control_plane(Duration::from_secs(10)).await;
    let labels = [
        "topology.kubernetes.io/zone",
        "kubernetes.io/arch",
        "node.kubernetes.io/instance-type",
        "example.com/team",
    ];
    let req = RegisterRequest {
        labels: labels
            .iter()
            .map(|k| (k.to_string(), "a".to_string()))
            .collect(),
        ..registration("labelled")
    };
    cp.client.register(req).await.unwrap();
    let n = node(&cp.store, "labelled").await;
    let got = n.metadata.labels.unwrap();
    for k in labels {
        assert_eq!(got.get(k).map(String::as_str), Some("a"), "{k}");
    }
}

#[tokio::test]
async fn silent_nodes_become_not_ready_and_heartbeats_bring_them_back() {
    let mut cp = control_plane(Duration::from_millis(1500)).await;
    let answer = cp.client.register(registration("beating")).await.unwrap();
    assert_eq!(
        answer.into_inner().heartbeat_interval_ms,
        375,
        "agents are asked to beat four times within the grace"
    );
    cp.client.register(registration("silent")).await.unwrap();
    // A Ready pod on each node.
    for node in ["beating", "silent"] {
        cp.store
            .create(
                Object::from_json(json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("on-{node}"), "namespace": "default"},
                    "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app:1"}]},
                    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
                }))
                .unwrap(),
            )
            .await
            .unwrap();
    }
    let pod_ready = async |name: &str| -> String {
        match cp
            .store
            .get(&ObjectKey::new(Kind::Pod, "default", name))
            .await
            .unwrap()
            .map(|s| s.object)
        {
            Some(Object::Pod(p)) => p
                .status
                .and_then(|s| s.conditions)
                .into_iter()
                .flatten()
                .find(|c| c.type_ == "Ready")
                .map(|c| c.status)
                .unwrap_or_default(),
            _ => String::new(),
        }
    };
    let (tx, rx) = mpsc::channel(16);
    let mut client = cp.client.clone();
    let stream = tokio::spawn(async move { client.report_status(ReceiverStream::new(rx)).await });
    let beat = |node: &str| StatusReport {
        node_name: node.into(),
        report: Some(Report::Heartbeat(Heartbeat::default())),
    };
    let beater = {
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                if tx.send(beat("beating")).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let n = wait_ready(&cp.store, "silent", "Unknown").await;
    let cond = n
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(cond.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        ready(&node(&cp.store, "beating").await),
        "True",
        "heartbeats keep a node ready"
    );
    // The silent node's pod stops being Ready (so Services drop it); the other's stays.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while pod_ready("on-silent").await != "False" {
        assert!(
            std::time::Instant::now() < deadline,
            "the pod was not marked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pod_ready("on-beating").await, "True");

    // The silent node's agent comes back: a new stream of its own.
    let (tx2, rx2) = mpsc::channel(16);
    let mut client = cp.client.clone();
    let _stream2 =
        tokio::spawn(async move { client.report_status(ReceiverStream::new(rx2)).await });
    tx2.send(beat("silent")).await.unwrap();
    wait_ready(&cp.store, "silent", "True").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while pod_ready("on-silent").await != "True" {
        assert!(
            std::time::Instant::now() < deadline,
            "the mark was not undone"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    beater.abort();
    drop(tx);
    let _ = stream.await;
}

#[tokio::test]
async fn streams_must_belong_to_one_registered_node() {
    let mut cp = control_plane(Duration::from_secs(10)).await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(StatusReport {
        node_name: "stranger".into(),
        report: Some(Report::Heartbeat(Heartbeat::default())),
    })
    .await
    .unwrap();
    drop(tx);
    let err = cp
        .client
        .report_status(ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message()
            .contains("node \"stranger\" is not registered"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn a_live_node_cannot_be_taken_over_from_another_address() {
    let mut cp = control_plane(Duration::from_secs(10)).await;
    cp.client.register(registration("owned")).await.unwrap();
    let mut thief = registration("owned");
    thief.address = "10.6.6.6:7401".into();
    let err = cp.client.register(thief).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("is registered from 10.0.0.7:7401"),
        "{}",
        err.message()
    );
    let n = node(&cp.store, "owned").await;
    assert_eq!(
        n.metadata.annotation(nodes::AGENT_ADDRESS),
        Some("10.0.0.7:7401")
    );
    assert_eq!(
        n.metadata
            .labels()
            .get("kubernetes.io/hostname")
            .map(String::as_str),
        Some("owned")
    );
    // The same agent registering again (a restart) is fine.
    cp.client.register(registration("owned")).await.unwrap();
}

/// A control plane that starts (a restart, or a new leader's term) gives the nodes it knows
/// their agents' longest retry pause beyond the grace to come back: right after it, a node
/// silent for longer than the grace is still Ready. (5,000 agents coming back took longer
/// than the grace, and their nodes went NotReady and their pods were evicted.)
#[tokio::test]
async fn after_a_restart_known_nodes_have_the_agents_retry_pause_beyond_the_grace() {
    let grace = Duration::from_millis(300);
    let (store, _dir) = store().await;
    let before = NodeRegistry::new(store.clone(), grace).await.unwrap();
    before.register(&registration("known"), None).await.unwrap();

    let restarted = NodeRegistry::new(store.clone(), grace).await.unwrap();
    tokio::time::sleep(grace * 3).await;
    restarted.check_heartbeats().await;
    assert!(restarted.is_alive("known"));
    assert_eq!(ready(&node(&store, "known").await), "True");
}

/// Registering again takes no lock when the node holds its range; one deleted meanwhile
/// gets a free range again, never one another node holds.
#[tokio::test]
async fn a_node_deleted_and_registered_again_gets_a_free_range() {
    let cp = control_plane(Duration::from_secs(10)).await;
    let mut client = cp.client.clone();
    for name in ["a", "b"] {
        client.register(registration(name)).await.unwrap();
    }
    let range = async |name: &str| node(&cp.store, name).await.spec.pod_cidr.unwrap();
    let (a, b) = (range("a").await, range("b").await);
    assert_ne!(a, b);
    let key = ObjectKey::new(Kind::Node, "", "a");
    let stored = cp.store.get(&key).await.unwrap().unwrap();
    cp.store
        .delete(&key, Some(stored.resource_version))
        .await
        .unwrap();

    client.register(registration("a")).await.unwrap();
    let again = range("a").await;
    assert_ne!(again, b, "a range another node holds");
    client.register(registration("b")).await.unwrap();
    assert_eq!(range("b").await, b, "a node that holds its range keeps it");
}
