//! The whole control plane at scale, in one process (`cargo bench -p keel-e2e --bench
//! cluster`): `keel server` (its library entry point, the embedded store) and 500 hollow
//! `keel-agent`s; one commit of a Deployment with 10,000 replicas; the time until the
//! Deployment reports every pod available (created, scheduled, pushed to its node, started,
//! reported Running and Ready, counted). `KEEL_BENCH_NODES` / `KEEL_BENCH_PODS` change the
//! sizes.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_e2e::{commit, free_port, git, write};
use keel_nodeagent::agent::{self, AgentConfig};
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

fn deployment(replicas: usize) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: scale}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: scale}}}}\n  template:\n    metadata: {{labels: {{app: scale}}}}\n    spec:\n      containers: [{{name: app, image: \"hollow/app:1\", resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}}}]\n"
    )
}

fn main() {
    let nodes = env_or("KEEL_BENCH_NODES", 500);
    let pods = env_or("KEEL_BENCH_PODS", 10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let work = tempfile::tempdir().expect("tempdir");
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    write(&repo, "README", "scale bench\n");
    commit(&repo, "empty");
    let api = format!("127.0.0.1:{}", free_port());
    let agents_at = format!("127.0.0.1:{}", free_port());
    let config = keel_reconciler::server::Config {
        repo: repo.to_string_lossy().into_owned(),
        branch: None,
        path: None,
        data_dir: work.path().join("data"),
        store: None,
        listen: api.clone(),
        agent_listen: agents_at.clone(),
        node_grace: Duration::from_secs(30),
        pod_eviction_timeout: Duration::from_secs(60),
        poll_interval: Duration::from_secs(1),
        resync_interval: Duration::from_secs(60),
        webhook_secret: None,
    };
    // Its own thread and runtime, as its own process would have (and `run` is not `Send`).
    std::thread::spawn(move || {
        let server = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        if let Err(e) = server.block_on(keel_reconciler::server::run(config)) {
            eprintln!("keel server: {e:#}");
            std::process::exit(1);
        }
    });
    let base = format!("http://{api}");
    let started = Instant::now();
    let _agents: Vec<_> = runtime.block_on(async {
        let mut agents = Vec::with_capacity(nodes);
        for i in 0..nodes {
            let config = AgentConfig {
                node: format!("hollow-{i}"),
                listen: "127.0.0.1:0".parse().unwrap(),
                advertise: None,
                server: Some(agents_at.clone()),
                labels: BTreeMap::new(),
                cpu_millis: 4000,
                memory_bytes: 8 << 30,
                max_pods: 110,
                data_dir: work.path().join("agents").join(format!("hollow-{i}")),
                allowed_host_paths: vec![],
            };
            let running = agent::start(config, Arc::new(HollowRuntime::new()))
                .await
                .expect("agent starts");
            agents.push(running);
        }
        agents
    });
    loop {
        let ready = get(&format!("{base}/api/v1/nodes"))
            .and_then(|l| l["items"].as_array().map(|a| a.len()))
            .unwrap_or(0);
        if ready == nodes {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("{nodes} hollow nodes registered in {:?}", started.elapsed());

    write(&repo, "scale.yaml", &deployment(pods));
    let committed = Instant::now();
    commit(&repo, "scale up");
    let url = format!("{base}/apis/apps/v1/namespaces/default/deployments/scale");
    let mut marks: Vec<(&str, Duration)> = Vec::new();
    let deadline = committed + Duration::from_secs(600);
    loop {
        let d = get(&url).unwrap_or(Value::Null);
        let replicas = d["status"]["replicas"].as_u64().unwrap_or(0) as usize;
        let available = d["status"]["availableReplicas"].as_u64().unwrap_or(0) as usize;
        if replicas == pods && !marks.iter().any(|(m, _)| *m == "created") {
            marks.push(("created", committed.elapsed()));
        }
        if available == pods {
            marks.push(("available", committed.elapsed()));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all available after 600 s: {available}/{pods}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "commit to {pods} pods created (counted by their ReplicaSet): {:?}",
        marks[0].1
    );
    println!(
        "commit to {pods} pods Running and available on {nodes} nodes: {:?} ({:.0} pods/s)",
        marks[marks.len() - 1].1,
        pods as f64 / marks[marks.len() - 1].1.as_secs_f64()
    );
    std::process::exit(0);
}
