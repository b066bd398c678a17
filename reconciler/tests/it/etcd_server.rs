//! A real etcd (Debian's etcd-server) on free loopback ports in a temp dir, for one test.
//!
//! Without the `etcd` binary the etcd tests skip with a printed reason, unless
//! `KEEL_REQUIRE_ETCD=1` (as `scripts/test` and CI set), where they fail.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct EtcdServer {
    child: Child,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl EtcdServer {
    /// Starts etcd, or returns `None` (with the reason printed) when it is not installed
    /// and not required.
    pub fn start() -> Option<EtcdServer> {
        let required = std::env::var("KEEL_REQUIRE_ETCD").is_ok_and(|v| v == "1");
        if Command::new("etcd").arg("--version").output().is_err() {
            assert!(
                !required,
                "KEEL_REQUIRE_ETCD=1 but the etcd binary is not installed (apt-get install etcd-server)"
            );
            eprintln!(
                "skipping: etcd is not installed (apt-get install etcd-server); set KEEL_REQUIRE_ETCD=1 to fail instead"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let (client, peer) = (free_port(), free_port());
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log file");
        let child = Command::new("etcd")
            .args([
                "--name",
                "keel-test",
                "--data-dir",
                &dir.path().join("data").to_string_lossy(),
                "--listen-client-urls",
                &format!("http://127.0.0.1:{client}"),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{client}"),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-cluster",
                &format!("keel-test=http://127.0.0.1:{peer}"),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd starts");
        let server = EtcdServer {
            child,
            endpoint: format!("http://127.0.0.1:{client}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", client)).is_err() {
            assert!(Instant::now() < deadline, "etcd did not listen within 20s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
