//! A real etcd process on free loopback ports in a temp dir: for the conformance tests and
//! the benchmarks, which run against the real engine, never a mock.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An etcd server that lives as long as this value; killed on drop.
pub struct EtcdProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    dir: PathBuf,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EtcdProcess {
    /// True when the `etcd` binary can be run.
    pub fn available() -> bool {
        Command::new("etcd")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts etcd with its data in a fresh temp dir and waits until it listens.
    pub fn start() -> std::io::Result<EtcdProcess> {
        let dir = std::env::temp_dir().join(format!("keel-etcd-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let (client, peer) = (free_port()?, free_port()?);
        let log = std::fs::File::create(dir.join("etcd.log"))?;
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .arg("--name")
            .arg("keel")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("keel={peer_url}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let process = EtcdProcess {
            child,
            endpoint: client_url,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", client)).is_err() {
            if Instant::now() > deadline {
                return Err(std::io::Error::other("etcd did not listen within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(process)
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
