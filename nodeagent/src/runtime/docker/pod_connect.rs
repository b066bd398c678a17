//! `kubectl port-forward`'s connection: made from inside the pod's network namespace to its
//! loopback, as the kubelet does, so a server listening only on 127.0.0.1 in the pod is
//! reached too.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bollard::Docker;
use nix::sched::CloneFlags;
use tokio::net::TcpStream;

use super::engine_error;
use crate::runtime::{ContainerInfo, RuntimeError};

/// How long a connection to the pod's port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn connect(
    docker: &Docker,
    sandbox: &ContainerInfo,
    port: u16,
) -> Result<TcpStream, RuntimeError> {
    let info = docker
        .inspect_container(&sandbox.id, None)
        .await
        .map_err(engine_error)?;
    let pid = info
        .state
        .and_then(|s| s.pid)
        .filter(|pid| *pid > 0)
        .ok_or_else(|| RuntimeError::Failed("the pod's sandbox is not running".into()))?;
    let netns = format!("/proc/{pid}/ns/net");
    let (sent, answer) = tokio::sync::oneshot::channel();
    // setns changes only the calling thread's namespace, so the connection is made on a
    // thread of its own that ends right after; the socket stays in the pod's namespace.
    std::thread::Builder::new()
        .name("keel-port-forward".into())
        .spawn(move || {
            let _ = sent.send(connect_in(&netns, port));
        })
        .map_err(|e| RuntimeError::Failed(format!("cannot start a thread: {e}")))?;
    let stream = answer
        .await
        .map_err(|_| RuntimeError::Failed("the connecting thread stopped".into()))?
        .map_err(|e| {
            RuntimeError::Failed(format!(
                "failed to connect to localhost:{port} inside the pod's network namespace: {e}"
            ))
        })?;
    stream
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(stream))
        .map_err(|e| RuntimeError::Failed(e.to_string()))
}

/// Enters `netns` and connects to `port` on its loopback: IPv4, then IPv6.
fn connect_in(netns: &str, port: u16) -> std::io::Result<std::net::TcpStream> {
    let namespace = std::fs::File::open(netns)?;
    nix::sched::setns(&namespace, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match std::net::TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
        Ok(stream) => Ok(stream),
        Err(e) => {
            let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
            std::net::TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT).map_err(|_| e)
        }
    }
}
