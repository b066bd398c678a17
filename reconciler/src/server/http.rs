//! The HTTP API of `keel server` (axum): `/healthz`, `POST /api/webhook`,
//! `GET /api/keel/status`, `GET /api/keel/history`, and the read API of [`super::api`].
//!
//! Three tiers: `/healthz` and the webhook (verified by its signature) are open; reads need
//! the bearer token unless the server runs with `--anonymous-read`; join tokens always need
//! it (see `crate::auth::api_token`).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::sync::SyncStatus;
use super::webhook::signature_valid;
use keel_store::Store;

/// Webhook bodies larger than this get 413.
pub const MAX_WEBHOOK_BODY: usize = 1024 * 1024;
/// Plan requests carry a whole revision's objects (10,000 objects are about 15 MiB).
pub const MAX_PLAN_BODY: usize = 32 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub status: Arc<Mutex<SyncStatus>>,
    pub metrics: Arc<super::metrics::Metrics>,
    /// The controllers' view of the cluster (for the gauges in `/metrics`).
    pub cache: crate::controllers::cache::Cache,
    pub trigger: mpsc::Sender<()>,
    pub webhook_secret: Option<Arc<Vec<u8>>>,
    /// Service ranges, so plans show the addresses applying would assign.
    pub service_network: crate::apply::ServiceNetwork,
    /// Channels to agents (`keel logs`).
    pub dialer: crate::nodes::dial::AgentDialer,
    pub api_token: Arc<crate::auth::api_token::ApiToken>,
    pub anonymous_read: bool,
    pub join_tokens: Arc<crate::auth::join_tokens::JoinTokens>,
    /// `None` under `--insecure`.
    pub pki: Option<Arc<crate::auth::pki::ControlPlanePki>>,
}

pub fn router(state: AppState) -> Router {
    let require_token = axum::middleware::from_fn_with_state(
        state.api_token.clone(),
        crate::auth::api_token::require,
    );
    let open = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/api/webhook",
            post(webhook).layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY)),
        );
    let admin = Router::new()
        .route(
            "/api/keel/tokens",
            post(super::tokens::create)
                .get(super::tokens::list)
                .layer(DefaultBodyLimit::max(64 * 1024)),
        )
        .route_layer(require_token.clone());
    let read = read_routes();
    let read = if state.anonymous_read {
        read
    } else {
        read.route_layer(require_token)
    };
    open.merge(read).merge(admin).with_state(state)
}

fn read_routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/api/keel/status", get(status))
        .route("/api/keel/history", get(history))
        .route("/api/keel/applied", get(applied))
        .route(
            "/api/keel/plan",
            post(plan).layer(DefaultBodyLimit::max(MAX_PLAN_BODY)),
        )
        .merge(super::api::routes())
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        {
            state.metrics.observe(&state.cache);
            state.metrics.render()
        },
    )
        .into_response()
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({"error": message.into()}))).into_response()
}

async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(secret) = &state.webhook_secret {
        let header = headers
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok());
        if !signature_valid(secret, &body, header) {
            tracing::warn!("webhook with a missing or wrong X-Hub-Signature-256 refused");
            return error(
                StatusCode::UNAUTHORIZED,
                "missing or invalid X-Hub-Signature-256",
            );
        }
    }
    if headers.get("x-github-event").and_then(|v| v.to_str().ok()) == Some("ping") {
        return (StatusCode::OK, Json(json!({"pong": true}))).into_response();
    }
    // GitHub sends JSON, or (its other content type) a form with the JSON in `payload`.
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let body = if form && body.starts_with(b"payload=") {
        match super::webhook::form_payload(&body) {
            Some(json) => Bytes::from(json),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "form body's payload is not URL-encoded",
                );
            }
        }
    } else {
        body
    };
    let payload: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")),
    };
    if let Some(pushed) = payload.get("ref").and_then(|r| r.as_str()) {
        let branch = state
            .status
            .lock()
            .map(|s| s.branch.clone())
            .unwrap_or_default();
        let ours = format!("refs/heads/{branch}");
        if pushed != ours {
            return (
                StatusCode::ACCEPTED,
                Json(json!({"ignored": format!("push to {pushed}, following {ours}")})),
            )
                .into_response();
        }
    }
    let _ = state.trigger.try_send(());
    (StatusCode::ACCEPTED, Json(json!({"fetching": true}))).into_response()
}

async fn status(State(state): State<AppState>) -> Response {
    let status = state.status.lock().map(|s| s.clone()).unwrap_or_default();
    Json(status).into_response()
}

/// The objects applied from git, as stored (Secret values replaced by a marker).
async fn applied(State(state): State<AppState>) -> Response {
    match crate::apply::applied_objects(&state.store).await {
        Ok(objects) => {
            let items: Vec<serde_json::Value> = objects
                .into_values()
                .map(|stored| super::api::shown(&stored.object))
                .collect();
            Json(json!({"apiVersion": "v1", "kind": "List", "items": items})).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlanRequest {
    objects: Vec<serde_json::Value>,
    #[serde(default)]
    allow_empty: bool,
}

/// `keel plan --server`: the given objects (a loaded revision) against what is applied.
/// Secrets arrive without values (see `cli/plan.rs`) and are compared by key only: the
/// server never confirms or denies a value, so this endpoint cannot be used to guess one.
async fn plan(State(state): State<AppState>, Json(req): Json<PlanRequest>) -> Response {
    let mut desired = Vec::with_capacity(req.objects.len());
    for (i, value) in req.objects.into_iter().enumerate() {
        match keel_schema::Object::from_json(value) {
            Ok(o) => desired.push(o),
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("objects[{i}]: {e}")),
        }
    }
    let applied = match crate::apply::applied_objects(&state.store).await {
        Ok(a) => a,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    // Services as applying them would store them: with the addresses they hold or would get.
    // An address that would be refused refuses the plan, as it would the revision.
    let assignment_errors =
        crate::apply::fill_assignments(&mut desired, &applied, &state.service_network)
            .err()
            .unwrap_or_default();
    // Applied objects carry keel's markers; the revision does not.
    let current: Vec<keel_schema::Object> = applied
        .into_values()
        .map(|s| {
            let mut o = s.object;
            let meta = o.meta_mut();
            if let Some(l) = meta.labels.as_mut() {
                l.remove(crate::apply::MANAGED_BY);
            }
            if let Some(a) = meta.annotations.as_mut() {
                a.remove(crate::apply::REVISION);
            }
            if meta.labels.as_ref().is_some_and(|l| l.is_empty()) {
                meta.labels = None;
            }
            if meta.annotations.as_ref().is_some_and(|a| a.is_empty()) {
                meta.annotations = None;
            }
            o
        })
        .collect();
    // Keys present on both sides take the applied value: values are not compared.
    for d in &mut desired {
        let keel_schema::Object::Secret(secret) = d else {
            continue;
        };
        let applied_data = current.iter().find_map(|c| match c {
            keel_schema::Object::Secret(a)
                if a.metadata.name == secret.metadata.name
                    && a.metadata.namespace == secret.metadata.namespace =>
            {
                a.data.clone()
            }
            _ => None,
        });
        if let (Some(data), Some(applied)) = (secret.data.as_mut(), applied_data) {
            for (k, v) in data.0.iter_mut() {
                if let Some(value) = applied.0.get(k) {
                    v.clone_from(value);
                }
            }
        }
    }
    let mut changes = crate::plan::diff(&current, &desired);
    let verdict = crate::plan::rules::apply_rules(&current, &mut changes, req.allow_empty);
    let rows = crate::plan::render::rows(&changes);
    let from = state
        .status
        .lock()
        .ok()
        .and_then(|s| s.applied_commit.clone())
        .map(|c| c.chars().take(7).collect::<String>())
        .unwrap_or_else(|| "cluster".into());
    let refused = verdict.refused || !assignment_errors.is_empty();
    let mut notes = verdict.notes;
    notes.extend(
        assignment_errors
            .into_iter()
            .map(|e| format!("the revision would be rejected: {e}")),
    );
    Json(json!({"from": from, "changes": rows, "notes": notes, "refused": refused})).into_response()
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<String>,
}

async fn history(State(state): State<AppState>, Query(q): Query<HistoryQuery>) -> Response {
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => 50,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "limit must be a number from 1 to 1000",
            );
        }
    };
    match state.store.history(limit).await {
        Ok(records) => Json(records).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
