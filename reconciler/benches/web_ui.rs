//! The web UI with 10,000 pods (100 Deployments × 100 pods on 500 nodes), served by the
//! real accept loop over a redb store:
//! - the server time of the first page (the overview), the tree's rows and the nodes page,
//!   median of 20 requests each;
//! - with Debian's chromium and playwright-core installed (`scripts/install-deps --browser`),
//!   the tree page in the browser: time until rows show, rows in the document (it is
//!   virtualised), and the slowest frame while scrolling through every pod.
//!
//! `cargo bench -p keel-reconciler --bench web_ui`.

use std::time::{Duration, Instant};

use keel_reconciler::http::AppState;
use keel_schema::{Kind, Object, ObjectKey};
use keel_store::{Batch, BatchOp};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEPLOYMENTS: usize = 100;
const PODS_EACH: usize = 100;
const NODES: usize = 500;

fn deployment(d: usize) -> Object {
    Object::from_json(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": format!("app-{d:03}"), "namespace": "default", "uid": format!("d-{d}")},
        "spec": {"replicas": PODS_EACH, "selector": {"matchLabels": {"app": format!("app-{d:03}")}},
                 "template": {"metadata": {"labels": {"app": format!("app-{d:03}")}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
        "status": {"replicas": PODS_EACH, "readyReplicas": PODS_EACH, "availableReplicas": PODS_EACH,
                   "updatedReplicas": PODS_EACH, "observedGeneration": 1}
    }))
    .expect("a deployment")
}

fn replica_set(d: usize) -> Object {
    Object::from_json(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("app-{d:03}-5d8f"), "namespace": "default", "uid": format!("rs-{d}"),
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                          "name": format!("app-{d:03}"), "uid": format!("d-{d}"), "controller": true}]},
        "spec": {"replicas": PODS_EACH, "selector": {"matchLabels": {"app": format!("app-{d:03}")}},
                 "template": {"metadata": {"labels": {"app": format!("app-{d:03}")}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
        "status": {"replicas": PODS_EACH, "readyReplicas": PODS_EACH, "availableReplicas": PODS_EACH}
    }))
    .expect("a replica set")
}

fn pod(d: usize, i: usize) -> Object {
    let n = d * PODS_EACH + i;
    Object::from_json(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("app-{d:03}-5d8f-{i:03}"), "namespace": "default",
                     "labels": {"app": format!("app-{d:03}")},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": format!("app-{d:03}-5d8f"), "uid": format!("rs-{d}"), "controller": true}]},
        "spec": {"nodeName": format!("node-{:03}", n % NODES),
                 "containers": [{"name": "web", "image": "nginx:1.27",
                                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
        "status": {"phase": "Running", "podIP": format!("10.244.{}.{}", n / 250, n % 250),
                   "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .expect("a pod")
}

fn node(n: usize) -> Object {
    Object::from_json(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": format!("node-{n:03}")},
        "status": {"capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                   "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .expect("a node")
}

mod support;

fn main() {
    support::run(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("data dir");
    let store = support::store(dir.path()).await;
    let mut objects: Vec<Object> = (0..NODES).map(node).collect();
    for d in 0..DEPLOYMENTS {
        objects.push(deployment(d));
        objects.push(replica_set(d));
        objects.extend((0..PODS_EACH).map(|i| pod(d, i)));
    }
    let total = objects.len();
    for chunk in objects.chunks(1_000) {
        let batch = Batch {
            label: "objects".into(),
            ops: chunk.iter().cloned().map(BatchOp::Create).collect(),
            record: None,
        };
        store.apply_batch(batch).await.expect("written");
    }
    let state = AppState::standalone(store.clone(), dir.path())
        .await
        .expect("api");
    state.status.set_declared(
        (0..DEPLOYMENTS)
            .map(|d| ObjectKey::new(Kind::Deployment, "default", &format!("app-{d:03}")))
            .collect(),
    );
    let token = state.api_token.secret().to_string();
    // The cache the pages read from holds everything before anything is timed.
    let cache = state.cache.clone();
    while cache.all().len() < total {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (url, stop) = support::serve(state).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    // Signed in as a browser is: the form, then the session's cookie.
    let signed_in = client
        .post(format!("{url}/ui/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("sign in");
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .expect("a cookie")
        .split(';')
        .next()
        .expect("its value")
        .to_string();
    println!(
        "{total} objects: {} pods on {NODES} nodes",
        DEPLOYMENTS * PODS_EACH
    );
    for (what, path) in [
        ("the overview (first page)", "/"),
        ("the tree's rows", "/ui/api/tree"),
        ("the nodes page", "/ui/nodes"),
    ] {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..20 {
            let started = Instant::now();
            let response = client
                .get(format!("{url}{path}"))
                .header("Cookie", &cookie)
                .send()
                .await
                .expect("page");
            assert_eq!(response.status().as_u16(), 200, "{path}");
            let body = response.bytes().await.expect("body");
            times.push(started.elapsed());
            bytes = body.len();
        }
        times.sort();
        println!(
            "{what}: median {:?} (fastest {:?}, slowest {:?}), {} KiB",
            times[10],
            times[0],
            times[19],
            bytes / 1024
        );
    }
    in_browser(&url, &cookie).await;
    stop.cancel();
}

/// The tree page in chromium, when the browser tests' tools are installed.
async fn in_browser(url: &str, cookie: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser");
    if !dir.join("node_modules/playwright-core").is_dir()
        || !std::path::Path::new("/usr/bin/chromium").exists()
    {
        println!("the tree in a browser: not measured (run bash scripts/install-deps --browser)");
        return;
    }
    let out = tokio::process::Command::new("node")
        .arg(dir.join("tree-bench.mjs"))
        .current_dir(&dir)
        .env("KEEL_URL", url)
        .env("KEEL_SESSION", cookie.trim_start_matches("keel_session="))
        .output()
        .await
        .expect("node");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        println!(
            "the tree in a browser failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
