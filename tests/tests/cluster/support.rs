//! What the cluster tests share: agent processes, Docker and API look-ups, waiting, HTTP.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keel_e2e::{Server, binary, free_port};
use keel_nodehost::NodeHost;
use serde_json::Value;

pub use keel_e2e::TestLan;

/// Runs `script` with busybox's `sh -c` in node host `host`; its stdout.
pub fn in_host(host: &NodeHost, script: &str) -> String {
    let out = host
        .command("/bin/busybox")
        .args(["sh", "-c", script])
        .output()
        .expect("ip netns exec runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The body of `GET /` at `addr` (`IP:PORT`) asked from inside node host `host`, trimmed.
pub fn http_get_in(host: &NodeHost, addr: &str) -> Option<String> {
    let (ip, port) = addr.rsplit_once(':')?;
    let text = in_host(
        host,
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 5 {ip} {port}"),
    );
    body(&text).map(|b| b.trim().to_string())
}

/// A `keel-agent` process on Docker, killed (SIGKILL) when dropped.
pub struct Agent {
    name: String,
    child: Child,
    data: std::path::PathBuf,
    port: u16,
    server: String,
    /// The join token it trades for its certificate on first start.
    token: String,
    /// The node host it runs in.
    host: NodeHost,
    extra: Vec<String>,
}

impl Agent {
    /// An agent in node host `host` (listening on its LAN address), with `extra` flags.
    pub fn start(
        name: &str,
        server: &Server,
        data: &Path,
        host: &NodeHost,
        extra: &[&str],
    ) -> Agent {
        Agent::start_for(
            name,
            &server.agents,
            &server.join_token(),
            data,
            host,
            extra,
        )
    }

    /// An agent reporting to `servers` (`--server`, one address or several), joining with
    /// `token`.
    pub fn start_for(
        name: &str,
        servers: &str,
        token: &str,
        data: &Path,
        host: &NodeHost,
        extra: &[&str],
    ) -> Agent {
        let mut agent = Agent {
            name: name.to_string(),
            child: Command::new("true").spawn().expect("placeholder"),
            data: data.join(name),
            port: free_port(),
            server: servers.to_string(),
            token: token.to_string(),
            host: host.clone(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        agent.spawn();
        agent
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{}.log", self.data.display()))
            .expect("agent log");
        self.child = self
            .host
            .command(binary("keel-agent"))
            .args(["--name", &self.name, "--server", &self.server])
            .args(["--listen", &format!("{}:{}", self.host.ip, self.port)])
            .arg("--data-dir")
            .arg(&self.data)
            .args(&self.extra)
            .env("KEEL_JOIN_TOKEN", &self.token)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("keel-agent starts");
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A clean stop: SIGTERM, as a service manager sends it, and the agent's exit.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "keel-agent {} did not stop within 15 s of SIGTERM",
            self.name
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        // What a killed agent cannot remove itself, with keel up's own cleanup: its
        // containers, whatever state the test left them in. Its addresses and links go with
        // its node host.
        keel_cli::up::remove_containers(&self.name);
        keel_cli::up::release_pinned_mounts(&self.data);
    }
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The running app containers of node `node` (sandboxes not counted), a line each as
/// `docker ps --format FORMAT` prints them.
pub fn app_containers(node: &str, format: &str) -> Vec<String> {
    docker(&[
        "ps",
        "--filter",
        &format!("label=keel.dev/node={node}"),
        "--filter",
        "label=keel.dev/role=app",
        "--format",
        format,
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

pub fn pods(server: &Server) -> Vec<Value> {
    server
        .get("/api/v1/namespaces/default/pods")
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
}

pub fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

pub fn wait_until(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The body of `GET path` at `addr`.
pub fn http_get_path(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = addr.parse().ok()?;
    let mut conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    body(&text)
}

/// What follows the headers of an HTTP answer.
fn body(text: &str) -> Option<String> {
    // CGI answers (busybox httpd passes the script's headers through) may end their headers
    // with a bare blank line.
    let crlf = text.find("\r\n\r\n").map(|i| i + 4);
    let lf = text.find("\n\n").map(|i| i + 2);
    let start = match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some(text[start..].to_string())
}

/// The body of `GET /` at `addr`, trimmed, if it answers within 5 s.
pub fn http_get(addr: &str) -> Option<String> {
    http_get_path(addr, "/").map(|b| b.trim().to_string())
}
