//! `keel-agent` as a user runs it: its flags, and serving its API while the control plane is
//! not there yet.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel_agent_protocol::NodeDesired;
use keel_agent_protocol::node_agent_client::NodeAgentClient;
use keel_e2e::{binary, free_port};

#[test]
fn bad_flags_are_refused_with_the_flag_named() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--name", "Not_A_Name", "--server", "127.0.0.1:7400"],
            "--name \"Not_A_Name\"",
        ),
        (
            &["--name", "n1", "--server", "x:1", "--memory", "lots"],
            "--memory: \"lots\" is not a quantity",
        ),
        (
            &["--name", "n1", "--server", "x:1", "--labels", "zone"],
            "--labels: \"zone\" is not key=value",
        ),
        (
            &[
                "--name",
                "n1",
                "--server",
                "x:1",
                "--labels",
                "node-role.kubernetes.io/worker=",
            ],
            "a node may set only the kubernetes.io labels a kubelet may",
        ),
        (
            &[
                "--name",
                "n1",
                "--server",
                "x:1",
                "--allowed-host-path",
                "data",
            ],
            "--allowed-host-path data: must be an absolute path",
        ),
        (
            &["--name", "n1", "--server", "bad host:x"],
            "--server \"bad host:x\"",
        ),
        (
            &[
                "--name",
                "n1",
                "--server",
                "x:1",
                "--cluster-domain",
                "Cluster_Local",
            ],
            "--cluster-domain \"Cluster_Local\"",
        ),
    ];
    for (args, expected) in cases {
        let out = Command::new(binary("keel-agent"))
            .args(*args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn serves_its_api_while_the_control_plane_is_unreachable() {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().unwrap();
    // As an older agent (or a careless mkdir) left it: readable by every local user.
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();
    let unreachable = free_port();
    let mut agent = Command::new(binary("keel-agent"))
        // Plaintext: without a certificate, and with no control plane to join, a secure
        // agent has no identity to serve with (see security.rs for that path).
        .args(["--name", "lonely", "--runtime", "hollow", "--insecure"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--server", &format!("127.0.0.1:{unreachable}")])
        .arg("--data-dir")
        .arg(data.path())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its log, read as it comes: the agent is killed only once it has said what it must.
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let log = log.clone();
        let mut stderr = agent.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut chunk) {
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        })
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "uid": "u-1"},
        "spec": {"nodeName": "lonely", "containers": [{"name": "app", "image": "example/app:1"}]}
    });
    let msg = NodeDesired {
        node_name: "lonely".into(),
        generation: 4,
        pods: vec![serde_json::to_vec(&pod).unwrap()],
        ..Default::default()
    };
    let applied = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let attempt = async {
                let mut c = NodeAgentClient::connect(format!("http://127.0.0.1:{port}")).await?;
                Ok::<_, Box<dyn std::error::Error>>(c.sync(msg.clone()).await?.into_inner())
            };
            match attempt.await {
                Ok(ack) => break ack.applied_generation,
                Err(e) if Instant::now() > deadline => panic!("agent never answered: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    assert_eq!(applied, 4);
    let mode = std::fs::metadata(data.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o700,
        "the agent's data dir (pod volumes, its key) is its own"
    );
    // Its first attempt to reach the control plane may come after the Sync was served.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log
        .lock()
        .unwrap()
        .contains("cannot reach the control plane")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    agent.kill().unwrap();
    let _ = agent.wait();
    reader.join().unwrap();
    let stderr = log.lock().unwrap().clone();
    assert!(
        stderr.contains("cannot reach the control plane"),
        "the agent says why it is not registered: {stderr}"
    );
}

#[test]
fn a_node_without_network_rights_or_tools_says_what_is_missing_and_runs_nothing() {
    if !keel_e2e::docker_available() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    // Root without CAP_NET_ADMIN, no iproute2 or nftables on the PATH, no CNI plugins.
    let out = Command::new("/usr/bin/setpriv")
        .args(["--inh-caps=-net_admin", "--bounding-set=-net_admin", "--"])
        .arg(binary("keel-agent"))
        .args(["--name", "no-network", "--insecure"])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--server", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(data.path())
        .arg("--cni-bin-dir")
        .arg(empty.path())
        .env("PATH", empty.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for missing in [
        "this node cannot run pods on the pod network; missing:",
        "CAP_NET_ADMIN",
        "`ip` (install Debian's iproute2)",
        "`bridge` (install Debian's iproute2)",
        "`nft` (install Debian's nftables)",
        "CNI plugin \"bridge\" was not found",
        "CNI plugin \"loopback\" was not found",
    ] {
        assert!(stderr.contains(missing), "{missing:?} in: {stderr}");
    }
    let containers = Command::new("docker")
        .args(["ps", "-aq", "--filter", "label=keel.dev/node=no-network"])
        .output()
        .unwrap();
    assert!(containers.stdout.is_empty(), "no container was made");
}
