//! Node sync against an agent whose heartbeats say it no longer has the set it acknowledged
//! (a plain gRPC server plays the agent: the reconciler never links the agent itself).

use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use keel_agent_protocol::node_agent_server::{NodeAgent, NodeAgentServer};
use keel_agent_protocol::status_report::Report;
use keel_agent_protocol::{
    ExecInput, ExecOutput, ForwardInput, ForwardOutput, Heartbeat, LogChunk, LogsRequest,
    MetricsReport, MetricsRequest, NodeDesired, StatusReport, SyncAck,
};
use keel_reconciler::cache::Cache;
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

/// An agent that acknowledged its set and then says, heartbeat after heartbeat, that it has
/// none (its state was lost without a new registration) gets the set again within seconds,
/// not at the next periodic resend; heartbeats naming the acknowledged set send nothing.
#[tokio::test]
async fn an_agent_that_lost_its_set_gets_it_again() {
    let mut cp = control_plane(Duration::from_secs(30)).await;
    let (tx, mut syncs) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(NodeAgentServer::new(Agent { syncs: tx }))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut node = registration("forgetful");
    node.address = address;
    cp.client.register(node).await.unwrap();
    cp.store
        .create(
            Object::from_json(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"nodeName": "forgetful", "containers": [{"name": "app", "image": "app:1"}]}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let _stopping = stop.clone().drop_guard();
    let cache = Cache::new();
    tokio::spawn({
        let (cache, store, stop) = (cache.clone(), cp.store.clone(), stop.clone());
        async move { cache.run(store, stop).await }
    });
    tokio::spawn(keel_reconciler::nodes::sync::run(
        cache,
        AgentDialer::new(None),
        cp.registry.clone(),
        stop.clone(),
    ));
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
