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

fn stateful_set(replicas: u32, tag: &str, partition: u32, when_scaled: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: db}}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {{app: db}}
  ports: [{{port: 8080}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  serviceName: db
  replicas: {replicas}
  selector: {{matchLabels: {{app: db}}}}
  updateStrategy:
    rollingUpdate: {{partition: {partition}}}
  persistentVolumeClaimRetentionPolicy: {{whenScaled: {when_scaled}}}
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Mi}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: keel-e2e/web:{tag}
        imagePullPolicy: Never
        command: ["sh", "-c", "sleep 1; exec httpd -f -p 8080 -h /www"]
        volumeMounts: [{{name: data, mountPath: /data}}]
        readinessProbe:
          tcpSocket: {{port: 8080}}
          periodSeconds: 1
"#
    )
}

/// The StatefulSet's pods: name → (image tag, Running and Ready), terminating ones marked
/// `(terminating)`.
fn db_pods(server: &Server) -> BTreeMap<String, (String, bool)> {
    pods(server)
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "db")
        .map(|p| {
            let mut tag = image(p).rsplit(':').next().unwrap_or("").to_string();
            if !p["metadata"]["deletionTimestamp"].is_null() {
                tag.push_str(" (terminating)");
            }
            let up = p["status"]["phase"] == "Running" && ready(p);
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                (tag, up),
            )
        })
        .collect()
}

/// Running app containers of the StatefulSet's pods, by pod name.
fn db_containers() -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    let names = docker(&[
        "ps",
        "--filter",
        "label=keel.dev/role=app",
        "--format",
        "{{.Label \"keel.dev/pod-name\"}}",
    ]);
    for name in names.lines().filter(|n| n.starts_with("db-")) {
        *count.entry(name.to_string()).or_insert(0) += 1;
    }
    count
}

/// Polls `db_pods` until `done`, returning each distinct state seen, in order; all along,
/// no pod name ever has two containers running (a StatefulSet's identity is never doubled).
fn watch_db(
    server: &Server,
    what: &str,
    done: impl Fn(&BTreeMap<String, (String, bool)>) -> bool,
) -> Vec<BTreeMap<String, (String, bool)>> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen: Vec<BTreeMap<String, (String, bool)>> = Vec::new();
    loop {
        let now = db_pods(server);
        if seen.last() != Some(&now) {
            seen.push(now.clone());
        }
        let doubled: Vec<(String, usize)> = db_containers()
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .collect();
        assert!(
            doubled.is_empty(),
            "two containers of one pod name: {doubled:?} after {seen:#?}"
        );
        if done(&now) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {seen:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A StatefulSet on the same nodes: pods made one at a time in order, each after the one
/// before is ready; stable names and host names; removed from the highest ordinal; a
/// partitioned update that leaves the lower ordinals alone.
/// The app container of pod `name`.
fn container_of(name: &str) -> String {
    let ids = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=keel.dev/pod-name={name}"),
        "--filter",
        "label=keel.dev/role=app",
    ]);
    ids.lines()
        .next()
        .unwrap_or_else(|| panic!("{name}'s container"))
        .to_string()
}

/// Each db pod's claim, its volume and the volume's node; and the pod's own node.
fn db_volumes(server: &Server) -> BTreeMap<String, (String, String, String)> {
    let mut out = BTreeMap::new();
    for p in pods(server)
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "db")
    {
        let name = p["metadata"]["name"].as_str().unwrap_or("").to_string();
        let claim = format!("data-{name}");
        let pvc = server
            .get(&format!(
                "/api/v1/namespaces/default/persistentvolumeclaims/{claim}"
            ))
            .unwrap_or_default();
        let volume = pvc["spec"]["volumeName"].as_str().unwrap_or("").to_string();
        let pv = server
            .get(&format!("/api/v1/persistentvolumes/{volume}"))
            .unwrap_or_default();
        let pv_node = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]
            ["matchExpressions"][0]["values"][0]
            .as_str()
            .unwrap_or("")
            .to_string();
        let node = p["spec"]["nodeName"].as_str().unwrap_or("").to_string();
        out.insert(name, (volume, pv_node, node));
    }
    out
}

/// Every db pod's data is what was written for it, and it runs on its volume's node.
fn check_db_data(server: &Server, names: &[&str]) {
    let volumes = db_volumes(server);
    for name in names {
        let (volume, pv_node, node) = &volumes[*name];
        assert!(
            volume.starts_with("pvc-"),
            "{name}: no volume bound: {volumes:?}"
        );
        assert_eq!(
            pv_node, node,
            "{name} runs off its volume's node: {volumes:?}"
        );
        let text = docker(&["exec", &container_of(name), "cat", "/data/hello"]);
        assert_eq!(text.trim(), format!("hello from {name}"), "{name}'s data");
    }
}

fn check_stateful_set(server: &Server, repo: &std::path::Path, agent_data: &std::path::Path) {
    let up = |names: &[&str], tag: &str| {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let tag = tag.to_string();
        move |pods: &BTreeMap<String, (String, bool)>| {
            pods.len() == names.len()
                && names
                    .iter()
                    .all(|n| pods.get(n) == Some(&(tag.clone(), true)))
        }
    };
    write(repo, "db.yaml", &stateful_set(3, "1", 0, "Retain"));
    commit(repo, "db, 3 replicas");
    let committed = Instant::now();
    let seen = watch_db(server, "db-0..2 ready", up(&["db-0", "db-1", "db-2"], "1"));
    eprintln!(
        "StatefulSet: commit to db-0..2 ready in order: {:?}, {} states seen",
        committed.elapsed(),
        seen.len()
    );
    // Ordered: a pod appears only once every pod before it is Running and Ready.
    for state in &seen {
        for name in state.keys() {
            let ordinal: usize = name["db-".len()..].parse().unwrap();
            for before in 0..ordinal {
                let earlier = state.get(&format!("db-{before}"));
                assert!(
                    earlier.is_some_and(|(_, up)| *up),
                    "{name} existed before db-{before} was ready: {seen:#?}"
                );
            }
        }
    }
    // Each pod's claim is bound on the node it landed on; what it writes there stays.
    for name in ["db-0", "db-1", "db-2"] {
        let script = format!("echo hello from {name} > /data/hello");
        docker(&["exec", &container_of(name), "sh", "-c", &script]);
    }
    check_db_data(server, &["db-0", "db-1", "db-2"]);
    // Each pod is its own host name, and named in its headless Service.
    let db1 = docker(&[
        "ps",
        "-q",
        "--filter",
        "label=keel.dev/pod-name=db-1",
        "--filter",
        "label=keel.dev/role=app",
    ]);
    let db1 = db1.lines().next().expect("db-1's container").to_string();
    assert_eq!(docker(&["exec", &db1, "hostname"]).trim(), "db-1");
    server.wait_for("db-0..2 named in the Service's endpoints", |s| {
        let ep = s
            .get("/api/v1/namespaces/default/endpoints/db")
            .unwrap_or_default();
        let mut names: Vec<String> = ep["subsets"][0]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["hostname"].as_str().map(str::to_string))
            .collect();
        names.sort();
        names == ["db-0", "db-1", "db-2"]
    });

    // Scale down to 1: db-2 goes before db-1.
    write(repo, "db.yaml", &stateful_set(1, "1", 0, "Retain"));
    commit(repo, "db, 1 replica");
    let seen = watch_db(server, "db-0 alone", up(&["db-0"], "1"));
    assert!(
        !seen
            .iter()
            .any(|s| s.contains_key("db-2") && !s.contains_key("db-1")),
        "db-1 went before db-2: {seen:#?}"
    );

    // Back to 3 at a new image with partition 1: db-2 then db-1 updated, db-0 kept.
    write(repo, "db.yaml", &stateful_set(3, "1", 0, "Retain"));
    commit(repo, "db, 3 replicas again");
    watch_db(
        server,
        "db-0..2 ready again",
        up(&["db-0", "db-1", "db-2"], "1"),
    );
    // db-1 and db-2 were removed and made again: on their volumes' nodes, data kept.
    check_db_data(server, &["db-0", "db-1", "db-2"]);
    write(repo, "db.yaml", &stateful_set(3, "2", 1, "Retain"));
    commit(repo, "db:2 above partition 1");
    let seen = watch_db(server, "db-1 and db-2 at web:2", |pods| {
        pods.len() == 3
            && pods.values().all(|(_, up)| *up)
            && pods["db-0"].0 == "1"
            && pods["db-1"].0 == "2"
            && pods["db-2"].0 == "2"
    });
    assert!(
        !seen
            .iter()
            .any(|s| s.get("db-1").is_some_and(|(t, _)| t == "2")
                && s.get("db-2").is_none_or(|(t, up)| t != "2" || !up)),
        "db-1 was updated before db-2 was ready at web:2: {seen:#?}"
    );
    assert!(
        seen.iter()
            .all(|s| s.get("db-0").is_none_or(|(t, _)| t == "1")),
        "db-0, below the partition, was updated: {seen:#?}"
    );
    let revisions = server
        .get("/apis/apps/v1/namespaces/default/controllerrevisions")
        .and_then(|l| l["items"].as_array().map(Vec::len));
    assert_eq!(revisions, Some(2), "one ControllerRevision per template");
    server.wait_for(
        "keel status: the StatefulSet healthy, 2 of 3 updated",
        |s| {
            let out = s
                .keel()
                .args(["status", "--server", &s.url])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            text.lines().any(|l| {
                l.contains("StatefulSet")
                    && l.contains("db")
                    && l.contains("Healthy")
                    && l.contains("3/3 ready, 2/3 updated")
            })
        },
    );
    // Updated pods were made again on their volumes' nodes, with their data.
    check_db_data(server, &["db-0", "db-1", "db-2"]);

    // whenScaled: Delete: a scale-down to 1 deletes db-1's and db-2's claims; their volumes
    // are released, their nodes remove the data, and the volumes go.
    let before = db_volumes(server);
    write(repo, "db.yaml", &stateful_set(1, "2", 1, "Delete"));
    commit(repo, "db, 1 replica, claims deleted on scale-down");
    watch_db(server, "db-0 alone", |pods| {
        pods.len() == 1 && pods.contains_key("db-0")
    });
    for name in ["db-1", "db-2"] {
        let (volume, node, _) = &before[name];
        server.wait_for(&format!("{name}'s volume {volume} gone"), |s| {
            s.get(&format!("/api/v1/persistentvolumes/{volume}"))
                .is_none()
                && s.get(&format!(
                    "/api/v1/namespaces/default/persistentvolumeclaims/data-{name}"
                ))
                .is_none()
        });
        // An agent's data is `--data-dir/NODE/`.
        let dir = agent_data
            .join(node)
            .join(node)
            .join("volumes")
            .join(volume);
        assert!(
            !before[name].0.is_empty() && dir.parent().is_some_and(|d| d.exists()),
            "{name}'s node keeps no volumes at {}",
            dir.display()
        );
        assert!(!dir.exists(), "{} is still on {node}", dir.display());
    }
    let kept = agent_data
        .join(&before["db-0"].1)
        .join(&before["db-0"].1)
        .join("volumes")
        .join(&before["db-0"].0);
    let found = std::process::Command::new("find")
        .args([
            agent_data.to_str().unwrap(),
            "-maxdepth",
            "4",
            "-path",
            "*volumes/pvc-*",
        ])
        .output()
        .unwrap();
    assert!(
        kept.join("hello").exists(),
        "db-0's data is kept: {}; volumes on the nodes: {}",
        kept.display(),
        String::from_utf8_lossy(&found.stdout)
    );
    check_db_data(server, &["db-0"]);
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

    check_stateful_set(&server, repo.path(), agent_data.path());
    check_stateful_set_node_loss(&server, repo.path(), &mut agents, &nodes);
}

/// A StatefulSet pod's node goes silent: the pod is marked deleted, not replaced, while the
/// machine may still run it; once the operator deletes the node, the pod and its lost claim
/// are made again on another node. (The deleted node's agent stays away: its certificate
/// was revoked with the node.)
fn check_stateful_set_node_loss(
    server: &Server,
    repo: &std::path::Path,
    agents: &mut [Agent],
    nodes: &[&str],
) {
    write(repo, "db.yaml", &stateful_set(2, "2", 0, "Delete"));
    commit(repo, "db, 2 replicas at web:2");
    watch_db(server, "db-0 and db-1 ready at web:2", |pods| {
        pods.len() == 2 && pods.values().all(|(t, up)| t == "2" && *up)
    });
    let volumes = db_volumes(server);
    let (lost_volume, victim, _) = volumes["db-1"].clone();
    let index = nodes
        .iter()
        .position(|n| *n == victim)
        .expect("db-1's node");
    agents[index].kill();
    let silent = Instant::now();
    server.wait_for("db-1 marked deleted on its silent node", |s| {
        db_pods(s)
            .get("db-1")
            .is_some_and(|(t, _)| t.ends_with("(terminating)"))
    });
    eprintln!(
        "StatefulSet: node silent to db-1 terminating: {:?}",
        silent.elapsed()
    );
    // Not replaced while its node may still run it: its container is still there.
    std::thread::sleep(Duration::from_secs(3));
    let db1 = pods(server)
        .into_iter()
        .find(|p| p["metadata"]["name"] == "db-1")
        .expect("db-1 stays");
    assert_eq!(
        db1["spec"]["nodeName"],
        victim.as_str(),
        "db-1 is still the silent node's"
    );
    assert_eq!(db_containers().get("db-1"), Some(&1));
    // The operator says the machine is gone.
    let out = server
        .keel()
        .args(["delete", "node", &victim, "--server", &server.url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    server.wait_up_to(
        Duration::from_secs(90),
        "db-1 made again on another node, with a new volume",
        |s| {
            let pods = db_pods(s);
            let volumes = db_volumes(s);
            pods.get("db-1") == Some(&("2".to_string(), true))
                && volumes.get("db-1").is_some_and(|(v, pv_node, node)| {
                    *v != lost_volume && pv_node == node && *node != victim
                })
        },
    );
    assert!(
        server
            .get(&format!("/api/v1/persistentvolumes/{lost_volume}"))
            .is_none(),
        "the deleted node's volume is forgotten"
    );
}
