//! A command run to completion in a container (exec probes): its exit code and the first
//! 10 KiB of its output, given up after a timeout.

use std::time::Duration;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::StreamExt;

use super::engine_error;
use crate::runtime::{ExecOutcome, RuntimeError};

pub(super) async fn run(
    docker: &Docker,
    id: &str,
    cmd: &[String],
    timeout: Duration,
) -> Result<ExecOutcome, RuntimeError> {
    let created = docker
        .create_exec(
            id,
            CreateExecOptions {
                cmd: Some(cmd.to_vec()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(engine_error)?;
    let run = async {
        let mut output = Vec::new();
        if let StartExecResults::Attached {
            output: mut out, ..
        } = docker
            .start_exec(&created.id, None)
            .await
            .map_err(engine_error)?
        {
            while let Some(chunk) = out.next().await {
                let chunk = chunk.map_err(engine_error)?;
                if output.len() < 10 * 1024 {
                    output.extend_from_slice(chunk.as_ref());
                }
            }
        }
        let inspected = docker
            .inspect_exec(&created.id)
            .await
            .map_err(engine_error)?;
        Ok(ExecOutcome {
            exit_code: inspected.exit_code.unwrap_or(-1),
            output: String::from_utf8_lossy(&output).into_owned(),
        })
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(RuntimeError::Failed(format!(
            "command timed out after {}s",
            timeout.as_secs_f64()
        ))),
    }
}
