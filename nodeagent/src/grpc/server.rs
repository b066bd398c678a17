//! The agent's gRPC API (`NodeAgent`: `Sync`, `Logs`, `Metrics`; `Exec` and `PortForward`
//! in [`super::exec`] and [`super::port_forward`]), and the one place its server is
//! built. Over mutual TLS every call must come from the control plane's certificate: another
//! node's certificate gets past the handshake (same CA) but not past
//! [`NodeAgentService::authorize`].

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use keel_agent_protocol::log_chunk::Stream as ProtoStream;
use keel_agent_protocol::node_agent_server::{NodeAgent, NodeAgentServer};
use keel_agent_protocol::{
    ExecInput, ForwardInput, LogChunk, LogsRequest, MetricsReport, MetricsRequest, NodeDesired,
    SyncAck,
};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

pub use super::service::NodeAgentService;
use super::set_change;
use crate::desired;
use crate::runtime::{ContainerInfo, LogStream};
use crate::supervisor::ApplyError;

/// Large enough for a node's full desired set with big ConfigMaps; bounded so a hostile
/// message cannot exhaust memory.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

type LogsStream = Pin<Box<dyn Stream<Item = Result<LogChunk, Status>> + Send>>;

#[tonic::async_trait]
impl NodeAgent for NodeAgentService {
    async fn sync(&self, request: Request<NodeDesired>) -> Result<Response<SyncAck>, Status> {
        self.authorize(&request, "Sync")?;
        self.apply_set(request.into_inner()).map(Response::new)
    }

    type LogsStream = LogsStream;

    async fn logs(&self, request: Request<LogsRequest>) -> Result<Response<LogsStream>, Status> {
        self.authorize(&request, "Logs")?;
        let req = request.into_inner();
        let (uid, container) = self.container_of(&req.namespace, &req.pod, &req.container)?;
        let pod = format!("{}/{}", req.namespace, req.pod);
        let mut runs: Vec<ContainerInfo> = self
            .runtime
            .list_pod(&uid)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?
            .into_iter()
            .filter(|c| c.container.as_deref() == Some(container.as_str()))
            .collect();
        runs.sort_by_key(|c| std::cmp::Reverse(c.attempt));
        let run = if req.previous {
            runs.get(1)
        } else {
            runs.first()
        };
        let Some(run) = run else {
            return Err(Status::not_found(if req.previous {
                format!("previous terminated container {container:?} in pod {pod} not found")
            } else {
                format!("container {container:?} in pod {pod} has not started yet")
            }));
        };
        let tail = u64::try_from(req.tail_lines.max(0)).unwrap_or(0);
        let stream = self
            .runtime
            .logs(&run.id, tail, req.follow)
            .map(|item| match item {
                Ok((stream, data)) => Ok(LogChunk {
                    data: data.to_vec(),
                    stream: match stream {
                        LogStream::Stdout => ProtoStream::Stdout,
                        LogStream::Stderr => ProtoStream::Stderr,
                    } as i32,
                }),
                Err(e) => Err(Status::unavailable(e.to_string())),
            });
        Ok(Response::new(Box::pin(stream)))
    }

    type ExecStream = super::exec::ExecStream;

    async fn exec(
        &self,
        request: Request<tonic::Streaming<ExecInput>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        self.authorize(&request, "Exec")?;
        super::exec::start(self, request.into_inner())
            .await
            .map(Response::new)
    }

    type PortForwardStream = super::port_forward::ForwardStream;

    async fn port_forward(
        &self,
        request: Request<tonic::Streaming<ForwardInput>>,
    ) -> Result<Response<Self::PortForwardStream>, Status> {
        self.authorize(&request, "PortForward")?;
        super::port_forward::start(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn metrics(
        &self,
        request: Request<MetricsRequest>,
    ) -> Result<Response<MetricsReport>, Status> {
        self.authorize(&request, "Metrics")?;
        let Some(sample) = self.usage.latest() else {
            return Err(Status::unavailable(format!(
                "node {} has no usage sample yet (one is taken every 15 s)",
                self.node
            )));
        };
        Ok(Response::new(crate::grpc::usage_report::report(&sample)))
    }
}

impl NodeAgentService {
    /// Takes a desired set, as `Sync` carries it or `NextSet` answers it: what `Sync`
    /// answers.
    pub fn apply_set(&self, mut msg: NodeDesired) -> Result<SyncAck, Status> {
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        let kept = set_change::kept_pods(&msg, &applied);
        let (nodes, kept) = set_change::make_whole(&mut msg, &applied)
            .and_then(|nodes| Ok((nodes, kept?)))
            .map_err(|why| {
                tracing::debug!(generation = msg.generation, why, "asking for a whole set");
                Status::failed_precondition(why)
            })?;
        let set = desired::read(&msg, &self.node, kept).map_err(|e| {
            tracing::warn!(generation = msg.generation, error = %e, "refused a desired set");
            Status::invalid_argument(e.to_string())
        })?;
        let services = set.services.clone();
        let dns_services = set.dns_services.clone();
        let peers = set.peers.clone();
        let announce = set.announce.clone();
        let ingresses = set.ingresses.clone();
        let ingress_secrets = set.ingress_secrets.clone();
        let pods = set.pods.len();
        let generation = set.generation;
        let pods_by_key: std::collections::BTreeMap<String, Arc<desired::DesiredPod>> =
            set.pods.iter().map(|p| (p.key(), p.clone())).collect();
        let applied_generation = self.supervisor.apply(set).map_err(|e| match e {
            ApplyError::NotReady(_) => Status::unavailable(e.to_string()),
        })?;
        // Only a set the supervisor took: an older one, ignored there, must not roll the
        // proxy back to endpoints and Services that are gone.
        if applied_generation == generation {
            tracing::debug!(generation, pods, "desired set applied");
            if let Some(ingress) = &self.ingress {
                ingress.update(&ingresses, &ingress_secrets, &services);
            }
            if let Some(proxy) = &self.proxy {
                proxy.update(services);
            }
            if let Some(announcer) = &self.announcer {
                announcer.update(&announce);
            }
            if let Some(dns) = &self.dns {
                dns.update(&dns_services);
            }
            if nodes == set_change::Nodes::Whole {
                self.peers.send_if_modified(|current| {
                    let changed = *current != peers;
                    *current = peers;
                    changed
                });
                applied.nodes = msg.nodes;
            }
            applied.pods = pods_by_key;
            applied.generation = generation;
        }
        Ok(SyncAck {
            applied_generation,
            nodes_as_changes: true,
            pods_as_changes: true,
        })
    }
}

/// Serves the agent's API on `listener` until `shutdown` completes: over TLS with `tls`,
/// plaintext without (`--insecure`).
pub async fn serve(
    listener: TcpListener,
    service: Arc<NodeAgentService>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let svc = NodeAgentServer::from_arc(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let router = tonic::transport::Server::builder().add_service(svc);
    let caps = keel_tls::transport::Caps::for_open_files(keel_tls::listen::open_files_limit());
    keel_tls::transport::serve(router, listener, tls, caps, shutdown).await
}
