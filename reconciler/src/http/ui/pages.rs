//! The overview, tree and nodes pages: gathered from the controllers' cache (no store reads
//! per object), so they answer in milliseconds with 10,000 pods.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Json, Response};
use keel_api::health::health;
use keel_schema::{Kind, Object, ObjectKey};
use keel_ui::Viewer;
use keel_ui::pages::nodes::NodeRow;
use keel_ui::pages::overview::{AppHealth, HEALTHS, Overview, Trouble};

use crate::http::state::AppState;

/// Objects not Healthy listed per app on the overview (the tree shows the rest).
const TROUBLE_SHOWN: usize = 10;

/// `GET /`.
pub async fn overview(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Response {
    let data = overview_data(&state).await;
    Html(keel_ui::pages::overview::overview(&viewer, &data).into_string()).into_response()
}

/// `GET /ui/fragment/overview`: the live part of the overview, for the script.
pub async fn overview_fragment(State(state): State<AppState>) -> Response {
    let data = overview_data(&state).await;
    Html(keel_ui::pages::overview::fragment(&data).into_string()).into_response()
}

/// Everything the overview shows.
pub async fn overview_data(state: &AppState) -> Overview {
    let status = crate::http::leader::sync_status(state).await;
    // The newest records name the applied commit and the last try (a record per app).
    let history = state.store.history(100).await.unwrap_or_default();
    let record = |commit: Option<&String>| {
        commit.and_then(|c| history.iter().find(|r| &r.commit == c).cloned())
    };
    let applied = record(status.applied_commit.as_ref());
    let last_try = record(status.last_commit.as_ref());
    let apps = if status.apps.is_empty() {
        vec![app_health(
            &state.cache,
            "(root)",
            "",
            status.applied_commit.clone(),
            &status.declared,
            None,
        )]
    } else {
        status
            .apps
            .iter()
            .map(|a| {
                let failed = a.last_result.is_some_and(|r| !r.is_success());
                app_health(
                    &state.cache,
                    &a.name,
                    &a.path,
                    a.applied_commit.clone(),
                    &a.declared,
                    a.last_error.clone().filter(|_| failed),
                )
            })
            .collect()
    };
    let nodes = state.cache.list(Kind::Node, None);
    let nodes_ready = nodes.iter().filter(|n| node_ready(&n.object)).count();
    let mut phases: BTreeMap<String, usize> = BTreeMap::new();
    for pod in state.cache.list(Kind::Pod, None) {
        if let Object::Pod(p) = &pod.object {
            let phase = p.status.as_ref().and_then(|s| s.phase);
            let phase = phase
                .map(|p| format!("{p:?}"))
                .unwrap_or_else(|| "Pending".into());
            *phases.entry(phase).or_default() += 1;
        }
    }
    Overview {
        status,
        applied,
        last_try,
        apps,
        nodes_ready,
        nodes: nodes.len(),
        pods: phases.into_iter().collect(),
    }
}

fn app_health(
    cache: &crate::cache::Cache,
    name: &str,
    path: &str,
    applied_commit: Option<String>,
    declared: &[ObjectKey],
    last_error: Option<String>,
) -> AppHealth {
    let mut app = AppHealth {
        name: name.to_string(),
        path: path.to_string(),
        applied_commit,
        last_error,
        ..Default::default()
    };
    for key in declared {
        let (h, why) = match cache.get(key) {
            Some(stored) => health(&stored.object),
            None => (keel_api::health::Health::Missing, String::new()),
        };
        let h = h.as_str();
        if let Some(i) = HEALTHS.iter().position(|x| *x == h) {
            app.counts[i] += 1;
        }
        if h != "Healthy" && h != "Unknown" && app.trouble.len() < TROUBLE_SHOWN {
            app.trouble.push(Trouble {
                kind: key.kind.as_str().to_string(),
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                health: h,
                why,
            });
        }
    }
    app
}

fn node_ready(node: &Object) -> bool {
    ready(node.conditions())
}

fn ready(conditions: &[keel_schema::types::meta::Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// `GET /ui/tree`.
pub async fn tree(State(state): State<AppState>, Extension(viewer): Extension<Viewer>) -> Response {
    let objects = state.cache.all();
    let mut kinds: Vec<String> = Vec::new();
    let mut namespaces: Vec<String> = Vec::new();
    for o in &objects {
        let kind = o.object.kind().as_str();
        if kinds.last().map(String::as_str) != Some(kind) {
            kinds.push(kind.to_string());
        }
        let ns = o.object.namespace();
        if !ns.is_empty() {
            namespaces.push(ns.to_string());
        }
    }
    kinds.retain(|k| !matches!(k.as_str(), "Node" | "Namespace"));
    kinds.dedup();
    namespaces.sort();
    namespaces.dedup();
    Html(keel_ui::pages::tree::tree(&viewer, &kinds, &namespaces).into_string()).into_response()
}

/// `GET /ui/api/tree`: the tree's rows (Secret objects are named, never their values).
pub async fn tree_rows(State(state): State<AppState>) -> Response {
    let objects = state.cache.all();
    let objects: Vec<&Object> = objects.iter().map(|s| &s.object).collect();
    Json(keel_ui::tree::rows(&objects)).into_response()
}

/// `GET /ui/nodes`.
pub async fn nodes(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Response {
    let rows: Vec<NodeRow> = state
        .cache
        .list(Kind::Node, None)
        .iter()
        .filter_map(|stored| match &stored.object {
            Object::Node(node) => Some(node_row(&state.cache, node)),
            _ => None,
        })
        .collect();
    Html(keel_ui::pages::nodes::nodes(&viewer, &rows).into_string()).into_response()
}

fn node_row(cache: &crate::cache::Cache, node: &keel_schema::types::core::Node) -> NodeRow {
    let name = node.metadata.name().to_string();
    let status = node.status.as_ref();
    let amount = |list: Option<&BTreeMap<String, keel_schema::quantity::Quantity>>,
                  key: &str,
                  millis: bool| {
        list.and_then(|l| l.get(key))
            .and_then(|q| if millis { q.millis() } else { q.value() }.ok())
            .unwrap_or(0)
    };
    let capacity = status.and_then(|s| s.capacity.as_ref());
    let allocatable = status.and_then(|s| s.allocatable.as_ref()).or(capacity);
    let pods = cache.pods_on(&name);
    let (mut cpu, mut memory) = (0i64, 0i64);
    for pod in &pods {
        if let Object::Pod(p) = &pod.object {
            let asked = keel_scheduler::PodRequest::of(p);
            cpu = cpu.saturating_add(asked.cpu_millis);
            memory = memory.saturating_add(asked.memory_bytes);
        }
    }
    NodeRow {
        ready: ready(
            status
                .and_then(|s| s.conditions.as_deref())
                .unwrap_or_default(),
        ),
        cordoned: node.spec.unschedulable == Some(true),
        address: status
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone())
            .unwrap_or_default(),
        cpu: [
            cpu,
            amount(allocatable, "cpu", true),
            amount(capacity, "cpu", true),
        ],
        memory: [
            memory,
            amount(allocatable, "memory", false),
            amount(capacity, "memory", false),
        ],
        pods: pods.len(),
        max_pods: capacity
            .and_then(|c| c.get("pods"))
            .and_then(|q| q.value().ok()),
        certificate_expires: node
            .metadata
            .annotation(crate::nodes::CERTIFICATE_EXPIRES)
            .map(str::to_string),
        version: status
            .and_then(|s| s.node_info.as_ref())
            .and_then(|i| i.agent_version.clone())
            .unwrap_or_default(),
        name,
    }
}
