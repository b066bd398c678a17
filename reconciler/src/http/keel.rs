//! keel's own read endpoints: `/api/keel/status`, `/api/keel/history`, `/api/keel/applied`,
//! and `/metrics`.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use keel_api::lists::ObjectList;
use serde::Deserialize;

use super::errors::error;
use super::kube::view::shown;
use super::state::AppState;

pub async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.observe(&state.cache);
    state
        .metrics
        .observe_notifications(&state.status.get().notifications);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

pub async fn status(State(state): State<AppState>) -> Response {
    let mut status = super::leader::sync_status(&state).await;
    // Node scheduling is operators' state (kubectl cordon), shown beside git's.
    if let Ok(nodes) = state.store.list(keel_schema::Kind::Node, None, None).await {
        status.cordoned = nodes
            .items
            .iter()
            .filter(|n| matches!(&n.object, keel_schema::Object::Node(n) if n.spec.unschedulable == Some(true)))
            .map(|n| n.object.meta().name().to_string())
            .collect();
    }
    Json(status).into_response()
}

/// The objects applied from git, as stored (Secret values replaced by a marker).
pub async fn applied(State(state): State<AppState>) -> Response {
    match crate::apply::applied_objects(&state.store).await {
        Ok(objects) => {
            let items: Vec<serde_json::Value> = objects
                .into_values()
                .map(|stored| shown(&stored.object))
                .collect();
            Json(ObjectList::new("v1", "List", None, items)).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    limit: Option<String>,
}

pub async fn history(State(state): State<AppState>, Query(q): Query<HistoryQuery>) -> Response {
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
