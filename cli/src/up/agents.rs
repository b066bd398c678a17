//! The `keel-agent` processes of a local cluster: one per node, each its own process in its
//! node's network host as on a real machine, logging to the data dir; and, when the cluster
//! stops, the containers they left behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use keel_nodehost::NodeHost;

pub struct Agents {
    names: Vec<String>,
    children: Vec<Child>,
    data_dir: PathBuf,
}

impl Drop for Agents {
    /// Agents never outlive `keel up`, whatever path it leaves by (a later agent failing to
    /// start, say): a child process is not ended by dropping its handle.
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The most nodes `keel up` runs (`--nodes`); leftovers of larger earlier runs are cleaned
/// up to this many.
pub const MAX_NODES: usize = 20;

/// `keel-agent` beside the running `keel` (both come from the same build or package).
fn agent_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name("keel-agent");
    if path.is_file() {
        Ok(path)
    } else {
        anyhow::bail!(
            "keel-agent was not found next to keel ({}); build both: cargo build --release --bin keel --bin keel-agent",
            path.display()
        )
    }
}

/// The port every node's agent listens on, at its node's address (the kubelet's port).
const AGENT_PORT: u16 = 10250;

impl Agents {
    /// The node names of a local cluster of `n` nodes.
    pub fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("local-{i}")).collect()
    }

    /// Starts an agent in each of `hosts`, registering at `server`, with its state under
    /// `data_dir` and pod traffic between nodes over `backend`; an agent without a
    /// certificate yet joins with `join_token`.
    pub fn start(
        hosts: &[NodeHost],
        server: &str,
        data_dir: &Path,
        join_token: &str,
        backend: &str,
    ) -> anyhow::Result<Agents> {
        let binary = agent_binary()?;
        let logs = data_dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let mut agents = Agents {
            names: Agents::names(hosts.len()),
            children: Vec::new(),
            data_dir: data_dir.join("agents"),
        };
        for (name, host) in agents.names.clone().iter().zip(hosts) {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(logs.join(format!("{name}.log")))?;
            let child = host
                .command(&binary)
                .args(["--name", name, "--server", server])
                .args(["--listen", &format!("{}:{AGENT_PORT}", host.ip)])
                .args(["--network-backend", backend])
                .arg("--data-dir")
                .arg(&agents.data_dir)
                // In the environment, not the arguments, which any user can list with ps.
                .env("KEEL_JOIN_TOKEN", join_token)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", binary.display()))?;
            agents.children.push(child);
        }
        Ok(agents)
    }

    /// An agent that exited on its own, with its exit status, for a clear message.
    pub fn exited(&mut self) -> Option<(String, std::process::ExitStatus)> {
        for (name, child) in self.names.iter().zip(&mut self.children) {
            if let Ok(Some(status)) = child.try_wait() {
                return Some((name.clone(), status));
            }
        }
        None
    }

    /// Stops the agents and removes their containers (their addresses and links go with
    /// their node hosts). Returns how many containers were removed.
    pub fn stop_and_clean(mut self) -> usize {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
        let mut removed = 0;
        for name in &self.names {
            removed += remove_containers(name);
        }
        removed
    }
}

/// Removes what nodes of an earlier, larger or interrupted run left: the containers of
/// `local-N` for N above `keep` (their node hosts go with the LAN's own clean-up), and the
/// `lo` addresses of agents that ran on the machine's own network before nodes had hosts of
/// their own. Returns how many containers went.
pub fn clean_leftovers(data_dir: &Path, keep: usize) -> usize {
    let mut removed = 0;
    for (i, name) in Agents::names(MAX_NODES).into_iter().enumerate() {
        if i >= keep {
            removed += remove_containers(&name);
        }
        remove_addresses(&data_dir.join("agents").join(&name));
    }
    removed
}

/// Removes every container of node `name` (they carry `keel.dev/node=NAME`).
pub fn remove_containers(name: &str) -> usize {
    let ids = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=keel.dev/node={name}"),
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return 0;
    }
    let ok = Command::new("docker")
        .args(["rm", "-f"])
        .args(&ids)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok { ids.len() } else { 0 }
}

/// Removes the `lo` addresses labelled with the owner tag kept in an agent's data dir.
pub fn remove_addresses(agent_dir: &Path) {
    let Ok(owner) = std::fs::read_to_string(agent_dir.join("address-owner")) else {
        return;
    };
    let label = format!("lo:k{}", owner.trim());
    let listing = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", "lo", "label", &label])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    for cidr in listing.split_whitespace().filter(|w| w.ends_with("/32")) {
        let _ = Command::new("ip")
            .args(["addr", "del", cidr, "dev", "lo"])
            .stderr(Stdio::null())
            .status();
    }
}
