//! A `keel server` process for the end-to-end tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{binary, free_port};

/// A running `keel server`, stopped (SIGTERM) when dropped.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    /// Where agents register (`--agent-listen`).
    pub agents: String,
    pub data: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The open-files limit the server runs under, if not this process's.
    open_files: Option<u64>,
}

impl Server {
    pub fn start(repo: &str, extra: &[&str]) -> Server {
        Server::start_with_env(repo, extra, &[])
    }

    /// As [`Server::start`], with extra environment variables (`RUST_LOG`, say).
    pub fn start_with_env(repo: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let data = tempfile::tempdir().expect("data dir");
        Server::start_in(data, repo, extra, env, None)
    }

    /// As [`Server::start`], allowed `open_files` file descriptors (soft and hard, as
    /// `ulimit -n` sets them).
    pub fn start_with_open_files(repo: &str, extra: &[&str], open_files: u64) -> Server {
        let data = tempfile::tempdir().expect("data dir");
        Server::start_in(data, repo, extra, &[], Some(open_files))
    }

    /// Another server of `first`'s cluster (both on one etcd, given in `extra`): it shares
    /// `first`'s identity (the cluster CA and certificates, the API token), as an operator
    /// copies them to each control-plane machine.
    pub fn start_beside(first: &Server, repo: &str, extra: &[&str]) -> Server {
        let data = tempfile::tempdir().expect("data dir");
        let from = first.data.path();
        // No `pki` under --insecure.
        let identity = ["pki", "admin-token"]
            .iter()
            .map(|f| from.join(f))
            .filter(|p| p.exists());
        let copied = Command::new("cp")
            .arg("-a")
            .args(identity)
            .arg(data.path())
            .status()
            .expect("cp runs");
        assert!(copied.success(), "copying the cluster identity");
        Server::start_in(data, repo, extra, &[], None)
    }

    fn start_in(
        data: tempfile::TempDir,
        repo: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        open_files: Option<u64>,
    ) -> Server {
        let port = free_port();
        // `--agent-listen` in `extra` (agents in node hosts reach the machine on its LAN
        // address) replaces the loopback default.
        let agents = extra
            .iter()
            .position(|a| *a == "--agent-listen")
            .and_then(|i| extra.get(i + 1))
            .map_or_else(|| format!("127.0.0.1:{}", free_port()), |a| a.to_string());
        let mut args: Vec<String> = ["server", "--repo", repo, "--listen"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(format!("127.0.0.1:{port}"));
        args.push("--data-dir".into());
        args.push(data.path().to_string_lossy().into_owned());
        if !extra.contains(&"--agent-listen") {
            args.extend(["--agent-listen".to_string(), agents.clone()]);
        }
        if !extra.contains(&"--resync-interval") {
            args.extend(["--resync-interval".into(), "2s".into()]);
        }
        // Each test server its own Service ranges: the agents of concurrent tests share this
        // host's `lo` and ports, and must not serve each other's ClusterIPs or NodePorts.
        if !extra.contains(&"--service-cidr") {
            args.extend([
                "--service-cidr".into(),
                format!("10.{}.{}.0/24", 128 + (port >> 8) % 64, port & 255),
            ]);
        }
        if !extra.contains(&"--service-node-port-range") {
            // Clear of 30000-30999, where example-repo's fixed NodePort (30080) lives.
            let low = 31000 + (port % 70) * 25;
            args.extend([
                "--service-node-port-range".into(),
                format!("{low}-{}", low + 24),
            ]);
        }
        if !extra.contains(&"--poll-interval") {
            args.extend(["--poll-interval".into(), "300ms".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = Server {
            child: None,
            url: format!("http://127.0.0.1:{port}"),
            agents,
            data,
            args,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            open_files,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        self.spawn_quietly();
        self.wait_for("the server to answer", |s| s.get("/healthz").is_some());
    }

    fn spawn_quietly(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        // prlimit execs the server, so the child's pid is the server's.
        let mut command = match self.open_files {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(binary("keel"));
                c
            }
            None => Command::new(binary("keel")),
        };
        let child = command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("keel server starts");
        self.child = Some(child);
    }

    pub fn log_path(&self) -> std::path::PathBuf {
        self.data.path().join("server.log")
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s).
    /// The server's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL) as a machine's death would, without waiting for anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed or stopped server again on its data dir and ports, without waiting
    /// for it to answer (it may have no store to open yet).
    pub fn spawn_again(&mut self) {
        self.spawn_quietly();
    }

    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops and starts the server again on the same data dir and ports.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The server's API admin token (made on its first start).
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data.path().join("admin-token"))
            .map(|t| t.trim().to_string())
            .unwrap_or_default()
    }

    /// A `keel` command with this server's token in its environment.
    pub fn keel(&self) -> Command {
        let mut c = Command::new(binary("keel"));
        c.env("KEEL_TOKEN", self.token());
        c
    }

    /// A join token for a new agent (`keel token create`).
    pub fn join_token(&self) -> String {
        crate::join_token(&self.url, &self.token())
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        let out = Command::new("curl")
            .args(["-s", "-f", &format!("{}{path}", self.url)])
            .args(["-H", &format!("Authorization: Bearer {}", self.token())])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout)
            .ok()
            .or(Some(Value::Null))
    }

    pub fn text(&self, path: &str) -> String {
        Command::new("curl")
            .args(["-s", "-f", &format!("{}{path}", self.url)])
            .args(["-H", &format!("Authorization: Bearer {}", self.token())])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default()
    }

    pub fn status(&self) -> Value {
        self.get("/api/keel/status").unwrap_or(Value::Null)
    }

    /// The applied object of `kind` and `name`, if any.
    pub fn applied(&self, kind: &str, name: &str) -> Option<Value> {
        let list = self.get("/api/keel/applied")?;
        list["items"]
            .as_array()?
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .cloned()
    }

    pub fn wait_for(&self, what: &str, ok: impl Fn(&Server) -> bool) {
        self.wait_up_to(Duration::from_secs(30), what, ok)
    }

    /// Waits until `ok`, panicking with the server's log after `limit`.
    pub fn wait_up_to(&self, limit: Duration, what: &str, ok: impl Fn(&Server) -> bool) {
        let deadline = Instant::now() + limit;
        while !ok(self) {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                panic!(
                    "timed out waiting for {what}; status: {}\nserver log:\n{log}",
                    self.status()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_commit(&self, field: &str, commit: &str) {
        self.wait_for(&format!("{field} = {commit}"), |s| {
            s.status()[field] == commit
        });
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
