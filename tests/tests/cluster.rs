//! A whole cluster on this machine: `keel server` and three `keel-agent` processes on the real
//! Docker engine, driven only by git commits. What is asserted is what runs: pods in the API
//! and containers counted in Docker.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keel_e2e::{
    Server, binary, commit, docker_available, free_port, git, import_busybox_image, import_image,
    write,
};
use serde_json::Value;

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

/// A `keel-agent` process on Docker, killed (SIGKILL) when dropped.
struct Agent {
    name: String,
    child: Child,
    data: std::path::PathBuf,
    port: u16,
    server: String,
    /// The join token it trades for its certificate on first start.
    token: String,
}

impl Agent {
    fn start(name: &str, server: &Server, data: &Path) -> Agent {
        let mut agent = Agent {
            name: name.to_string(),
            child: Command::new("true").spawn().expect("placeholder"),
            data: data.join(name),
            port: free_port(),
            server: server.agents.clone(),
            token: server.join_token(),
        };
        agent.spawn();
        agent
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{}.log", self.data.display()))
            .expect("agent log");
        self.child = Command::new(binary("keel-agent"))
            .args(["--name", &self.name, "--server", &self.server])
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(&self.data)
            .env("KEEL_JOIN_TOKEN", &self.token)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("keel-agent starts");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        // What a killed agent cannot remove itself, with keel up's own cleanup: the ClusterIP
        // addresses it added to `lo`, and its containers, whatever state the test left them in.
        keel_cli::up::remove_addresses(&self.data.join(&self.name));
        keel_cli::up::remove_containers(&self.name);
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Running app containers per node (sandboxes not counted).
fn containers(nodes: &[&str]) -> BTreeMap<String, usize> {
    nodes
        .iter()
        .map(|n| {
            let out = docker(&[
                "ps",
                "-q",
                "--filter",
                &format!("label=keel.dev/node={n}"),
                "--filter",
                "label=keel.dev/role=app",
            ]);
            (n.to_string(), out.lines().count())
        })
        .collect()
}

fn pods(server: &Server) -> Vec<Value> {
    server
        .get("/api/v1/namespaces/default/pods")
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
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
    let mut server = Server::start(
        repo.path().to_str().unwrap(),
        &["--node-grace", "2s", "--pod-eviction-timeout", "3s"],
    );
    let agent_data = tempfile::tempdir().unwrap();
    let suffix = std::process::id();
    let names: Vec<String> = (1..=3).map(|i| format!("e2e-{suffix}-n{i}")).collect();
    let nodes: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut agents: Vec<Agent> = nodes
        .iter()
        .map(|n| Agent::start(n, &server, agent_data.path()))
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
    let endpoints = server
        .get("/api/v1/namespaces/default/endpoints/web")
        .unwrap();
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

fn echo_deployment(replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: echo}}}}
  template:
    metadata: {{labels: {{app: echo}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: echo
        image: keel-e2e/echo:1
        imagePullPolicy: Never
        command: ["sh", "-c", "hostname > /www/index.html; touch /tmp/ready; udp-echo 9000 & exec httpd -f -p 8080 -h /www"]
        ports:
        - {{name: http, containerPort: 8080}}
        - {{name: dns, containerPort: 9000, protocol: UDP}}
        readinessProbe:
          exec: {{command: [cat, /tmp/ready]}}
          periodSeconds: 1
          failureThreshold: 1
"#
    )
}

fn echo_services(cluster_ip: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: echo}}
spec:
  clusterIP: {cluster_ip}
  selector: {{app: echo}}
  ports:
  - {{name: http, port: 80, targetPort: http}}
  - {{name: dns, port: 53, targetPort: dns, protocol: UDP}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo-public}}
spec:
  type: NodePort
  selector: {{app: echo}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
    )
}

/// A pod that asks the `echo` Service once a second, by its environment variables and by
/// its address, logging who answered.
fn client_pod(cluster_ip: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: keel-e2e/echo:1
    imagePullPolicy: Never
    command: ["sh", "-c", "while true; do echo \"by-env $(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc $ECHO_SERVICE_HOST $ECHO_SERVICE_PORT | tail -n 1)\"; echo \"by-ip $(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {cluster_ip} 80 | tail -n 1)\"; sleep 1; done"]
"#
    )
}

/// The body of `GET /` at `addr`, trimmed, if it answers within 5 s.
fn http_get(addr: &str) -> Option<String> {
    http_get_path(addr, "/").map(|b| b.trim().to_string())
}

/// The answer to one datagram sent to `addr` from a fresh socket (a new UDP session).
fn udp_ask(addr: &str, payload: &str) -> Option<String> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    socket.send_to(payload.as_bytes(), addr).ok()?;
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).to_string())
}

fn ready_endpoints(server: &Server, service: &str) -> BTreeSet<String> {
    server
        .get(&format!("/api/v1/namespaces/default/endpoints/{service}"))
        .and_then(|e| e["subsets"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["targetRef"]["name"].as_str().map(str::to_string))
        .collect()
}

fn lo_addresses() -> String {
    Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", "lo"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

#[test]
fn services_balance_over_ready_pods_inside_and_outside_the_cluster() {
    if !docker_available() {
        return;
    }
    import_image(
        "keel-e2e/echo:1",
        &[("/www/index.html", "placeholder\n")],
        &[binary("udp-echo")],
    );
    // A Service range of this test's own (see Server::start), with a stated address in it.
    let net = 128 + (std::process::id() % 64);
    let cidr = format!("10.{net}.250.0/24");
    let cluster_ip = format!("10.{net}.250.10");
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    write(repo.path(), "services.yaml", &echo_services(&cluster_ip));
    commit(repo.path(), "services");
    let server = Server::start(repo.path().to_str().unwrap(), &["--service-cidr", &cidr]);
    let agent_data = tempfile::tempdir().unwrap();
    let names: Vec<String> = (1..=3)
        .map(|i| format!("svc-{}-n{i}", std::process::id()))
        .collect();
    let _agents: Vec<Agent> = names
        .iter()
        .map(|n| Agent::start(n, &server, agent_data.path()))
        .collect();
    server.wait_for("3 nodes", |s| {
        s.get("/api/v1/nodes")
            .and_then(|l| l["items"].as_array().map(Vec::len))
            == Some(3)
    });
    write(repo.path(), "echo.yaml", &echo_deployment(3));
    write(repo.path(), "client.yaml", &client_pod(&cluster_ip));
    commit(repo.path(), "echo and its client");
    server.wait_up_to(Duration::from_secs(90), "3 ready echo endpoints", |s| {
        ready_endpoints(s, "echo").len() == 3
    });
    let echo_pods = ready_endpoints(&server, "echo");

    // From the host, by ClusterIP: every pod answers in turn.
    let front = format!("{cluster_ip}:80");
    server.wait_for("the ClusterIP to answer", |_| http_get(&front).is_some());
    // The three agents on this host share the ClusterIP; each learns the third endpoint
    // with its next desired set, a moment after the store has it ready. Once each has it,
    // every pod answers in turn.
    server.wait_for("every agent's proxy to have all three endpoints", |_| {
        let seen: BTreeSet<String> = (0..12).filter_map(|_| http_get(&front)).collect();
        seen == echo_pods
    });
    let answers: Vec<String> = (0..30)
        .map(|i| http_get(&front).unwrap_or_else(|| panic!("request {i} through {front} failed")))
        .collect();
    let answered: BTreeSet<String> = answers.iter().cloned().collect();
    assert_eq!(answered, echo_pods, "all three pods serve: {answers:?}");

    // NodePort, from the host on loopback.
    let public = server
        .get("/api/v1/namespaces/default/services/echo-public")
        .expect("the NodePort Service");
    let node_port = public["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .expect("a node port was assigned");
    let allocated_ip = public["spec"]["clusterIP"].as_str().unwrap_or_default();
    assert!(
        allocated_ip.starts_with(&format!("10.{net}.250.")),
        "{public}"
    );
    let by_node_port = format!("127.0.0.1:{node_port}");
    server.wait_for("the NodePort to answer", |_| {
        http_get(&by_node_port).is_some()
    });
    assert!(echo_pods.contains(&http_get(&by_node_port).unwrap_or_default()));

    // UDP through the Service: each new client socket is a session on some pod.
    let dns = format!("{cluster_ip}:53");
    let mut udp_pods = BTreeSet::new();
    for i in 0..12 {
        let reply =
            udp_ask(&dns, &format!("ping{i}")).unwrap_or_else(|| panic!("udp {i} unanswered"));
        let (pod, payload) = reply.split_once(':').expect("HOST:PAYLOAD");
        assert_eq!(payload, format!("ping{i}"));
        udp_pods.insert(pod.to_string());
    }
    assert!(
        udp_pods.len() >= 2 && udp_pods.is_subset(&echo_pods),
        "{udp_pods:?}"
    );

    // Inside the cluster: a pod reaches the Service by its variables and by its address.
    server.wait_up_to(Duration::from_secs(60), "the client pod's answers", |s| {
        let logs = s.text("/api/v1/namespaces/default/pods/client/log");
        let answered = |how: &str| {
            logs.lines()
                .filter_map(|l| l.strip_prefix(how))
                .any(|pod| echo_pods.contains(pod.trim()))
        };
        answered("by-env ") && answered("by-ip ")
    });

    // A pod failing readiness stops receiving traffic.
    let unready = echo_pods.iter().next().cloned().expect("a pod");
    let container = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=keel.dev/pod-name={unready}"),
        "--filter",
        "label=keel.dev/role=app",
    ]);
    assert!(!container.is_empty(), "the container of {unready}");
    docker(&[
        "exec",
        container.lines().next().unwrap_or_default(),
        "rm",
        "/tmp/ready",
    ]);
    server.wait_for("the unready pod out of the endpoints", |s| {
        let now = ready_endpoints(s, "echo");
        now.len() == 2 && !now.contains(&unready)
    });
    // Each agent applies the new endpoints on its next sync.
    std::thread::sleep(Duration::from_secs(2));
    for i in 0..20 {
        let answer = http_get(&front).unwrap_or_else(|| panic!("request {i} failed"));
        assert_ne!(answer, unready, "an unready pod got traffic");
    }

    // Scale to one: all traffic moves there.
    write(repo.path(), "echo.yaml", &echo_deployment(1));
    commit(repo.path(), "one echo");
    server.wait_up_to(Duration::from_secs(60), "one echo endpoint", |s| {
        ready_endpoints(s, "echo").len() == 1
    });
    let survivor = ready_endpoints(&server, "echo")
        .into_iter()
        .next()
        .expect("one");
    server.wait_for("traffic only to the survivor", |_| {
        (0..5).all(|_| http_get(&front).as_deref() == Some(survivor.as_str()))
    });
    for _ in 0..10 {
        assert_eq!(http_get(&front).as_deref(), Some(survivor.as_str()));
    }

    // The NodePort Service goes away: its address leaves the host, its port stops.
    assert!(lo_addresses().contains(&format!("{allocated_ip}/32")));
    write(
        repo.path(),
        "services.yaml",
        echo_services(&cluster_ip)
            .split("---")
            .next()
            .unwrap_or_default(),
    );
    commit(repo.path(), "no public service");
    server.wait_for("the NodePort's address removed from lo", |_| {
        !lo_addresses().contains(&format!("{allocated_ip}/32"))
    });
    server.wait_for("the NodePort closed", |_| http_get(&by_node_port).is_none());
    assert_eq!(http_get(&front).as_deref(), Some(survivor.as_str()));
}

/// `keel up`, run as the README's demo runs it: output to a file, stopped with SIGINT.
struct Up {
    child: Child,
    out: std::path::PathBuf,
}

impl Up {
    fn start(data: &Path, listen: &str, agents: &str) -> Up {
        let out = data.with_extension(format!("{}.out", std::process::id()));
        let file = std::fs::File::create(&out).expect("output file");
        let child = Command::new(binary("keel"))
            .args(["up", "--listen", listen, "--agent-listen", agents])
            .arg("--data-dir")
            .arg(data)
            .stdout(file.try_clone().expect("dup"))
            .stderr(file)
            .spawn()
            .expect("keel up starts");
        Up { child, out }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn wait_output(&self, what: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.output().contains(what) {
            assert!(
                Instant::now() < deadline,
                "keel up did not print {what:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Ctrl-C, and the exit status.
    fn interrupt(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("keel up did not stop on SIGINT:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.interrupt();
        }
        // Only a run that held the machine's keel up lock made these; another (a developer's
        // demo) is left alone.
        if self.output().contains("another keel up is running") {
            return;
        }
        for node in ["local-1", "local-2", "local-3"] {
            keel_cli::up::remove_containers(node);
        }
    }
}

fn local_containers() -> usize {
    ["local-1", "local-2", "local-3"]
        .iter()
        .map(|n| {
            docker(&["ps", "-aq", "--filter", &format!("label=keel.dev/node={n}")])
                .lines()
                .count()
        })
        .sum()
}

#[test]
fn the_readme_demo_runs_changes_plans_reverts_stops_and_resumes() {
    if !docker_available() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("up");
    let listen = format!("127.0.0.1:{}", free_port());
    let agents = format!("127.0.0.1:{}", free_port());
    let mut up = Up::start(&data, &listen, &agents);
    up.wait_output("keel is up.", Duration::from_secs(240));
    let output = up.output();
    for stage in [
        "images ready",
        "created a repository with the example app",
        "3 nodes ready: local-1, local-2, local-3",
        "pods ready: 6/6",
    ] {
        assert!(output.contains(stage), "{stage:?} in:\n{output}");
    }
    assert!(
        output.contains("web    http://127.0.0.1:30080/"),
        "{output}"
    );
    assert!(!output.contains("change-me"), "no Secret value is printed");
    let repo = data.join("repo");
    let page = || http_get_path("127.0.0.1:30080", "/").unwrap_or_default();
    // The URL works once printed.
    let first = page();
    assert!(first.contains("<h1>Hello from keel</h1>"), "{first}");
    assert!(first.contains("image keel-example/web:1"), "{first}");
    assert!(
        first.contains("api answered: hello from api-") && first.contains("token of 9 characters"),
        "web reached api through its Service: {first}"
    );

    // Change the page in a commit: served within seconds.
    let configmap = repo.join("web/configmap.yaml");
    let text = std::fs::read_to_string(&configmap).unwrap();
    std::fs::write(
        &configmap,
        text.replace("Hello from keel", "Hello, reviewers"),
    )
    .unwrap();
    git(&repo, &["commit", "-qam", "new page"]);
    let changed = Instant::now();
    wait_until(Duration::from_secs(60), "the new page served", || {
        page().contains("Hello, reviewers")
    });
    eprintln!("commit to new page served: {:?}", changed.elapsed());

    // A branch's change, described by keel plan.
    git(&repo, &["checkout", "-q", "-b", "v2"]);
    let deployment = repo.join("web/deployment.yaml");
    let text = std::fs::read_to_string(&deployment).unwrap();
    std::fs::write(&deployment, text.replace("web:1", "web:2")).unwrap();
    git(&repo, &["commit", "-qam", "web 2"]);
    git(&repo, &["checkout", "-q", "main"]);
    let plan = Command::new(binary("keel"))
        .args([
            "plan",
            "--repo",
            repo.to_str().unwrap(),
            "--from",
            "main",
            "--to",
            "v2",
        ])
        .output()
        .expect("keel plan");
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(plan.status.code(), Some(2), "changes: {plan_text}");
    assert!(
        plan_text
            .contains("image keel-example/web:1 → keel-example/web:2, rolling update of 3 pods"),
        "{plan_text}"
    );

    // Merged: a rolling update to web:2; reverted: back to web:1.
    let serving =
        |tag: &str| (0..6).all(|_| page().contains(&format!("image keel-example/web:{tag}")));
    git(&repo, &["merge", "-q", "v2"]);
    wait_until(Duration::from_secs(90), "every pod serving web:2", || {
        serving("2")
    });
    git(&repo, &["revert", "--no-edit", "HEAD"]);
    wait_until(Duration::from_secs(90), "every pod back on web:1", || {
        serving("1")
    });
    // As the summary says: the CLI finds the API token through KEEL_DATA_DIR.
    let rs = Command::new(binary("keel"))
        .env("KEEL_DATA_DIR", data.join("server"))
        .args(["get", "rs", "--server", &format!("http://{listen}")])
        .output()
        .expect("keel get rs");
    let rs = String::from_utf8_lossy(&rs.stdout).to_string();
    assert_eq!(
        rs.lines().count(),
        3,
        "two ReplicaSets, the first reused: {rs}"
    );
    assert!(page().contains("Hello, reviewers"), "the page change stays");

    // Ctrl-C: everything stops and the containers go.
    assert_eq!(up.interrupt(), Some(0), "{}", up.output());
    assert_eq!(local_containers(), 0, "keel up removed its containers");
    assert!(http_get_path("127.0.0.1:30080", "/").is_none());

    // Again on the same data dir: it resumes, and the finished Job is not run again.
    let up = Up::start(&data, &listen, &agents);
    up.wait_output("keel is up.", Duration::from_secs(240));
    assert!(
        up.output().contains("resuming with the repository"),
        "{}",
        up.output()
    );
    wait_until(Duration::from_secs(60), "web answering again", || {
        page().contains("Hello, reviewers")
    });
    let server = format!("http://{listen}");
    let job = Command::new(binary("keel"))
        .env("KEEL_DATA_DIR", data.join("server"))
        .args(["get", "jobs", "--server", &server])
        .output()
        .expect("keel get jobs");
    let jobs = String::from_utf8_lossy(&job.stdout);
    let describe = Command::new(binary("keel"))
        .env("KEEL_DATA_DIR", data.join("server"))
        .args(["describe", "job", "migrate", "--server", &server])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    assert!(
        jobs.contains("1/1"),
        "the migration stays done: {jobs}\n{describe}\n{}",
        std::fs::read_to_string(data.join("logs/server.log")).unwrap_or_default()
    );
    let migrate_lines: Vec<String> = (1..=3)
        .flat_map(|i| {
            std::fs::read_to_string(data.join(format!("logs/local-{i}.log")))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("pod=default/migrate"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let runs = migrate_lines
        .iter()
        .filter(|l| l.contains("container started"))
        .count();
    assert_eq!(
        runs,
        1,
        "the Job ran once across both runs:\n{}",
        migrate_lines.join("\n")
    );
}

fn wait_until(limit: Duration, what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The body of `GET path` at `addr`.
fn http_get_path(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = addr.parse().ok()?;
    let mut conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    // CGI answers (busybox httpd passes the script's headers through) may end their headers
    // with a bare blank line.
    let crlf = text.find("\r\n\r\n").map(|i| i + 4);
    let lf = text.find("\n\n").map(|i| i + 2);
    let start = match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some(text[start..].to_string())
}
