//! The read API over a real store: Kubernetes paths and list shapes, label selectors, errors
//! as `Status` objects, and Secret values that never leave the server.

use std::sync::{Arc, Mutex};

use keel_reconciler::server::http::{AppState, router};
use keel_reconciler::store::{Store, StoreSpec};
use keel_schema::object::Object;
use serde_json::{Value, json};

struct Api {
    url: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
    /// Keeps the cache following the store for the test's length.
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Api {
    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }
}

async fn api(objects: Vec<Value>) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreSpec::Redb {
        data_dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    for o in objects {
        store.create(Object::from_json(o).unwrap()).await.unwrap();
    }
    let (trigger, _rx) = tokio::sync::mpsc::channel(1);
    let cache = keel_reconciler::controllers::cache::Cache::new();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn({
        let (cache, store) = (cache.clone(), store.clone());
        async move { cache.run(store, stop).await }
    });
    let state = AppState {
        cache,
        store,
        status: Arc::new(Mutex::new(Default::default())),
        metrics: Arc::default(),
        trigger,
        webhook_secret: None,
        service_network: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let _ = rustls::crypto::ring::default_provider().install_default();
    Api {
        url,
        client: reqwest::Client::new(),
        _dir: dir,
        _stop: stop_tx,
    }
}

fn pod(ns: &str, name: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
           "spec": {"containers": [{"name": "c", "image": "x:1"}]}})
}

#[tokio::test]
async fn lists_and_gets_at_kubernetes_paths() {
    let api = api(vec![
        pod("default", "web-1", "web"),
        pod("default", "db-1", "db"),
        pod("shop", "web-2", "web"),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}),
    ])
    .await;
    let names = |v: &Value| -> Vec<String> {
        let mut n: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                format!(
                    "{}/{}",
                    i["metadata"]["namespace"].as_str().unwrap(),
                    i["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        n.sort();
        n
    };
    let (code, all) = api.get("/api/v1/pods").await;
    assert_eq!(code, 200);
    assert_eq!(
        (all["apiVersion"].as_str(), all["kind"].as_str()),
        (Some("v1"), Some("PodList"))
    );
    assert!(
        all["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    assert_eq!(names(&all), ["default/db-1", "default/web-1", "shop/web-2"]);
    let (_, default) = api.get("/api/v1/namespaces/default/pods").await;
    assert_eq!(names(&default), ["default/db-1", "default/web-1"]);
    let (_, webs) = api.get("/api/v1/pods?labelSelector=app%3Dweb").await;
    assert_eq!(names(&webs), ["default/web-1", "shop/web-2"]);
    let (_, notweb) = api.get("/api/v1/pods?labelSelector=app+notin+(web)").await;
    assert_eq!(names(&notweb), ["default/db-1"]);
    let (code, one) = api.get("/api/v1/namespaces/shop/pods/web-2").await;
    assert_eq!(
        (code, one["metadata"]["name"].as_str()),
        (200, Some("web-2"))
    );
    let (code, d) = api
        .get("/apis/apps/v1/namespaces/shop/deployments/web")
        .await;
    assert_eq!((code, d["kind"].as_str()), (200, Some("Deployment")));
    let (_, ds) = api.get("/apis/apps/v1/deployments").await;
    assert_eq!(ds["kind"], "DeploymentList");
}

#[tokio::test]
async fn errors_are_kubernetes_status_objects() {
    let api = api(vec![pod("default", "web-1", "web")]).await;
    let (code, missing) = api.get("/api/v1/namespaces/default/pods/nope").await;
    assert_eq!(code, 404);
    assert_eq!(missing["kind"], "Status");
    assert_eq!(missing["reason"], "NotFound");
    assert_eq!(missing["message"], "pods \"nope\" not found");
    for path in [
        "/api/v1/widgets",
        "/apis/apps/v1/pods",               // pods are not in apps/v1
        "/api/v1/namespaces/default/nodes", // nodes are not namespaced
        "/api/v1/pods/web-1",               // a namespaced kind needs its namespace
    ] {
        let (code, s) = api.get(path).await;
        assert_eq!(
            (code, s["reason"].as_str()),
            (404, Some("NotFound")),
            "{path}"
        );
    }
    let (code, d) = api
        .get("/apis/apps/v1/namespaces/default/deployments/gone")
        .await;
    assert_eq!(code, 404);
    assert_eq!(d["message"], "deployments.apps \"gone\" not found");
    let (code, unsupported) = api
        .get("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1")
        .await;
    assert_eq!(
        (code, unsupported["reason"].as_str()),
        (400, Some("BadRequest"))
    );
    assert!(
        unsupported["message"]
            .as_str()
            .unwrap()
            .contains("fieldSelector is not supported")
    );
    let (code, bad) = api.get("/api/v1/pods?labelSelector=app%3D%3D%3D").await;
    assert_eq!(code, 400);
    assert_eq!(bad["reason"], "BadRequest");
    assert!(
        bad["message"].as_str().unwrap().contains("labelSelector"),
        "{bad}"
    );
}

#[tokio::test]
async fn secret_values_never_leave_the_server() {
    let api = api(vec![json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "default"},
        "data": {"token": "c3VwZXItc2VjcmV0LXZhbHVl"}})])
    .await;
    for path in [
        "/api/v1/secrets",
        "/api/v1/namespaces/default/secrets/creds",
    ] {
        let resp = api
            .client
            .get(format!("{}{path}", api.url))
            .send()
            .await
            .unwrap();
        let text = resp.text().await.unwrap();
        assert!(text.contains("\"token\""), "keys are shown: {text}");
        assert!(
            !text.contains("c3VwZXItc2VjcmV0LXZhbHVl"),
            "value leaked: {text}"
        );
        assert!(!text.contains("super-secret-value"), "value leaked: {text}");
    }
}

#[tokio::test]
async fn metrics_count_objects_pods_by_phase_and_nodes() {
    let api = api(vec![
        pod("default", "web-1", "web"),
        pod("shop", "web-2", "web"),
    ])
    .await;
    let mut text = String::new();
    for _ in 0..100 {
        text = api
            .client
            .get(format!("{}/metrics", api.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("keel_objects{kind=\"Pod\"} 2") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(text.contains("keel_objects{kind=\"Pod\"} 2"), "{text}");
    // Pods with no status yet are Pending, as kubectl shows them.
    assert!(text.contains("keel_pods{phase=\"Pending\"} 2"), "{text}");
    assert!(text.contains("keel_pods{phase=\"Running\"} 0"), "{text}");
    assert!(text.contains("keel_nodes{ready=\"True\"} 0"), "{text}");
    assert!(text.contains("keel_node_heartbeats_total 0"), "{text}");
    assert!(text.contains("keel_scheduling_duration_seconds"), "{text}");
}
