//! A Deployment on three agents: it runs, scales, rolls, reverts and survives failures.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use keel_e2e::{Server, commit, docker_available, git, import_busybox_image, write};
use serde_json::Value;

use super::support::{Agent, TestLan, app_containers, docker, pods, ready};

const PAGE: &str = "/www/index.html";

fn deployment(replicas: u32, tag: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 1}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: keel-e2e/web:{tag}
        imagePullPolicy: Never
        command: ["sh", "-c", "echo serving $(cat /www/index.html); exec httpd -f -p 8080 -h /www"]
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe:
          tcpSocket: {{port: http}}
          periodSeconds: 1
"#
    )
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n";

/// Running app containers per node (sandboxes not counted).
fn containers(nodes: &[&str]) -> BTreeMap<String, usize> {
    nodes
        .iter()
        .map(|n| (n.to_string(), app_containers(n, "{{.ID}}").len()))
        .collect()
}

fn image(pod: &Value) -> &str {
    pod["spec"]["containers"][0]["image"].as_str().unwrap_or("")
}

/// Pods that are Running and Ready with `tag`, by node.
fn serving(server: &Server, tag: &str) -> Vec<(String, String)> {
    pods(server)
        .iter()
        .filter(|p| p["status"]["phase"] == "Running" && ready(p))
        .filter(|p| image(p) == format!("keel-e2e/web:{tag}"))
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn replica_sets(server: &Server) -> Vec<Value> {
    server
        .get("/apis/apps/v1/namespaces/default/replicasets")
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
}

/// Waits until exactly `n` pods serve `tag` and no other pod is left.
fn wait_serving(server: &Server, n: usize, tag: &str, limit: Duration) {
    server.wait_up_to(
        limit,
        &format!("{n} ready pods of web:{tag} and no others"),
        |s| serving(s, tag).len() == n && pods(s).len() == n,
    );
}

#[test]
fn a_deployment_runs_scales_rolls_reverts_and_survives_failures() {
    if !docker_available() {
        return;
    }
    import_busybox_image("keel-e2e/web:1", &[(PAGE, "version 1\n")]);
    import_busybox_image("keel-e2e/web:2", &[(PAGE, "version 2\n")]);
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    write(repo.path(), "service.yaml", SERVICE);
    commit(repo.path(), "service");
    let lan = TestLan::new(2, 3);
    let mut server = Server::start(
        repo.path().to_str().unwrap(),
        &[
            "--node-grace",
            "2s",
            "--pod-eviction-timeout",
            "3s",
            "--agent-listen",
            &lan.agents_at(),
        ],
    );
    let agent_data = tempfile::tempdir().unwrap();
    let suffix = std::process::id();
    let names: Vec<String> = (1..=3).map(|i| format!("e2e-{suffix}-n{i}")).collect();
    let nodes: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut agents: Vec<Agent> = nodes
        .iter()
        .zip(&lan.hosts)
        .map(|(n, h)| Agent::start(n, &server, agent_data.path(), h, &[]))
        .collect();
    server.wait_for("3 ready nodes", |s| {
        s.get("/api/v1/nodes")
            .and_then(|l| l["items"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter(|n| {
                n["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .count()
            == 3
    });

    // Commit → 3 pods running, one per node.
    write(repo.path(), "web.yaml", &deployment(3, "1"));
    let committed = Instant::now();
    commit(repo.path(), "web, 3 replicas");
    wait_serving(&server, 3, "1", Duration::from_secs(60));
    eprintln!("commit to 3 pods ready: {:?}", committed.elapsed());
    let spread: BTreeSet<String> = serving(&server, "1").into_iter().map(|(_, n)| n).collect();
    assert_eq!(spread.len(), 3, "one pod per node: {spread:?}");
    server.wait_for("3 containers in Docker", |_| {
        containers(&nodes).values().sum::<usize>() == 3
    });
    // Endpoints follow ready pods one controller later.
    let endpoints = |s: &Server| {
        s.get("/api/v1/namespaces/default/endpoints/web")
            .unwrap_or_default()
    };
    server.wait_for("the 3 ready pods in the Service's endpoints", |s| {
        endpoints(s)["subsets"][0]["addresses"]
            .as_array()
            .is_some_and(|a| a.len() == 3)
    });
    let endpoints = endpoints(&server);
    assert_eq!(
        endpoints["subsets"][0]["addresses"]
            .as_array()
            .map(Vec::len),
        Some(3),
        "{endpoints}"
    );
    assert_eq!(endpoints["subsets"][0]["ports"][0]["port"], 8080);
    // What a user sees from the CLI.
    let keel = |args: &[&str]| {
        let out = server
            .keel()
            .args(args)
            .args(["--server", &server.url])
            .output()
            .expect("keel runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // Ready pods reach the Deployment's status through its ReplicaSet's: two controllers
    // later, so `keel status` is waited for, not read once.
    let ready_at = Instant::now();
    server.wait_for("keel status to show the Deployment healthy", |_| {
        keel(&["status"]).0 == Some(0)
    });
    eprintln!(
        "3 pods ready to the Deployment healthy: {:?}",
        ready_at.elapsed()
    );
    let (code, status) = keel(&["status"]);
    assert_eq!(code, Some(0), "{status}");
    assert!(
        status.contains("Healthy   3/3 available, 3 updated"),
        "{status}"
    );
    let (_, table) = keel(&["get", "po", "-o", "wide"]);
    assert_eq!(table.matches("Running").count(), 3, "{table}");
    let pod = serving(&server, "1")[0].0.clone();
    server.wait_for("the pod's kubelet events", |_| {
        keel(&["describe", "pod", &pod])
            .1
            .contains("Started container web")
    });
    let (_, described) = keel(&["describe", "pod", &pod]);
    assert!(
        described.contains("Successfully assigned default/"),
        "{described}"
    );
    let (code, logs) = keel(&["logs", &pod]);
    assert_eq!((code, logs.trim()), (Some(0), "serving version 1"));
    let (_, described) = keel(&["describe", "deploy", "web"]);
    assert!(
        described.contains("Scaled up replica set web-"),
        "{described}"
    );
    let (code, missing) = keel(&["logs", "no-such-pod"]);
    assert_eq!(code, Some(1));
    assert!(
        missing.contains("pods \"no-such-pod\" not found"),
        "{missing}"
    );

    let first_rs: Vec<String> = replica_sets(&server)
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(first_rs.len(), 1, "{first_rs:?}");

    // Scale to 5.
    write(repo.path(), "web.yaml", &deployment(5, "1"));
    commit(repo.path(), "web, 5 replicas");
    wait_serving(&server, 5, "1", Duration::from_secs(60));
    server.wait_for("5 containers in Docker", |_| {
        containers(&nodes).values().sum::<usize>() == 5
    });

    // A new image rolls out, never with fewer than 5 - maxUnavailable pods ready.
    write(repo.path(), "web.yaml", &deployment(5, "2"));
    commit(repo.path(), "web:2");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut fewest = usize::MAX;
    loop {
        let all = pods(&server);
        let ready_now = all.iter().filter(|p| ready(p)).count();
        fewest = fewest.min(ready_now);
        if serving(&server, "2").len() == 5 && all.len() == 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rollout to web:2 did not finish: {all:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        fewest >= 4,
        "maxUnavailable 1 was not respected: {fewest} ready at one point"
    );
    assert_eq!(replica_sets(&server).len(), 2);

    // git revert: the first ReplicaSet comes back, no third one is made.
    git(repo.path(), &["revert", "--no-edit", "HEAD"]);
    wait_serving(&server, 5, "1", Duration::from_secs(90));
    let rss = replica_sets(&server);
    assert_eq!(rss.len(), 2, "{rss:?}");
    let active: Vec<&Value> = rss.iter().filter(|r| r["spec"]["replicas"] == 5).collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["metadata"]["name"], first_rs[0].as_str());

    // A container removed behind keel's back is replaced.
    let victim = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=keel.dev/node={}", nodes[0]),
        "--filter",
        "label=keel.dev/role=app",
    ]);
    let victim = victim
        .lines()
        .next()
        .expect("a container on the first node")
        .to_string();
    docker(&["rm", "-f", &victim]);
    server.wait_for("the removed container replaced", |_| {
        containers(&nodes).values().sum::<usize>() == 5
            && !docker(&["ps", "-q", "--no-trunc"]).contains(&victim)
    });
    wait_serving(&server, 5, "1", Duration::from_secs(30));

    // A dead node: its pods run elsewhere within 30 s (grace 2 s + eviction 3 s here).
    let dead = nodes[1];
    agents[1].kill();
    let killed = Instant::now();
    server.wait_up_to(
        Duration::from_secs(30),
        "pods moved off the dead node",
        |s| {
            let now = serving(s, "1");
            now.len() == 5 && now.iter().all(|(_, n)| n != dead) && pods(s).len() == 5
        },
    );
    eprintln!("dead node to all pods elsewhere: {:?}", killed.elapsed());
    // It comes back: its stale containers are stopped.
    agents[1].spawn();
    server.wait_for("the returning node's stale containers stopped", |_| {
        containers(&[dead])[dead] == 0
    });

    // The server restarts mid-rollout: same end state, no duplicate containers.
    write(repo.path(), "web.yaml", &deployment(5, "2"));
    commit(repo.path(), "web:2 again");
    server.wait_for("the rollout to start", |s| !serving(s, "2").is_empty());
    let cluster_ip = |s: &Server| {
        s.get("/api/v1/namespaces/default/services/web")
            .and_then(|svc| svc["spec"]["clusterIP"].as_str().map(str::to_string))
    };
    let before = cluster_ip(&server).expect("web has a ClusterIP");
    server.restart();
    wait_serving(&server, 5, "2", Duration::from_secs(90));
    assert_eq!(
        cluster_ip(&server),
        Some(before),
        "a Service keeps its address across restarts"
    );
    server.wait_for("exactly 5 app containers in Docker", |_| {
        containers(&nodes).values().sum::<usize>() == 5
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        containers(&nodes).values().sum::<usize>(),
        5,
        "no duplicates appear later"
    );
}
