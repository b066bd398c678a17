//! Kubernetes' channel protocol for exec, attach and port-forward over WebSocket
//! (`v4.channel.k8s.io`, `v5.channel.k8s.io`): every binary message starts with the byte of
//! its channel. Shared by the server and `keel exec` / `keel port-forward`.

use serde::{Deserialize, Serialize};
use serde_json::json;

/// The subprotocols, newest first: v5 adds [`CLOSE`], so a client can end stdin.
pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// The outcome: a `Status` as JSON, the session's last message.
pub const ERROR: u8 = 3;
/// A terminal size, as [`TerminalSize`] JSON.
pub const RESIZE: u8 = 4;
/// v5: "this channel is closed", its one data byte naming the channel.
pub const CLOSE: u8 = 255;

/// A terminal's size on [`RESIZE`], with Kubernetes' field names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// `data` on `channel`, as one binary message's bytes.
pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(data.len() + 1);
    message.push(channel);
    message.extend_from_slice(data);
    message
}

/// The [`ERROR`] channel's `Status` for a process that exited with `code` (-1: unknown), as
/// kubectl reads it: success for 0, `NonZeroExitCode` with the code as its cause otherwise.
pub fn exit_status(code: i32) -> serde_json::Value {
    match code {
        0 => json!({"metadata": {}, "status": "Success"}),
        code if code > 0 => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        _ => failure_status("the command ended, but its exit code is unknown"),
    }
}

/// The [`ERROR`] channel's `Status` for a session that failed.
pub fn failure_status(message: &str) -> serde_json::Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
    })
}

/// What an [`ERROR`] channel's `Status` says: `Ok(code)` for an exit code (0 for success),
/// `Err(message)` for a failure without one.
pub fn outcome(status: &[u8]) -> Result<i32, String> {
    let value: serde_json::Value =
        serde_json::from_slice(status).map_err(|_| String::from_utf8_lossy(status).into_owned())?;
    if value["status"] == "Success" {
        return Ok(0);
    }
    let code = value["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|cause| cause["reason"] == "ExitCode")
        .and_then(|cause| cause["message"].as_str()?.parse().ok());
    match code {
        Some(code) => Ok(code),
        None => Err(value["message"]
            .as_str()
            .unwrap_or("the session failed")
            .to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_code_survives_the_status() {
        for code in [0, 1, 3, 127, 255] {
            let status = serde_json::to_vec(&exit_status(code)).unwrap();
            assert_eq!(outcome(&status), Ok(code));
        }
        let failed = serde_json::to_vec(&failure_status("no such container")).unwrap();
        assert_eq!(outcome(&failed), Err("no such container".to_string()));
        assert_eq!(outcome(b"not json"), Err("not json".to_string()));
    }

    #[test]
    fn sizes_use_kubernetes_field_names() {
        let size: TerminalSize = serde_json::from_str(r#"{"Width":120,"Height":40}"#).unwrap();
        assert_eq!(
            size,
            TerminalSize {
                width: 120,
                height: 40
            }
        );
        assert_eq!(frame(RESIZE, b"{}"), vec![4, b'{', b'}']);
    }
}
