//! A node's name is bound to its first certificate: joining again under it needs `keel delete
//! node` first, and after that delete the old certificate speaks for nothing. Real server,
//! real hollow agents, real TLS.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keel_agent_protocol::RegisterRequest;
use keel_agent_protocol::control_plane_client::ControlPlaneClient;
use keel_e2e::{Server, binary, commit, free_port, git, write};
use keel_tls::config::client_config;
use keel_tls::transport::ClientTls;
use keel_tls::{Credentials, Identity};
use tonic::transport::Endpoint;

/// A hollow agent joining (or rejoining) as `name` with a fresh token, its data in `data`.
fn agent(server: &Server, name: &str, data: &std::path::Path) -> Child {
    Command::new(binary("keel-agent"))
        .args(["--name", name, "--runtime", "hollow"])
        .args(["--server", &server.agents])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(data)
        .env("KEEL_JOIN_TOKEN", server.join_token())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn ready(server: &Server, name: &str) -> Option<String> {
    let node = server.get(&format!("/api/v1/nodes/{name}"))?;
    node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["status"].as_str())
        .map(str::to_string)
}

#[test]
fn a_node_name_is_bound_to_its_certificate_until_the_node_is_deleted() {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    write(
        repo.path(),
        "keep.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\ndata: {a: b}\n",
    );
    commit(repo.path(), "nothing to run");
    let server = Server::start(repo.path().to_str().unwrap(), &["--node-grace", "2s"]);
    let name = "bound-node";

    // The first agent joins and registers; then its machine dies.
    let first_data = tempfile::tempdir().unwrap();
    let mut first = agent(&server, name, first_data.path());
    server.wait_for("the node to be Ready", |s| {
        ready(s, name).as_deref() == Some("True")
    });
    first.kill().unwrap();
    let _ = first.wait();
    server.wait_for("the node to go NotReady", |s| {
        ready(s, name).as_deref() != Some("True")
    });

    // A token holder cannot take the name over, even of a dead node.
    let thief_data = tempfile::tempdir().unwrap();
    let thief = agent(&server, name, thief_data.path())
        .wait_with_output()
        .unwrap();
    let said = String::from_utf8_lossy(&thief.stderr);
    assert!(!thief.status.success(), "{said}");
    assert!(
        said.contains("exists and is bound to the certificate it joined with")
            && said.contains("keel delete node bound-node"),
        "{said}"
    );

    // The operator deletes the node: its certificate is revoked.
    let deleted = server
        .keel()
        .args(["delete", "node", name, "--server", &server.url])
        .output()
        .unwrap();
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    let pki = first_data.path().join(name).join("pki");
    let read = |f: &str| std::fs::read_to_string(pki.join(f)).unwrap();
    let old = Credentials::from_pem(&read("node.crt"), &read("node.key")).unwrap();
    let ca = keel_tls::ClusterCa::load_or_create(&server.data.path().join("pki")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let refused = rt.block_on(async {
        let endpoint = Endpoint::from_shared(format!("http://{}", server.agents))
            .unwrap()
            .timeout(Duration::from_secs(5));
        let tls = ClientTls {
            config: client_config(ca.cert_der(), Some(old)).unwrap(),
            server_name: Identity::ControlPlane.server_name().unwrap(),
        };
        let channel = keel_tls::transport::connect(endpoint, Some(tls))
            .await
            .unwrap();
        ControlPlaneClient::new(channel)
            .register(RegisterRequest {
                node_name: name.into(),
                address: "127.0.0.1:1".into(),
                cpu_millis: 1000,
                memory_bytes: 1 << 30,
                max_pods: 10,
                labels: Default::default(),
                agent_version: "0".into(),
                runtime: "hollow".into(),
                takes_sets: true,
            })
            .await
            .unwrap_err()
    });
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("no longer speaks for node"),
        "{refused:?}"
    );
    assert!(
        server.get(&format!("/api/v1/nodes/{name}")).is_none(),
        "the revoked certificate registered nothing"
    );

    // A join whose answer was lost (no Register followed) does not lock its name: joining
    // again replaces it, and `keel delete node` frees it too.
    let join = |node: &str| {
        let token = keel_tls::JoinToken::parse(&server.join_token()).unwrap();
        let (_, csr) = keel_tls::ca::new_key_and_request().unwrap();
        let tls = ClientTls {
            config: client_config(ca.cert_der(), None).unwrap(),
            server_name: Identity::ControlPlane.server_name().unwrap(),
        };
        let endpoint = Endpoint::from_shared(format!("http://{}", server.agents))
            .unwrap()
            .timeout(Duration::from_secs(5));
        let request = keel_agent_protocol::JoinRequest {
            node_name: node.into(),
            token_id: token.id.clone(),
            token_secret: token.secret.clone(),
            csr,
        };
        rt.block_on(async move {
            let channel = keel_tls::transport::connect(endpoint, Some(tls))
                .await
                .unwrap();
            ControlPlaneClient::new(channel)
                .join(request)
                .await
                .map(|_| ())
        })
    };
    join("half-joined").expect("first join");
    join("half-joined").expect("joining again before registering");
    let freed = server
        .keel()
        .args(["delete", "node", "half-joined", "--server", &server.url])
        .output()
        .unwrap();
    assert!(
        freed.status.success(),
        "{}",
        String::from_utf8_lossy(&freed.stderr)
    );

    // Now the name is free: a new machine joins under it.
    let new_data = tempfile::tempdir().unwrap();
    let mut new = agent(&server, name, new_data.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready(&server, name).as_deref() != Some("True") {
        assert!(
            Instant::now() < deadline,
            "the new machine never registered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = new.kill();
    let _ = new.wait();
}

/// A join token can be deleted before it expires; nothing joins with it after.
#[test]
fn a_deleted_join_token_joins_nothing() {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    write(
        repo.path(),
        "keep.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\ndata: {a: b}\n",
    );
    commit(repo.path(), "nothing to run");
    let server = Server::start(repo.path().to_str().unwrap(), &[]);
    let token = server.join_token();
    let id = token
        .rsplit(':')
        .next()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    let keel = |args: &[&str]| {
        server
            .keel()
            .args(args)
            .args(["--server", &server.url])
            .output()
            .unwrap()
    };
    assert!(String::from_utf8_lossy(&keel(&["token", "list"]).stdout).contains(&id));
    // The whole token, as printed, is taken too.
    let deleted = keel(&["token", "delete", &token]);
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    assert!(!String::from_utf8_lossy(&keel(&["token", "list"]).stdout).contains(&id));
    let again = keel(&["token", "delete", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not found"));

    let data = tempfile::tempdir().unwrap();
    let joined = Command::new(binary("keel-agent"))
        .args(["--name", "late", "--runtime", "hollow"])
        .args(["--server", &server.agents])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(data.path())
        .env("KEEL_JOIN_TOKEN", &token)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&joined.stderr);
    assert!(!joined.status.success(), "{said}");
    assert!(said.contains("unknown to this control plane"), "{said}");
}
