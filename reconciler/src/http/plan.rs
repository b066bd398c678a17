//! `POST /api/keel/plan` (`keel plan --server`): a loaded revision's objects, planned against
//! what this server has applied.
//!
//! Secrets arrive without values and are compared by key only: the server never confirms or
//! denies a value, so this endpoint cannot be used to guess one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use keel_api::plan::{PlanReport, PlanRequest};
use keel_schema::Object;

use super::errors::error;
use super::state::AppState;
use crate::controllers::pods::without_git_markers;

pub async fn plan(
    State(state): State<AppState>,
    Json(request): Json<PlanRequest<serde_json::Value>>,
) -> Response {
    let mut desired = Vec::with_capacity(request.objects.len());
    for (i, value) in request.objects.into_iter().enumerate() {
        match Object::from_json(value) {
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
    let current: Vec<Object> = applied
        .into_values()
        .map(|s| without_markers(s.object))
        .collect();
    compare_secrets_by_key(&mut desired, &current);
    let mut changes = crate::plan::diff(&current, &desired);
    let verdict = crate::plan::rules::apply_rules(&current, &mut changes, request.allow_empty);
    let from = state
        .status
        .get()
        .applied_commit
        .map(|c| c.chars().take(7).collect::<String>())
        .unwrap_or_else(|| "cluster".into());
    let refused = verdict.refused || !assignment_errors.is_empty();
    let mut notes = verdict.notes;
    notes.extend(
        assignment_errors
            .into_iter()
            .map(|e| format!("the revision would be rejected: {e}")),
    );
    Json(PlanReport {
        from,
        changes: crate::plan::render::rows(&changes),
        notes,
        refused,
    })
    .into_response()
}

/// An applied object without keel's markers, which the revision does not carry.
fn without_markers(mut object: Object) -> Object {
    let meta = object.meta_mut();
    without_git_markers(meta);
    if meta.labels.as_ref().is_some_and(|l| l.is_empty()) {
        meta.labels = None;
    }
    if meta.annotations.as_ref().is_some_and(|a| a.is_empty()) {
        meta.annotations = None;
    }
    object
}

/// Keys a desired Secret shares with the applied one take the applied value: values are not
/// compared, only which keys there are.
fn compare_secrets_by_key(desired: &mut [Object], current: &[Object]) {
    for d in desired {
        let Object::Secret(secret) = d else {
            continue;
        };
        let applied_data = current.iter().find_map(|c| match c {
            Object::Secret(a)
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
}
