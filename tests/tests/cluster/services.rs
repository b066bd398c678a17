//! Services balance over ready pods, from inside the cluster and from outside it: three
//! nodes, each its own network host, so most of this traffic crosses the pod network.

use std::collections::BTreeSet;
use std::time::Duration;

use keel_e2e::{Server, binary, commit, docker_available, git, import_image, write};

use keel_nodehost::NodeHost;

use super::service_paths::{check_ingress, check_kernel_path, check_load_balancer};
use super::support::{Agent, TestLan, docker, http_get, http_get_in};

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
        command: ["sh", "-c", "hostname > /www/index.html; mkdir -p /www/cgi-bin; printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\necho xff=$HTTP_X_FORWARDED_FOR proto=$HTTP_X_FORWARDED_PROTO\\n' > /www/cgi-bin/client; chmod +x /www/cgi-bin/client; touch /tmp/ready; udp-echo 9000 & exec httpd -f -p 8080 -h /www"]
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
metadata: {{name: echo-pods}}
spec:
  clusterIP: None
  selector: {{app: echo}}
  ports: [{{name: http, port: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo-public}}
spec:
  type: NodePort
  selector: {{app: echo}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo-local}}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {{app: echo}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo-sticky}}
spec:
  selector: {{app: echo}}
  sessionAffinity: ClientIP
  sessionAffinityConfig: {{clientIP: {{timeoutSeconds: 600}}}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo-lb}}
spec:
  type: LoadBalancer
  selector: {{app: echo}}
  ports: [{{port: 8081, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: nobody}}
spec:
  selector: {{app: nobody}}
  ports: [{{port: 80}}]
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

/// The answer to one datagram sent to `addr` from a fresh socket (a new UDP session) in
/// node host `host`.
fn udp_ask(host: &NodeHost, addr: &str, payload: &str) -> Option<String> {
    let out = host
        .command(binary("udp-echo"))
        .args(["ask", addr, payload])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub(super) fn ready_endpoints(server: &Server, service: &str) -> BTreeSet<String> {
    server
        .get(&format!("/api/v1/namespaces/default/endpoints/{service}"))
        .and_then(|e| e["subsets"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["targetRef"]["name"].as_str().map(str::to_string))
        .collect()
}

/// (name, IP) of the running pods of `app`.
fn pods_of(server: &Server, app: &str) -> Vec<(String, String)> {
    server
        .get("/api/v1/namespaces/default/pods")
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == app)
        .filter_map(|p| {
            Some((
                p["metadata"]["name"].as_str()?.to_string(),
                p["status"]["podIP"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The node's Service table as `nft` lists it.
pub(super) fn nft_table(host: &NodeHost) -> String {
    let out = host
        .command("nft")
        .args(["list", "table", "ip", "keel-services"])
        .output()
        .expect("nft runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The kernel's handle of the Service table: a new one each time the table is made anew.
pub(super) fn table_handle(host: &NodeHost) -> String {
    let out = host
        .command("nft")
        .args(["-a", "list", "table", "ip", "keel-services"])
        .output()
        .expect("nft runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().next().unwrap_or_default().to_string()
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
    let lan = TestLan::new(3, 3);
    let gateway = lan.lan.gateway().octets();
    let pool = format!("{}.{}.{}.224/28", gateway[0], gateway[1], gateway[2]);
    let server = Server::start(
        repo.path().to_str().unwrap(),
        &[
            "--service-cidr",
            &cidr,
            "--agent-listen",
            &lan.agents_at(),
            "--loadbalancer-pool",
            &pool,
        ],
    );
    let agent_data = tempfile::tempdir().unwrap();
    let names: Vec<String> = (1..=3)
        .map(|i| format!("svc-{}-n{i}", std::process::id()))
        .collect();
    let mut agents: Vec<Agent> = names
        .iter()
        .zip(&lan.hosts)
        .map(|(n, h)| Agent::start(n, &server, agent_data.path(), h, &[]))
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

    // From a node's host, by ClusterIP: every pod answers in turn, two of three from other
    // nodes.
    let host = &lan.hosts[0];
    let ask = |addr: &str| http_get_in(host, addr);
    let front = format!("{cluster_ip}:80");
    server.wait_for("the ClusterIP to answer", |_| ask(&front).is_some());
    // The node's proxy learns the third endpoint with its next desired set, a moment after
    // the store has it ready. Once it has it, every pod answers in turn.
    server.wait_for("the node's proxy to have all three endpoints", |_| {
        let seen: BTreeSet<String> = (0..12).filter_map(|_| ask(&front)).collect();
        seen == echo_pods
    });
    let answers: Vec<String> = (0..30)
        .map(|i| ask(&front).unwrap_or_else(|| panic!("request {i} through {front} failed")))
        .collect();
    let answered: BTreeSet<String> = answers.iter().cloned().collect();
    assert_eq!(answered, echo_pods, "all three pods serve: {answers:?}");

    // NodePort, from outside the cluster (the machine, on the LAN) at a node's address.
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
    let by_node_port = format!("{}:{node_port}", lan.hosts[1].ip);
    server.wait_for("the NodePort to answer", |_| {
        http_get(&by_node_port).is_some()
    });
    assert!(echo_pods.contains(&http_get(&by_node_port).unwrap_or_default()));
    check_kernel_path(&server, &lan, &names, &cluster_ip);
    check_load_balancer(&server, &lan, &pool);
    check_ingress(&server, &lan, repo.path());

    // UDP through the Service: each new client socket is a session on some pod.
    let dns = format!("{cluster_ip}:53");
    let mut udp_pods = BTreeSet::new();
    for i in 0..12 {
        let reply = udp_ask(host, &dns, &format!("ping{i}"))
            .unwrap_or_else(|| panic!("udp {i} unanswered"));
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

    // Cluster DNS, from the client pod: the Service by its short name (the pod's search
    // path) and its full one, the headless Service's pods, the ClusterIP's name, and a name
    // outside the cluster through the node's resolvers.
    let client = docker(&[
        "ps",
        "-q",
        "--filter",
        "label=keel.dev/pod-name=client",
        "--filter",
        "label=keel.dev/role=app",
    ]);
    let in_client = |script: &str| docker(&["exec", &client, "sh", "-c", script]);
    let full = in_client("nslookup echo.default.svc.cluster.local");
    assert!(full.contains(&cluster_ip), "{full}");
    server.wait_for("a page through the Service's short name", |_| {
        echo_pods.contains(in_client("wget -qO- http://echo/").trim())
    });
    let pod_ips: BTreeSet<String> = pods_of(&server, "echo")
        .into_iter()
        .map(|(_, ip)| ip)
        .collect();
    let headless = in_client("nslookup echo-pods.default.svc.cluster.local");
    for ip in &pod_ips {
        assert!(headless.contains(ip.as_str()), "{ip} in {headless}");
    }
    assert!(!headless.contains(&cluster_ip), "{headless}");
    let reverse = in_client(&format!("nslookup {cluster_ip}"));
    assert!(
        reverse.contains("echo.default.svc.cluster.local"),
        "{reverse}"
    );
    let missing = in_client("nslookup nope.default.svc.cluster.local 2>&1; true");
    assert!(
        missing.contains("NXDOMAIN") || missing.contains("can't find"),
        "{missing}"
    );
    let outside = in_client("nslookup deb.debian.org 2>&1");
    assert!(
        outside.contains("Name:")
            && !outside.contains("can't find")
            && !outside.contains("timed out"),
        "{outside}"
    );

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
    // Each agent applies the new endpoints within a second.
    std::thread::sleep(Duration::from_secs(1));
    for i in 0..20 {
        let answer = ask(&front).unwrap_or_else(|| panic!("request {i} failed"));
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
        (0..5).all(|_| ask(&front).as_deref() == Some(survivor.as_str()))
    });
    for _ in 0..10 {
        assert_eq!(ask(&front).as_deref(), Some(survivor.as_str()));
    }
    // The survivor reaching itself through its own Service (hairpin).
    let survivor_container = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=keel.dev/pod-name={survivor}"),
        "--filter",
        "label=keel.dev/role=app",
    ]);
    // (This busybox's wget crashes on -T; the request is answered at once or refused.)
    let itself = docker(&[
        "exec",
        survivor_container.lines().next().unwrap_or_default(),
        "wget",
        "-qO-",
        "http://echo/",
    ]);
    assert_eq!(itself, survivor, "hairpin through the ClusterIP");

    // The NodePort Service goes away: its port stops answering.
    let table = nft_table(host);
    assert!(table.contains(": goto ext-default/echo-public/"), "{table}");
    write(
        repo.path(),
        "services.yaml",
        echo_services(&cluster_ip)
            .split("---")
            .next()
            .unwrap_or_default(),
    );
    commit(repo.path(), "no public service");
    server.wait_for("the NodePort's chains removed", |_| {
        !nft_table(host).contains("echo-public")
    });
    server.wait_for("the NodePort closed", |_| http_get(&by_node_port).is_none());
    assert_eq!(ask(&front).as_deref(), Some(survivor.as_str()));

    // A killed agent's table keeps serving until it is back, and is then adopted.
    // (Before any agent restarts: a restarted agent probes its pods' readiness afresh, and
    // the Service's endpoints that flicker meanwhile would reach this agent just before
    // it dies, leaving its table with none, as seen once in CI.)
    let other = &lan.hosts[1];
    agents[1].kill();
    // (Asked a few times: one request can time out on a loaded machine, as seen once in CI;
    // the agent stays down throughout, so any answer is its table's.)
    let answers: Vec<Option<String>> = (0..3).map(|_| http_get_in(other, &front)).collect();
    assert!(
        answers.contains(&Some(survivor.clone())),
        "Service traffic while the agent is down: {answers:?}"
    );
    let before = table_handle(other);
    agents[1].spawn();
    // (Its pods' readiness is probed afresh, as a kubelet's is after a restart, so the
    // Service may briefly have no endpoint there.)
    server.wait_for("the restarted agent to replace the table it found", |_| {
        table_handle(other) != before
            && http_get_in(other, &front).as_deref() == Some(survivor.as_str())
    });

    // A clean stop removes the node's Service table; the restarted agent makes it again.
    agents[0].terminate();
    assert!(
        !nft_table(host).contains("keel-services"),
        "table left behind"
    );
    agents[0].spawn();
    server.wait_for("the restarted agent's Service table", |_| {
        ask(&front).as_deref() == Some(survivor.as_str())
    });
}
