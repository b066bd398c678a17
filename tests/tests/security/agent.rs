//! The agent the security tests run: a `keel-agent` on Docker that joined with a token.

use std::process::{Child, Command, Stdio};

use keel_e2e::{Server, binary, free_port};

/// A `keel-agent` on Docker that joined with a token; killed, and its containers removed,
/// when dropped.
pub struct Agent {
    name: String,
    child: Child,
    data: tempfile::TempDir,
    port: u16,
}

impl Agent {
    pub fn start(name: &str, server: &Server) -> Agent {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(data.path().join("agent.log")).unwrap();
        let child = Command::new(binary("keel-agent"))
            .args(["--name", name, "--server", &server.agents])
            .args(["--listen", &format!("127.0.0.1:{port}")])
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
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("agent.log")).unwrap_or_default()
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        keel_cli::up::remove_addresses(&self.data.path().join(&self.name));
        keel_cli::up::remove_containers(&self.name);
    }
}
