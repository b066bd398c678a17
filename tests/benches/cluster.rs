//! The whole control plane, in one process (`cargo bench -p keel-e2e --bench cluster`):
//! `keel server` (its library entry point, the embedded store) and in-process agents.
//!
//! - Docker (skipped, saying so, without a Docker engine): 3 agents on the real engine; ten
//!   times, commit a 3-replica Deployment and time it to all 3 pods Running and ready
//!   (p50, p90), then commit its removal and wait for its containers to go.
//! - Hollow: 500 hollow agents; one commit of a Deployment with 10,000 replicas, timed to
//!   every pod available (created, scheduled, pushed to its node, started, reported Running
//!   and Ready, counted). `KEEL_BENCH_NODES` / `KEEL_BENCH_PODS` change the sizes.

use std::collections::BTreeMap;
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
use keel_nodeagent::runtime::hollow::HollowRuntime;
use serde_json::Value;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn get(url: &str) -> Option<Value> {
    let out = Command::new("curl").args(["-s", "-f", url]).output().ok()?;
    serde_json::from_slice(&out.stdout).ok()
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

fn start_control_plane() -> ControlPlane {
    let work = tempfile::tempdir().expect("tempdir");
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    write(&repo, "README", "bench\n");
    // Something that stays: a revision removing every object would be refused.
    write(
        &repo,
        "keep.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\ndata: {a: b}\n",
    );
    commit(&repo, "empty");
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
    let config = AgentConfig {
        metrics_listen: None,
        node: name.to_string(),
        listen: "127.0.0.1:0".parse().unwrap(),
        advertise: None,
        server: Some(cp.agents_at.clone()),
        labels: BTreeMap::new(),
        cpu_millis: 4000,
        memory_bytes: 8 << 30,
        max_pods: 110,
        data_dir: cp.work.path().join("agents").join(name),
        allowed_host_paths: vec![],
        service_proxy: None,
        ingress: None,
        dns: None,
        identity: None,
        network,
        // Every agent of this process shares one network namespace: no routes between them.
        overlay: None,
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

fn hollow_scenario(runtime: &tokio::runtime::Runtime) {
    let nodes = env_or("KEEL_BENCH_NODES", 500);
    let pods = env_or("KEEL_BENCH_PODS", 10_000);
    let cp = start_control_plane();
    let started = Instant::now();
    let _agents: Vec<RunningAgent> = runtime.block_on(async {
        let mut agents = Vec::with_capacity(nodes);
        for i in 0..nodes {
            let network = NodeNetwork::new();
            let rt: Arc<dyn Runtime> = Arc::new(HollowRuntime::new().with_network(network.clone()));
            agents.push(start_agent(&cp, &format!("hollow-{i}"), network, rt).await);
        }
        agents
    });
    wait_nodes(&cp, nodes);
    println!(
        "hollow: {nodes} nodes registered in {:?}",
        started.elapsed()
    );
    write(
        &cp.repo,
        "scale.yaml",
        &deployment("scale", pods, "hollow/app:1", "IfNotPresent"),
    );
    let committed = Instant::now();
    commit(&cp.repo, "scale up");
    let url = format!(
        "{}/apis/apps/v1/namespaces/default/deployments/scale",
        cp.api
    );
    let mut created = None;
    loop {
        let d = get(&url).unwrap_or(Value::Null);
        let replicas = d["status"]["replicas"].as_u64().unwrap_or(0) as usize;
        let ready = d["status"]["availableReplicas"].as_u64().unwrap_or(0) as usize;
        if replicas == pods && created.is_none() {
            created = Some(committed.elapsed());
        }
        if ready == pods {
            break;
        }
        assert!(
            committed.elapsed() < Duration::from_secs(600),
            "not all available after 600 s: {ready}/{pods}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = committed.elapsed();
    println!(
        "hollow: commit to {pods} pods created (counted by their ReplicaSet): {:?}",
        created.unwrap_or(all)
    );
    println!(
        "hollow: commit to {pods} pods Running and available on {nodes} nodes: {all:?} ({:.0} pods/s)",
        pods as f64 / all.as_secs_f64()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    docker_scenario(&runtime);
    hollow_scenario(&runtime);
    std::process::exit(0);
}
