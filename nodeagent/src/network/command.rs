//! The network tools the agent drives: iproute2's `ip` and `bridge`, `nft`, `iptables`, and
//! CNI plugins. One place runs them, with a deadline, and turns a failure into a message that
//! names the command and carries the tool's own words.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("`{command}` cannot run: {detail}")]
    Missing { command: String, detail: String },
    #[error("`{command}` failed: {detail}")]
    Failed { command: String, detail: String },
}

/// Runs `program args…`, feeding `stdin`; its stdout when it exits 0. `env` is added to the
/// agent's environment.
pub async fn run_with(
    program: &str,
    args: &[&str],
    env: &[(&str, String)],
    stdin: Option<&[u8]>,
) -> Result<Vec<u8>, CommandError> {
    let shown = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| CommandError::Missing {
        command: shown.clone(),
        detail: e.to_string(),
    })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A plugin that exits without reading its config is its own error, seen below.
        let _ = pipe.write_all(input).await;
    }
    let out = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| CommandError::Failed {
            command: shown.clone(),
            detail: format!("no answer within {TIMEOUT:?}"),
        })?
        .map_err(|e| CommandError::Failed {
            command: shown.clone(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if detail.is_empty() {
        detail = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    if detail.is_empty() {
        detail = out.status.to_string();
    }
    Err(CommandError::Failed {
        command: shown,
        detail,
    })
}

/// Runs a tool without input; its stdout.
pub async fn run(program: &str, args: &[&str]) -> Result<Vec<u8>, CommandError> {
    run_with(program, args, &[], None).await
}

/// Runs a tool that prints JSON (`ip -j`, `bridge -j`) and reads it; no output is `[]`.
pub async fn json<T: serde::de::DeserializeOwned + Default>(
    program: &str,
    args: &[&str],
) -> Result<T, CommandError> {
    let out = run(program, args).await?;
    if out.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&out).map_err(|e| CommandError::Failed {
        command: format!("{program} {}", args.join(" ")),
        detail: format!("unreadable output: {e}"),
    })
}
