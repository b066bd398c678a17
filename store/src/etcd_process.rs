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

    /// Starts etcd with its data in a fresh temp dir and waits until it listens. A port
    /// found free can be taken by another process (another test's etcd) before etcd binds
    /// it; etcd then exits, and is started again on other ports.
    pub fn start() -> std::io::Result<EtcdProcess> {
        let mut why = String::new();
        for _ in 0..3 {
            match EtcdProcess::start_once()? {
                Ok(process) => return Ok(process),
                Err(e) => why = e,
            }
        }
        Err(std::io::Error::other(why))
    }

    /// One try: the process, or why it did not listen (with the end of its log).
    fn start_once() -> std::io::Result<Result<EtcdProcess, String>> {
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
        let mut process = EtcdProcess {
            child,
            endpoint: client_url,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", client)).is_err() {
            let exited = process.child.try_wait()?;
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(process.dir.join("etcd.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(3).collect();
                let what = match exited {
                    Some(status) => format!("etcd exited ({status}) before it listened"),
                    None => "etcd did not listen within 20 s".to_string(),
                };
                return Ok(Err(format!("{what}; its log ends: {}", tail.join(" | "))));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Ok(process))
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A three-member (or any size) etcd cluster on loopback, each member its own process that a
/// test can kill and start again on its data: for losing one member, then quorum.
pub struct EtcdCluster {
    members: Vec<Member>,
    dir: PathBuf,
}

struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

impl EtcdCluster {
    /// Starts `n` members and waits until each listens for clients.
    pub fn start(n: usize) -> std::io::Result<EtcdCluster> {
        let dir = std::env::temp_dir().join(format!(
            "keel-etcd-cluster-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut members = Vec::new();
        for i in 0..n {
            members.push(Member {
                name: format!("m{i}"),
                client: free_port()?,
                peer: free_port()?,
                child: None,
            });
        }
        let mut cluster = EtcdCluster { members, dir };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        for i in 0..n {
            cluster.wait_listening(i)?;
        }
        Ok(cluster)
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, i: usize) -> std::io::Result<()> {
        let initial = self.initial_cluster();
        let m = &self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", m.name)))?;
        let client_url = format!("http://127.0.0.1:{}", m.client);
        let peer_url = format!("http://127.0.0.1:{}", m.peer);
        let child = Command::new("etcd")
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(self.dir.join(&m.name))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &initial])
            .args(["--initial-cluster-token", "keel-test"])
            .args(["--initial-cluster-state", "new"])
            // Quick elections on loopback: a lost member is noticed within a second.
            .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.members[i].child = Some(child);
        Ok(())
    }

    fn wait_listening(&self, i: usize) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.members[i].client)).is_err() {
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "etcd member {i} did not listen within 20 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// `HOST:PORT,HOST:PORT,...` of every member, as `--store etcd://` takes them.
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills member `i` (SIGKILL); its data stays for [`EtcdCluster::restart`].
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its data.
    pub fn restart(&mut self, i: usize) -> std::io::Result<()> {
        self.kill(i);
        self.spawn(i)?;
        self.wait_listening(i)
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
