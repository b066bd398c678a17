//! The agent's `Exec` call: a command run in one of its containers (or an attach to the
//! container's own process) with stdin, output, terminal sizes and the exit code streamed
//! between the control plane and the engine.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use keel_agent_protocol::exec_input::Input;
use keel_agent_protocol::exec_output::Output;
use keel_agent_protocol::{ExecExit, ExecInput, ExecOutput, ExecStart, TerminalSize};
use tokio::io::AsyncWriteExt;
use tonic::{Status, Streaming};

use super::service::NodeAgentService;
use crate::runtime::session::{SessionControl, SessionOutput, SessionSpec};
use crate::runtime::{ContainerInfo, ContainerState};

pub type ExecStream = Pin<Box<dyn Stream<Item = Result<ExecOutput, Status>> + Send>>;

/// Reads the call's first input (what to run), starts it, and streams it.
pub async fn start(
    service: &NodeAgentService,
    mut inputs: Streaming<ExecInput>,
) -> Result<ExecStream, Status> {
    let start = match inputs.message().await? {
        Some(ExecInput {
            input: Some(Input::Start(start)),
        }) => start,
        _ => {
            return Err(Status::invalid_argument(
                "an Exec call begins with its start",
            ));
        }
    };
    if !(start.stdin || start.stdout || start.stderr) {
        return Err(Status::invalid_argument(
            "you must specify at least one of stdin, stdout, stderr",
        ));
    }
    let run = running_container(service, &start).await?;
    let spec = SessionSpec {
        command: (!start.command.is_empty()).then(|| start.command.clone()),
        tty: start.tty,
        stdin: start.stdin,
        stdout: start.stdout,
        stderr: start.stderr,
        size: start.size.as_ref().map(size),
    };
    let session = service
        .runtime
        .open_session(&run.id, &spec)
        .await
        .map_err(|e| Status::failed_precondition(e.to_string()))?;
    // The program only: arguments can carry secrets (`mysql -p…`).
    let what = match spec.command.as_ref().and_then(|c| c.first()) {
        Some(program) => format!("exec {program}"),
        None => "attach".to_string(),
    };
    tracing::info!(pod = %format!("{}/{}", start.namespace, start.pod), container = %start.container, tty = spec.tty, "{what}");
    let control: Arc<dyn SessionControl> = Arc::from(session.control);
    tokio::spawn(feed(inputs, session.input, control.clone(), spec.stdin));
    let (sender, outputs) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut output = session.output;
        loop {
            // A caller that left ends the session here too, not at the next output.
            let item = tokio::select! {
                item = output.next() => item,
                () = sender.closed() => return,
            };
            let Some(item) = item else { break };
            let message = match item {
                Ok(SessionOutput::Stdout(data)) => Ok(Output::Stdout(data.to_vec())),
                Ok(SessionOutput::Stderr(data)) => Ok(Output::Stderr(data.to_vec())),
                Err(e) => Err(Status::unavailable(e.to_string())),
            };
            let failed = message.is_err();
            let message = message.map(|output| ExecOutput {
                output: Some(output),
            });
            if sender.send(message).await.is_err() || failed {
                return;
            }
        }
        let code = control.exit_code().await.map_or(-1, |code| {
            i32::try_from(code).unwrap_or(if code < 0 { -1 } else { i32::MAX })
        });
        let exit = Output::Exit(ExecExit { code });
        let _ = sender.send(Ok(ExecOutput { output: Some(exit) })).await;
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(
        outputs,
    )))
}

fn size(size: &TerminalSize) -> (u16, u16) {
    let clamp = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
    (clamp(size.width), clamp(size.height))
}

/// The newest run of the named container, which must be running.
async fn running_container(
    service: &NodeAgentService,
    start: &ExecStart,
) -> Result<ContainerInfo, Status> {
    let (uid, container) = service.container_of(&start.namespace, &start.pod, &start.container)?;
    let runs = service
        .runtime
        .list_pod(&uid)
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let newest = runs
        .into_iter()
        .filter(|c| c.container.as_deref() == Some(container.as_str()))
        .max_by_key(|c| c.attempt);
    match newest {
        Some(run) if matches!(run.state, ContainerState::Running { .. }) => Ok(run),
        _ => Err(Status::failed_precondition(format!(
            "container {container} in pod {}/{} is not running",
            start.namespace, start.pod
        ))),
    }
}

/// Passes the caller's stdin and terminal sizes to the session until the caller ends.
async fn feed(
    mut inputs: Streaming<ExecInput>,
    mut stdin: Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    control: Arc<dyn SessionControl>,
    stdin_attached: bool,
) {
    let mut stdin_open = stdin_attached;
    while let Ok(Some(message)) = inputs.message().await {
        match message.input {
            Some(Input::Stdin(data)) if stdin_open => {
                let written = stdin.write_all(&data).await;
                if written.and(stdin.flush().await).is_err() {
                    stdin_open = false;
                }
            }
            Some(Input::CloseStdin(true)) if stdin_open => {
                let _ = stdin.shutdown().await;
                stdin_open = false;
            }
            Some(Input::Resize(terminal)) => {
                let (width, height) = size(&terminal);
                if let Err(e) = control.resize(width, height).await {
                    tracing::debug!(error = %e, "terminal not resized");
                }
            }
            _ => {}
        }
    }
    // The caller is gone (or said all it will): the process reads end-of-file.
    if stdin_open {
        let _ = stdin.shutdown().await;
    }
}
