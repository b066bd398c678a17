//! Interactive sessions through the engine: a command run with its stdio attached
//! (`kubectl exec`), or an attach to the container's own process (`kubectl attach`).

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{AttachContainerOptionsBuilder, ResizeContainerTTYOptionsBuilder};
use futures_util::StreamExt;

use super::engine_error;
use crate::runtime::RuntimeError;
use crate::runtime::session::{Session, SessionControl, SessionOutput, SessionSpec};

/// Opens `spec` in container `id`.
pub(super) async fn open(
    docker: &Docker,
    id: &str,
    spec: &SessionSpec,
) -> Result<Session, RuntimeError> {
    match &spec.command {
        Some(command) => exec(docker, id, command, spec).await,
        None => attach(docker, id, spec).await,
    }
}

async fn exec(
    docker: &Docker,
    id: &str,
    command: &[String],
    spec: &SessionSpec,
) -> Result<Session, RuntimeError> {
    let created = docker
        .create_exec(
            id,
            CreateExecOptions {
                cmd: Some(command.to_vec()),
                attach_stdin: Some(spec.stdin),
                attach_stdout: Some(spec.stdout),
                attach_stderr: Some(spec.stderr),
                tty: Some(spec.tty),
                ..Default::default()
            },
        )
        .await
        .map_err(engine_error)?;
    let started = docker
        .start_exec(
            &created.id,
            Some(StartExecOptions {
                detach: false,
                tty: spec.tty,
                output_capacity: None,
            }),
        )
        .await
        .map_err(engine_error)?;
    let StartExecResults::Attached { output, input } = started else {
        return Err(RuntimeError::Failed(
            "the engine started the command detached".into(),
        ));
    };
    let control = ExecControl {
        docker: docker.clone(),
        exec: created.id,
    };
    if let (true, Some((width, height))) = (spec.tty, spec.size) {
        // The terminal exists once the command started; a failed first resize leaves the
        // engine's 80×24, which the caller's next resize corrects.
        if let Err(e) = control.resize(width, height).await {
            tracing::debug!(error = %e, "first terminal size not set");
        }
    }
    Ok(Session {
        output: outputs(output),
        input,
        control: Box::new(control),
    })
}

async fn attach(docker: &Docker, id: &str, spec: &SessionSpec) -> Result<Session, RuntimeError> {
    if spec.stdin || spec.tty {
        // keel starts containers without an open stdin or a terminal (the pod spec's
        // `stdin` and `tty` are not part of keel's subset), so there is none to attach to.
        return Err(RuntimeError::Failed(
            "this container was started without stdin or a terminal (keel does not support a container's stdin and tty fields); attach can stream only its output".into(),
        ));
    }
    let options = AttachContainerOptionsBuilder::new()
        .stream(true)
        .stdin(false)
        .stdout(spec.stdout)
        .stderr(spec.stderr)
        .build();
    let attached = docker
        .attach_container(id, Some(options))
        .await
        .map_err(engine_error)?;
    Ok(Session {
        output: outputs(attached.output),
        input: attached.input,
        control: Box::new(AttachControl {
            docker: docker.clone(),
            container: id.to_string(),
        }),
    })
}

fn outputs(
    output: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
) -> futures_util::stream::BoxStream<'static, Result<SessionOutput, RuntimeError>> {
    output
        .filter_map(|item| async move {
            match item {
                // A terminal's output comes as one stream (the engine calls it console).
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    Some(Ok(SessionOutput::Stdout(message)))
                }
                Ok(LogOutput::StdErr { message }) => Some(Ok(SessionOutput::Stderr(message))),
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(engine_error(e))),
            }
        })
        .boxed()
}

struct ExecControl {
    docker: Docker,
    exec: String,
}

#[async_trait]
impl SessionControl for ExecControl {
    async fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError> {
        self.docker
            .resize_exec(&self.exec, ResizeExecOptions { width, height })
            .await
            .map_err(engine_error)
    }

    async fn exit_code(&self) -> Option<i64> {
        // The engine records the code a moment after the output closes.
        for _ in 0..20 {
            match self.docker.inspect_exec(&self.exec).await {
                Ok(info) if info.running != Some(true) => return info.exit_code,
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                Err(e) => {
                    tracing::debug!(error = %e, "exec not inspected");
                    return None;
                }
            }
        }
        None
    }
}

struct AttachControl {
    docker: Docker,
    container: String,
}

#[async_trait]
impl SessionControl for AttachControl {
    async fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError> {
        let options = ResizeContainerTTYOptionsBuilder::new()
            .w(i32::from(width))
            .h(i32::from(height))
            .build();
        self.docker
            .resize_container_tty(&self.container, options)
            .await
            .map_err(engine_error)
    }

    async fn exit_code(&self) -> Option<i64> {
        let info = self
            .docker
            .inspect_container(&self.container, None)
            .await
            .ok()?;
        let state = info.state?;
        if state.running == Some(true) {
            return None;
        }
        state.exit_code
    }
}
