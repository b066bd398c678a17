//! Which CNI network pods join: the operator's (`--cni-conf-dir`, the first configuration in
//! name order, as the kubelet picks it) or keel's default chain over the node's range.

use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde_json::{Map, Value, json};

/// The CNI version keel writes and speaks; Debian's plugins (1.1) support it.
pub const CNI_VERSION: &str = "1.0.0";

/// A network configuration list (`.conflist`), or a single plugin's (`.conf`) as a list of
/// one.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Map<String, Value>>,
}

/// The pods' gateway on a node's bridge: its range's first host address (`host-local`'s
/// choice too).
pub fn gateway(range: Ipv4Net) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(u32::from(range.network()).saturating_add(1))
}

impl NetworkList {
    /// The list as JSON, kept with each attachment so DEL runs the chain ADD ran.
    pub fn to_json(&self) -> Value {
        json!({"name": self.name, "cniVersion": self.cni_version, "plugins": self.plugins})
    }

    /// Reads a list (`plugins`) or a single plugin's configuration; `source` names it in
    /// errors.
    pub fn from_json(value: &Value, source: &str) -> Result<NetworkList, String> {
        let obj = value
            .as_object()
            .ok_or_else(|| format!("{source}: not a JSON object"))?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("{source}: \"name\" is missing"))?
            .to_string();
        let cni_version = obj
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or(CNI_VERSION)
            .to_string();
        let plugins = match obj.get("plugins") {
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    p.as_object()
                        .filter(|p| p.get("type").and_then(Value::as_str).is_some())
                        .cloned()
                        .ok_or_else(|| format!("{source}: plugins[{i}] has no \"type\""))
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(format!("{source}: \"plugins\" is not a list")),
            None if obj.get("type").and_then(Value::as_str).is_some() => vec![obj.clone()],
            None => {
                return Err(format!(
                    "{source}: neither \"plugins\" nor \"type\" is given"
                ));
            }
        };
        if plugins.is_empty() {
            return Err(format!("{source}: \"plugins\" is empty"));
        }
        Ok(NetworkList {
            name,
            cni_version,
            plugins,
        })
    }

    /// The first configuration in `dir` by file name (`.conflist`, `.conf`, `.json`).
    pub fn from_dir(dir: &Path) -> Result<NetworkList, String> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("--cni-conf-dir {}: {e}", dir.display()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "conflist" | "conf" | "json"))
            })
            .collect();
        files.sort();
        let file = files.first().ok_or_else(|| {
            format!(
                "--cni-conf-dir {}: no network configuration (*.conflist, *.conf) in it",
                dir.display()
            )
        })?;
        let source = file.display().to_string();
        let text = std::fs::read(file).map_err(|e| format!("{source}: {e}"))?;
        let value: Value =
            serde_json::from_slice(&text).map_err(|e| format!("{source}: not JSON: {e}"))?;
        NetworkList::from_json(&value, &source)
    }

    /// keel's default chain: the reference `bridge` plugin as the pods' gateway, with
    /// `host-local` addresses from the node's range (kept under `ipam_dir`), and `portmap`
    /// for `hostPort`. No masquerade here: pod-to-pod traffic keeps its addresses, and the
    /// overlay masquerades only what leaves the cluster.
    pub fn default_chain(
        bridge: &str,
        pod_cidr: Ipv4Net,
        mtu: u32,
        ipam_dir: &Path,
    ) -> NetworkList {
        let plugins = [
            json!({
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "mtu": mtu,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{
                        "subnet": pod_cidr.to_string(),
                        "gateway": gateway(pod_cidr).to_string(),
                    }]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam_dir.display().to_string(),
                },
            }),
            json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}),
        ];
        NetworkList {
            name: "keel".into(),
            cni_version: CNI_VERSION.into(),
            plugins: plugins
                .into_iter()
                .filter_map(|p| p.as_object().cloned())
                .collect(),
        }
    }

    /// The loopback network every pod joins first, on `lo`.
    pub fn loopback() -> NetworkList {
        NetworkList {
            name: "keel-loopback".into(),
            cni_version: CNI_VERSION.into(),
            plugins: json!({"type": "loopback"})
                .as_object()
                .cloned()
                .into_iter()
                .collect(),
        }
    }

    /// The plugin types the list runs.
    pub fn types(&self) -> Vec<String> {
        self.plugins
            .iter()
            .filter_map(|p| p.get("type").and_then(Value::as_str).map(str::to_string))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_configurations_are_read_or_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = NetworkList::from_dir(dir.path()).unwrap_err();
        assert!(err.contains("no network configuration"), "{err}");
        std::fs::write(
            dir.path().join("20-other.conflist"),
            r#"{"name":"other","cniVersion":"0.4.0","plugins":[{"type":"ptp"}]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("10-mynet.conf"),
            r#"{"name":"mynet","type":"bridge","bridge":"br9"}"#,
        )
        .unwrap();
        let list = NetworkList::from_dir(dir.path()).unwrap();
        assert_eq!(list.name, "mynet");
        assert_eq!(list.types(), ["bridge"]);
        assert_eq!(list.cni_version, CNI_VERSION);
        for (text, expected) in [
            (r#"{"plugins":[{"type":"x"}]}"#, "\"name\" is missing"),
            (
                r#"{"name":"n","plugins":[{"bridge":"b"}]}"#,
                "plugins[0] has no \"type\"",
            ),
            (r#"{"name":"n","plugins":[]}"#, "\"plugins\" is empty"),
            (r#"{"name":"n"}"#, "neither \"plugins\" nor \"type\""),
            (r#"[1]"#, "not a JSON object"),
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            let err = NetworkList::from_json(&v, "f.conflist").unwrap_err();
            assert!(
                err.starts_with("f.conflist: ") && err.contains(expected),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn the_default_chain_gives_addresses_from_the_node_range_without_masquerade() {
        let list = NetworkList::default_chain(
            "keel0",
            "10.244.3.0/24".parse().unwrap(),
            1450,
            Path::new("/var/lib/keel-agent/n1/cni/ipam"),
        );
        assert_eq!(list.types(), ["bridge", "portmap"]);
        let bridge = &list.plugins[0];
        assert_eq!(bridge["ipMasq"], false);
        assert_eq!(bridge["mtu"], 1450);
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.244.3.0/24");
        assert_eq!(bridge["ipam"]["dataDir"], "/var/lib/keel-agent/n1/cni/ipam");
    }
}
