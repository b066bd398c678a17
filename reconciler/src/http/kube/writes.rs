//! Writes at the Kubernetes paths (`kubectl apply`, `create`, `edit`, `replace`, `scale`,
//! `delete`, `label`, `patch`) are refused, as GitOps requires: 405 MethodNotAllowed, as a
//! `Status` naming the repository and branch keel applies, and the file that declares the
//! object (or the object's owner) when this server knows it. The few operations that are
//! not desired state are done instead ([`super::operations`]).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use keel_schema::{Kind, KindInfo};
use keel_store::ObjectKey;

use super::super::errors::{no_such_resource, status};
use super::super::state::AppState;
use super::objects::place;
use super::operations::perform;
use super::resources::resolve;

/// How far ownerReferences are followed to find what git declares (a Pod's ReplicaSet's
/// Deployment is two steps).
const OWNER_STEPS: usize = 4;

/// The handler of every write method on every object, list and subresource path.
pub async fn write(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let (api_version, plural, _) = place(&params);
    let Some(resolved) = resolve(&state, &api_version, plural).await else {
        return no_such_resource();
    };
    let kind = resolved.info.kind;
    if let Some(done) = perform(&state, &method, &headers, (&params, &query), kind, &body).await {
        return done;
    }
    let namespace = params.get("ns").map(String::as_str).unwrap_or("");
    // A create names its object in the body.
    let name = params.get("name").cloned().or_else(|| {
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["metadata"]["name"].as_str().map(str::to_string))
    });
    let message = refusal(&state, resolved.info, namespace, name.as_deref(), &method).await;
    status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
}

/// Why the write is refused, and where to make the change instead.
async fn refusal(
    state: &AppState,
    info: &KindInfo,
    namespace: &str,
    name: Option<&str>,
    method: &Method,
) -> String {
    let sync = state.status.get();
    let head = format!(
        "keel applies only what is committed to {}@{}",
        sync.repo, sync.branch
    );
    let Some(name) = name else {
        return format!("{head}; add or change the object in a file there and commit");
    };
    let key = ObjectKey::new(
        info.kind,
        if info.namespaced { namespace } else { "" },
        name,
    );
    let change = if *method == Method::DELETE {
        "remove it from"
    } else {
        "change"
    };
    if let Some(file) = state.status.source_of(&key) {
        return format!("{head}; {change} {file} and commit");
    }
    if info.live_only {
        return format!(
            "{head}; {} are kept by keel itself, never declared in git",
            info.resource()
        );
    }
    let stored = state.store.get(&key).await.ok().flatten();
    let Some(stored) = stored else {
        return format!(
            "{head}; {} \"{name}\" is not declared there: add it to a file and commit",
            info.resource()
        );
    };
    match declaring_owner(state, &stored.object).await {
        Some((owner, file)) => format!(
            "{head}; {} \"{name}\" is made by keel for {} \"{}\": change {file} and commit",
            info.resource(),
            owner.kind.info().resource(),
            owner.name,
        ),
        None => format!(
            "{head}; {} \"{name}\" is kept by keel itself, not declared in git",
            info.resource()
        ),
    }
}

/// The nearest owner (through ownerReferences) that git declares, and its file.
async fn declaring_owner(
    state: &AppState,
    object: &keel_schema::Object,
) -> Option<(ObjectKey, std::sync::Arc<str>)> {
    let mut at = object.clone();
    for _ in 0..OWNER_STEPS {
        let owner = at.meta().owner_references.as_ref()?.first()?.clone();
        let kind = Kind::lookup(&owner.kind)?;
        let namespace = if kind.info().namespaced {
            at.meta().namespace().to_string()
        } else {
            String::new()
        };
        let key = ObjectKey::new(kind, &namespace, &owner.name);
        if let Some(file) = state.status.source_of(&key) {
            return Some((key, file));
        }
        at = state.store.get(&key).await.ok().flatten()?.object;
    }
    None
}
