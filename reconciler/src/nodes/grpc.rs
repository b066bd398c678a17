//! The `ControlPlane` gRPC service agents call, and the one place its server is built.

use keel_schema::proto::control_plane_server::{ControlPlane, ControlPlaneServer};
use keel_schema::proto::status_report::Report;
use keel_schema::proto::{RegisterRequest, RegisterResponse, StatusAck, StatusReport};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};

use super::{NodeRegistry, RegisterError};

/// Status reports and registrations are small; this bounds what one message may cost.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

pub struct ControlPlaneService {
    pub registry: NodeRegistry,
    /// Turns true when the control plane stops: open status streams end then, or a graceful
    /// shutdown would wait for them for ever.
    pub stop: tokio::sync::watch::Receiver<bool>,
}

#[tonic::async_trait]
impl ControlPlane for ControlPlaneService {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let req = request.into_inner();
        self.registry.register(&req).await.map_err(|e| match e {
            RegisterError::Invalid(m) => Status::invalid_argument(m),
            RegisterError::Store(m) => Status::unavailable(m),
        })?;
        // Node sync numbers a node's sets with the store revision they were read at, so the
        // next one is at least the current revision (the agent lowers its floor to it when
        // this control plane restarted and counts from there).
        let next_generation = self.registry.store_revision().await.max(1);
        Ok(Response::new(RegisterResponse { next_generation }))
    }

    async fn report_status(
        &self,
        request: Request<Streaming<StatusReport>>,
    ) -> Result<Response<StatusAck>, Status> {
        let mut stream = request.into_inner();
        let mut node: Option<String> = None;
        let mut stop = self.stop.clone();
        loop {
            let report = tokio::select! {
                msg = stream.message() => match msg? {
                    Some(r) => r,
                    None => break,
                },
                _ = stop.wait_for(|s| *s) => {
                    return Err(Status::unavailable("the control plane is shutting down"));
                }
            };
            match &node {
                None => {
                    if !self.registry.is_registered(&report.node_name) {
                        return Err(Status::failed_precondition(format!(
                            "node {:?} is not registered; call Register first",
                            report.node_name
                        )));
                    }
                    node = Some(report.node_name.clone());
                }
                Some(n) if *n != report.node_name => {
                    return Err(Status::invalid_argument(format!(
                        "this stream is node {n:?}'s, not {:?}",
                        report.node_name
                    )));
                }
                Some(_) => {}
            }
            let name = report.node_name.as_str();
            match &report.report {
                Some(Report::Heartbeat(_)) => self.registry.heartbeat(name).await,
                Some(Report::PodEvent(event)) => {
                    self.registry.heartbeat(name).await;
                    self.registry.pod_event(name, event).await;
                }
                Some(Report::PodStatus(update)) => {
                    self.registry.heartbeat(name).await;
                    self.registry.pod_status(name, update).await;
                }
                None => {}
            }
        }
        Ok(Response::new(StatusAck {}))
    }
}

/// Serves the agents' API on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    registry: NodeRegistry,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    let mut until = stop.clone();
    let shutdown = async move {
        let _ = until.wait_for(|s| *s).await;
    };
    let svc = ControlPlaneServer::new(ControlPlaneService { registry, stop })
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .add_service(svc)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}
