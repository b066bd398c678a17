//! `/openapi/v3` (the index, and a document per group version) and `/openapi/v2`, from
//! `keel_schema::openapi`: built-in kinds from keel's types, custom kinds from their stored
//! definitions.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use keel_schema::openapi::{
    DocumentedKind, as_swagger, built_in_document, built_in_group_versions, document,
};
use serde_json::{Map, Value, json};

use super::super::errors::{no_such_resource, status};
use super::super::state::AppState;
use super::resources::definitions;

/// The built-in kinds' documents, by group version: the same for the server's life.
fn built_in() -> &'static HashMap<&'static str, Value> {
    static DOCS: OnceLock<HashMap<&'static str, Value>> = OnceLock::new();
    DOCS.get_or_init(|| {
        built_in_group_versions()
            .into_iter()
            .filter_map(|gv| Some((gv, built_in_document(gv)?)))
            .collect()
    })
}

/// The document of custom kinds served at `group`/`version`, if any.
async fn custom_document(state: &AppState, group: &str, version: &str) -> Option<Value> {
    let mut kinds = Vec::new();
    let mut schemas = Map::new();
    for crd in definitions(state).await {
        if crd.spec.group != group {
            continue;
        }
        let Some(served) = crd
            .spec
            .versions
            .iter()
            .find(|v| v.name == version && v.served)
        else {
            continue;
        };
        let names = &crd.spec.names;
        let name = format!("{group}.{version}.{}", names.kind);
        let schema = served
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or_else(|| json!({"type": "object"}));
        schemas.insert(name.clone(), schema);
        kinds.push(DocumentedKind {
            group: group.to_string(),
            version: version.to_string(),
            kind: names.kind.clone(),
            plural: names.plural.clone(),
            namespaced: crd.spec.scope != "Cluster",
            schema: name,
        });
    }
    (!kinds.is_empty()).then(|| document(&kinds, schemas))
}

/// A short, stable digest of a document, for the index's URLs (clients cache by them).
fn digest(doc: &Value) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    doc.to_string().hash(&mut hasher);
    format!("{:016X}", hasher.finish())
}

/// `/openapi/v3`: where each group version's document is.
pub async fn index(State(state): State<AppState>) -> Response {
    let mut paths = Map::new();
    for (gv, doc) in built_in() {
        let at = if gv.contains('/') {
            format!("apis/{gv}")
        } else {
            format!("api/{gv}")
        };
        let url = format!("/openapi/v3/{at}?hash={}", digest(doc));
        paths.insert(at, json!({"serverRelativeURL": url}));
    }
    let mut custom: Vec<(String, String)> = Vec::new();
    for crd in definitions(&state).await {
        for v in crd.spec.versions.iter().filter(|v| v.served) {
            let gv = (crd.spec.group.clone(), v.name.clone());
            if !custom.contains(&gv) {
                custom.push(gv);
            }
        }
    }
    for (group, version) in custom {
        if let Some(doc) = custom_document(&state, &group, &version).await {
            let at = format!("apis/{group}/{version}");
            let url = format!("/openapi/v3/{at}?hash={}", digest(&doc));
            paths.entry(at).or_insert(json!({"serverRelativeURL": url}));
        }
    }
    Json(json!({"paths": paths})).into_response()
}

pub async fn core(Path(version): Path<String>) -> Response {
    match built_in().get(version.as_str()) {
        Some(doc) => Json(doc.clone()).into_response(),
        None => no_such_resource(),
    }
}

pub async fn group(
    State(state): State<AppState>,
    Path((group, version)): Path<(String, String)>,
) -> Response {
    if let Some(doc) = built_in().get(format!("{group}/{version}").as_str()) {
        return Json(doc.clone()).into_response();
    }
    match custom_document(&state, &group, &version).await {
        Some(doc) => Json(doc).into_response(),
        None => no_such_resource(),
    }
}

/// `/openapi/v2`, as JSON only: a client that accepts only protobuf (kubectl's first ask)
/// gets 406 and uses `/openapi/v3`.
pub async fn v2(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let accepts_json = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|r| r.split(';').next().unwrap_or("").trim())
        .any(|t| matches!(t, "application/json" | "*/*" | "application/*"))
        || headers.get(header::ACCEPT).is_none();
    if !accepts_json {
        return status(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            "keel serves /openapi/v2 as application/json only; /openapi/v3 has every group version",
        );
    }
    let mut docs: Vec<Value> = built_in().values().cloned().collect();
    let mut seen = Vec::new();
    for crd in definitions(&state).await {
        for v in crd.spec.versions.iter().filter(|v| v.served) {
            let gv = (crd.spec.group.clone(), v.name.clone());
            if seen.contains(&gv) {
                continue;
            }
            if let Some(doc) = custom_document(&state, &gv.0, &gv.1).await {
                docs.push(doc);
            }
            seen.push(gv);
        }
    }
    Json(as_swagger(&docs)).into_response()
}
