//! `DELETE /api/v1/nodes/{name}` (`keel delete node`): an operation, not desired state, and
//! so the one write the API takes besides join tokens. It needs the admin token.
//!
//! Only a node that is not Ready (its agent is gone) can be deleted: deleting a live node
//! would take its pod range from under running pods. Deleting frees the node's pod range and
//! takes its routes off every other node; its pods are deleted by node lifecycle and run
//! again elsewhere.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use keel_schema::{Kind, Object};
use keel_store::{ObjectKey, StoreError};
use serde_json::json;

use super::errors::{status, unavailable};
use super::state::AppState;

pub async fn delete(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let key = ObjectKey::new(Kind::Node, "", &name);
    let stored = match state.store.get(&key).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            // No node, but maybe a binding (a join whose node never registered): freeing
            // the name is what deleting it means.
            let bindings = crate::auth::node_bindings::NodeBindings::new(state.store.clone());
            return match bindings.remove(&name).await {
                Ok(true) => {
                    tracing::info!(node = %name, "a node that never registered: its certificate binding removed");
                    (
                        StatusCode::OK,
                        Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success",
                            "details": {"name": name, "kind": "nodes"},
                            "message": "the node never registered; its certificate is revoked and its name free"})),
                    )
                        .into_response()
                }
                Ok(false) => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("nodes \"{name}\" not found"),
                ),
                Err(e) => unavailable(e.to_string()),
            };
        }
        Err(e) => return unavailable(e.to_string()),
    };
    if let Object::Node(n) = &stored.object
        && n.is_ready()
    {
        return status(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "node {name} is Ready: its agent still sends heartbeats; stop keel-agent on that machine, wait until `keel get nodes` shows it NotReady, then delete it"
            ),
        );
    }
    // Its certificates go first, so that a deleted node's certificate never speaks again.
    // Should the delete below fail (its agent came back in between), that agent is bound
    // again on its next registration, as a node that is still there.
    if let Err(e) = crate::auth::node_bindings::NodeBindings::new(state.store.clone())
        .remove(&name)
        .await
    {
        return unavailable(e.to_string());
    }
    // Conditioned on the version read: an agent that came back in between re-registered,
    // and its node is no longer one to delete.
    match state
        .store
        .delete(&key, Some(stored.resource_version))
        .await
    {
        Ok(_) => {
            tracing::info!(node = %name, "node deleted; its pod range is free again and its certificate revoked");
            (
                StatusCode::OK,
                Json(
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success",
                    "details": {"name": name, "kind": "nodes"}}),
                ),
            )
                .into_response()
        }
        Err(StoreError::Conflict { .. }) => status(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "node {name} changed while it was being deleted (its agent registered again?); look again with keel get nodes"
            ),
        ),
        Err(StoreError::NotFound(_)) => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("nodes \"{name}\" not found"),
        ),
        Err(e) => unavailable(e.to_string()),
    }
}
