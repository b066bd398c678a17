//! Idle connections cannot take the control plane down: a real `keel server` held to 1,024
//! open files, with 1,100 idle connections on its API port and 1,100 idle TLS connections
//! without a certificate on its agents' port, still answers `/healthz`, syncs git and lets an
//! agent join.

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel_e2e::{Server, binary, commit, free_port, git, write};
use keel_tls::{ClusterCa, Identity};

const IDLE: usize = 1_100;

fn config_map(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{a: b}}\n")
}

/// `/healthz` answered within `seconds`, on a fresh connection.
fn healthy_within(server: &Server, seconds: u32) -> bool {
    Command::new("curl")
        .args(["-s", "-f", "--max-time", &seconds.to_string()])
        .arg(format!("{}/healthz", server.url))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn idle_connections_cannot_take_the_control_plane_down() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    git(dir.path(), &["init", "-q", repo.to_str().unwrap()]);
    write(&repo, "first.yaml", &config_map("first"));
    let first = commit(&repo, "first");
    // As under `ulimit -n 1024`: keel raises its soft limit to the hard one at start, and
    // here both are 1024.
    let server = Server::start_with_open_files(repo.to_str().unwrap(), &[], 1024);
    server.wait_commit("applied_commit", &first);
    let token = server.join_token();

    // Idle TCP connections to the API port: connected, never a byte sent.
    let api = server.url.trim_start_matches("http://").to_string();
    let idle_http: Vec<TcpStream> = (0..IDLE)
        .filter_map(|_| {
            TcpStream::connect_timeout(&api.parse().unwrap(), Duration::from_secs(2)).ok()
        })
        .collect();
    assert!(idle_http.len() > 1_000, "{} connected", idle_http.len());

    // Idle TLS connections without a certificate to the agents' port, handshake done.
    let ca = ClusterCa::load_or_create(&server.data.path().join("pki")).unwrap();
    let tls = keel_tls::config::client_config(ca.cert_der(), None).unwrap();
    let name = Identity::ControlPlane.server_name().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let agents = server.agents.clone();
    let opened = Instant::now();
    let idle_tls = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..IDLE {
            let (tls, name, agents) = (tls.clone(), name.clone(), agents.clone());
            tasks.spawn(async move {
                let connect = async {
                    let tcp = tokio::net::TcpStream::connect(&agents).await?;
                    tokio_rustls::TlsConnector::from(tls)
                        .connect(name, tcp)
                        .await
                };
                tokio::time::timeout(Duration::from_secs(30), connect).await
            });
        }
        let mut open = Vec::new();
        while let Some(done) = tasks.join_next().await {
            if let Ok(Ok(Ok(stream))) = done {
                open.push(stream);
            }
        }
        open
    });

    // Probes still get answers at once, though every regular slot is held by an idle client
    // and the spare ones by the flood's newest.
    for probe in 0..3 {
        assert!(
            healthy_within(&server, 3),
            "/healthz probe {probe} not answered with {} idle connections",
            idle_http.len()
        );
    }

    // Git sync still works: a new commit is applied.
    write(&repo, "second.yaml", &config_map("second"));
    let second = commit(&repo, "second");
    server.wait_up_to(Duration::from_secs(60), "the second commit", |s| {
        s.status()["applied_commit"] == second.as_str()
    });

    // An agent still joins (the newest certificate-less connection pushes out the oldest
    // idle one) and registers.
    let data = tempfile::tempdir().unwrap();
    let mut agent = Command::new(binary("keel-agent"))
        .args(["--name", "survivor", "--runtime", "hollow"])
        .args(["--server", &server.agents])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(data.path())
        .env("KEEL_JOIN_TOKEN", &token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    server.wait_up_to(Duration::from_secs(30), "the agent to register", |s| {
        s.get("/api/v1/nodes/survivor").is_some()
    });
    let _ = agent.kill();
    let _ = agent.wait();

    // Certificate-less connections do not stay: each was closed once its time for a Join
    // was up (30 s), or pushed out by newer ones.
    std::thread::sleep(
        (opened + Duration::from_secs(35)).saturating_duration_since(Instant::now()),
    );
    rt.block_on(async {
        use tokio::io::AsyncReadExt;
        for mut stream in idle_tls {
            // The server's HTTP/2 settings may come first; then the end of the stream.
            let mut buf = [0u8; 256];
            let closed = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            assert!(
                closed.is_ok(),
                "an idle connection without a certificate is still open"
            );
        }
    });
    drop(idle_http);

    // Refusals and backoff, not a log line every 100 ms.
    let log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
    let accept_errors = log.matches("cannot accept").count();
    assert!(accept_errors <= 5, "{accept_errors} accept errors logged");
}
