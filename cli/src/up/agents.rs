//! The `keel-agent` processes of a local cluster: one per node, each its own process in its
//! node's network host as on a real machine, logging to the data dir; and, when the cluster
//! stops, the containers they left behind.
//!
//! Agents never outlive `keel up`: each reads a pipe whose other end only `keel up` holds
//! (`--exit-when-stdin-closes`), and the kernel closes it however `keel up` ends, kill -9
//! included. Their pids are kept in `DATA_DIR/run/`, so the next `keel up` stops any that
//! are still there before it starts its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keel_nodehost::NodeHost;

pub struct Agents {
    names: Vec<String>,
    hosts: Vec<NodeHost>,
    children: Vec<Child>,
    /// The write ends of the agents' stdin pipes: never written, only held.
    lifelines: Vec<Option<std::process::ChildStdin>>,
    /// When each was last started, so that one failing at once is not restarted in a loop.
    started: Vec<Instant>,
    launch: Launch,
}

/// What every agent of the cluster is started with.
struct Launch {
    binary: PathBuf,
    server: String,
    join_token: String,
    backend: String,
    /// The agents' data dir (`DATA_DIR/agents`), logs (`DATA_DIR/logs`) and pid files
    /// (`DATA_DIR/run`).
    data_dir: PathBuf,
    logs: PathBuf,
    pids: PathBuf,
}

/// An agent that stopped is started again at most this often.
const RESTART_EVERY: Duration = Duration::from_secs(10);

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
/// Where each node's agent serves `/metrics` (the kubelet's read-only port).
pub const METRICS_PORT: u16 = 10255;

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
        let launch = Launch {
            binary: agent_binary()?,
            server: server.to_string(),
            join_token: join_token.to_string(),
            backend: backend.to_string(),
            data_dir: data_dir.join("agents"),
            logs: data_dir.join("logs"),
            pids: pid_dir(data_dir),
        };
        std::fs::create_dir_all(&launch.logs)?;
        std::fs::create_dir_all(&launch.pids)?;
        let mut agents = Agents {
            names: Agents::names(hosts.len()),
            hosts: hosts.to_vec(),
            children: Vec::new(),
            lifelines: Vec::new(),
            started: Vec::new(),
            launch,
        };
        for i in 0..hosts.len() {
            let mut child = agents.spawn(i)?;
            agents.lifelines.push(child.stdin.take());
            agents.children.push(child);
            agents.started.push(Instant::now());
        }
        Ok(agents)
    }

    /// Starts agent `i` in its node host.
    fn spawn(&self, i: usize) -> anyhow::Result<Child> {
        let (name, host, launch) = (&self.names[i], &self.hosts[i], &self.launch);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(i))?;
        host.command(&launch.binary)
            .args(["--name", name, "--server", &launch.server])
            .args(["--listen", &format!("{}:{AGENT_PORT}", host.ip)])
            .args(["--metrics-listen", &format!("{}:{METRICS_PORT}", host.ip)])
            .args(["--network-backend", &launch.backend])
            .arg("--data-dir")
            .arg(&launch.data_dir)
            // In the environment, not the arguments, which any user can list with ps.
            .env("KEEL_JOIN_TOKEN", &launch.join_token)
            .arg("--exit-when-stdin-closes")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", launch.binary.display()))
            .inspect(|child| {
                // `ip netns exec` execs the agent, so the child's pid is the agent's.
                let _ = std::fs::write(
                    launch.pids.join(format!("{name}.pid")),
                    format!("{}\n", child.id()),
                );
            })
    }

    fn log(&self, i: usize) -> PathBuf {
        self.launch.logs.join(format!("{}.log", self.names[i]))
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

    /// Starts again the agents that stopped on their own, as a node's service manager would,
    /// and says so: one line per agent restarted or failing to.
    pub fn restart_stopped(&mut self) -> Vec<String> {
        let mut said = Vec::new();
        for i in 0..self.children.len() {
            let Ok(Some(status)) = self.children[i].try_wait() else {
                continue;
            };
            if self.started[i].elapsed() < RESTART_EVERY {
                continue;
            }
            let name = &self.names[i];
            let log = self.log(i);
            match self.spawn(i) {
                Ok(mut child) => {
                    self.lifelines[i] = child.stdin.take();
                    said.push(format!(
                        "node {name}'s agent stopped ({status}); started it again (log: {})",
                        log.display()
                    ));
                    self.children[i] = child;
                }
                Err(e) => said.push(format!("node {name}'s agent stopped ({status}): {e:#}")),
            }
            self.started[i] = Instant::now();
        }
        said
    }

    /// Stops the agents and removes their containers and the volume paths pinned for them
    /// (their addresses and links go with their node hosts). Returns how many containers
    /// were removed.
    pub fn stop_and_clean(mut self) -> usize {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
        let mut removed = 0;
        for name in &self.names {
            removed += remove_containers(name);
            let _ = std::fs::remove_file(self.launch.pids.join(format!("{name}.pid")));
        }
        release_pinned_mounts(&self.launch.data_dir);
        removed
    }
}

fn pid_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("run")
}

/// Stops the agents an earlier `keel up` on this data dir left running (it was killed
/// before it could stop them; they stop on their own when it dies, unless stuck): SIGTERM,
/// then SIGKILL after 10 s. Only a live process that is still that node's `keel-agent` is
/// signalled, never whatever reused its pid. Returns the node names stopped.
pub fn stop_previous(data_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(pid_dir(data_dir)) else {
        return Vec::new();
    };
    let mut stopped = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pid"))
            .map(str::to_string)
        else {
            continue;
        };
        let pid = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok());
        if let Some(pid) = pid.filter(|pid| is_agent_of(*pid, &name)) {
            signal(pid, "TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while is_agent_of(pid, &name) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if is_agent_of(pid, &name) {
                signal(pid, "KILL");
            }
            stopped.push(name);
        }
        let _ = std::fs::remove_file(&path);
    }
    stopped
}

/// Whether `pid` is a live `keel-agent --name NAME`.
fn is_agent_of(pid: u32, name: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    // A zombie (exited, not yet reaped) has an empty command line: not running.
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_agent = args.first().is_some_and(|a| a.ends_with(b"keel-agent"));
    is_agent
        && args
            .windows(2)
            .any(|w| w[0] == b"--name" && w[1] == name.as_bytes())
}

fn signal(pid: u32, which: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{which}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Removes what an earlier run left when it was killed before it could clean up: the
/// containers of every `local-N` and the volume paths pinned for them (their node hosts, and with them their pods' network, are
/// made anew, so they could not be adopted; the agents start the pods again), and the `lo`
/// addresses of agents that ran on the machine's own network before nodes had hosts of
/// their own. Returns how many containers went.
pub fn clean_leftovers(data_dir: &Path) -> usize {
    let mut removed = 0;
    for name in Agents::names(MAX_NODES) {
        removed += remove_containers(&name);
        remove_addresses(&data_dir.join("agents").join(&name));
    }
    release_pinned_mounts(&data_dir.join("agents"));
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

/// Unmounts the volume paths an agent pinned for its pods under its data dir `agent_dir`
/// (`pods/UID/pinned/...`), once its containers are gone: removing the data dir afterwards
/// must never reach through one into a hostPath. Returns how many were unmounted.
pub fn release_pinned_mounts(agent_dir: &Path) -> usize {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return 0;
    };
    // mountinfo shows resolved paths: a data dir under a link must be compared resolved.
    let agent_dir = std::fs::canonicalize(agent_dir).unwrap_or_else(|_| agent_dir.to_path_buf());
    let pinned = |p: &Path| {
        let Ok(rest) = p.strip_prefix(&agent_dir) else {
            return false;
        };
        let names: Vec<&std::ffi::OsStr> = rest.iter().collect();
        names.windows(3).any(|w| w[0] == "pods" && w[2] == "pinned")
    };
    let mut points: Vec<PathBuf> = table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_point)
        .filter(|p| pinned(p))
        .collect();
    // Deepest first, should any be stacked.
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    points
        .iter()
        .filter(|p| {
            Command::new("umount")
                .arg("-l")
                .arg(p)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .count()
}

/// `/proc/self/mountinfo` writes space, tab, newline and backslash as octal escapes.
fn unescape_mount_point(field: &str) -> PathBuf {
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_read_with_their_escapes() {
        assert_eq!(
            unescape_mount_point("/data/my\\040dir/a\\134b"),
            Path::new("/data/my dir/a\\b")
        );
        // A backslash that starts no escape is kept as it is.
        assert_eq!(unescape_mount_point("/x\\9y\\"), Path::new("/x\\9y\\"));
    }
}
