//! Pods attached to the node's network through CNI plugins, as a CNI runtime does it: the
//! loopback network on `lo`, then the configured chain on `eth0`; DEL in reverse order with
//! the configuration and result ADD used; CHECK against that result.
//!
//! # Layout
//! - this file: [`Cni`], attachments and their records.
//! - [`config`]: which network list pods join.
//! - [`plugin`]: one plugin run per the spec.
//!
//! # Guarantees
//! - Each attachment is recorded in the data dir (`cni/attachments/ID.json`) before the pod
//!   is reported to have an address, so a restarted agent knows every pod's address and
//!   can always undo an attachment with the chain that made it.
//! - A failed ADD is undone (DEL) before the error is returned: nothing is half-attached.
//! - At start, attachments (and `host-local` address leases) of sandboxes that no longer
//!   exist are released.
//! - The default chain's bridge holds only the gateway of the node's current range: an
//!   address left from an earlier range (the node was deleted and joined again) is removed
//!   before the first pod of the new one, where the bridge plugin would refuse every pod.

pub mod config;
pub mod plugin;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use ipnet::Ipv4Net;

use self::config::NetworkList;
use self::plugin::{Invocation, Operation};
use super::{NodeNetwork, command, links};
use crate::runtime::{HostPort, PodRef};

/// Where the pod's interface is made inside its namespace.
const POD_IFNAME: &str = "eth0";

/// How the agent runs CNI (`--cni-bin-dir`, `--cni-conf-dir`).
#[derive(Debug, Clone)]
pub struct CniSettings {
    /// Where plugin binaries are looked for, in order.
    pub bin_dirs: Vec<PathBuf>,
    /// The operator's configuration directory; `None` runs keel's default chain.
    pub conf_dir: Option<PathBuf>,
    /// The agent's CNI state: attachments, and the default chain's address leases.
    pub state_dir: PathBuf,
    /// The default chain's bridge.
    pub bridge: String,
    /// The default chain's interface MTU (lowered for VXLAN's header).
    pub mtu: u32,
}

/// Where CNI plugins are looked for by default: CNI's conventional directory, then Debian's.
pub const DEFAULT_BIN_DIRS: [&str; 2] = ["/opt/cni/bin", "/usr/lib/cni"];

impl CniSettings {
    /// keel's default chain on bridge `bridge`, with state under `state_dir`, plugins from
    /// [`DEFAULT_BIN_DIRS`] and the usual 1500-byte MTU.
    pub fn default_chain(state_dir: PathBuf, bridge: &str) -> CniSettings {
        CniSettings {
            bin_dirs: DEFAULT_BIN_DIRS.iter().map(PathBuf::from).collect(),
            conf_dir: None,
            state_dir,
            bridge: bridge.to_string(),
            mtu: 1500,
        }
    }
}

/// The record of one attachment.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Attachment {
    container_id: String,
    args: String,
    /// The network list ADD ran, so DEL runs the same one.
    network: Value,
    result: Value,
}

pub struct Cni {
    settings: CniSettings,
    network: NodeNetwork,
    /// The range whose gateway the default chain's bridge was last settled for.
    bridge_settled: tokio::sync::Mutex<Option<Ipv4Net>>,
}

impl Cni {
    pub fn new(settings: CniSettings, network: NodeNetwork) -> Cni {
        Cni {
            settings,
            network,
            bridge_settled: tokio::sync::Mutex::new(None),
        }
    }

    /// Removes addresses of other ranges from the default chain's bridge, once per range.
    async fn settle_bridge(&self, range: Ipv4Net) -> Result<(), String> {
        let mut settled = self.bridge_settled.lock().await;
        if *settled == Some(range) {
            return Ok(());
        }
        let bridge = &self.settings.bridge;
        let link = links::link(bridge)
            .await
            .map_err(|e| format!("cannot read bridge {bridge}: {e}"))?;
        let gateway = config::gateway(range);
        for stale in stale_addresses(link.as_ref(), gateway, range.prefix_len()) {
            tracing::warn!(bridge = %bridge, address = %stale, range = %range, "removing an address of an earlier pod range from the bridge");
            command::run("ip", &["addr", "del", &stale, "dev", bridge])
                .await
                .map_err(|e| format!("cannot remove {stale} from bridge {bridge}: {e}"))?;
        }
        *settled = Some(range);
        Ok(())
    }

    pub fn settings(&self) -> &CniSettings {
        &self.settings
    }

    fn attachments_dir(&self) -> PathBuf {
        self.settings.state_dir.join("attachments")
    }

    fn ipam_dir(&self) -> PathBuf {
        self.settings.state_dir.join("ipam")
    }

    fn record_path(&self, container_id: &str) -> Option<PathBuf> {
        // Docker's ids are hex; anything else never names a file.
        container_id
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
            .then(|| self.attachments_dir().join(format!("{container_id}.json")))
    }

    /// The network pods join now: the operator's, or the default chain over this node's
    /// range (an error until the control plane gave one).
    pub fn network_list(&self) -> Result<NetworkList, String> {
        if let Some(dir) = &self.settings.conf_dir {
            return NetworkList::from_dir(dir);
        }
        let assignment = self.network.current().ok_or(
            "this node has no pod range yet: it is given when the agent registers with the control plane",
        )?;
        Ok(NetworkList::default_chain(
            &self.settings.bridge,
            assignment.pod_cidr,
            self.settings.mtu,
            &self.ipam_dir(),
        ))
    }

    /// The plugins pods need, to be checked before any pod starts.
    pub fn required_plugins(&self) -> Result<Vec<String>, String> {
        let mut types = match &self.settings.conf_dir {
            Some(dir) => NetworkList::from_dir(dir)?.types(),
            None => vec!["bridge".into(), "host-local".into(), "portmap".into()],
        };
        types.push("loopback".into());
        Ok(types)
    }

    /// Attaches a sandbox (its network namespace at `netns`) to the pod network; its IPv4
    /// address. The plugin's own message on failure, with nothing left attached.
    pub async fn attach(
        &self,
        container_id: &str,
        netns: &str,
        pod: &PodRef,
        host_ports: &[HostPort],
    ) -> Result<Ipv4Addr, String> {
        let path = self
            .record_path(container_id)
            .ok_or_else(|| format!("container id {container_id:?} is not hex"))?;
        let list = self.network_list()?;
        if self.settings.conf_dir.is_none()
            && let Some(assignment) = self.network.current()
        {
            self.settle_bridge(assignment.pod_cidr).await?;
        }
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={container_id};K8S_POD_UID={}",
            pod.namespace, pod.name, pod.uid
        );
        let lo = Invocation {
            container_id,
            netns,
            ifname: "lo",
            args: &args,
        };
        self.run_list(Operation::Add, &NetworkList::loopback(), None, &[], &lo)
            .await?;
        let who = Invocation {
            ifname: POD_IFNAME,
            ..lo
        };
        let result = match self
            .run_list(Operation::Add, &list, None, host_ports, &who)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                // Undo whatever the chain did before it failed (the spec's DEL is
                // idempotent and tolerates what was never added).
                let _ = self
                    .run_list(Operation::Del, &list, None, host_ports, &who)
                    .await;
                return Err(e);
            }
        };
        let Some(ip) = plugin::result_ipv4(&result) else {
            let _ = self
                .run_list(Operation::Del, &list, Some(&result), host_ports, &who)
                .await;
            return Err(format!(
                "network {:?} gave the pod no IPv4 address",
                list.name
            ));
        };
        let record = Attachment {
            container_id: container_id.to_string(),
            args: args.clone(),
            network: list.to_json(),
            result,
        };
        if let Err(e) = write_record(&path, &record) {
            let _ = self
                .run_list(
                    Operation::Del,
                    &list,
                    Some(&record.result),
                    host_ports,
                    &who,
                )
                .await;
            return Err(e);
        }
        Ok(ip)
    }

    /// Runs `operation` with the chain and result an attachment's record kept (DEL and
    /// CHECK use what ADD used, whatever the configuration says now).
    async fn run_recorded(
        &self,
        operation: Operation,
        path: &std::path::Path,
        record: &Attachment,
        container_id: &str,
        netns: &str,
    ) -> Result<(), String> {
        let list = NetworkList::from_json(&record.network, &path.display().to_string())?;
        let who = Invocation {
            container_id,
            netns,
            ifname: POD_IFNAME,
            args: &record.args,
        };
        self.run_list(operation, &list, Some(&record.result), &[], &who)
            .await
            .map(|_| ())
    }

    /// Releases a sandbox's attachment (DEL, in reverse order, with the chain ADD ran).
    /// `netns` is empty when the namespace is gone. An unknown sandbox is already released.
    pub async fn detach(&self, container_id: &str, netns: &str) -> Result<(), String> {
        let Some(path) = self.record_path(container_id) else {
            return Ok(());
        };
        let Some(record) = read_record(&path) else {
            return Ok(());
        };
        self.run_recorded(Operation::Del, &path, &record, container_id, netns)
            .await?;
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(format!("cannot remove {}: {e}", path.display()));
        }
        Ok(())
    }

    /// CHECK: whether the sandbox's attachment is still as ADD left it.
    pub async fn check(&self, container_id: &str, netns: &str) -> Result<(), String> {
        let path = self
            .record_path(container_id)
            .ok_or_else(|| format!("container id {container_id:?} is not hex"))?;
        let record =
            read_record(&path).ok_or_else(|| format!("sandbox {container_id} is not attached"))?;
        self.run_recorded(Operation::Check, &path, &record, container_id, netns)
            .await
    }

    /// The address a sandbox was given, from its record.
    pub fn ip_of(&self, container_id: &str) -> Option<Ipv4Addr> {
        let record = read_record(&self.record_path(container_id)?)?;
        plugin::result_ipv4(&record.result)
    }

    /// Releases the attachments of sandboxes not in `live` (removed while the agent was
    /// down), and the default chain's leases held by none; returns how many were released.
    pub async fn forget_vanished(&self, live: &HashSet<String>) -> usize {
        let mut released = 0;
        let records: Vec<String> = std::fs::read_dir(self.attachments_dir())
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
            .collect();
        for id in records.iter().filter(|id| !live.contains(*id)) {
            match self.detach(id, "").await {
                Ok(()) => released += 1,
                Err(e) => {
                    tracing::warn!(sandbox = %id, error = %e, "cannot release the network of a vanished sandbox")
                }
            }
        }
        released + self.sweep_leases(live)
    }

    /// `host-local` keeps one file per leased address, holding the container's id: a lease
    /// whose sandbox is gone (the agent died between ADD and its record) is removed.
    fn sweep_leases(&self, live: &HashSet<String>) -> usize {
        let mut removed = 0;
        let networks = std::fs::read_dir(self.ipam_dir()).into_iter().flatten();
        for network in networks.filter_map(Result::ok) {
            for lease in std::fs::read_dir(network.path()).into_iter().flatten() {
                let Ok(lease) = lease else { continue };
                let name = lease.file_name().to_string_lossy().to_string();
                if name.parse::<Ipv4Addr>().is_err() {
                    continue;
                }
                let owner = std::fs::read_to_string(lease.path()).unwrap_or_default();
                let owner = owner.lines().next().unwrap_or_default().trim();
                if !owner.is_empty()
                    && !live.contains(owner)
                    && std::fs::remove_file(lease.path()).is_ok()
                {
                    tracing::info!(address = %name, sandbox = %owner, "released the address lease of a vanished sandbox");
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Runs a whole list: ADD and CHECK in order, DEL in reverse; ADD passes each result on
    /// as the next plugin's `prevResult`.
    async fn run_list(
        &self,
        operation: Operation,
        list: &NetworkList,
        cached: Option<&Value>,
        host_ports: &[HostPort],
        who: &Invocation<'_>,
    ) -> Result<Value, String> {
        let port_mappings: Vec<Value> = host_ports
            .iter()
            .map(|p| {
                json!({"hostPort": p.host_port, "containerPort": p.container_port,
                       "protocol": p.protocol, "hostIP": p.host_ip.clone().unwrap_or_default()})
            })
            .collect();
        let order: Vec<usize> = match operation {
            Operation::Del => (0..list.plugins.len()).rev().collect(),
            _ => (0..list.plugins.len()).collect(),
        };
        let mut prev: Option<Value> = cached.cloned();
        for i in order {
            let plugin = &list.plugins[i];
            let wants_ports = plugin
                .get("capabilities")
                .and_then(|c| c.get("portMappings"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let runtime_config = (wants_ports && !port_mappings.is_empty())
                .then(|| json!({"portMappings": port_mappings}));
            let out = plugin::run(
                operation,
                plugin,
                &list.name,
                &list.cni_version,
                prev.as_ref(),
                runtime_config.as_ref(),
                who,
                &self.settings.bin_dirs,
            )
            .await
            .map_err(|e| e.to_string())?;
            if operation == Operation::Add {
                prev = Some(out);
            }
        }
        Ok(prev.unwrap_or(Value::Null))
    }
}

/// The IPv4 addresses (`ADDR/LEN`) on `bridge` other than the gateway of the current range.
fn stale_addresses(bridge: Option<&links::Link>, gateway: Ipv4Addr, prefix: u8) -> Vec<String> {
    bridge
        .map(|l| l.addr_info.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|a| a.family == "inet")
        .filter(|a| !(a.local.parse() == Ok(gateway) && a.prefixlen == prefix))
        .map(|a| format!("{}/{}", a.local, a.prefixlen))
        .collect()
}

fn read_record(path: &std::path::Path) -> Option<Attachment> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Written whole or not at all: a crash mid-write never leaves a record DEL cannot read.
fn write_record(path: &std::path::Path, record: &Attachment) -> Result<(), String> {
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec(record).unwrap_or_default();
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot record the attachment in {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_current_gateway_stays_on_the_bridge() {
        let link: links::Link = serde_json::from_value(json!({
            "ifname": "keel0",
            "addr_info": [
                {"family": "inet", "local": "10.244.1.1", "prefixlen": 24},
                {"family": "inet", "local": "10.244.3.1", "prefixlen": 24},
                {"family": "inet6", "local": "fe80::1", "prefixlen": 64}
            ]
        }))
        .unwrap();
        let range: Ipv4Net = "10.244.3.0/24".parse().unwrap();
        assert_eq!(
            stale_addresses(Some(&link), config::gateway(range), 24),
            ["10.244.1.1/24"]
        );
        assert!(stale_addresses(None, config::gateway(range), 24).is_empty());
    }
}
