//! The hollow scenario's processes: the release `keel server` alone in its own (its CPU
//! time and memory read from /proc), and the `hollow-nodes` processes its nodes run in.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use keel_e2e::free_port;

use super::get;

/// `keel server` as its own process (the release binary), so its CPU time and memory are
/// its own: the hollow scenario's control plane.
pub struct ServerProcess {
    child: std::process::Child,
    pub api: String,
    pub agents_at: String,
    args: Vec<String>,
    data: PathBuf,
}

impl ServerProcess {
    pub fn start(work: &std::path::Path, repo: &std::path::Path) -> ServerProcess {
        let api = format!("127.0.0.1:{}", free_port());
        let agents_at = format!("127.0.0.1:{}", free_port());
        let data = work.join("server");
        let args: Vec<String> = [
            "server",
            "--repo",
            &repo.to_string_lossy(),
            "--data-dir",
            &data.to_string_lossy(),
            "--listen",
            &api,
            "--agent-listen",
            &agents_at,
            // Room for 16,384 nodes of 254 pods.
            "--cluster-cidr",
            "10.128.0.0/10",
            "--node-cidr-mask-size",
            "24",
            "--poll-interval",
            "1s",
            "--anonymous-read",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut server = ServerProcess {
            child: Self::spawn(&args, &data),
            api: format!("http://{api}"),
            agents_at,
            args,
            data,
        };
        server.wait_serving(Duration::from_secs(60));
        server
    }

    /// Starts `keel server`; its log goes to `server.log` beside its data dir.
    /// `KEEL_BENCH_SERVER_WRAPPER` runs it under a profiler (`perf record -g -o FILE`,
    /// `heaptrack -o FILE`): the command's words, then the server's. The CPU and memory
    /// printed are then the wrapper's, not the server's.
    fn spawn(args: &[String], data: &std::path::Path) -> std::process::Child {
        let wrapper = std::env::var("KEEL_BENCH_SERVER_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let keel = keel_e2e::binary("keel");
        let mut command = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(&keel);
                c
            }
            None => Command::new(&keel),
        };
        let log = data.with_file_name("server.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("the server's log file");
        command
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("keel server starts")
    }

    /// Waits for the API to answer a list; how long that took.
    pub fn wait_serving(&mut self, limit: Duration) -> Duration {
        let t0 = Instant::now();
        while get(&format!("{}/api/v1/namespaces?limit=1", self.api)).is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("keel server exited: {status}");
            }
            assert!(
                t0.elapsed() < limit,
                "keel server not serving after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        t0.elapsed()
    }

    /// Stops it as an operator would (SIGTERM), starts it again on the same data, and
    /// returns how long it took to serve again.
    pub fn restart(&mut self) -> Duration {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        let _ = self.child.wait();
        let t0 = Instant::now();
        self.child = Self::spawn(&self.args, &self.data);
        self.wait_serving(Duration::from_secs(120));
        t0.elapsed()
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin-token"))
            .expect("the server's admin token")
            .trim()
            .to_string()
    }

    pub fn join_token(&self) -> String {
        keel_e2e::join_token(&self.api, &self.token())
    }

    /// Resident memory now and at its peak, in MiB.
    pub fn rss_mib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
                / 1024
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// CPU time (user and system) used so far.
    pub fn cpu(&self) -> Duration {
        cpu_of(self.child.id())
    }

    /// A counter or a histogram's sum from the server's /metrics.
    pub fn metric(&self, name: &str) -> f64 {
        let body = super::http::get_bytes(&format!("{}/metrics", self.api)).unwrap_or_default();
        String::from_utf8_lossy(&body)
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CPU time (user and system) process `pid` has used, from /proc.
fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).unwrap_or(&0) + fields.get(12).unwrap_or(&0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// Processes of hollow nodes (`hollow-nodes`), killed when dropped, and their data dirs
/// (each process's warnings are in `DATA/hollow-N.log`).
pub struct HollowNodes {
    pub children: Vec<std::process::Child>,
    data: tempfile::TempDir,
}

impl HollowNodes {
    /// Their data dirs are in memory (`/dev/shm`) where there is one: a real node writes
    /// its pods' files to its own disk, so 5,000 nodes' files on the disk the control
    /// plane commits to (7% of the machine's time at 100,000 pods, in ext4 alone)
    /// would measure the machine, not keel. Elsewhere beside the control plane's.
    pub fn start(server: &ServerProcess, work: &std::path::Path, nodes: usize, per: usize) -> Self {
        let data = tempfile::Builder::new()
            .prefix("keel-bench-agents")
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir_in(work))
            .expect("a directory for the agents' data");
        let token = server.join_token();
        let mut children = Vec::new();
        for (p, first) in (0..nodes).step_by(per).enumerate() {
            let count = per.min(nodes - first);
            let child = Command::new(env!("CARGO_BIN_EXE_hollow-nodes"))
                .args([
                    &server.agents_at,
                    &token,
                    &format!("hollow-{p}"),
                    &count.to_string(),
                    &data.path().to_string_lossy().into_owned(),
                ])
                .env("RUST_LOG", "warn")
                // Freed memory stays with the process: given back after mimalloc's 1 s and
                // touched again, it cost the kernel's zeroing of each page, a tenth of these
                // processes' CPU at 100,000 pods, taken from the control plane measured.
                .env("MIMALLOC_PURGE_DELAY", "-1")
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("hollow-nodes starts");
            children.push(child);
        }
        HollowNodes { children, data }
    }

    /// The CPU time all the hollow nodes' processes have used: the rest of the machine
    /// that the control plane did not get.
    pub fn cpu(&self) -> Duration {
        self.children.iter().map(|c| cpu_of(c.id())).sum()
    }

    /// The last `lines` lines its process logged about `node` (`hollow-N-I`), for a node
    /// that does not come up.
    pub fn log_about(&self, node: &str, lines: usize) -> Vec<String> {
        let process = node.rsplit_once('-').map_or(node, |(p, _)| p);
        let log = std::fs::read_to_string(self.data.path().join(format!("{process}.log")))
            .unwrap_or_default();
        let named = format!("node={node}");
        let mut about: Vec<String> = log
            .lines()
            .filter(|l| l.contains(&named) || l.contains(&format!("\"{node}\"")))
            .map(str::to_string)
            .collect();
        about.drain(..about.len().saturating_sub(lines));
        about
    }
}

impl Drop for HollowNodes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
