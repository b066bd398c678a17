//! Node sync against a plain gRPC server playing the agent (the reconciler never links the
//! agent itself): the pods of a set as changes, an agent whose heartbeats say it no longer
//! has the set it acknowledged, and an agent that asks for its sets (`NextSet`) instead.

use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use keel_agent_protocol::node_agent_server::{NodeAgent, NodeAgentServer};
use keel_agent_protocol::status_report::Report;
use keel_agent_protocol::{
    ExecInput, ExecOutput, ForwardInput, ForwardOutput, Heartbeat, LogChunk, LogsRequest,
    MetricsReport, MetricsRequest, NextSetRequest, NodeDesired, SetOutcome, StatusReport, SyncAck,
};
use keel_reconciler::cache::Cache;
use keel_reconciler::nodes::NodeRegistry;
use keel_reconciler::nodes::dial::AgentDialer;
use keel_schema::object::Object;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::nodes::{control_plane, registration};

type Never<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Takes every set and says it applied it; the test reads the sets from `syncs`.
struct Agent {
    syncs: mpsc::UnboundedSender<NodeDesired>,
    /// What it says of the pods of a set: whether it takes them as changes.
    pods_as_changes: bool,
}

#[tonic::async_trait]
impl NodeAgent for Agent {
    async fn sync(&self, request: Request<NodeDesired>) -> Result<Response<SyncAck>, Status> {
        let desired = request.into_inner();
        let applied_generation = desired.generation;
        let _ = self.syncs.send(desired);
        Ok(Response::new(SyncAck {
            applied_generation,
            nodes_as_changes: true,
            pods_as_changes: self.pods_as_changes,
        }))
    }
    type LogsStream = Never<LogChunk>;
    async fn logs(&self, _: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn metrics(&self, _: Request<MetricsRequest>) -> Result<Response<MetricsReport>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    type ExecStream = Never<ExecOutput>;
    async fn exec(
        &self,
        _: Request<Streaming<ExecInput>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    type PortForwardStream = Never<ForwardOutput>;
    async fn port_forward(
        &self,
        _: Request<Streaming<ForwardInput>>,
    ) -> Result<Response<Self::PortForwardStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

/// The next set the agent gets within `limit`, if any.
async fn next_set(
    syncs: &mut mpsc::UnboundedReceiver<NodeDesired>,
    limit: Duration,
) -> Option<NodeDesired> {
    tokio::time::timeout(limit, syncs.recv())
        .await
        .ok()
        .flatten()
}

fn pod(name: &str, node: &str, image: &str) -> Object {
    Object::from_json(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": image}]}
    }))
    .unwrap()
}

fn pod_key(name: &str) -> keel_store::ObjectKey {
    keel_store::ObjectKey::new(keel_schema::Kind::Pod, "default", name)
}

/// An [`Agent`] serving: its address, and the sets it gets.
async fn serve_agent(pods_as_changes: bool) -> (String, mpsc::UnboundedReceiver<NodeDesired>) {
    let (tx, syncs) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let agent = Agent {
        syncs: tx,
        pods_as_changes,
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(NodeAgentServer::new(agent))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (address, syncs)
}

/// A registered node `name` whose agent is an [`Agent`]: the sets the agent gets.
async fn agent(
    cp: &crate::nodes::ControlPlane,
    name: &str,
    pods_as_changes: bool,
) -> mpsc::UnboundedReceiver<NodeDesired> {
    let (address, syncs) = serve_agent(pods_as_changes).await;
    let mut node = registration(name);
    node.address = address;
    cp.client.clone().register(node).await.unwrap();
    syncs
}

/// Runs node sync (with its own cache of the store) until `stop` is cancelled.
fn node_sync(cp: &crate::nodes::ControlPlane, stop: &tokio_util::sync::CancellationToken) {
    node_sync_with(cp, cp.registry.clone(), stop);
}

/// Node sync over `registry`: a restarted control plane's, say.
fn node_sync_with(
    cp: &crate::nodes::ControlPlane,
    registry: NodeRegistry,
    stop: &tokio_util::sync::CancellationToken,
) {
    let cache = Cache::new();
    tokio::spawn({
        let (cache, store, stop) = (cache.clone(), cp.store.clone(), stop.clone());
        async move { cache.run(store, stop).await }
    });
    tokio::spawn(keel_reconciler::nodes::sync::run(
        cache,
        AgentDialer::new(None),
        registry,
        stop.clone(),
    ));
}

/// After a restart, the nodes in the store are not dialed: their agents register again
/// within their backoff, and each registration sends its node's set. (Dialing 5,000 agents
/// meanwhile opened a connection to each that the registration made useless.)
#[tokio::test]
async fn a_restarted_control_plane_sends_a_node_its_set_once_its_agent_registers_again() {
    let cp = control_plane(Duration::from_secs(10)).await;
    let (address, mut syncs) = serve_agent(false).await;
    let mut node = registration("n1");
    node.address = address;
    cp.client.clone().register(node.clone()).await.unwrap();
    cp.store.create(pod("a", "n1", "app:1")).await.unwrap();

    // The control plane restarts: a new registry over the same store, and node sync.
    let restarted = NodeRegistry::new(cp.store.clone(), Duration::from_secs(10))
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    node_sync_with(&cp, restarted.clone(), &stop);
    assert!(
        next_set(&mut syncs, Duration::from_secs(2)).await.is_none(),
        "an agent that has not registered again is not dialed"
    );

    restarted.register(&node, None).await.unwrap();
    let set = next_set(&mut syncs, Duration::from_secs(10))
        .await
        .expect("the registration sends the node its set");
    assert_eq!(set.pods.len(), 1, "the whole set: {set:?}");
    stop.cancel();
}

/// An agent that takes pods as changes gets, after its first whole set, only the pods that
/// are new or changed and the names of those that went; status writes send nothing. One
/// that does not say so gets every pod each time.
#[tokio::test]
async fn a_set_carries_only_the_pods_that_changed() {
    let cp = control_plane(Duration::from_secs(30)).await;
    for name in ["a", "b"] {
        cp.store.create(pod(name, "busy", "app:1")).await.unwrap();
    }
    cp.store.create(pod("x", "plain", "app:1")).await.unwrap();
    let mut syncs = agent(&cp, "busy", true).await;
    let mut plain = agent(&cp, "plain", false).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let _stopping = stop.clone().drop_guard();
    node_sync(&cp, &stop);
    let names = |set: &NodeDesired| -> Vec<String> {
        set.pods
            .iter()
            .map(|p| {
                let v: serde_json::Value = serde_json::from_slice(p).unwrap();
                v["metadata"]["name"].as_str().unwrap().to_string()
            })
            .collect()
    };
    let next = async |syncs: &mut mpsc::UnboundedReceiver<NodeDesired>| {
        next_set(syncs, Duration::from_secs(10))
            .await
            .expect("no set came")
    };
    let first = next(&mut syncs).await;
    assert_eq!(names(&first), ["a", "b"]);
    assert_eq!(first.pods_base_generation, 0, "the first set is whole");

    // A new pod: only it travels, as a change to the acknowledged set.
    cp.store.create(pod("c", "busy", "app:1")).await.unwrap();
    let added = next(&mut syncs).await;
    assert_eq!(names(&added), ["c"]);
    assert!(added.removed_pods.is_empty());
    assert_eq!(added.pods_base_generation, first.generation);

    // The agent's status reports change nothing it is sent: no set at all.
    let stored = cp.store.get(&pod_key("a")).await.unwrap().unwrap();
    let Object::Pod(mut running) = stored.object else {
        panic!("a pod")
    };
    running.status = Some(serde_json::from_value(json!({"phase": "Running"})).unwrap());
    cp.store
        .update(Object::Pod(running.clone()), stored.resource_version)
        .await
        .unwrap();
    assert!(
        next_set(&mut syncs, Duration::from_millis(500))
            .await
            .is_none(),
        "a status write sent a set"
    );

    // A changed pod is named as removed and carried anew; a deleted one is only named.
    let mut relabelled = running;
    relabelled.metadata.labels = Some([("tier".to_string(), "web".to_string())].into());
    let current = cp.store.get(&pod_key("a")).await.unwrap().unwrap();
    cp.store
        .update(Object::Pod(relabelled), current.resource_version)
        .await
        .unwrap();
    let changed = next(&mut syncs).await;
    assert_eq!(names(&changed), ["a"]);
    assert_eq!(changed.removed_pods, ["default/a"]);
    assert_eq!(changed.pods_base_generation, added.generation);
    cp.store.delete(&pod_key("b"), None).await.unwrap();
    let deleted = next(&mut syncs).await;
    assert!(deleted.pods.is_empty());
    assert_eq!(deleted.removed_pods, ["default/b"]);

    // An agent that does not take pods as changes gets them all.
    let whole = next(&mut plain).await;
    assert_eq!(names(&whole), ["x"]);
    cp.store.create(pod("y", "plain", "app:1")).await.unwrap();
    let after = next(&mut plain).await;
    assert_eq!(names(&after), ["x", "y"]);
    assert_eq!(after.pods_base_generation, 0);
    assert!(after.removed_pods.is_empty());
}

/// An agent that acknowledged its set and then says, heartbeat after heartbeat, that it has
/// none (its state was lost without a new registration) gets the set again within seconds,
/// not at the next periodic resend; heartbeats naming the acknowledged set send nothing.
#[tokio::test]
async fn an_agent_that_lost_its_set_gets_it_again() {
    let cp = control_plane(Duration::from_secs(30)).await;
    cp.store
        .create(pod("web", "forgetful", "app:1"))
        .await
        .unwrap();
    let mut syncs = agent(&cp, "forgetful", true).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let _stopping = stop.clone().drop_guard();
    node_sync(&cp, &stop);
    let first = next_set(&mut syncs, Duration::from_secs(10))
        .await
        .expect("the agent never got its set");
    assert_eq!(first.pods.len(), 1, "the set has the node's pod");

    // Heartbeats every second, like an agent's, naming the set it has.
    let (beats, rx) = mpsc::channel(16);
    let mut client = cp.client.clone();
    let _stream = tokio::spawn(async move { client.report_status(ReceiverStream::new(rx)).await });
    let beat = |applied_generation| StatusReport {
        node_name: "forgetful".into(),
        report: Some(Report::Heartbeat(Heartbeat {
            applied_generation,
            ..Heartbeat::default()
        })),
    };
    for _ in 0..5 {
        beats.send(beat(first.generation)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        syncs.try_recv().is_err(),
        "heartbeats naming the acknowledged set sent it again"
    );

    // Now it says it has nothing.
    let beating = tokio::spawn(async move {
        while beats.send(beat(0)).await.is_ok() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let again = next_set(&mut syncs, Duration::from_secs(10))
        .await
        .expect("an agent that lost its set never got it again");
    beating.abort();
    assert!(again.generation > first.generation);
    assert_eq!(again.pods, first.pods, "the same pods, whole");
}

/// An agent that registered to take its sets asks for them on its own connection: node sync
/// never dials it (nothing listens at its address). Its first set is whole, the next a
/// change; a change it refuses comes again whole, and so does the set after it restarted
/// (its first call says nothing of the set it was given).
#[tokio::test]
async fn an_agent_that_asks_for_its_sets_gets_them_on_its_own_connection() {
    let cp = control_plane(Duration::from_secs(30)).await;
    cp.store.create(pod("a", "asker", "app:1")).await.unwrap();
    let mut node = registration("asker");
    node.address = "127.0.0.1:1".into();
    node.takes_sets = true;
    let mut client = cp.client.clone();
    client.register(node.clone()).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let _stopping = stop.clone().drop_guard();
    node_sync(&cp, &stop);
    let taken = |set: &NodeDesired, pods_as_changes| SetOutcome {
        generation: set.generation,
        ack: Some(SyncAck {
            applied_generation: set.generation,
            nodes_as_changes: true,
            pods_as_changes,
        }),
        ..Default::default()
    };
    let first = ask(&mut client, None).await;
    assert_eq!(first.pods.len(), 1);
    assert_eq!(first.pods_base_generation, 0, "the first set is whole");

    // Its outcome comes with the next call, which waits for the next set.
    let next = tokio::spawn({
        let first = first.clone();
        let mut client = client.clone();
        async move {
            let added = ask(&mut client, Some(taken(&first, true))).await;
            // Refused as a change to a set it does not have: the next comes whole.
            let refused = SetOutcome {
                generation: added.generation,
                refused_code: tonic::Code::FailedPrecondition as i32,
                refused_message: "this agent last applied 0".into(),
                ..Default::default()
            };
            let whole = ask(&mut client, Some(refused)).await;
            (added, whole)
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cp.store.create(pod("b", "asker", "app:1")).await.unwrap();
    let (added, whole) = tokio::time::timeout(Duration::from_secs(20), next)
        .await
        .expect("the sets came")
        .unwrap();
    assert_eq!(added.pods.len(), 1, "only the new pod");
    assert_eq!(added.pods_base_generation, first.generation);
    assert_eq!(whole.pods.len(), 2, "both pods, whole");
    assert_eq!(whole.pods_base_generation, 0);

    // Restarted: it registers again and asks without an outcome; the set comes whole.
    client.register(node).await.unwrap();
    let again = ask(&mut client, None).await;
    assert_eq!(again.pods.len(), 2);
    assert_eq!(again.pods_base_generation, 0);
}

/// Asks for node "asker"'s next set until one comes (an empty answer, generation 0, means
/// none yet).
async fn ask(
    client: &mut keel_agent_protocol::control_plane_client::ControlPlaneClient<
        tonic::transport::Channel,
    >,
    outcome: Option<SetOutcome>,
) -> NodeDesired {
    let mut outcome = outcome;
    for _ in 0..3 {
        let set = client
            .next_set(NextSetRequest {
                node_name: "asker".into(),
                outcome: outcome.take(),
            })
            .await
            .unwrap()
            .into_inner();
        if set.generation != 0 {
            return set;
        }
    }
    panic!("no set came");
}
