//! The Kubernetes API under load, served by the real accept loop over a redb store:
//! - one ConfigMap change fanned out to 1,000 concurrent watches (each its own connection):
//!   time from the store write to each watch's event, p50, p99 and the slowest;
//! - 10,000 pods listed as a Table (what `kubectl get pods -A` asks), and as objects.
//!
//! `cargo bench -p keel-reconciler --bench kube_api`.

use std::time::{Duration, Instant};

use keel_reconciler::http::AppState;
use keel_schema::Object;
use keel_store::{Batch, BatchOp, ObjectKey, Store};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WATCHES: usize = 1_000;
const PODS: usize = 10_000;
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

fn pod(i: usize) -> Object {
    Object::from_json(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("web-{i:05}"), "namespace": format!("ns-{}", i % 20),
                     "labels": {"app": "web", "shard": (i % 10).to_string()}},
        "spec": {"nodeName": format!("node-{}", i % 500),
                 "containers": [{"name": "web", "image": "nginx:1.27",
                                 "ports": [{"containerPort": 80}],
                                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
        "status": {"phase": "Running", "podIP": format!("10.244.{}.{}", i / 250, i % 250)}
    }))
    .expect("a pod")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

mod support;

fn main() {
    support::run(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("data dir");
    let store = support::store(dir.path()).await;
    let state = AppState::standalone(store.clone(), dir.path())
        .await
        .expect("api");
    let token = state.api_token.secret().to_string();
    let (url, stop) = support::serve(state).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(WATCHES + 10)
        .build()
        .expect("client");

    fan_out(&store, &client, &url, &token).await;
    tables(&store, &client, &url, &token).await;
    stop.cancel();
}

/// 1,000 watches on ConfigMaps, one change, the time each takes to see it.
async fn fan_out(store: &Store, client: &reqwest::Client, url: &str, token: &str) {
    let cm = Object::from_json(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "page", "namespace": "default"}, "data": {"v": "0"}}))
    .expect("a config map");
    let created = store.create(cm).await.expect("created");
    let from = created.resource_version;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    for _ in 0..WATCHES {
        let (client, tx, ready) = (client.clone(), tx.clone(), ready_tx.clone());
        let path = format!(
            "{url}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={from}&allowWatchBookmarks=true"
        );
        let token = token.to_string();
        tokio::spawn(async move {
            let mut resp = client
                .get(path)
                .bearer_auth(token)
                .send()
                .await
                .expect("watch");
            assert_eq!(resp.status().as_u16(), 200);
            let _ = ready.send(());
            while let Ok(Some(chunk)) = resp.chunk().await {
                if chunk.windows(8).any(|w| w == b"MODIFIED") {
                    let _ = tx.send(Instant::now());
                    return;
                }
            }
        });
    }
    for _ in 0..WATCHES {
        ready_rx.recv().await.expect("a watch opened");
    }
    // Every watch has its answer's headers; give their store watches a moment to attach.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let key = ObjectKey::new(keel_schema::Kind::ConfigMap, "default", "page");
    let current = store.get(&key).await.expect("read").expect("there");
    let mut changed = current.object.clone();
    if let Object::ConfigMap(c) = &mut changed {
        c.data
            .get_or_insert_default()
            .insert("v".into(), "1".into());
    }
    let written = Instant::now();
    store
        .update(changed, current.resource_version)
        .await
        .expect("updated");
    let mut latencies = Vec::with_capacity(WATCHES);
    while latencies.len() < WATCHES {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(at)) => latencies.push(at - written),
            _ => break,
        }
    }
    latencies.sort();
    println!(
        "fan-out of one change to {WATCHES} watches: {} received; p50 {:?}, p99 {:?}, slowest {:?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
}

/// 10,000 pods listed as a Table and as objects: the median of 5 lists each.
async fn tables(store: &Store, client: &reqwest::Client, url: &str, token: &str) {
    for chunk in (0..PODS).collect::<Vec<_>>().chunks(1_000) {
        let batch = Batch {
            label: "pods".into(),
            ops: chunk.iter().map(|i| BatchOp::Create(pod(*i))).collect(),
            record: None,
        };
        store.apply_batch(batch).await.expect("pods written");
    }
    for (what, accept) in [("a Table", TABLE), ("objects", "application/json")] {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..5 {
            let started = Instant::now();
            let body = client
                .get(format!("{url}/api/v1/pods"))
                .bearer_auth(token)
                .header("Accept", accept)
                .send()
                .await
                .expect("list")
                .bytes()
                .await
                .expect("body");
            times.push(started.elapsed());
            bytes = body.len();
        }
        times.sort();
        println!(
            "{PODS} pods listed as {what}: median {:?} (fastest {:?}), {} KiB",
            times[2],
            times[0],
            bytes / 1024
        );
    }
}
