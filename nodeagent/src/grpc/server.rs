//! The agent's gRPC API (`NodeAgent`: `Sync` and `Logs`), and the one place its server is
//! built. Over mutual TLS every call must come from the control plane's certificate: another
//! node's certificate gets past the handshake (same CA) but not past [`authorize`].

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use keel_agent_protocol::log_chunk::Stream as ProtoStream;
use keel_agent_protocol::node_agent_server::{NodeAgent, NodeAgentServer};
use keel_agent_protocol::{
    LogChunk, LogsRequest, MetricsReport, MetricsRequest, NodeDesired, SyncAck,
};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use crate::desired;
use crate::runtime::{ContainerInfo, LogStream, Runtime};
use crate::supervisor::{ApplyError, Supervisor};

/// Large enough for a node's full desired set with big ConfigMaps; bounded so a hostile
/// message cannot exhaust memory.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

pub struct NodeAgentService {
    pub node: String,
    pub supervisor: Supervisor,
    pub runtime: Arc<dyn Runtime>,
    pub proxy: Option<Arc<keel_proxy::ServiceProxy>>,
    /// Holds the LoadBalancer addresses this node answers for.
    pub announcer: Option<crate::network::announce::Announcer>,
    /// The HTTP(S) proxy for Ingresses.
    pub ingress: Option<Arc<keel_proxy::ingress::IngressProxy>>,
    pub dns: Option<Arc<crate::dns::ClusterDns>>,
    /// The nodes of the latest applied set, for the overlay.
    pub peers: Arc<tokio::sync::watch::Sender<Vec<crate::network::overlay::Peer>>>,
    /// The node's and its containers' resource use (`Metrics`).
    pub usage: crate::usage::UsageSampler,
    /// Whether calls must carry the control plane's certificate (false under `--insecure`).
    pub mutual_tls: bool,
}

impl NodeAgentService {
    /// Refuses any caller but the control plane (under mutual TLS).
    fn authorize<T>(&self, request: &Request<T>, call: &str) -> Result<(), Status> {
        if !self.mutual_tls {
            return Ok(());
        }
        match keel_tls::Identity::of_peer(request) {
            Some(keel_tls::Identity::ControlPlane) => Ok(()),
            other => {
                let who = other
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "a client without a keel certificate".into());
                tracing::warn!(peer = ?request.remote_addr(), caller = %who, call, "refused a call: only the control plane may call the agent");
                Err(Status::permission_denied(format!(
                    "only the control plane may call {call}, not {who}"
                )))
            }
        }
    }
}

type LogsStream = Pin<Box<dyn Stream<Item = Result<LogChunk, Status>> + Send>>;

#[tonic::async_trait]
impl NodeAgent for NodeAgentService {
    async fn sync(&self, request: Request<NodeDesired>) -> Result<Response<SyncAck>, Status> {
        self.authorize(&request, "Sync")?;
        let msg = request.into_inner();
        let set = desired::read(&msg, &self.node).map_err(|e| {
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
        let applied = self.supervisor.apply(set).map_err(|e| match e {
            ApplyError::NotReady(_) => Status::unavailable(e.to_string()),
        })?;
        // Only a set the supervisor took: an older one, ignored there, must not roll the
        // proxy back to endpoints and Services that are gone.
        if applied == generation {
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
            self.peers.send_if_modified(|current| {
                let changed = *current != peers;
                *current = peers;
                changed
            });
        }
        Ok(Response::new(SyncAck {
            applied_generation: applied,
        }))
    }

    type LogsStream = LogsStream;

    async fn logs(&self, request: Request<LogsRequest>) -> Result<Response<LogsStream>, Status> {
        self.authorize(&request, "Logs")?;
        let req = request.into_inner();
        let pod = format!("{}/{}", req.namespace, req.pod);
        let uid = self
            .supervisor
            .pod_uid(&req.namespace, &req.pod)
            .ok_or_else(|| {
                Status::not_found(format!("pod {pod} does not run on node {}", self.node))
            })?;
        let (names, inits) = self.supervisor.container_names(&uid);
        let container = if req.container.is_empty() {
            match names.as_slice() {
                [only] => only.clone(),
                _ => {
                    let inits = if inits.is_empty() {
                        String::new()
                    } else {
                        format!(" or one of the init containers: [{}]", inits.join(" "))
                    };
                    return Err(Status::invalid_argument(format!(
                        "a container name must be specified for pod {pod}, choose one of: [{}]{inits}",
                        names.join(" ")
                    )));
                }
            }
        } else if names.contains(&req.container) || inits.contains(&req.container) {
            req.container.clone()
        } else {
            return Err(Status::not_found(format!(
                "container {} is not valid for pod {pod}",
                req.container
            )));
        };
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

/// Serves the agent's API on `listener` until `shutdown` completes: over TLS with `tls`,
/// plaintext without (`--insecure`).
pub async fn serve(
    listener: TcpListener,
    service: NodeAgentService,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let svc = NodeAgentServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let router = tonic::transport::Server::builder().add_service(svc);
    let caps = keel_tls::transport::Caps::for_open_files(keel_tls::listen::open_files_limit());
    keel_tls::transport::serve(router, listener, tls, caps, shutdown).await
}
