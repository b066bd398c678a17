//! Several control planes (`cargo bench -p keel-e2e --bench failover`), with real `keel
//! server` and `keel-agent` processes and a real three-member etcd:
//!
//! - fail-over: three servers with the default leader timings; the leader is killed
//!   (kill -9) `KEEL_BENCH_KILLS` times (default 20), and each time a commit made right after
//!   the kill is timed to the new leader having applied it (p50, p99, max);
//! - apply throughput: a revision of `KEEL_BENCH_OBJECTS` (default 2,000) ConfigMaps, then
//!   ten commits each changing a tenth of them, with one server and with three;
//! - node death: one server with default flags, three hollow agents and a 6-replica
//!   Deployment; an agent is killed (its hollow containers die with it, as a machine's
//!   would), timed to six pods running again, none on the dead node.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keel_e2e::{Server, binary, commit, free_port, git, write};
use keel_store::etcd_process::EtcdCluster;
use serde_json::Value;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn role(server: &Server) -> Option<String> {
    let out = Command::new("curl")
        .args(["-s", "-f", "-m", "1", &format!("{}/healthz", server.url)])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("role: "))
        .map(str::to_string)
}

fn wait(limit: Duration, what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn new_repo() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    write(
        repo.path(),
        "keep.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\ndata: {a: b}\n",
    );
    commit(repo.path(), "first");
    repo
}

fn servers(n: usize, repo: &str, store: &str, extra: &[&str]) -> Vec<Server> {
    let mut flags = vec!["--store", store, "--insecure"];
    flags.extend_from_slice(extra);
    let first = Server::start(repo, &flags);
    wait(Duration::from_secs(30), "a leader", || {
        role(&first).as_deref() == Some("leader")
    });
    let mut all = vec![first];
    for _ in 1..n {
        let next = Server::start_beside(&all[0], repo, &flags);
        all.push(next);
    }
    all
}

fn failover(store: &str) {
    let kills = env_or("KEEL_BENCH_KILLS", 20);
    let repo = new_repo();
    let mut servers = servers(3, repo.path().to_str().unwrap(), store, &[]);
    let mut times = Vec::new();
    for round in 0..kills {
        let leader = (0..3)
            .find(|i| role(&servers[*i]).as_deref() == Some("leader"))
            .expect("a leader");
        servers[leader].kill();
        let killed = Instant::now();
        write(
            repo.path(),
            "round.yaml",
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: round}}\ndata: {{n: \"{round}\"}}\n"
            ),
        );
        commit(repo.path(), &format!("round {round}"));
        let applied = |s: &Server| {
            s.get("/api/v1/namespaces/default/configmaps/round")
                .is_some_and(|c| c["data"]["n"].as_str() == Some(round.to_string().as_str()))
        };
        wait(Duration::from_secs(60), "the new leader to apply", || {
            (0..3).any(|i| i != leader && applied(&servers[i]))
        });
        let took = killed.elapsed();
        println!("fail-over {round}: {took:.2?}");
        times.push(took);
        servers[leader].spawn_again();
        let back = Instant::now();
        while role(&servers[leader]).as_deref() != Some("follower") {
            if back.elapsed() > Duration::from_secs(30) {
                let log = std::fs::read_to_string(servers[leader].log_path()).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "the killed server is not back as a follower; its log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    times.sort();
    println!(
        "fail-over, kill -9 of the leader to the next commit applied ({} kills, --leader-lease 15s): p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        times.len(),
        percentile(&times, 50),
        percentile(&times, 99),
        times[times.len() - 1]
    );
}

fn throughput(store: &str, n_servers: usize) -> f64 {
    let objects = env_or("KEEL_BENCH_OBJECTS", 2000);
    let repo = new_repo();
    let servers = servers(n_servers, repo.path().to_str().unwrap(), store, &[]);
    let leader = (0..n_servers)
        .find(|i| role(&servers[*i]).as_deref() == Some("leader"))
        .expect("a leader");
    let cms = |generation: usize, changed: usize| -> String {
        (0..objects)
            .map(|i| {
                let v = if i < changed { generation } else { 0 };
                format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i:05}, namespace: bench}}\ndata: {{v: \"{v}\"}}\n")
            })
            .collect()
    };
    write(
        repo.path(),
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: bench}\n",
    );
    let started = Instant::now();
    let mut written = 0;
    for generation in 0..=10 {
        let changed = if generation == 0 {
            0
        } else {
            objects * generation / 10
        };
        write(repo.path(), "cms.yaml", &cms(generation, changed));
        let id = commit(repo.path(), &format!("generation {generation}"));
        written += if generation == 0 {
            objects
        } else {
            objects / 10
        };
        wait(Duration::from_secs(300), "the commit applied", || {
            servers[leader].status()["applied_commit"].as_str() == Some(id.trim())
        });
    }
    let took = started.elapsed();
    let rate = written as f64 / took.as_secs_f64();
    println!(
        "apply, {n_servers} server(s): {written} object writes in 11 commits in {took:.2?}: {rate:.0} objects/s"
    );
    rate
}

struct HollowAgent(Child);

impl Drop for HollowAgent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hollow_agent(name: &str, server: &Server, data: &std::path::Path) -> HollowAgent {
    let child = Command::new(binary("keel-agent"))
        .args([
            "--name",
            name,
            "--server",
            &server.agents,
            "--runtime",
            "hollow",
        ])
        .args(["--insecure", "--no-cluster-dns", "--no-ingress"])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(data.join(name))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("keel-agent starts");
    HollowAgent(child)
}

fn node_death() {
    let repo = new_repo();
    // Default --node-grace and --pod-eviction-timeout: what a user gets.
    let server = Server::start(repo.path().to_str().unwrap(), &["--insecure"]);
    let data = tempfile::tempdir().unwrap();
    let suffix = std::process::id();
    let names: Vec<String> = (1..=3).map(|i| format!("death-{suffix}-{i}")).collect();
    let mut agents: Vec<HollowAgent> = names
        .iter()
        .map(|n| hollow_agent(n, &server, data.path()))
        .collect();
    wait(Duration::from_secs(60), "3 nodes", || {
        server
            .get("/api/v1/nodes")
            .and_then(|l| l["items"].as_array().map(Vec::len))
            == Some(3)
    });
    // Committed once every node is up, so the pods spread over them.
    write(
        repo.path(),
        "app.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec:\n  replicas: 6\n  selector: {matchLabels: {app: app}}\n  template:\n    metadata: {labels: {app: app}}\n    spec:\n      containers: [{name: app, image: busybox}]\n",
    );
    commit(repo.path(), "app");
    let running = |s: &Server| -> Vec<Value> {
        s.get("/api/v1/namespaces/default/pods")
            .and_then(|l| l["items"].as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .collect()
    };
    let on = |pods: &[Value], node: &str| {
        pods.iter()
            .filter(|p| p["spec"]["nodeName"] == node)
            .count()
    };
    wait(Duration::from_secs(60), "6 pods running on 3 nodes", || {
        let pods = running(&server);
        pods.len() == 6 && names.iter().all(|n| on(&pods, n) > 0)
    });
    let victim = agents.remove(0);
    drop(victim);
    let died = Instant::now();
    wait(Duration::from_secs(120), "6 pods running elsewhere", || {
        let pods = running(&server);
        pods.len() == 6 && on(&pods, &names[0]) == 0
    });
    println!(
        "node death (kill -9 of a node's agent and its containers) to its pods running elsewhere, default flags: {:.2?}",
        died.elapsed()
    );
}

fn main() {
    if std::env::var("KEEL_BENCH_ONLY").as_deref() == Ok("failover") {
        let etcd = EtcdCluster::start(3).expect("a three-member etcd (etcd-server installed?)");
        return failover(&format!("etcd://{}", etcd.endpoints()));
    }
    let etcd = EtcdCluster::start(3).expect("a three-member etcd (etcd-server installed?)");
    let store = format!("etcd://{}", etcd.endpoints());
    node_death();
    let one = throughput(&store, 1);
    drop(etcd);
    let etcd = EtcdCluster::start(3).expect("etcd");
    let store = format!("etcd://{}", etcd.endpoints());
    let three = throughput(&store, 3);
    println!(
        "apply throughput, three servers vs one: {:.2}x",
        three / one
    );
    failover(&store);
}
