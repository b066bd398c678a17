//! Privileges the repository allows (`keel.yaml`'s podSecurity) reach the container.

use std::process::Command;
use std::time::Duration;

use keel_e2e::{Server, TestLan, commit, docker_available, git, import_busybox_image, write};

use super::agent::Agent;

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
    let lan = TestLan::new(5, 1);
    let server = Server::start(dir.to_str().unwrap(), &["--agent-listen", &lan.agents_at()]);
    let name = format!("priv-{}", std::process::id());
    let _agent = Agent::start(&name, &server, &lan.hosts[0]);
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
    assert_eq!(
        pods["items"][0]["status"]["podIP"],
        lan.hosts[0].ip.to_string(),
        "{pods}"
    );
}
