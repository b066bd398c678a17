//! The agent's `PortForward` call: one TCP connection to a port inside a pod's network
//! namespace, its bytes streamed both ways.

use std::pin::Pin;

use futures_util::Stream;
use keel_agent_protocol::forward_input::Input;
use keel_agent_protocol::{ForwardInput, ForwardOutput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::{Status, Streaming};

use super::service::NodeAgentService;
use crate::runtime::{ContainerInfo, ContainerState};

pub type ForwardStream = Pin<Box<dyn Stream<Item = Result<ForwardOutput, Status>> + Send>>;

/// The largest piece of the pod's answer sent in one message.
const CHUNK: usize = 32 * 1024;

pub async fn start(
    service: &NodeAgentService,
    mut inputs: Streaming<ForwardInput>,
) -> Result<ForwardStream, Status> {
    let start = match inputs.message().await? {
        Some(ForwardInput {
            input: Some(Input::Start(start)),
        }) => start,
        _ => {
            return Err(Status::invalid_argument(
                "a PortForward call begins with its start",
            ));
        }
    };
    let pod = format!("{}/{}", start.namespace, start.pod);
    let port = u16::try_from(start.port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Status::invalid_argument(format!("port {} is not 1-65535", start.port)))?;
    let sandbox = running_sandbox(service, &start.namespace, &start.pod).await?;
    let connection = service
        .runtime
        .connect_in_pod(&sandbox, port)
        .await
        .map_err(|e| {
            Status::unavailable(format!("error forwarding port {port} to pod {pod}: {e}"))
        })?;
    tracing::info!(pod = %pod, port, "port-forward connected");
    let (mut from_pod, mut to_pod) = connection.into_split();
    tokio::spawn(async move {
        loop {
            match inputs.message().await {
                Ok(Some(message)) => match message.input {
                    Some(Input::Data(data)) if to_pod.write_all(&data).await.is_err() => return,
                    Some(Input::Close(true)) => break,
                    _ => {}
                },
                Ok(None) => break,
                // The call was cancelled: the connection goes whole (dropping this half
                // and the reader's, which sees the caller gone).
                Err(_) => return,
            }
        }
        // The caller sends no more: the pod's side reads end-of-file.
        let _ = to_pod.shutdown().await;
    });
    let (sender, outputs) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let read = tokio::select! {
                read = from_pod.read(&mut buffer) => read,
                () = sender.closed() => return,
            };
            let message = match read {
                Ok(0) => return,
                Ok(n) => Ok(ForwardOutput {
                    data: buffer[..n].to_vec(),
                }),
                Err(e) => Err(Status::unavailable(format!(
                    "the connection to port {port} of pod {pod} failed: {e}"
                ))),
            };
            let failed = message.is_err();
            if sender.send(message).await.is_err() || failed {
                return;
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(
        outputs,
    )))
}

/// The pod's running sandbox, the holder of its network namespace.
async fn running_sandbox(
    service: &NodeAgentService,
    namespace: &str,
    name: &str,
) -> Result<ContainerInfo, Status> {
    let pod = format!("{namespace}/{name}");
    let uid = service.supervisor.pod_uid(namespace, name).ok_or_else(|| {
        Status::not_found(format!("pod {pod} does not run on node {}", service.node))
    })?;
    let runs = service
        .runtime
        .list_pod(&uid)
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    runs.into_iter()
        .filter(|c| c.is_sandbox() && matches!(c.state, ContainerState::Running { .. }))
        .max_by_key(|c| c.attempt)
        .ok_or_else(|| Status::failed_precondition(format!("pod {pod} is not running")))
}
