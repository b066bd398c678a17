//! The control plane at scale (`cargo bench -p keel-e2e --bench cluster`).
//!
//! - Docker (skipped, saying so, without a Docker engine): `keel server`'s library entry
//!   point with 3 in-process agents on the real engine; ten times, commit a 3-replica
//!   Deployment and time it to all 3 pods Running and ready (p50, p90), then commit its
//!   removal and wait for its containers to go.
//! - Hollow, kubemark style: the release `keel server` alone in its own process, and hollow
//!   nodes in `hollow-nodes` processes (`KEEL_BENCH_NODES_PER_PROCESS`, 100 by default),
//!   each node joining with a join token and speaking gRPC over mutual TLS as a real one
//!   does, its data dir in memory (`/dev/shm`). One commit of a Deployment with
//!   `KEEL_BENCH_PODS` replicas (10,000) on `KEEL_BENCH_NODES` nodes (500), timed to every
//!   pod available; the control plane's CPU time and memory (from /proc); single pod
//!   deletions timed through their agents; a minute idle with its no-op resync; a tenth of
//!   the nodes killed, timed to their pods available elsewhere; and a restart, timed to
//!   serving again, with the RSS of the same objects loaded afresh once the agents are back.
//!
//! The line `hollow: commit to N pods Running and available on M nodes: X s (R pods/s),
//! control plane RSS Y MiB` keeps its format, so runs compare over time.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_e2e::{commit, docker_available, free_port, git, import_busybox_image, write};
use keel_nodeagent::agent::{self, AgentConfig, RunningAgent};
use keel_nodeagent::network::NodeNetwork;
use keel_nodeagent::network::cni::{Cni, CniSettings};
use keel_nodeagent::runtime::Runtime;
use keel_nodeagent::runtime::docker::{DEFAULT_PAUSE_IMAGE, DockerRuntime};
use serde_json::Value;

#[path = "cluster/http.rs"]
mod http;
#[path = "cluster/processes.rs"]
mod processes;
use http::get;
use processes::{HollowNodes, ServerProcess};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn deployment(name: &str, replicas: usize, image: &str, policy: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers: [{{name: app, image: \"{image}\", imagePullPolicy: {policy}, command: [sleep, \"3600\"], resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}}}]\n"
    )
}

/// A control plane on a fresh repo and data dir: its API URL and its agents' address.
struct ControlPlane {
    api: String,
    agents_at: String,
    repo: PathBuf,
    work: tempfile::TempDir,
}

/// A git repository under `work` with one commit: something that stays (a revision
/// removing every object would be refused).
fn bench_repo(work: &std::path::Path) -> PathBuf {
    let repo = work.join("repo");
    std::fs::create_dir_all(&repo).expect("the bench's repo");
    git(&repo, &["init", "-q"]);
    write(&repo, "README", "bench\n");
    write(
        &repo,
        "keep.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\ndata: {a: b}\n",
    );
    commit(&repo, "empty");
    repo
}

fn start_control_plane() -> ControlPlane {
    let work = tempfile::tempdir().expect("tempdir");
    let repo = bench_repo(work.path());
    let api = format!("127.0.0.1:{}", free_port());
    let agents_at = format!("127.0.0.1:{}", free_port());
    let config = keel_reconciler::Config {
        repo: repo.to_string_lossy().into_owned(),
        branch: None,
        path: None,
        data_dir: work.path().join("data"),
        store: None,
        listen: api.clone(),
        tls_listen: None,
        tls_names: Vec::new(),
        agent_listen: agents_at.clone(),
        node_grace: Duration::from_secs(30),
        pod_eviction_timeout: Duration::from_secs(60),
        poll_interval: Duration::from_secs(1),
        resync_interval: Duration::from_secs(60),
        webhook_secret: None,
        service_network: keel_reconciler::apply::ServiceNetwork::default(),
        load_balancer_pool: None,
        // Room for 16,384 nodes of 254 pods, clear of the Service range.
        pod_network: keel_reconciler::nodes::PodNetwork::new(
            "10.128.0.0/10",
            24,
            keel_reconciler::apply::ServiceNetwork::default().cidr(),
        )
        .expect("the bench's pod network"),
        wait_for_nodes: 0,
        // Hollow agents in this process, without join tokens: the control plane's scale,
        // not TLS, is measured here.
        insecure: true,
        cert_validity: std::time::Duration::from_secs(3600),
        anonymous_read: true,
        encryption_key_file: None,
        sops_age_key_file: None,
        notify_secrets_dir: None,
        notify_retry_delay: std::time::Duration::from_secs(1),
        advertise_address: None,
        leader: Default::default(),
    };
    // Its own thread and runtime, as its own process would have.
    std::thread::spawn(move || {
        let server = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        server.block_on(async {
            let mut control_plane = match keel_reconciler::ControlPlane::start(config).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("keel server: {e:#}");
                    std::process::exit(1);
                }
            };
            eprintln!("keel server: {}", control_plane.failed().await);
            std::process::exit(1);
        });
    });
    ControlPlane {
        api: format!("http://{api}"),
        agents_at,
        repo,
        work,
    }
}

async fn start_agent(
    cp: &ControlPlane,
    name: &str,
    network: NodeNetwork,
    runtime: Arc<dyn Runtime>,
) -> RunningAgent {
    // Every agent of this process shares one network namespace: no routes between them.
    let config = AgentConfig {
        server: Some(cp.agents_at.clone()),
        ..AgentConfig::bare(name, cp.work.path().join("agents").join(name), network)
    };
    agent::start(config, runtime).await.expect("agent starts")
}

fn wait_nodes(cp: &ControlPlane, n: usize) {
    loop {
        let ready = get(&format!("{}/api/v1/nodes", cp.api))
            .and_then(|l| l["items"].as_array().map(|a| a.len()))
            .unwrap_or(0);
        if ready == n {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn available(cp: &ControlPlane, name: &str) -> u64 {
    get(&format!(
        "{}/apis/apps/v1/namespaces/default/deployments/{name}",
        cp.api
    ))
    .and_then(|d| d["status"]["availableReplicas"].as_u64())
    .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn docker_scenario(runtime: &tokio::runtime::Runtime) {
    if !docker_available() {
        println!("docker: skipped (no Docker engine)");
        return;
    }
    const IMAGE: &str = "keel-bench/app:1";
    import_busybox_image(IMAGE, &[]);
    let cp = start_control_plane();
    let suffix = std::process::id();
    let agents: Vec<RunningAgent> = runtime.block_on(async {
        let mut agents = Vec::new();
        for i in 0..3 {
            let name = format!("bench-{suffix}-{i}");
            let network = NodeNetwork::new();
            let cni = Cni::new(
                CniSettings::default_chain(
                    cp.work.path().join("cni").join(&name),
                    &format!("kb{i}"),
                ),
                network.clone(),
            );
            let rt = DockerRuntime::connect(&name, DEFAULT_PAUSE_IMAGE, Arc::new(cni))
                .await
                .expect("Docker");
            agents.push(start_agent(&cp, &name, network, Arc::new(rt)).await);
        }
        agents
    });
    wait_nodes(&cp, 3);
    let mut times = Vec::new();
    for i in 0..10 {
        // Unique to this process: containers an earlier, interrupted run left behind
        // must not count.
        let name = format!("b{suffix}-{i}");
        let file = format!("{name}.yaml");
        write(&cp.repo, &file, &deployment(&name, 3, IMAGE, "Never"));
        let t0 = Instant::now();
        commit(&cp.repo, &name);
        while available(&cp, &name) < 3 {
            assert!(t0.elapsed() < Duration::from_secs(120), "{name} never ran");
            std::thread::sleep(Duration::from_millis(20));
        }
        times.push(t0.elapsed());
        std::fs::remove_file(cp.repo.join(&file)).unwrap();
        commit(&cp.repo, &format!("remove {name}"));
        // Its containers (named keel_NAMESPACE_POD_…) gone before the next run.
        let filter = format!("name=keel_default_{name}-");
        loop {
            let out = Command::new("docker")
                .args(["ps", "-q", "--filter", &filter])
                .output()
                .unwrap();
            if out.stdout.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    times.sort();
    println!(
        "docker: commit to a 3-replica Deployment all Running and ready, 10 runs on 3 nodes: p50 {:?}, p90 {:?}, max {:?}",
        percentile(&times, 50),
        percentile(&times, 90),
        times[times.len() - 1]
    );
    drop(agents);
}

/// The names of the nodes whose Ready condition is not True.
fn unready_nodes(api: &str) -> Vec<String> {
    let list = get(&format!("{api}/api/v1/nodes")).unwrap_or(Value::Null);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter(|n| !is_ready(n))
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

fn is_ready(node: &Value) -> bool {
    node["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn count_nodes(api: &str, ready_only: bool) -> usize {
    get(&format!("{api}/api/v1/nodes"))
        .and_then(|l| {
            l["items"]
                .as_array()
                .map(|a| a.iter().filter(|n| !ready_only || is_ready(n)).count())
        })
        .unwrap_or(0)
}

/// Waits until the Deployment `scale` has `pods` available: when its ReplicaSet first
/// counted them all (created), and when they were all available; or, after `limit`, how
/// many were.
fn wait_available(
    api: &str,
    pods: usize,
    since: Instant,
    limit: Duration,
) -> Result<(Duration, Duration), usize> {
    let url = format!("{api}/apis/apps/v1/namespaces/default/deployments/scale");
    let mut created = None;
    loop {
        let d = get(&url).unwrap_or(Value::Null);
        let replicas = d["status"]["replicas"].as_u64().unwrap_or(0) as usize;
        let ready = d["status"]["availableReplicas"].as_u64().unwrap_or(0) as usize;
        if replicas == pods && created.is_none() {
            created = Some(since.elapsed());
        }
        if ready == pods {
            let all = since.elapsed();
            return Ok((created.unwrap_or(all), all));
        }
        if since.elapsed() >= limit {
            return Err(ready);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The hollow scenario: `keel server` alone in its process, hollow agents in others (over
/// mutual TLS with a join token, as real nodes), one commit of `pods` replicas.
fn hollow_scenario() {
    let nodes = env_or("KEEL_BENCH_NODES", 500);
    let pods = env_or("KEEL_BENCH_PODS", 10_000);
    let per = env_or("KEEL_BENCH_NODES_PER_PROCESS", 100).max(1);
    let work = tempfile::tempdir().expect("tempdir");
    let repo = bench_repo(work.path());
    let mut server = ServerProcess::start(work.path(), &repo);
    let started = Instant::now();
    let mut agents = HollowNodes::start(&server, work.path(), nodes, per);
    while count_nodes(&server.api, true) < nodes {
        if started.elapsed() >= Duration::from_secs(600) {
            let unready = unready_nodes(&server.api);
            for node in &unready {
                println!("hollow: {node} is not ready; its log:");
                for line in agents.log_about(node, 10) {
                    println!("  {line}");
                }
            }
            panic!("{} of {nodes} nodes not ready after 600 s", unready.len());
        }
        // Each look lists every node: not too often, or the bench loads the server.
        std::thread::sleep(Duration::from_secs(1));
    }
    let (rss, _) = server.rss_mib();
    println!(
        "hollow: {nodes} nodes ({} processes, mutual TLS) joined and ready in {:.1} s, control plane RSS {rss} MiB",
        agents.children.len(),
        started.elapsed().as_secs_f64()
    );
    write(
        &repo,
        "scale.yaml",
        &deployment("scale", pods, "hollow/app:1", "IfNotPresent"),
    );
    let (cpu0, hollow_cpu0) = (server.cpu(), agents.cpu());
    let committed = Instant::now();
    commit(&repo, "scale up");
    let (created, all) =
        match wait_available(&server.api, pods, committed, Duration::from_secs(900)) {
            Ok(times) => times,
            Err(ready) => {
                println!("hollow: only {ready} of {pods} pods available 900 s after the commit");
                return;
            }
        };
    let cpu = server.cpu().saturating_sub(cpu0);
    let hollow_cpu = agents.cpu().saturating_sub(hollow_cpu0);
    let (rss, peak) = server.rss_mib();
    println!(
        "hollow: commit to {pods} pods created (counted by their ReplicaSet): {:.1} s",
        created.as_secs_f64()
    );
    println!(
        "hollow: commit to {pods} pods Running and available on {nodes} nodes: {:.1} s ({:.0} pods/s), control plane RSS {rss} MiB",
        all.as_secs_f64(),
        pods as f64 / all.as_secs_f64()
    );
    println!(
        "hollow: control plane CPU from commit to available: {:.1} s; RSS peak {peak} MiB, {:.0} MiB per 10,000 pods",
        cpu.as_secs_f64(),
        rss as f64 * 10_000.0 / pods as f64
    );
    println!(
        "hollow: hollow nodes' CPU from commit to available: {:.1} s ({} processes)",
        hollow_cpu.as_secs_f64(),
        agents.children.len()
    );
    one_pod_changes(&server, pods);
    idle_and_resync(&server, &agents);
    list_all_pods(&server, pods);
    dead_nodes(&server, &mut agents, nodes, pods, per);
    let back = server.restart();
    println!(
        "hollow: control plane restarted with {pods} pods in its store: serving after {:.1} s",
        back.as_secs_f64()
    );
    // The same objects loaded afresh, the agents connected again: what the control plane
    // holds without the history of a rollout (against the RSS printed after it).
    std::thread::sleep(RECONNECTED);
    let (rss, _) = server.rss_mib();
    println!(
        "hollow: control plane RSS {:.0} s after the restart (agents back, the store loaded afresh): {rss} MiB",
        RECONNECTED.as_secs_f64()
    );
}

/// Long enough for every agent to have found the restarted control plane (their backoff
/// tops out at 10 s) and registered again.
const RECONNECTED: Duration = Duration::from_secs(30);

/// Reliability: a tenth of the node processes stop (killed, no goodbye). Timed until their
/// nodes are NotReady, until their pods are no longer counted available (marked not ready
/// with their nodes), and until every pod is available again: replaced on live nodes. Then
/// each dead node is checked to hold no pods.
fn dead_nodes(
    server: &ServerProcess,
    agents: &mut HollowNodes,
    nodes: usize,
    pods: usize,
    per: usize,
) {
    let lost = ((agents.children.len() as f64) / 10.0).round().max(1.0) as usize;
    if lost >= agents.children.len() {
        return;
    }
    let stopped_nodes = (lost * per).min(nodes);
    for c in agents.children.iter_mut().take(lost) {
        let _ = c.kill();
        let _ = c.wait();
    }
    let t0 = Instant::now();
    let say = |what: &str| {
        println!(
            "hollow: {stopped_nodes} of {nodes} nodes stopped: {what} (node grace 10 s, eviction 15 s: the defaults)"
        )
    };
    while count_nodes(&server.api, true) > nodes - stopped_nodes {
        if t0.elapsed() > Duration::from_secs(300) {
            return say("dead nodes still Ready after 300 s");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let not_ready = t0.elapsed();
    // The Deployment's count falls once the dead nodes' pods are marked not ready; only
    // after that does "all available" mean replaced.
    let url = format!(
        "{}/apis/apps/v1/namespaces/default/deployments/scale",
        server.api
    );
    while get(&url).and_then(|d| d["status"]["availableReplicas"].as_u64()) == Some(pods as u64) {
        if t0.elapsed() > Duration::from_secs(300) {
            return say("their pods still counted available after 300 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let unavailable = t0.elapsed();
    let Ok((_, all)) = wait_available(&server.api, pods, t0, Duration::from_secs(900)) else {
        return say("pods not all available again after 900 s");
    };
    say(&format!(
        "NotReady after {:.1} s, their pods unavailable after {:.1} s, all {pods} pods Running and available again after {:.1} s",
        not_ready.as_secs_f64(),
        unavailable.as_secs_f64(),
        all.as_secs_f64()
    ));
    let left: usize = (0..lost)
        .flat_map(|p| (0..per).map(move |i| format!("hollow-{p}-{i}")))
        .map(|node| {
            get(&format!(
                "{}/api/v1/pods?fieldSelector=spec.nodeName={node}",
                server.api
            ))
            .and_then(|l| l["items"].as_array().map(Vec::len))
            .unwrap_or(usize::MAX)
        })
        .sum();
    println!("hollow: pods left on the {stopped_nodes} stopped nodes: {left}");
}

/// Deletes single pods one at a time and times each until its replacement is counted
/// available again: the delete reaches the pod's agent, which stops it, the ReplicaSet
/// makes a new pod, the scheduler binds it and its agent starts it and reports it ready.
fn one_pod_changes(server: &ServerProcess, pods: usize) {
    let list = get(&format!(
        "{}/api/v1/namespaces/default/pods?limit=50",
        server.api
    ))
    .unwrap_or(Value::Null);
    let names: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let token = server.token();
    let mut gone = Vec::new();
    let mut replaced = Vec::new();
    for name in &names {
        let url = format!("{}/api/v1/namespaces/default/pods/{name}", server.api);
        let t0 = Instant::now();
        assert!(http::delete(&url, &token), "DELETE {url} failed");
        while get(&url).is_some() {
            assert!(t0.elapsed() < Duration::from_secs(60), "{name} never went");
            std::thread::sleep(Duration::from_millis(2));
        }
        gone.push(t0.elapsed());
        // Other pods may be unavailable too (nodes that missed heartbeats under the load):
        // that is reported, and the deletions stop.
        if let Err(ready) = wait_available(&server.api, pods, t0, Duration::from_secs(60)) {
            println!(
                "hollow: 60 s after deleting {name}, {ready} of {pods} pods available; stopped deleting after {} pods",
                gone.len()
            );
            break;
        }
        replaced.push(t0.elapsed());
    }
    if replaced.is_empty() {
        return;
    }
    gone.sort();
    replaced.sort();
    println!(
        "hollow: one pod deleted in a {pods}-pod cluster, {} times: gone (its agent stopped it and said so) p50 {:.0} ms, p99 {:.0} ms; replacement available p50 {:.0} ms, p99 {:.0} ms",
        replaced.len(),
        percentile(&gone, 50).as_secs_f64() * 1000.0,
        percentile(&gone, 99).as_secs_f64() * 1000.0,
        percentile(&replaced, 50).as_secs_f64() * 1000.0,
        percentile(&replaced, 99).as_secs_f64() * 1000.0,
    );
}

/// One list of every pod as JSON, as `kubectl get pods -A -o json` or an informer's first
/// list asks it: its time and size, and the control plane's peak RSS before and after it.
fn list_all_pods(server: &ServerProcess, pods: usize) {
    let (_, peak0) = server.rss_mib();
    let t0 = Instant::now();
    let body = http::get_bytes(&format!("{}/api/v1/pods", server.api));
    let elapsed = t0.elapsed();
    let bytes = body.map_or(0.0, |b| b.len() as f64);
    let (_, peak) = server.rss_mib();
    println!(
        "hollow: one list of all {pods} pods as JSON: {:.1} s, {:.0} MB; control plane RSS peak {peak0} MiB before, {peak} MiB after",
        elapsed.as_secs_f64(),
        bytes / 1e6
    );
}

/// The control plane's CPU while nothing changes, over one minute: heartbeats, status
/// reports, and the periodic no-op resync of git against the store (timed by its metric).
fn idle_and_resync(server: &ServerProcess, agents: &HollowNodes) {
    let resyncs0 = server.metric("keel_resync_duration_seconds_count");
    let seconds0 = server.metric("keel_resync_duration_seconds_sum");
    let (cpu0, hollow_cpu0) = (server.cpu(), agents.cpu());
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(65));
    let cpu = server.cpu().saturating_sub(cpu0);
    let hollow_cpu = agents.cpu().saturating_sub(hollow_cpu0);
    let resyncs = server.metric("keel_resync_duration_seconds_count") - resyncs0;
    let seconds = server.metric("keel_resync_duration_seconds_sum") - seconds0;
    let (rss, _) = server.rss_mib();
    println!(
        "hollow: idle control plane: {:.1} s CPU over {:.0} s; {resyncs:.0} no-op resync(s) of git against the store, {:.0} ms each; RSS after it {rss} MiB",
        cpu.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
        if resyncs > 0.0 {
            seconds * 1000.0 / resyncs
        } else {
            0.0
        }
    );
    println!(
        "hollow: idle hollow nodes (heartbeats, keepalives): {:.1} s CPU over the same time",
        hollow_cpu.as_secs_f64()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    docker_scenario(&runtime);
    hollow_scenario();
    std::process::exit(0);
}
