//! The agent the security tests run: a `keel-agent` on Docker that joined with a token, in
//! a node host of its own.

use std::process::{Child, Stdio};

use keel_e2e::{Server, binary, free_port};
use keel_nodehost::NodeHost;

/// A `keel-agent` on Docker that joined with a token; killed, and its containers removed,
/// when dropped.
pub struct Agent {
    name: String,
    child: Child,
    data: tempfile::TempDir,
    port: u16,
    host: NodeHost,
}

impl Agent {
    /// An agent in `host`; `server` must listen for agents on the host's LAN
    /// (`TestLan::agents_at`).
    pub fn start(name: &str, server: &Server, host: &NodeHost) -> Agent {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(data.path().join("agent.log")).unwrap();
        let child = host
            .command(binary("keel-agent"))
            .args(["--name", name, "--server", &server.agents])
            .args(["--listen", &format!("{}:{port}", host.ip)])
            .arg("--data-dir")
            .arg(data.path())
            .env("KEEL_JOIN_TOKEN", server.join_token())
            // The most a user could turn on.
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Agent {
            name: name.to_string(),
            child,
            data,
            port,
            host: host.clone(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("agent.log")).unwrap_or_default()
    }

    pub fn address(&self) -> String {
        format!("{}:{}", self.host.ip, self.port)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Its addresses and links go with its node host.
        keel_cli::up::remove_containers(&self.name);
    }
}
