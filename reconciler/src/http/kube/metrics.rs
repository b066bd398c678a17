//! `metrics.k8s.io/v1beta1`, as metrics-server serves it (`kubectl top`, `keel top`, the
//! autoscaler): each request asks every registered node's agent for its latest usage sample
//! (taken every 15 s from the containers' cgroups) and answers with `NodeMetrics` and
//! `PodMetrics`. A node whose agent does not answer in time is left out, as
//! metrics-server leaves out a node it cannot scrape.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use chrono::{DateTime, Utc};
use keel_agent_protocol::{MetricsReport, ResourceUsage};
use keel_schema::selector::Selector;
use keel_schema::{Kind, Object};
use serde_json::{Value, json};

use super::super::errors::{bad_request, internal, status};
use super::super::state::AppState;

const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// Each node's latest sample, from every registered node's agent at once.
async fn samples(state: &AppState) -> Result<Vec<(String, MetricsReport)>, String> {
    let nodes = state
        .store
        .list(Kind::Node, None, None)
        .await
        .map_err(|e| e.to_string())?;
    let nodes = nodes.items.iter().map(|stored| &stored.object);
    Ok(crate::nodes::usage::samples(&state.dialer, nodes).await)
}

/// Kubernetes quantities: CPU in nanocores, memory in KiB.
fn usage(u: Option<&ResourceUsage>) -> Value {
    let u = u.copied().unwrap_or_default();
    json!({
        "cpu": format!("{}n", u.cpu_nanocores),
        "memory": format!("{}Ki", u.memory_bytes / 1024),
    })
}

fn timing(report: &MetricsReport) -> (String, String) {
    let at = DateTime::<Utc>::from_timestamp_millis(report.timestamp_unix_ms)
        .unwrap_or_else(Utc::now)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let window = format!("{}s", (report.window_ms.max(0) + 500) / 1000);
    (at, window)
}

/// The `labelSelector` asked for; the message of a 400 when it is malformed.
fn selector(q: &HashMap<String, String>) -> Result<Option<Selector>, String> {
    match q.get("labelSelector").filter(|s| !s.trim().is_empty()) {
        Some(text) => Selector::parse(text)
            .map(Some)
            .map_err(|e| format!("unable to parse requirement: labelSelector: {e}")),
        None => Ok(None),
    }
}

fn list(kind: &str, items: Vec<Value>) -> Response {
    Json(json!({
        "kind": format!("{kind}List"),
        "apiVersion": API_VERSION,
        "metadata": {},
        "items": items,
    }))
    .into_response()
}

/// NodeMetrics of the nodes whose labels `labels` selects (and named `name`, if given).
async fn node_metrics(
    state: &AppState,
    name: Option<&str>,
    labels: Option<&Selector>,
) -> Result<Vec<Value>, String> {
    let nodes = state
        .store
        .list(Kind::Node, None, labels)
        .await
        .map_err(|e| e.to_string())?;
    let node_labels: HashMap<String, Value> = nodes
        .items
        .iter()
        .map(|n| {
            (
                n.object.meta().name().to_string(),
                json!(n.object.meta().labels()),
            )
        })
        .collect();
    let mut items: Vec<Value> = samples(state)
        .await?
        .iter()
        .filter(|(node, _)| name.is_none_or(|n| n == node) && node_labels.contains_key(node))
        .map(|(node, report)| {
            let (at, window) = timing(report);
            json!({
                "kind": "NodeMetrics",
                "apiVersion": API_VERSION,
                "metadata": {"name": node, "labels": node_labels[node],
                             "creationTimestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
                "timestamp": at,
                "window": window,
                "usage": usage(report.node.as_ref()),
            })
        })
        .collect();
    items.sort_by(|a, b| {
        a["metadata"]["name"]
            .as_str()
            .cmp(&b["metadata"]["name"].as_str())
    });
    Ok(items)
}

/// PodMetrics of the pods in `namespace` (all when `None`) that `labels` selects.
async fn pod_metrics(
    state: &AppState,
    namespace: Option<&str>,
    name: Option<&str>,
    labels: Option<&Selector>,
) -> Result<Vec<Value>, String> {
    let pods = state
        .store
        .list(Kind::Pod, namespace, labels)
        .await
        .map_err(|e| e.to_string())?;
    // Pods the store has, by uid: a sample of a pod since deleted is left out.
    let known: HashMap<String, &Object> = pods
        .items
        .iter()
        .filter(|p| name.is_none_or(|n| p.object.meta().name() == n))
        .filter_map(|p| Some((p.object.meta().uid.clone()?, &p.object)))
        .collect();
    let mut items = Vec::new();
    for (_, report) in samples(state).await? {
        let (at, window) = timing(&report);
        for pod in &report.pods {
            let Some(object) = known.get(&pod.uid) else {
                continue;
            };
            let containers: Vec<Value> = pod
                .containers
                .iter()
                .map(|c| json!({"name": c.name, "usage": usage(c.usage.as_ref())}))
                .collect();
            items.push(json!({
                "kind": "PodMetrics",
                "apiVersion": API_VERSION,
                "metadata": {
                    "name": pod.name,
                    "namespace": pod.namespace,
                    "labels": object.meta().labels(),
                    "creationTimestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                },
                "timestamp": at,
                "window": window,
                "containers": containers,
            }));
        }
    }
    items.sort_by(|a, b| {
        let key = |v: &Value| {
            (
                v["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                v["metadata"]["name"].as_str().unwrap_or("").to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    Ok(items)
}

fn one(kind: &str, resource: &str, name: &str, items: Vec<Value>) -> Response {
    match items.into_iter().next() {
        Some(item) => Json(item).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "{resource}.metrics.k8s.io \"{name}\" not found ({kind} come from the node's agent every 15 s)"
            ),
        ),
    }
}

pub async fn nodes(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let labels = match selector(&q) {
        Ok(s) => s,
        Err(e) => return bad_request(e),
    };
    match node_metrics(&state, None, labels.as_ref()).await {
        Ok(items) => list("NodeMetrics", items),
        Err(e) => internal(e),
    }
}

pub async fn node(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    match node_metrics(&state, Some(&name), None).await {
        Ok(items) => one("node metrics", "nodes", &name, items),
        Err(e) => internal(e),
    }
}

pub async fn pods(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    pods_in(state, None, q).await
}

pub async fn pods_ns(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    pods_in(state, Some(ns), q).await
}

async fn pods_in(state: AppState, ns: Option<String>, q: HashMap<String, String>) -> Response {
    let labels = match selector(&q) {
        Ok(s) => s,
        Err(e) => return bad_request(e),
    };
    match pod_metrics(&state, ns.as_deref(), None, labels.as_ref()).await {
        Ok(items) => list("PodMetrics", items),
        Err(e) => internal(e),
    }
}

pub async fn pod(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    match pod_metrics(&state, Some(&ns), Some(&name), None).await {
        Ok(items) => one("pod metrics", "pods", &name, items),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests {
    use keel_agent_protocol::{MetricsReport, ResourceUsage};

    #[test]
    fn quantities_and_windows_read_as_kubernetes_writes_them() {
        let u = ResourceUsage {
            cpu_nanocores: 12_345_678,
            memory_bytes: 10 * 1024 * 1024,
        };
        let shown = super::usage(Some(&u));
        assert_eq!(shown["cpu"], "12345678n");
        assert_eq!(shown["memory"], "10240Ki");
        let report = MetricsReport {
            timestamp_unix_ms: 1_800_000_000_000,
            window_ms: 15_020,
            node: None,
            pods: Vec::new(),
        };
        let (at, window) = super::timing(&report);
        assert_eq!(window, "15s");
        assert!(at.starts_with("2027-01-15T"), "{at}");
    }
}
