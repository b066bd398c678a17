//! One CNI plugin run, as the CNI spec (1.0) defines it: the plugin binary found on the
//! plugin path, the operation in `CNI_*` environment variables, its network configuration on
//! stdin, and its result (or its error object) on stdout.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::network::command::{self, CommandError};

/// `ADD`, `DEL` or `CHECK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Add,
    Del,
    Check,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Add => "ADD",
            Operation::Del => "DEL",
            Operation::Check => "CHECK",
        }
    }
}

/// Who the plugin works for: one container's one interface.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    pub container_id: &'a str,
    /// The network namespace's path; empty on DEL when the namespace is gone.
    pub netns: &'a str,
    pub ifname: &'a str,
    /// `CNI_ARGS`: `K8S_POD_NAMESPACE=…;K8S_POD_NAME=…`, as the kubelet passes them.
    pub args: &'a str,
}

/// The error object a plugin prints (CNI spec, "Error").
#[derive(Debug, Deserialize)]
struct PluginError {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    details: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginFailure {
    #[error("CNI plugin {plugin:?} was not found in {searched}")]
    NotFound { plugin: String, searched: String },
    /// The plugin's own message (and details), as the kubelet shows it in
    /// `FailedCreatePodSandBox`.
    #[error("plugin type={plugin:?} failed ({operation}): {message}")]
    Failed {
        plugin: String,
        operation: &'static str,
        message: String,
    },
}

/// The binary of plugin `kind` on the plugin path.
pub fn find(kind: &str, bin_dirs: &[PathBuf]) -> Result<PathBuf, PluginFailure> {
    // A type is a file name, never a path: a configuration cannot run other programs.
    let plain = !kind.is_empty()
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && kind != "."
        && kind != "..";
    let found = plain
        .then(|| bin_dirs.iter().map(|d| d.join(kind)).find(|p| p.is_file()))
        .flatten();
    found.ok_or_else(|| PluginFailure::NotFound {
        plugin: kind.to_string(),
        searched: search_path(bin_dirs),
    })
}

fn search_path(bin_dirs: &[PathBuf]) -> String {
    bin_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs one plugin of a list: `plugin` is its object from the configuration, completed here
/// with the list's `name` and `cniVersion`, and `prevResult` / `runtimeConfig` when given.
/// The plugin's result on ADD; `Value::Null` for DEL and CHECK.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    operation: Operation,
    plugin: &Map<String, Value>,
    network_name: &str,
    cni_version: &str,
    prev_result: Option<&Value>,
    runtime_config: Option<&Value>,
    who: &Invocation<'_>,
    bin_dirs: &[PathBuf],
) -> Result<Value, PluginFailure> {
    let kind = plugin
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let binary = find(&kind, bin_dirs)?;
    let mut config = plugin.clone();
    config.insert("name".into(), Value::from(network_name));
    config.insert("cniVersion".into(), Value::from(cni_version));
    if let Some(prev) = prev_result {
        config.insert("prevResult".into(), prev.clone());
    }
    if let Some(rc) = runtime_config {
        config.insert("runtimeConfig".into(), rc.clone());
    }
    let stdin = serde_json::to_vec(&Value::Object(config)).unwrap_or_default();
    let env = [
        ("CNI_COMMAND", operation.as_str().to_string()),
        ("CNI_CONTAINERID", who.container_id.to_string()),
        ("CNI_NETNS", who.netns.to_string()),
        ("CNI_IFNAME", who.ifname.to_string()),
        ("CNI_ARGS", who.args.to_string()),
        ("CNI_PATH", search_path(bin_dirs)),
    ];
    let failed = |message: String| PluginFailure::Failed {
        plugin: kind.clone(),
        operation: operation.as_str(),
        message,
    };
    match command::run_with(&path_str(&binary), &[], &env, Some(&stdin)).await {
        Ok(out) if operation == Operation::Add => {
            serde_json::from_slice(&out).map_err(|e| failed(format!("its result is not JSON: {e}")))
        }
        Ok(_) => Ok(Value::Null),
        Err(CommandError::Failed { detail, .. }) => Err(failed(plugin_message(&detail))),
        Err(CommandError::Missing { detail, .. }) => Err(failed(detail)),
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// The plugin's error object, read back into its message; other output as it is.
fn plugin_message(output: &str) -> String {
    match serde_json::from_str::<PluginError>(output) {
        Ok(e) if !e.msg.is_empty() => {
            let mut m = e.msg;
            if !e.details.is_empty() {
                m.push_str(": ");
                m.push_str(&e.details);
            }
            if e.code != 0 {
                m.push_str(&format!(" (code {})", e.code));
            }
            m
        }
        _ => output.to_string(),
    }
}

/// The first IPv4 address a result gives (`ips[].address`, as `10.244.1.5/24`).
pub fn result_ipv4(result: &Value) -> Option<std::net::Ipv4Addr> {
    result
        .get("ips")?
        .as_array()?
        .iter()
        .filter_map(|ip| ip.get("address")?.as_str())
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugins_error_object_becomes_its_message() {
        for (output, expected) in [
            (
                r#"{"cniVersion":"1.0.0","code":11,"msg":"failed to allocate","details":"range full"}"#,
                "failed to allocate: range full (code 11)",
            ),
            (r#"{"code":999,"msg":"no bridge"}"#, "no bridge (code 999)"),
            ("plain words", "plain words"),
        ] {
            assert_eq!(plugin_message(output), expected);
        }
    }

    #[test]
    fn a_type_is_a_file_name_on_the_plugin_path_and_never_a_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bridge"), "").unwrap();
        let dirs = vec![PathBuf::from("/nonexistent"), dir.path().to_path_buf()];
        assert_eq!(find("bridge", &dirs).unwrap(), dir.path().join("bridge"));
        for bad in ["../bridge", "/bin/sh", "", "..", "missing"] {
            let err = find(bad, &dirs).unwrap_err().to_string();
            assert!(
                err.contains("was not found in /nonexistent:"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_first_ipv4_of_a_result_is_the_pods_address() {
        let result = serde_json::json!({"ips": [{"address": "fd00::5/64"}, {"address": "10.244.1.5/24", "gateway": "10.244.1.1"}]});
        assert_eq!(result_ipv4(&result), Some("10.244.1.5".parse().unwrap()));
        assert_eq!(result_ipv4(&serde_json::json!({})), None);
    }
}
