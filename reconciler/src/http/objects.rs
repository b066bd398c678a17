//! The read API: every kind at its Kubernetes path, in Kubernetes' shapes.
//!
//! - `GET /api/v1/{plural}` and `/apis/{group}/{version}/{plural}`: a list across namespaces
//!   (`{"apiVersion":"v1","kind":"PodList","metadata":{"resourceVersion":…},"items":[…]}`);
//! - `…/namespaces/{ns}/{plural}`: a list in one namespace;
//! - `…/{plural}/{name}` (cluster-scoped kinds) and `…/namespaces/{ns}/{plural}/{name}`: one
//!   object;
//! - `?labelSelector=` filters lists (a malformed selector is a 400).
//!
//! Errors are Kubernetes `Status` objects (`NotFound` 404, `BadRequest` 400). Secret values
//! never leave the server: each is replaced by a marker, keys are kept.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use keel_api::lists::ObjectList;
use keel_schema::kinds::custom::CustomKind;
use keel_schema::selector::Selector;
use keel_schema::{Kind, KindInfo, Object};
use serde_json::{Value, json};

use super::errors::{bad_request, internal, no_such_resource, status};
use super::state::AppState;
use keel_store::ObjectKey;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/{plural}", get(core_list))
        .route("/api/v1/{plural}/{name}", get(core_get))
        .route("/api/v1/namespaces/{ns}/{plural}", get(core_list_ns))
        .route("/api/v1/namespaces/{ns}/{plural}/{name}", get(core_get_ns))
        .route("/apis/{group}/{version}/{plural}", get(group_list))
        .route("/apis/{group}/{version}/{plural}/{name}", get(group_get))
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{plural}",
            get(group_list_ns),
        )
        .route(
            "/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}",
            get(group_get_ns),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/log",
            get(super::logs::pod_log),
        )
}

/// The kind served at `api_version` + `plural`: a built-in one, or one a stored
/// CustomResourceDefinition declares and serves at that version.
async fn kind_at(state: &AppState, api_version: &str, plural: &str) -> Option<&'static KindInfo> {
    if let Some(kind) = Kind::served_at(api_version, plural) {
        return Some(kind.info());
    }
    let (group, version) = api_version.rsplit_once('/')?;
    let definitions = state
        .store
        .list(Kind::CustomResourceDefinition, None, None)
        .await
        .ok()?;
    definitions
        .items
        .iter()
        .find_map(|stored| match &stored.object {
            Object::CustomResourceDefinition(crd)
                if crd.spec.group == group
                    && crd.spec.names.plural == plural
                    && crd
                        .spec
                        .versions
                        .iter()
                        .any(|v| v.name == version && v.served) =>
            {
                Some(Kind::Custom(CustomKind::of_definition(crd, version)).info())
            }
            _ => None,
        })
}

/// An object as the API shows it: Secret values replaced by a marker.
pub fn shown(object: &Object) -> Value {
    let mut v = serde_json::to_value(object).unwrap_or_default();
    if object.kind() == Kind::Secret {
        for field in ["data", "stringData"] {
            if let Some(Value::Object(data)) = v.get_mut(field) {
                for value in data.values_mut() {
                    *value = json!(keel_api::REDACTED);
                }
            }
        }
    }
    v
}

type Params = Query<HashMap<String, String>>;

async fn list(
    state: AppState,
    api_version: &str,
    plural: &str,
    namespace: Option<&str>,
    params: &HashMap<String, String>,
) -> Response {
    let Some(info) = kind_at(&state, api_version, plural).await else {
        return no_such_resource();
    };
    if namespace.is_some() && !info.namespaced {
        return no_such_resource();
    }
    // Asked for but not supported: say so rather than return an unfiltered list.
    for unsupported in ["fieldSelector", "watch", "limit", "continue"] {
        if params
            .get(unsupported)
            .is_some_and(|v| !v.is_empty() && v != "false")
        {
            return bad_request(format!("{unsupported} is not supported by keel's API"));
        }
    }
    let selector = match params.get("labelSelector").filter(|s| !s.trim().is_empty()) {
        Some(text) => match Selector::parse(text) {
            Ok(s) => Some(s),
            Err(e) => {
                return bad_request(format!("unable to parse requirement: labelSelector: {e}"));
            }
        },
        None => None,
    };
    match state
        .store
        .list(info.kind, namespace, selector.as_ref())
        .await
    {
        Ok(result) => {
            let items: Vec<Value> = result.items.iter().map(|s| shown(&s.object)).collect();
            let kind = format!("{}List", info.kind.as_str());
            let list = ObjectList::new(info.api_version, &kind, Some(result.revision), items);
            Json(list).into_response()
        }
        Err(e) => store_error(e),
    }
}

fn store_error(e: keel_store::StoreError) -> Response {
    internal(e.to_string())
}

async fn get_one(
    state: AppState,
    api_version: &str,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> Response {
    let Some(info) = kind_at(&state, api_version, plural).await else {
        return no_such_resource();
    };
    if info.namespaced != namespace.is_some() {
        return no_such_resource();
    }
    let key = ObjectKey::new(info.kind, namespace.unwrap_or(""), name);
    match state.store.get(&key).await {
        Ok(Some(stored)) => Json(shown(&stored.object)).into_response(),
        Ok(None) => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", info.resource()),
        ),
        Err(e) => store_error(e),
    }
}

async fn core_list(
    State(s): State<AppState>,
    Path(plural): Path<String>,
    Query(q): Params,
) -> Response {
    list(s, "v1", &plural, None, &q).await
}

async fn core_get(
    State(s): State<AppState>,
    Path((plural, name)): Path<(String, String)>,
) -> Response {
    get_one(s, "v1", &plural, None, &name).await
}

async fn core_list_ns(
    State(s): State<AppState>,
    Path((ns, plural)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    list(s, "v1", &plural, Some(&ns), &q).await
}

async fn core_get_ns(
    State(s): State<AppState>,
    Path((ns, plural, name)): Path<(String, String, String)>,
) -> Response {
    get_one(s, "v1", &plural, Some(&ns), &name).await
}

async fn group_list(
    State(s): State<AppState>,
    Path((group, version, plural)): Path<(String, String, String)>,
    Query(q): Params,
) -> Response {
    list(s, &format!("{group}/{version}"), &plural, None, &q).await
}

async fn group_get(
    State(s): State<AppState>,
    Path((group, version, plural, name)): Path<(String, String, String, String)>,
) -> Response {
    get_one(s, &format!("{group}/{version}"), &plural, None, &name).await
}

async fn group_list_ns(
    State(s): State<AppState>,
    Path((group, version, ns, plural)): Path<(String, String, String, String)>,
    Query(q): Params,
) -> Response {
    list(s, &format!("{group}/{version}"), &plural, Some(&ns), &q).await
}

async fn group_get_ns(
    State(s): State<AppState>,
    Path((group, version, ns, plural, name)): Path<(String, String, String, String, String)>,
) -> Response {
    get_one(s, &format!("{group}/{version}"), &plural, Some(&ns), &name).await
}
