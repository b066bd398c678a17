//! Security end to end, with a real `keel server`, a real `keel-agent` on Docker and real TLS:
//! nobody but the control plane commands an agent, no node speaks for another, join tokens
//! are checked, and no Secret value appears in anything keel prints or logs.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use base64::Engine;
use keel_agent_protocol::control_plane_client::ControlPlaneClient;
use keel_agent_protocol::node_agent_client::NodeAgentClient;
use keel_agent_protocol::{
    Heartbeat, JoinRequest, LogsRequest, NodeDesired, RegisterRequest, StatusReport,
    status_report::Report,
};
use keel_e2e::{
    Server, binary, commit, docker_available, free_port, git, import_busybox_image, write,
};
use keel_tls::config::client_config;
use keel_tls::transport::ClientTls;
use keel_tls::{ClusterCa, Credentials, Identity};
use tonic::transport::{Channel, Endpoint};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A `keel-agent` on Docker that joined with a token; killed, and its containers removed,
/// when dropped.
struct Agent {
    name: String,
    child: Child,
    data: tempfile::TempDir,
    port: u16,
}

impl Agent {
    fn start(name: &str, server: &Server) -> Agent {
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

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("agent.log")).unwrap_or_default()
    }

    fn address(&self) -> String {
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
    let server = Server::start(repo.path().to_str().unwrap(), &[]);
    let name = format!("sec-{}", std::process::id());
    let agent = Agent::start(&name, &server);
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
        // Without a certificate only Join is open, and it wants a real token.
        let mut anonymous =
            ControlPlaneClient::new(channel(&server.agents, &ca, None, &cp).await.unwrap());
        let err = anonymous.register(register(&name)).await.unwrap_err();
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

/// Runs `keel` with the server's token; stdout and stderr together.
fn keel(server: &Server, args: &[&str], dir: &Path) -> String {
    let out = server.keel().args(args).current_dir(dir).output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

fn secret_app(value: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: db}}
stringData: {{password: "{value}"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: reader}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: reader}}}}
  template:
    metadata: {{labels: {{app: reader}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: reader
        image: keel-e2e/secret-reader:1
        imagePullPolicy: Never
        command: ["sh", "-c", "echo password length ${{#PASSWORD}} $(wc -c < /etc/db/password); exec sleep 3600"]
        env:
        - name: PASSWORD
          valueFrom: {{secretKeyRef: {{name: db, key: password}}}}
        volumeMounts: [{{name: db, mountPath: /etc/db}}]
      volumes:
      - name: db
        secret: {{secretName: db}}
"#
    )
}

#[test]
fn no_secret_value_appears_in_anything_keel_prints_or_logs() {
    if !docker_available() {
        return;
    }
    import_busybox_image("keel-e2e/secret-reader:1", &[]);
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let first = format!("first-{stamp:x}-value");
    let second = format!("second-{stamp:x}-value");
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path();
    git(dir, &["init", "-q"]);
    write(dir, "app.yaml", &secret_app(&first));
    commit(dir, "the app and its secret");
    // Encrypted at rest too.
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("key");
    std::fs::write(
        &key_file,
        base64::engine::general_purpose::STANDARD.encode([42u8; 32]),
    )
    .unwrap();
    let server = Server::start_with_env(
        dir.to_str().unwrap(),
        &["--encryption-key-file", key_file.to_str().unwrap()],
        &[("RUST_LOG", "debug")],
    );
    let name = format!("secrets-{}", std::process::id());
    let agent = Agent::start(&name, &server);
    let running = |s: &Server| {
        s.get("/api/v1/namespaces/default/pods")
            .and_then(|l| l["items"].as_array().cloned())
            .is_some_and(|ps| ps.iter().any(|p| p["status"]["phase"] == "Running"))
    };
    server.wait_up_to(Duration::from_secs(60), "the reader pod to run", running);

    let url = server.url.clone();
    let mut printed = Vec::new();
    let pod =
        server.get("/api/v1/namespaces/default/pods").unwrap()["items"][0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string();
    // The pod used the value (its length shows in its log), so the value went everywhere.
    let mut logs = String::new();
    for _ in 0..50 {
        logs = keel(&server, &["logs", &pod, "--server", &url], dir);
        if logs.contains("password length") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        logs.contains(&format!("password length {} {}", first.len(), first.len())),
        "{logs}"
    );
    printed.push(logs);

    // A new value, reviewed, then applied.
    git(dir, &["checkout", "-q", "-b", "rotate"]);
    write(dir, "app.yaml", &secret_app(&second));
    commit(dir, "rotate the password");
    let plan = keel(
        &server,
        &["plan", "--repo", ".", "--from", "main", "--to", "rotate"],
        dir,
    );
    assert!(plan.contains("<redacted, changed>"), "{plan}");
    printed.push(plan);
    printed.push(keel(
        &server,
        &["plan", "--repo", ".", "--to", "rotate", "--server", &url],
        dir,
    ));
    git(dir, &["checkout", "-q", "main"]);
    git(dir, &["merge", "-q", "rotate"]);
    let second_commit = git(dir, &["rev-parse", "HEAD"]);
    server.wait_commit("applied_commit", second_commit.trim());
    let yaml = keel(
        &server,
        &["get", "secret", "db", "-o", "yaml", "--server", &url],
        dir,
    );
    assert!(
        yaml.contains("password: <redacted>"),
        "the key is shown, not the value: {yaml}"
    );
    printed.push(yaml);
    for args in [
        vec!["get", "secret", "db", "-o", "json"],
        vec!["get", "secrets"],
        vec!["describe", "secret", "db"],
        vec!["describe", "pod", &pod],
        vec!["get", "events"],
        vec!["history"],
        vec!["status"],
    ] {
        let mut args = args.clone();
        args.extend(["--server", &url]);
        printed.push(keel(&server, &args, dir));
    }
    printed.push(keel(&server, &["validate", "."], dir));
    printed.push(server.text("/api/keel/applied"));
    printed.push(server.text("/api/v1/namespaces/default/secrets/db"));
    printed.push(server.text("/metrics"));

    let mut everything = printed.join("\n");
    everything.push_str(&std::fs::read_to_string(server.log_path()).unwrap_or_default());
    everything.push_str(&agent.log());
    let encode = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    for value in [&first, &second] {
        for form in [value.to_string(), encode(value)] {
            assert!(
                !everything.contains(&form),
                "a Secret value ({form}) was printed or logged; in:\n{}",
                context(&everything, &form)
            );
        }
    }
    assert!(everything.len() > 10_000, "the logs were captured");
    let stored = std::fs::read(server.data.path().join("keel.redb")).unwrap();
    for value in [&first, &second] {
        for form in [value.to_string(), encode(value)] {
            assert!(
                !stored.windows(form.len()).any(|w| w == form.as_bytes()),
                "{form} is in the store file in the clear"
            );
        }
    }
}

/// The lines around the first occurrence of `needle`.
fn context(haystack: &str, needle: &str) -> String {
    let at = haystack.find(needle).unwrap_or(0);
    let start = haystack[..at].rfind('\n').unwrap_or(0);
    let end = haystack[at..].find('\n').map_or(haystack.len(), |e| at + e);
    haystack[start..end].to_string()
}

fn hollow_deployment(replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: web, image: 'example/web:1'}}]\n"
    )
}

fn running_pods(server: &Server) -> usize {
    server
        .get("/api/v1/namespaces/default/pods")
        .and_then(|l| l["items"].as_array().cloned())
        .map_or(0, |ps| {
            ps.iter()
                .filter(|p| p["status"]["phase"] == "Running")
                .count()
        })
}

#[test]
fn certificates_renew_before_they_expire_and_the_cluster_keeps_working() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path();
    git(dir, &["init", "-q"]);
    write(dir, "web.yaml", &hollow_deployment(1));
    commit(dir, "one pod");
    // 30 s certificates: each is renewed about 20 s after it was issued.
    let server = Server::start(dir.to_str().unwrap(), &["--cert-validity", "30s"]);
    let data = tempfile::tempdir().unwrap();
    let name = "renewing";
    let mut agent = Command::new(binary("keel-agent"))
        .args([
            "--name",
            name,
            "--runtime",
            "hollow",
            "--server",
            &server.agents,
        ])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(data.path())
        .env("KEEL_JOIN_TOKEN", server.join_token())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    server.wait_for("the pod to run", |s| running_pods(s) == 1);
    let expiry = |s: &Server| {
        s.get(&format!("/api/v1/nodes/{name}"))
            .and_then(|n| {
                n["metadata"]["annotations"]["keel.dev/certificate-expires"]
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_default()
    };
    let first = expiry(&server);
    assert!(first.starts_with("20"), "{first:?}");
    server.wait_up_to(
        Duration::from_secs(60),
        "the node certificate to be renewed twice",
        |s| {
            let now = expiry(s);
            !now.is_empty() && now > first && {
                std::thread::sleep(Duration::from_millis(200));
                true
            }
        },
    );
    let second = expiry(&server);
    server.wait_up_to(Duration::from_secs(60), "a second renewal", |s| {
        expiry(s) > second
    });
    // Past the first certificates' expiry, both sides on renewed ones: still in command.
    write(dir, "web.yaml", &hollow_deployment(3));
    commit(dir, "three pods");
    server.wait_for("three pods to run", |s| running_pods(s) == 3);
    let log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
    assert!(
        log.contains("renewed the control plane's certificate"),
        "{log}"
    );
    assert!(log.contains("renewed a node's certificate"), "{log}");
    let _ = agent.kill();
    let _ = agent.wait();
}

fn inspect(id: &str, format: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "--format", format, id])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn container_of(node: &str, role: &str) -> String {
    let out = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=keel.dev/node={node}"),
        ])
        .args(["--filter", &format!("label=keel.dev/role={role}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn privileges_the_repository_allows_reach_the_container() {
    if !docker_available() {
        return;
    }
    import_busybox_image("keel-e2e/secret-reader:1", &[]);
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path();
    git(dir, &["init", "-q"]);
    write(
        dir,
        "keel.yaml",
        "podSecurity:\n  default: [privileged, hostNetwork, hostPID, capabilities]\n",
    );
    write(
        dir,
        "agent.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: node-agent}
spec:
  selector: {matchLabels: {app: node-agent}}
  template:
    metadata: {labels: {app: node-agent}}
    spec:
      hostNetwork: true
      hostPID: true
      terminationGracePeriodSeconds: 1
      containers:
      - name: agent
        image: keel-e2e/secret-reader:1
        imagePullPolicy: Never
        command: ["sleep", "3600"]
        securityContext:
          privileged: true
          capabilities: {add: [CAP_NET_ADMIN], drop: [MKNOD]}
          runAsUser: 1000
          runAsGroup: 1000
          readOnlyRootFilesystem: true
"#,
    );
    commit(dir, "a privileged node agent, allowed");
    let server = Server::start(dir.to_str().unwrap(), &[]);
    let name = format!("priv-{}", std::process::id());
    let _agent = Agent::start(&name, &server);
    server.wait_up_to(Duration::from_secs(60), "the pod to run", |s| {
        s.get("/api/v1/namespaces/default/pods")
            .and_then(|l| l["items"].as_array().cloned())
            .is_some_and(|ps| ps.iter().any(|p| p["status"]["phase"] == "Running"))
    });
    let app = container_of(&name, "app");
    let sandbox = container_of(&name, "sandbox");
    assert!(!app.is_empty() && !sandbox.is_empty());
    assert_eq!(inspect(&app, "{{.HostConfig.Privileged}}"), "true");
    assert_eq!(inspect(&app, "{{.HostConfig.PidMode}}"), "host");
    assert_eq!(inspect(&app, "{{.HostConfig.CapAdd}}"), "[NET_ADMIN]");
    assert_eq!(inspect(&app, "{{.HostConfig.CapDrop}}"), "[MKNOD]");
    assert_eq!(inspect(&app, "{{.Config.User}}"), "1000:1000");
    assert_eq!(inspect(&app, "{{.HostConfig.ReadonlyRootfs}}"), "true");
    assert_eq!(inspect(&sandbox, "{{.HostConfig.NetworkMode}}"), "host");
    // On the node's network, the pod's IP is the node's.
    let pods = server.get("/api/v1/namespaces/default/pods").unwrap();
    assert_eq!(pods["items"][0]["status"]["podIP"], "127.0.0.1", "{pods}");
}
