//! Several control planes: three `keel server`s on a real three-member etcd, three agents on
//! Docker reporting to `--server a,b,c`. One cluster goes through, in turn: the leader killed
//! in the middle of a rollout, the leader paused past its lease, etcd losing a member and
//! then its quorum, and a seeded run of random kill -9s of servers and agents while commits
//! change replicas and images. After each, what runs is exactly what the last commit says.
//!
//! The chaos run's seed is printed; `KEEL_CHAOS_SEED` replays one and `KEEL_CHAOS_KILLS`
//! (default 6) makes the run longer by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use keel_e2e::{Server, commit, docker_available, git, import_busybox_image, write};
use keel_store::etcd_process::{EtcdCluster, EtcdProcess};
use serde_json::Value;

use super::support::{Agent, TestLan, app_containers, ready, wait_until};

const LEASE: Duration = Duration::from_secs(4);

fn web(replicas: u32, tag: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: keel-e2e/ha:{tag}
        imagePullPolicy: Never
        command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
        readinessProbe:
          tcpSocket: {{port: 8080}}
          initialDelaySeconds: 1
          periodSeconds: 1
"#
    )
}

/// Never changed: its containers must live through every leader change.
const STEADY: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: steady}
spec:
  replicas: 2
  selector: {matchLabels: {app: steady}}
  template:
    metadata: {labels: {app: steady}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: steady
        image: keel-e2e/ha:1
        imagePullPolicy: Never
        command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
"#;

/// `/healthz` of a server: its role and the leader it names (`None` when it does not
/// answer).
fn role(server: &Server) -> Option<(String, Option<String>)> {
    let out = Command::new("curl")
        .args(["-s", "-f", "-m", "2", &format!("{}/healthz", server.url)])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(str::to_string)
    };
    Some((field("role")?, field("leader")))
}

/// The one leader, when every answering server agrees on it.
fn leader(servers: &[Server]) -> Option<usize> {
    let roles: Vec<Option<(String, Option<String>)>> = servers.iter().map(role).collect();
    let leading: Vec<usize> = (0..servers.len())
        .filter(|i| roles[*i].as_ref().is_some_and(|(r, _)| r == "leader"))
        .collect();
    let [one] = leading[..] else { return None };
    let name = servers[one].url.trim_start_matches("http://").to_string();
    let agreed = roles
        .iter()
        .flatten()
        .all(|(_, named)| named.as_deref() == Some(name.as_str()));
    agreed.then_some(one)
}

fn wait_leader(servers: &[Server], limit: Duration, what: &str) -> (usize, Duration) {
    let started = Instant::now();
    loop {
        if let Some(i) = leader(servers) {
            return (i, started.elapsed());
        }
        assert!(started.elapsed() < limit, "no single leader for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pods(server: &Server) -> Vec<Value> {
    server
        .get("/api/v1/namespaces/default/pods")
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
}

/// Each ReplicaSet's wanted and reported replicas, for a failed convergence.
fn replica_sets(server: &Server) -> String {
    server
        .get("/apis/apps/v1/namespaces/default/replicasets")
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|rs| {
            format!(
                "{} (spec {}, status {}, ready {}, revision {})",
                rs["metadata"]["name"].as_str().unwrap_or("?"),
                rs["spec"]["replicas"],
                rs["status"]["replicas"],
                rs["status"]["readyReplicas"],
                rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One line per pod, so a failed convergence says which pod is extra and why.
fn describe(pods: &[Value]) -> String {
    pods.iter()
        .map(|p| {
            format!(
                "{} (node {}, phase {}, ready {}, image {}, owner {}, deleting {})",
                p["metadata"]["name"].as_str().unwrap_or("?"),
                p["spec"]["nodeName"].as_str().unwrap_or("-"),
                p["status"]["phase"].as_str().unwrap_or("-"),
                ready(p),
                p["spec"]["containers"][0]["image"].as_str().unwrap_or("-"),
                p["metadata"]["ownerReferences"][0]["name"]
                    .as_str()
                    .unwrap_or("-"),
                p["metadata"]["deletionTimestamp"].as_str().unwrap_or("no"),
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn app(pod: &Value) -> &str {
    pod["metadata"]["labels"]["app"].as_str().unwrap_or("")
}

/// Whether the cluster runs exactly `web` replicas of `tag` and the 2 steady pods: in the
/// API, all Running and Ready, and in Docker one running app container per pod, each
/// belonging to a pod in the store, none twice.
fn converged(server: &Server, nodes: &[String], web: usize, tag: &str) -> Result<(), String> {
    let pods = pods(server);
    let image = format!("keel-e2e/ha:{tag}");
    let webs = pods.iter().filter(|p| app(p) == "web").count();
    let steady = pods.iter().filter(|p| app(p) == "steady").count();
    if webs != web || steady != 2 || pods.len() != web + 2 {
        return Err(format!(
            "{webs} web and {steady} steady pods of {}: {}; replica sets: {}",
            pods.len(),
            describe(&pods),
            replica_sets(server)
        ));
    }
    for p in &pods {
        let serving = p["status"]["phase"] == "Running" && ready(p);
        let current = app(p) == "steady" || p["spec"]["containers"][0]["image"] == image;
        if !serving || !current || p["metadata"]["deletionTimestamp"].is_string() {
            return Err(format!("pod {} not yet as declared", p["metadata"]["name"]));
        }
    }
    let uids: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| p["metadata"]["uid"].as_str())
        .collect();
    let running = running_containers(nodes);
    let mut per_pod: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, uid) in &running {
        if !uids.contains(uid.as_str()) {
            return Err(format!(
                "a container of pod uid {uid}, which is not in the store"
            ));
        }
        *per_pod.entry(uid).or_default() += 1;
    }
    if per_pod.len() != uids.len() || per_pod.values().any(|n| *n != 1) {
        return Err(format!("containers per pod: {per_pod:?}"));
    }
    Ok(())
}

/// Running app containers of `nodes`: (container id, pod uid).
fn running_containers(nodes: &[String]) -> Vec<(String, String)> {
    nodes
        .iter()
        .flat_map(|n| app_containers(n, "{{.ID}} {{.Label \"keel.dev/pod-uid\"}}"))
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(id, uid)| (id.to_string(), uid.to_string()))
        })
        .collect()
}

/// The container ids of the steady pods.
fn steady_containers(server: &Server, nodes: &[String]) -> BTreeSet<String> {
    let steady: BTreeSet<String> = pods(server)
        .iter()
        .filter(|p| app(p) == "steady")
        .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_string))
        .collect();
    running_containers(nodes)
        .into_iter()
        .filter(|(_, uid)| steady.contains(uid))
        .map(|(id, _)| id)
        .collect()
}

fn wait_converged(servers: &[Server], nodes: &[String], web: usize, tag: &str, limit: Duration) {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < limit {
        if let Some(i) = leader(servers) {
            match converged(&servers[i], nodes, web, tag) {
                Ok(()) => return,
                Err(e) => last = e,
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    // What the controllers said about the web pods, from every server's log.
    let said: Vec<String> = servers
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            std::fs::read_to_string(s.log_path())
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("web-") || l.contains("leader"))
                .map(|l| format!("server {i}: {l}"))
                .collect::<Vec<_>>()
        })
        .collect();
    let tail = said[said.len().saturating_sub(80)..].join("\n");
    panic!("not converged on {web} web pods of ha:{tag} within {limit:?}: {last}\n{tail}");
}

/// Each commit at most once in the sync history.
fn assert_history_once(server: &Server) {
    let history = server
        .get("/api/keel/history?limit=1000")
        .unwrap_or_default();
    let commits: Vec<&str> = history
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["commit"].as_str())
        .collect();
    let unique: BTreeSet<&str> = commits.iter().copied().collect();
    assert_eq!(
        unique.len(),
        commits.len(),
        "a commit recorded twice: {history}"
    );
}

fn signal(pid: u32, which: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{which}"), &pid.to_string()])
        .status();
}

/// A small seeded generator (xorshift), so a chaos run can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below.max(1)
    }
}

fn etcd_available() -> bool {
    let ok = EtcdProcess::available();
    if !ok && std::env::var("KEEL_REQUIRE_ETCD").is_ok_and(|v| v == "1") {
        panic!("KEEL_REQUIRE_ETCD=1 but etcd cannot be run");
    }
    if !ok {
        eprintln!("skipping: etcd is not installed; set KEEL_REQUIRE_ETCD=1 to fail instead");
    }
    ok
}

#[test]
fn three_servers_on_etcd_survive_leader_death_pauses_etcd_faults_and_chaos() {
    if !docker_available() || !etcd_available() {
        return;
    }
    import_busybox_image("keel-e2e/ha:1", &[("/www/index.html", "one\n")]);
    import_busybox_image("keel-e2e/ha:2", &[("/www/index.html", "two\n")]);
    let mut etcd = EtcdCluster::start(3).expect("a three-member etcd");
    let store = format!("etcd://{}", etcd.endpoints());
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    write(repo.path(), "steady.yaml", STEADY);
    write(repo.path(), "web.yaml", &web(3, "1"));
    commit(repo.path(), "web and steady");
    let lan = TestLan::new(4, 3);
    let lease = format!("{}s", LEASE.as_secs());
    let flags = |agents: &str| -> Vec<String> {
        [
            "--store",
            &store,
            "--agent-listen",
            agents,
            "--leader-lease",
            &lease,
            "--leader-renew-deadline",
            "3s",
            "--leader-retry",
            "500ms",
            // Every server allocates from the same ranges: any of them may lead.
            "--service-cidr",
            "10.190.4.0/24",
            "--service-node-port-range",
            "32700-32724",
            "--node-grace",
            "10s",
            "--pod-eviction-timeout",
            "60s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let repo_path = repo.path().to_str().unwrap();
    let first_flags = flags(&lan.agents_at());
    let first = Server::start(
        repo_path,
        &first_flags.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    first.wait_for("the first server to lead", |s| {
        role(s).is_some_and(|(r, _)| r == "leader")
    });
    let token = first.join_token();
    let mut servers = vec![first];
    for _ in 0..2 {
        let f = flags(&lan.agents_at());
        let next = Server::start_beside(
            &servers[0],
            repo_path,
            &f.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        servers.push(next);
    }
    let (l1, _) = wait_leader(&servers, Duration::from_secs(10), "the three servers");
    assert_eq!(l1, 0, "the first server keeps leading when others join");
    let server_list: Vec<&str> = servers.iter().map(|s| s.agents.as_str()).collect();
    let server_list = server_list.join(",");
    let agent_data = tempfile::tempdir().unwrap();
    let suffix = std::process::id();
    let nodes: Vec<String> = (1..=3).map(|i| format!("ha-{suffix}-n{i}")).collect();
    let mut agents: Vec<Agent> = nodes
        .iter()
        .zip(&lan.hosts)
        .map(|(n, h)| Agent::start_for(n, &server_list, &token, agent_data.path(), h, &[]))
        .collect();
    wait_converged(&servers, &nodes, 3, "1", Duration::from_secs(90));
    // A second agent under a running node's name, on the same engine, refuses to start and
    // names the first.
    let second = Command::new(keel_e2e::binary("keel-agent"))
        .args(["--name", &nodes[0], "--server", &server_list, "--insecure"])
        .args(["--listen", &format!("127.0.0.1:{}", keel_e2e::free_port())])
        .arg("--data-dir")
        .arg(agent_data.path().join("second"))
        .output()
        .expect("keel-agent runs");
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success()
            && said.contains("is already run on this Docker engine by keel-agent pid"),
        "{said}"
    );
    // What an operator sees: every server names the leader; followers show its sync status.
    let status = servers[1].status();
    assert_eq!(status["control_plane"]["role"], "follower", "{status}");
    assert!(
        status["applied_commit"].is_string(),
        "a follower shows the leader's sync: {status}"
    );
    let metrics = servers[0].text("/metrics");
    assert!(metrics.contains("keel_leader 1"), "{metrics}");
    assert!(servers[1].text("/metrics").contains("keel_leader 0"));

    // 1. The leader killed in the middle of a rollout.
    let steady_before = steady_containers(&servers[0], &nodes);
    assert_eq!(steady_before.len(), 2);
    write(repo.path(), "web.yaml", &web(3, "2"));
    commit(repo.path(), "web: image 2");
    servers[0].wait_for("the rollout to start", |s| {
        pods(s)
            .iter()
            .any(|p| p["spec"]["containers"][0]["image"] == "keel-e2e/ha:2")
    });
    servers[0].kill();
    let killed = Instant::now();
    write(
        repo.path(),
        "settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: failover}\n",
    );
    commit(repo.path(), "settings");
    let (l2, elected) = wait_leader(&servers, LEASE + Duration::from_secs(5), "after kill -9");
    let settings = |s: &Server| {
        s.get("/api/v1/namespaces/default/configmaps/settings")
            .is_some()
    };
    servers[l2].wait_up_to(
        (LEASE + Duration::from_secs(5)).saturating_sub(killed.elapsed()),
        "the new leader to apply the commit made after the kill",
        settings,
    );
    eprintln!(
        "leader killed: new leader in {elected:?}, applying {:?} after the kill",
        killed.elapsed()
    );
    wait_converged(&servers, &nodes, 3, "2", Duration::from_secs(90));
    assert_eq!(
        steady_containers(&servers[l2], &nodes),
        steady_before,
        "no healthy container restarted on a leader change"
    );
    assert_history_once(&servers[l2]);
    servers[0].spawn_again();
    wait_until(
        Duration::from_secs(30),
        "the old leader back as a follower",
        || role(&servers[0]).is_some_and(|(r, _)| r == "follower"),
    );

    // 2. The leader paused past its lease: it steps down and writes nothing afterwards.
    let (paused, _) = wait_leader(&servers, Duration::from_secs(10), "before the pause");
    let paused_name = servers[paused]
        .url
        .trim_start_matches("http://")
        .to_string();
    let pid = servers[paused].pid().expect("the leader runs");
    signal(pid, "STOP");
    let others: Vec<usize> = (0..3).filter(|i| *i != paused).collect();
    wait_until(
        LEASE + Duration::from_secs(5),
        "another leader while one is paused",
        || {
            others
                .iter()
                .any(|i| role(&servers[*i]).is_some_and(|(r, _)| r == "leader"))
        },
    );
    let l3 = *others
        .iter()
        .find(|i| role(&servers[**i]).is_some_and(|(r, _)| r == "leader"))
        .unwrap();
    write(repo.path(), "web.yaml", &web(4, "2"));
    commit(repo.path(), "web: 4 replicas");
    servers[l3].wait_up_to(Duration::from_secs(60), "4 web pods", |s| {
        pods(s)
            .iter()
            .filter(|p| app(p) == "web" && ready(p))
            .count()
            == 4
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let endpoints: Vec<String> = etcd
        .endpoints()
        .split(',')
        .map(|e| format!("http://{e}"))
        .collect();
    let watched = runtime.block_on(async {
        let store = keel_store::Store::open(&keel_store::StoreSpec::Etcd { endpoints })
            .await
            .expect("etcd opens");
        let from = store.revision().await.unwrap();
        (store, from)
    });
    signal(pid, "CONT");
    wait_until(
        Duration::from_secs(10),
        "the paused leader to step down",
        || role(&servers[paused]).is_some_and(|(r, _)| r == "follower"),
    );
    // Time for whatever of its old term still ran to try its writes.
    std::thread::sleep(Duration::from_secs(3));
    let late: Vec<String> = runtime.block_on(async {
        let (store, from) = watched;
        let until = store.revision().await.unwrap();
        let mut watch = store
            .watch(Some(keel_schema::Kind::Event), from)
            .await
            .unwrap();
        let mut late = Vec::new();
        while let Ok(Some(Ok(change))) =
            tokio::time::timeout(Duration::from_secs(2), watch.next()).await
        {
            if let keel_schema::Object::Event(e) = change.object()
                && e.source.as_ref().and_then(|s| s.host.as_deref()) == Some(paused_name.as_str())
            {
                late.push(format!("{:?}", e.reason));
            }
            if change.revision >= until {
                break;
            }
        }
        late
    });
    assert!(
        late.is_empty(),
        "the paused leader wrote after its term ended: {late:?}"
    );
    assert_history_once(&servers[l3]);

    // 3. etcd loses a member (keel goes on), then its quorum (containers keep running,
    //    nothing is applied, no leader), and keel resumes on its own when quorum returns.
    etcd.kill(0);
    write(repo.path(), "web.yaml", &web(3, "2"));
    commit(repo.path(), "web: 3 replicas, one etcd member down");
    wait_converged(&servers, &nodes, 3, "2", Duration::from_secs(60));
    let running = running_containers(&nodes).len();
    etcd.kill(1);
    wait_until(Duration::from_secs(15), "no leader without quorum", || {
        servers
            .iter()
            .all(|s| role(s).is_some_and(|(r, _)| r == "follower"))
    });
    write(repo.path(), "web.yaml", &web(2, "1"));
    commit(repo.path(), "web: 2 replicas of image 1, during the outage");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        running_containers(&nodes).len(),
        running,
        "containers keep running"
    );
    let out = servers[0]
        .keel()
        .args(["status", "--server", &servers[0].url])
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("no leader"),
        "keel status without quorum: {said}"
    );
    etcd.restart(0).unwrap();
    etcd.restart(1).unwrap();
    wait_leader(&servers, Duration::from_secs(30), "quorum back");
    wait_converged(&servers, &nodes, 2, "1", Duration::from_secs(90));

    // 4. Chaos: random kill -9s of servers and agents while commits change the cluster.
    let seed = std::env::var("KEEL_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    let kills: u32 = std::env::var("KEEL_CHAOS_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    eprintln!("chaos: seed {seed} (KEEL_CHAOS_SEED), {kills} kills (KEEL_CHAOS_KILLS)");
    let mut rng = Rng(seed);
    let (mut replicas, mut tag) = (2, "1");
    for round in 0..kills {
        replicas = 1 + rng.next(4) as usize;
        tag = if rng.next(2) == 0 { "1" } else { "2" };
        write(repo.path(), "web.yaml", &web(replicas as u32, tag));
        commit(
            repo.path(),
            &format!("chaos {round}: {replicas} of image {tag}"),
        );
        std::thread::sleep(Duration::from_millis(500 + rng.next(2500)));
        let victim = rng.next(6) as usize;
        if victim < 3 {
            eprintln!("chaos {round}: kill -9 server {victim}");
            servers[victim].kill();
            std::thread::sleep(Duration::from_millis(500 + rng.next(2000)));
            servers[victim].spawn_again();
        } else {
            eprintln!("chaos {round}: kill -9 agent {}", nodes[victim - 3]);
            agents[victim - 3].kill();
            std::thread::sleep(Duration::from_millis(500 + rng.next(2000)));
            agents[victim - 3].spawn();
        }
    }
    wait_converged(&servers, &nodes, replicas, tag, Duration::from_secs(120));
    let (l, _) = wait_leader(&servers, Duration::from_secs(10), "after chaos");
    assert_history_once(&servers[l]);
    drop(agents);
}
