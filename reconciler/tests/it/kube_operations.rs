//! The writes the Kubernetes API allows (deleting a pod, cordoning a node, restarting a
//! workload) with the admin token, what a view token may do, and that any other change to
//! the same objects is still refused.

use keel_schema::Kind;
use keel_store::ObjectKey;
use serde_json::{Value, json};

use super::api::{Api, api, pod};

impl Api {
    async fn send_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .header("Content-Type", "application/strategic-merge-patch+json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let resp = request.send().await.unwrap();
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }

    async fn stored(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        let key = ObjectKey::new(kind, ns, name);
        let stored = self.store.get(&key).await.unwrap()?;
        Some(serde_json::to_value(stored.object).unwrap())
    }
}

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "web", "namespace": "default"},
           "spec": {"selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}})
}

#[tokio::test]
async fn the_admin_token_deletes_pods_cordons_nodes_and_restarts_workloads() {
    let mut bound = pod("default", "bound", "web");
    bound["spec"]["nodeName"] = json!("n1");
    let mut dry = pod("default", "dry", "web");
    dry["spec"]["nodeName"] = json!("n1");
    let api = api(vec![
        dry,
        pod("default", "loose", "web"),
        bound,
        node("n1"),
        deployment(),
    ])
    .await;
    let admin = Some(api.token());

    // A pod on no node goes at once; one on a node is stopped there first.
    let (code, _) = api
        .send_as(
            admin,
            "DELETE",
            "/api/v1/namespaces/default/pods/loose",
            json!({}),
        )
        .await;
    assert_eq!(code, 200);
    assert!(api.stored(Kind::Pod, "default", "loose").await.is_none());
    let (code, marked) = api
        .send_as(
            admin,
            "DELETE",
            "/api/v1/namespaces/default/pods/bound",
            json!({}),
        )
        .await;
    assert_eq!(code, 200, "{marked}");
    let bound = api.stored(Kind::Pod, "default", "bound").await.unwrap();
    assert!(
        bound["metadata"]["deletionTimestamp"].is_string(),
        "{bound}"
    );
    let (code, _) = api
        .send_as(
            admin,
            "DELETE",
            "/api/v1/namespaces/default/pods/gone",
            json!({}),
        )
        .await;
    assert_eq!(code, 404);

    // --dry-run=server answers and changes nothing; preconditions are checked.
    let (code, would) = api
        .send_as(
            admin,
            "DELETE",
            "/api/v1/namespaces/default/pods/dry",
            json!({"kind": "DeleteOptions", "dryRun": ["All"]}),
        )
        .await;
    assert_eq!(code, 200, "{would}");
    assert!(
        would["metadata"]["deletionTimestamp"].is_string(),
        "{would}"
    );
    let dry = api.stored(Kind::Pod, "default", "dry").await.unwrap();
    assert!(
        dry["metadata"]["deletionTimestamp"].is_null(),
        "a dry run: {dry}"
    );
    let (code, _) = api
        .send_as(
            admin,
            "DELETE",
            "/api/v1/namespaces/default/pods/dry",
            json!({"preconditions": {"uid": "not-its-uid"}}),
        )
        .await;
    assert_eq!(code, 409);
    let cordon = json!({"spec": {"unschedulable": true}});
    let (code, _) = api
        .send_as(admin, "PATCH", "/api/v1/nodes/n1?dryRun=All", cordon)
        .await;
    assert_eq!(code, 200);
    let n1 = api.stored(Kind::Node, "", "n1").await.unwrap();
    assert!(n1["spec"]["unschedulable"].is_null(), "a dry run: {n1}");

    // kubectl cordon and uncordon.
    let cordon = json!({"spec": {"unschedulable": true}});
    let (code, _) = api
        .send_as(admin, "PATCH", "/api/v1/nodes/n1", cordon)
        .await;
    assert_eq!(code, 200);
    let n1 = api.stored(Kind::Node, "", "n1").await.unwrap();
    assert_eq!(n1["spec"]["unschedulable"], true);
    let (_, status) = api.get("/api/keel/status").await;
    assert_eq!(status["cordoned"], json!(["n1"]));
    let uncordon = json!({"spec": {"unschedulable": null}});
    let (code, _) = api
        .send_as(admin, "PATCH", "/api/v1/nodes/n1", uncordon)
        .await;
    assert_eq!(code, 200);
    let n1 = api.stored(Kind::Node, "", "n1").await.unwrap();
    assert!(n1["spec"]["unschedulable"].is_null(), "{n1}");
    // Any other change of a node is not an operation.
    let label = json!({"metadata": {"labels": {"a": "b"}}});
    let (code, _) = api.send_as(admin, "PATCH", "/api/v1/nodes/n1", label).await;
    assert_eq!(code, 405);

    // kubectl rollout restart; a scale is still refused.
    let restart = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-12-05T21:00:00Z"}}}}});
    let path = "/apis/apps/v1/namespaces/default/deployments/web";
    let (code, _) = api.send_as(admin, "PATCH", path, restart).await;
    assert_eq!(code, 200);
    let web = api
        .stored(Kind::Deployment, "default", "web")
        .await
        .unwrap();
    assert_eq!(
        web["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        "2026-12-05T21:00:00Z"
    );
    let scale = json!({"spec": {"replicas": 5}});
    let (code, _) = api.send_as(admin, "PATCH", path, scale).await;
    assert_eq!(code, 405);
}

#[tokio::test]
async fn view_tokens_read_and_change_nothing() {
    let api = api(vec![pod("default", "loose", "web"), node("n1")]).await;
    let admin = Some(api.token());
    let (code, made) = api
        .send_as(
            admin,
            "POST",
            "/api/keel/tokens",
            json!({"role": "view", "ttl": "1h"}),
        )
        .await;
    assert_eq!(code, 201, "{made}");
    assert_eq!(made["role"], "view");
    let view = made["token"].as_str().unwrap().to_string();
    let (_, listed) = api
        .send_as(admin, "GET", "/api/keel/tokens", Value::Null)
        .await;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == made["id"] && t["role"] == "view"),
        "{listed}"
    );

    let (code, _) = api
        .send_as(Some(&view), "GET", "/api/v1/pods", Value::Null)
        .await;
    assert_eq!(code, 200, "a view token reads");
    let (code, refused) = api
        .send_as(
            Some(&view),
            "DELETE",
            "/api/v1/namespaces/default/pods/loose",
            json!({}),
        )
        .await;
    assert_eq!((code, refused["reason"].as_str()), (403, Some("Forbidden")));
    assert!(api.stored(Kind::Pod, "default", "loose").await.is_some());
    let (code, _) = api
        .send_as(
            Some(&view),
            "PATCH",
            "/api/v1/nodes/n1",
            json!({"spec": {"unschedulable": true}}),
        )
        .await;
    assert_eq!(code, 403);
    let (code, _) = api
        .send_as(
            Some(&view),
            "POST",
            "/api/keel/tokens",
            json!({"role": "view"}),
        )
        .await;
    assert_eq!(code, 403, "a view token makes no tokens");
    let (code, _) = api.send_as(None, "GET", "/api/v1/pods", Value::Null).await;
    assert_eq!(code, 401);
    let (code, _) = api
        .send_as(
            Some("abcdef.0123456789abcdef"),
            "GET",
            "/api/v1/pods",
            Value::Null,
        )
        .await;
    assert_eq!(code, 401, "an unknown token reads nothing");

    let id = made["id"].as_str().unwrap();
    let (code, _) = api
        .send_as(
            admin,
            "DELETE",
            &format!("/api/keel/tokens/{id}"),
            Value::Null,
        )
        .await;
    assert_eq!(code, 200);
    let (_, listed) = api
        .send_as(admin, "GET", "/api/keel/tokens", Value::Null)
        .await;
    assert!(listed["items"].as_array().unwrap().is_empty(), "{listed}");
}

#[tokio::test]
async fn exec_and_port_forward_need_the_admin_token_and_a_websocket() {
    let mut bound = pod("default", "bound", "web");
    bound["spec"]["nodeName"] = json!("n1");
    let mut n1 = node("n1");
    n1["metadata"]["annotations"] = json!({"keel.dev/agent-address": "127.0.0.1:9"});
    let api = api(vec![bound, n1]).await;
    let admin = api.token().to_string();
    let (code, made) = api
        .send_as(
            Some(&admin),
            "POST",
            "/api/keel/tokens",
            json!({"role": "view"}),
        )
        .await;
    assert_eq!(code, 201, "{made}");
    let view = made["token"].as_str().unwrap().to_string();
    let ask = |token: String, method: &'static str, path: &'static str, spdy: bool| {
        let url = format!("{}{path}", api.url);
        async move {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = reqwest::Client::new()
                .request(method, url)
                .bearer_auth(token);
            if spdy {
                request = request
                    .header("Connection", "Upgrade")
                    .header("Upgrade", "SPDY/3.1");
            }
            let resp = request.send().await.unwrap();
            let code = resp.status().as_u16();
            (code, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let exec = "/api/v1/namespaces/default/pods/bound/exec?command=ls&stdout=true";
    let (code, _) = ask(view.clone(), "GET", exec, false).await;
    assert_eq!(code, 403, "a view token opens no shell");
    let (code, said) = ask(admin.clone(), "GET", exec, false).await;
    assert_eq!(code, 400, "{said}");
    assert!(
        said["message"]
            .as_str()
            .unwrap()
            .contains("Upgrade request required"),
        "{said}"
    );
    let (code, said) = ask(admin.clone(), "POST", exec, true).await;
    assert_eq!(code, 400, "{said}");
    assert!(
        said["message"].as_str().unwrap().contains("not SPDY"),
        "{said}"
    );
    // The pod is checked first, so a client falling back to SPDY still hears of it.
    let missing = "/api/v1/namespaces/default/pods/gone/exec?command=ls&stdout=true";
    let (code, said) = ask(admin.clone(), "POST", missing, true).await;
    assert_eq!(code, 404, "{said}");
    let quiet = "/api/v1/namespaces/default/pods/bound/exec?command=ls";
    let (code, said) = ask(admin.clone(), "GET", quiet, false).await;
    assert_eq!(code, 400, "{said}");
    assert!(
        said["message"]
            .as_str()
            .unwrap()
            .contains("at least 1 of stdin, stdout, stderr")
    );
    let forward = "/api/v1/namespaces/default/pods/bound/portforward?ports=80";
    let (code, _) = ask(view, "GET", forward, false).await;
    assert_eq!(code, 403);
    let (code, said) = ask(admin, "GET", forward, false).await;
    assert_eq!(code, 400, "{said}");
}
