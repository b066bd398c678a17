//! An interactive process in a container and a connection into a pod's network namespace:
//! what the agent's `Exec` and `PortForward` calls stream (`kubectl exec`, `attach`,
//! `port-forward`).

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use tokio::io::AsyncWrite;

use super::RuntimeError;

/// What to run, and which of its streams the caller wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    /// The command to run; `None` attaches to the container's own process.
    pub command: Option<Vec<String>>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// The terminal's first size, width by height (tty only).
    pub size: Option<(u16, u16)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionOutput {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// A running session: its output, its stdin, and its terminal and exit.
pub struct Session {
    /// Ends when the process (or, attached, the container) closes its output.
    pub output: BoxStream<'static, Result<SessionOutput, RuntimeError>>,
    /// Shut down to send the process end-of-file.
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
    pub control: Box<dyn SessionControl>,
}

#[async_trait]
pub trait SessionControl: Send + Sync {
    /// Sets the terminal's size (tty sessions).
    async fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError>;

    /// The exit code once the output has ended; `None` while it runs or when the engine
    /// cannot say.
    async fn exit_code(&self) -> Option<i64>;
}

/// Why a runtime without processes refuses a session or a connection.
pub fn no_processes(what: &str) -> RuntimeError {
    RuntimeError::Failed(format!(
        "{what} is not available: this node's runtime (hollow) runs no processes"
    ))
}
