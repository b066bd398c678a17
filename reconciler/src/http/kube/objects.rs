//! Reads of every kind at its Kubernetes path, as kube-apiserver answers them.
//!
//! - `GET /api/v1/{plural}` and `/apis/{group}/{version}/{plural}`: a list across
//!   namespaces; `…/namespaces/{ns}/{plural}`: a list in one namespace;
//! - `…/{plural}/{name}` (cluster-scoped kinds) and `…/namespaces/{ns}/{plural}/{name}`: one
//!   object;
//! - lists take `labelSelector`, `fieldSelector` ([`super::fields`]), `limit` and
//!   `continue` ([`super::pages`]), `resourceVersion` and `resourceVersionMatch`, and
//!   `watch` ([`super::watch`]);
//! - `Accept` chooses objects, a `Table` ([`super::table`]) or metadata only.
//!
//! Errors are Kubernetes `Status` objects. Secret values never leave the server: each is
//! replaced by a marker, keys are kept.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use keel_schema::{KindInfo, Object};
use keel_store::{ObjectKey, Stored};
use serde_json::json;

use super::super::errors::{bad_request, internal, no_such_resource, status};
use super::super::state::AppState;
use super::list_body::list_response;
use super::pages::PageError;
use super::query::{ListOptions, Shape};
use super::resources::resolve;
use super::table::{partial_metadata, table};
use super::view::{selected, shown};
use super::walk;

type Params = Query<HashMap<String, String>>;

/// Where a read is, and how it was asked.
pub struct Read<'a> {
    pub api_version: &'a str,
    pub plural: &'a str,
    pub namespace: Option<&'a str>,
    pub query: &'a HashMap<String, String>,
    pub headers: &'a HeaderMap,
}

async fn list(state: AppState, read: Read<'_>) -> Response {
    let Some(resolved) = resolve(&state, read.api_version, read.plural).await else {
        return no_such_resource();
    };
    let info = resolved.info;
    if read.namespace.is_some() && !info.namespaced {
        return no_such_resource();
    }
    let options = match ListOptions::parse(read.query, info.kind) {
        Ok(o) => o,
        Err(e) => return bad_request(e),
    };
    let shape = Shape::of(read.headers);
    let namespace = read.namespace.map(str::to_string);
    if options.watch {
        return super::watch::serve(state, resolved, namespace, options, shape).await;
    }
    // A token is good only for the list it was given for.
    let scope = format!(
        "{}/{}/{}?{}&{}",
        read.api_version,
        read.plural,
        read.namespace.unwrap_or(""),
        read.query.get("labelSelector").map_or("", String::as_str),
        read.query.get("fieldSelector").map_or("", String::as_str),
    );
    let token = options.continue_token.as_deref();
    // Events are paged by key, not from a snapshot (see `walk`); a continue token without a
    // limit asks for the rest.
    let page = if walk::walked(info.kind)
        && match token {
            Some(token) => walk::is_walk_token(token),
            None => options.limit.is_some(),
        } {
        let read = walk::page(
            &state.store,
            (info.kind, read.namespace),
            &scope,
            token,
            options.limit.unwrap_or(usize::MAX),
            |s| selected(&options, &s.object),
        )
        .await;
        match read {
            Ok(Ok(page)) => {
                if token.is_none()
                    && let Some(refused) = check_version(&options, page.revision)
                {
                    return refused;
                }
                page
            }
            Ok(Err(PageError::Invalid(e))) => return bad_request(e),
            Ok(Err(PageError::Expired)) => return continue_expired(),
            Err(e) => return internal(e.to_string()),
        }
    } else if let Some(token) = token {
        match state.pages.next(&scope, token, options.limit) {
            Ok(page) => page,
            Err(PageError::Invalid(e)) => return bad_request(e),
            Err(PageError::Expired) => return continue_expired(),
        }
    } else {
        let listed = match state
            .store
            .list_shared(info.kind, read.namespace, options.labels.as_ref())
            .await
        {
            Ok(listed) => listed,
            Err(e) => return internal(e.to_string()),
        };
        if let Some(refused) = check_version(&options, listed.revision) {
            return refused;
        }
        // Shared with the store's cache: a snapshot kept for paging costs pointers.
        let items: Vec<Arc<Stored>> = listed
            .items
            .into_iter()
            .filter(|s| options.fields.is_empty() || selected(&options, &s.object))
            .collect();
        match options.limit {
            Some(limit) => state.pages.first(&scope, items, listed.revision, limit),
            None => super::pages::Page {
                items,
                revision: listed.revision,
                continue_token: None,
                remaining: None,
            },
        }
    };
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(token) = &page.continue_token {
        metadata["continue"] = json!(token);
    }
    if let Some(remaining) = page.remaining {
        metadata["remainingItemCount"] = json!(remaining);
    }
    let body = match shape {
        Shape::Objects => {
            let head = json!({
                "kind": format!("{}List", info.kind.as_str()),
                "apiVersion": info.api_version,
                "metadata": metadata,
            });
            return list_response(&head, page.items);
        }
        Shape::Table => {
            let objects: Vec<&Object> = page.items.iter().map(|s| &s.object).collect();
            let mut t = table(info.kind, &resolved.columns, &objects, options.include);
            t["metadata"] = metadata;
            t
        }
        Shape::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "items": page.items.iter().map(|s| partial_metadata(&s.object)).collect::<Vec<_>>(),
        }),
    };
    Json(body).into_response()
}

/// Kubernetes' answer to a continue token whose snapshot is gone.
fn continue_expired() -> Response {
    status(
        StatusCode::GONE,
        "Expired",
        format!(
            "The provided continue parameter is too old to display a consistent list result. \
             You can start a new list without the continue parameter (keel keeps a paged \
             list for {} s, on the server that began it).",
            super::pages::KEPT.as_secs()
        ),
    )
}

/// The refusal of a list whose `resourceVersion` cannot be served from `revision`, the
/// newest: keel keeps no older states to read (only their changes, for watches).
fn check_version(options: &ListOptions, revision: u64) -> Option<Response> {
    let asked = options.resource_version.filter(|rv| *rv > 0)?;
    if options.exact && asked != revision {
        return Some(status(
            StatusCode::GONE,
            "Expired",
            format!(
                "resourceVersion {asked} cannot be read exactly: keel lists only the newest \
                 state, at resourceVersion {revision}"
            ),
        ));
    }
    (asked > revision).then(|| {
        status(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!("Too large resource version: {asked}, current resource version: {revision}"),
        )
    })
}

async fn get_one(state: AppState, read: Read<'_>, name: &str) -> Response {
    let Some(resolved) = resolve(&state, read.api_version, read.plural).await else {
        return no_such_resource();
    };
    let info = resolved.info;
    if info.namespaced != read.namespace.is_some() {
        return no_such_resource();
    }
    let options = match ListOptions::parse(read.query, info.kind) {
        Ok(o) => o,
        Err(e) => return bad_request(e),
    };
    let key = ObjectKey::new(info.kind, read.namespace.unwrap_or(""), name);
    match state.store.get(&key).await {
        Ok(Some(stored)) => Json(match Shape::of(read.headers) {
            Shape::Table => table(
                info.kind,
                &resolved.columns,
                &[stored.object],
                options.include,
            ),
            Shape::Metadata => partial_metadata(&stored.object),
            Shape::Objects => shown(&stored.object),
        })
        .into_response(),
        Ok(None) => not_found(info, name),
        Err(e) => internal(e.to_string()),
    }
}

/// Kubernetes' 404 for one object.
pub fn not_found(info: &KindInfo, name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{} \"{name}\" not found", info.resource()),
    )
}

/// Where a path points: its group version (`v1` on the core paths), resource, namespace
/// and name, from the route's parameters.
pub(super) fn place(params: &HashMap<String, String>) -> (String, &str, Option<&str>) {
    let api_version = match (params.get("group"), params.get("version")) {
        (Some(g), Some(v)) => format!("{g}/{v}"),
        _ => "v1".to_string(),
    };
    let plural = params.get("plural").map_or("", String::as_str);
    (api_version, plural, params.get("ns").map(String::as_str))
}

/// A list, at any of the list paths.
pub async fn list_at(
    State(s): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    let (api_version, plural, namespace) = place(&params);
    let read = Read {
        api_version: &api_version,
        plural,
        namespace,
        query: &q,
        headers: &headers,
    };
    list(s, read).await
}

/// One object, at any of the object paths.
pub async fn get_at(
    State(s): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    Query(q): Params,
    headers: HeaderMap,
) -> Response {
    let (api_version, plural, namespace) = place(&params);
    let read = Read {
        api_version: &api_version,
        plural,
        namespace,
        query: &q,
        headers: &headers,
    };
    let name = params.get("name").map_or("", String::as_str);
    get_one(s, read, name).await
}
