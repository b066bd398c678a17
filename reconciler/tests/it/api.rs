//! The read API over a real store: Kubernetes paths and list shapes, label selectors, errors
//! as `Status` objects, and Secret values that never leave the server.

use keel_reconciler::http::{AppState, router};
use keel_schema::object::Object;
use keel_store::{Store, StoreSpec};
use serde_json::{Value, json};

pub(super) struct Api {
    pub(super) url: String,
    /// Sends the admin token.
    pub(super) client: reqwest::Client,
    token: String,
    /// The store behind it, to change objects while a client watches.
    pub(super) store: Store,
    _dir: tempfile::TempDir,
}

impl Api {
    /// The admin token.
    pub(super) fn token(&self) -> &str {
        &self.token
    }

    pub(super) async fn get(&self, path: &str) -> (u16, Value) {
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

pub(super) async fn api(objects: Vec<Value>) -> Api {
    api_with(objects, false).await
}

pub(super) async fn api_with(objects: Vec<Value>, anonymous_read: bool) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreSpec::Redb {
        data_dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    for o in objects {
        store.create(Object::from_json(o).unwrap()).await.unwrap();
    }
    let kept = store.clone();
    let mut state = AppState::standalone(store, dir.path()).await.unwrap();
    state.anonymous_read = anonymous_read;
    let token = std::fs::read_to_string(dir.path().join("admin-token"))
        .unwrap()
        .trim()
        .to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    Api {
        url,
        client: reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap(),
        token,
        store: kept,
        _dir: dir,
    }
}

pub(super) fn pod(ns: &str, name: &str, app: &str) -> Value {
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
        .get("/api/v1/pods?fieldSelector=spec.replicas%3D1")
        .await;
    assert_eq!(
        (code, unsupported["reason"].as_str()),
        (400, Some("BadRequest"))
    );
    assert!(
        unsupported["message"]
            .as_str()
            .unwrap()
            .contains("field label not supported: spec.replicas"),
        "{unsupported}"
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

/// A request without (or with a wrong) bearer token: its status and body.
async fn anonymous(api: &Api, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", api.url);
    let mut req = match method {
        "POST" => client.post(url).json(&json!({"ttl": "1h"})),
        _ => client.get(url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn reads_and_tokens_need_the_bearer_token() {
    let api = api(vec![pod("default", "a", "web")]).await;
    for path in [
        "/api/v1/pods",
        "/api/keel/status",
        "/api/keel/history",
        "/metrics",
        "/api/v1/namespaces/default/pods/a/log",
    ] {
        let (code, body) = anonymous(&api, "GET", path, None).await;
        assert_eq!(code, 401, "{path}: {body}");
        assert_eq!(body["reason"], "Unauthorized", "{path}");
        let (code, _) = anonymous(&api, "GET", path, Some("x".repeat(40).as_str())).await;
        assert_eq!(code, 401, "{path} with a wrong token");
    }
    let (code, _) = anonymous(&api, "POST", "/api/keel/tokens", None).await;
    assert_eq!(code, 401);
    // Open without a token: health, and the webhook (it has its own signature).
    assert_eq!(anonymous(&api, "GET", "/healthz", None).await.0, 200);
    // With the token.
    let (code, body) = anonymous(&api, "GET", "/api/v1/pods", Some(&api.token)).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = anonymous(&api, "POST", "/api/keel/tokens", Some(&api.token)).await;
    assert_eq!(code, 201, "{body}");
    let token = body["token"].as_str().unwrap();
    keel_tls::JoinToken::parse(token).unwrap();
    // Listed by id, never with its secret.
    let (_, list) = api.get("/api/keel/tokens").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(token.rsplit('.').next().unwrap()));
}

#[tokio::test]
async fn anonymous_read_opens_reads_but_not_tokens() {
    let api = api_with(vec![pod("default", "a", "web")], true).await;
    let (code, body) = anonymous(&api, "GET", "/api/v1/pods", None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        anonymous(&api, "GET", "/api/keel/tokens", None).await.0,
        401
    );
    assert_eq!(
        anonymous(&api, "POST", "/api/keel/tokens", None).await.0,
        401
    );
}

#[tokio::test]
async fn bad_token_requests_get_clear_errors() {
    let api = api(vec![]).await;
    let post = |body: Value| {
        api.client
            .post(format!("{}/api/keel/tokens", api.url))
            .json(&body)
            .send()
    };
    for (body, want) in [
        (json!({"ttl": "soon"}), "ttl"),
        (json!({"ttl": "0s"}), "ttl must be more than 0s"),
        (json!({"ttl": "400d"}), "at most 365 days"),
        (json!({"ttl": "1h", "extra": 1}), "unknown field"),
    ] {
        let resp = post(body.clone()).await.unwrap();
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert!((400..500).contains(&code), "{body}: {code} {text}");
        assert!(text.contains(want), "{body}: {text}");
    }
}

/// A plan's request is checked for shape before any object is built: nesting, object count
/// and object size are bounded, each answered with what was too much.
#[tokio::test]
async fn plan_requests_are_bounded_before_they_are_parsed() {
    use keel_reconciler::http::plan::{MAX_DEPTH, MAX_OBJECT_BYTES, MAX_OBJECTS};
    let api = api(vec![]).await;
    let post = |body: String| {
        let request = api
            .client
            .post(format!("{}/api/keel/plan", api.url))
            .header("content-type", "application/json")
            .body(body);
        async move {
            let resp = request.send().await.unwrap();
            let code = resp.status().as_u16();
            (code, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let cm = |name: &str, value: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
               "data": {"v": value}})
    };

    let fine = json!({"objects": [cm("a", "b")]}).to_string();
    let (code, body) = post(fine).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["changes"].as_array().map(Vec::len), Some(1), "{body}");

    let (open, close) = ("[".repeat(MAX_DEPTH + 10), "]".repeat(MAX_DEPTH + 10));
    let deep = format!(
        r#"{{"objects": [{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "d"}}, "data": {open}1{close}}}]}}"#
    );
    let (code, body) = post(deep).await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("nests deeper than 64"),
        "{body}"
    );

    let big = json!({"objects": [cm("small", "x"), cm("big", &"x".repeat(MAX_OBJECT_BYTES))]});
    let (code, body) = post(big.to_string()).await;
    assert_eq!(code, 413, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("objects[1] is "),
        "{body}"
    );

    let many: Vec<String> = (0..=MAX_OBJECTS).map(|_| "{}".to_string()).collect();
    let (code, body) = post(format!(r#"{{"objects": [{}]}}"#, many.join(","))).await;
    assert_eq!(code, 413, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("at most 20000 objects"),
        "{body}"
    );

    let (code, body) = post("{\"objects\": 7}".into()).await;
    assert_eq!(code, 400, "{body}");
}
