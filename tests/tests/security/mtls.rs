//! Nobody but the control plane commands an agent, no node speaks for another, and join
//! tokens are checked: real agents and a real server, refusing forged certificates.

use std::process::Command;
use std::time::{Duration, SystemTime};

use keel_agent_protocol::control_plane_client::ControlPlaneClient;
use keel_agent_protocol::node_agent_client::NodeAgentClient;
use keel_agent_protocol::{
    Heartbeat, JoinRequest, LogsRequest, NextSetRequest, NodeDesired, RegisterRequest,
    StatusReport, status_report::Report,
};
use keel_e2e::{Server, TestLan, commit, docker_available, git, import_busybox_image, write};
use keel_tls::config::client_config;
use keel_tls::transport::ClientTls;
use keel_tls::{ClusterCa, Credentials, Identity};
use tonic::transport::{Channel, Endpoint};

use super::agent::Agent;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A certificate and key for `who`, from `ca`, valid between two instants.
fn credentials(
    ca: &ClusterCa,
    who: &Identity,
    from: SystemTime,
    until: SystemTime,
) -> std::sync::Arc<Credentials> {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = ca.issue_between(who, &key, from, until).unwrap();
    Credentials::from_pem(&cert, &key.serialize_pem()).unwrap()
}

fn valid(ca: &ClusterCa, who: &Identity) -> std::sync::Arc<Credentials> {
    let now = SystemTime::now();
    credentials(ca, who, now - DAY, now + DAY)
}

/// A channel to `address` trusting `ca`, presenting `me`, expecting `peer`'s certificate.
async fn channel(
    address: &str,
    ca: &ClusterCa,
    me: Option<std::sync::Arc<Credentials>>,
    peer: &Identity,
) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    let tls = ClientTls {
        config: client_config(ca.cert_der(), me).unwrap(),
        server_name: peer.server_name().unwrap(),
    };
    keel_tls::transport::connect(endpoint, Some(tls))
        .await
        .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))
}

/// A desired set that would start a container, were it accepted.
fn forged_set(node: &str) -> NodeDesired {
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "intruder", "namespace": "default", "uid": "forged-1"},
        "spec": {"nodeName": node, "containers": [{"name": "x", "image": "keel-e2e/secret-reader:1",
                 "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]}
    });
    NodeDesired {
        node_name: node.into(),
        generation: u64::MAX / 2,
        pods: vec![serde_json::to_vec(&pod).unwrap()],
        ..Default::default()
    }
}

/// Sync with `channel`: whether the agent took the set (the error otherwise).
async fn sync(channel: Result<Channel, String>, node: &str) -> Result<(), String> {
    let mut client = NodeAgentClient::new(channel?);
    client
        .sync(forged_set(node))
        .await
        .map(|_| ())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

#[test]
fn only_the_control_plane_commands_an_agent_and_no_node_speaks_for_another() {
    if !docker_available() {
        return;
    }
    import_busybox_image("keel-e2e/secret-reader:1", &[]);
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    write(
        repo.path(),
        "keep.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\ndata: {a: b}\n",
    );
    commit(repo.path(), "nothing to run");
    let lan = TestLan::new(4, 1);
    let server = Server::start(
        repo.path().to_str().unwrap(),
        &["--agent-listen", &lan.agents_at()],
    );
    let name = format!("sec-{}", std::process::id());
    let agent = Agent::start(&name, &server, &lan.hosts[0]);
    server.wait_for("the agent to join and register", |s| node_ready(s, &name));
    let described = server
        .keel()
        .args(["describe", "node", &name, "--server", &server.url])
        .output()
        .unwrap();
    let described = String::from_utf8_lossy(&described.stdout);
    assert!(
        described.contains("Certificate:") && described.contains("expires 20"),
        "{described}"
    );

    let ca = ClusterCa::load_or_create(&server.data.path().join("pki")).unwrap();
    let other_ca_dir = tempfile::tempdir().unwrap();
    let other_ca = ClusterCa::load_or_create(other_ca_dir.path()).unwrap();
    let node = Identity::Node(name.clone());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let now = SystemTime::now();
    rt.block_on(async {
        let address = agent.address();
        // Plaintext.
        let plain = Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| e.to_string());
        assert!(sync(plain, &name).await.is_err(), "plaintext is refused");
        // TLS without a client certificate.
        let anonymous = channel(&address, &ca, None, &node).await;
        assert!(
            sync(anonymous, &name).await.is_err(),
            "no client certificate"
        );
        // A control-plane certificate from another CA.
        let stranger = channel(
            &address,
            &ca,
            Some(valid(&other_ca, &Identity::ControlPlane)),
            &node,
        )
        .await;
        assert!(sync(stranger, &name).await.is_err(), "another CA");
        // An expired control-plane certificate from the cluster's own CA.
        let expired = credentials(&ca, &Identity::ControlPlane, now - 2 * DAY, now - DAY);
        let late = channel(&address, &ca, Some(expired), &node).await;
        assert!(sync(late, &name).await.is_err(), "an expired certificate");
        // A valid certificate of another node: past the handshake, not past the agent.
        let neighbour = valid(&ca, &Identity::Node("neighbour".into()));
        let err = sync(
            channel(&address, &ca, Some(neighbour.clone()), &node).await,
            &name,
        )
        .await
        .unwrap_err();
        assert!(
            err.contains("PermissionDenied") && err.contains("only the control plane"),
            "{err}"
        );
        // The control plane's certificate does get through (so the refusals above are the
        // agent's doing, not a broken test): a harmless call answers NotFound.
        let control_plane = valid(&ca, &Identity::ControlPlane);
        let mut client = NodeAgentClient::new(
            channel(&address, &ca, Some(control_plane), &node)
                .await
                .unwrap(),
        );
        let missing = client
            .logs(LogsRequest {
                namespace: "default".into(),
                pod: "none".into(),
                ..Default::default()
            })
            .await
            .err()
            .unwrap();
        assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");

        // At the control plane: a node certificate speaks only for its own node.
        let cp = Identity::ControlPlane;
        let mut as_neighbour = ControlPlaneClient::new(
            channel(&server.agents, &ca, Some(neighbour), &cp)
                .await
                .unwrap(),
        );
        let register = |node: &str| RegisterRequest {
            node_name: node.into(),
            address: "127.0.0.1:1".into(),
            cpu_millis: 1000,
            memory_bytes: 1 << 30,
            max_pods: 10,
            runtime: "docker".into(),
            ..Default::default()
        };
        let err = as_neighbour.register(register(&name)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
        assert!(err.message().contains("cannot speak for node"), "{err:?}");
        let reports = tokio_stream::iter(vec![StatusReport {
            node_name: name.clone(),
            report: Some(Report::Heartbeat(Heartbeat::default())),
        }]);
        let err = as_neighbour.report_status(reports).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
        // Nor does it take another node's sets (they carry that node's Secrets).
        let next_set = NextSetRequest {
            node_name: name.clone(),
            outcome: None,
        };
        let err = as_neighbour.next_set(next_set.clone()).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
        assert!(err.message().contains("cannot speak for node"), "{err:?}");
        // Without a certificate only Join is open, and it wants a real token.
        let mut anonymous =
            ControlPlaneClient::new(channel(&server.agents, &ca, None, &cp).await.unwrap());
        let err = anonymous.register(register(&name)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
        let err = anonymous.next_set(next_set).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
        let (_, csr) = keel_tls::ca::new_key_and_request().unwrap();
        let token = keel_tls::JoinToken::parse(&server.join_token()).unwrap();
        let err = anonymous
            .join(JoinRequest {
                node_name: "newcomer".into(),
                token_id: token.id.clone(),
                token_secret: "0123456789abcdef".into(),
                csr: csr.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
        let err = anonymous
            .join(JoinRequest {
                node_name: "Not A Name".into(),
                token_id: token.id.clone(),
                token_secret: token.secret.clone(),
                csr,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        // A real token does not take over a live node's name.
        let (_, csr) = keel_tls::ca::new_key_and_request().unwrap();
        let err = anonymous
            .join(JoinRequest {
                node_name: name.clone(),
                token_id: token.id.clone(),
                token_secret: token.secret.clone(),
                csr,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");
    });

    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        containers_of(&name),
        0,
        "no refused call started a container"
    );
    assert!(node_ready(&server, &name), "the real node is untouched");
    let node_object = server.get(&format!("/api/v1/nodes/{name}")).unwrap();
    assert_eq!(
        node_object["metadata"]["annotations"]["keel.dev/agent-address"],
        agent.address().as_str()
    );
    let log = agent.log();
    assert!(log.contains("TLS handshake failed"), "{log}");
    assert!(
        log.contains("only the control plane may call the agent"),
        "{log}"
    );
}

fn containers_of(node: &str) -> usize {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=keel.dev/node={node}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn node_ready(server: &Server, name: &str) -> bool {
    server
        .get(&format!("/api/v1/nodes/{name}"))
        .and_then(|n| n["status"]["conditions"].as_array().cloned())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}
