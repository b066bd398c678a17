//! Certificates renew before they expire, and the cluster keeps working meanwhile.

use std::process::{Command, Stdio};
use std::time::Duration;

use keel_e2e::{Server, binary, commit, free_port, git, write};

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
