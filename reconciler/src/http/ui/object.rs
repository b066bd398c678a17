//! `GET /ui/objects/{kind}/{namespace}/{name}`: one object, declared and live.
//!
//! The declared side is read from git at the commit applied now, once per commit: object
//! pages of one commit share the read ([`super::declarations`]).

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use keel_api::health::health;
use keel_schema::{Kind, Object, ObjectKey};
use keel_ui::Viewer;
use keel_ui::pages::object::{Declared, EventRow, ObjectPage, Related};

use super::declarations::Declaration;
use crate::http::kube::view::shown;
use crate::http::state::AppState;

/// The most Events shown, newest first.
const EVENTS_SHOWN: usize = 50;

pub async fn page(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Response {
    let namespace = if namespace == "-" {
        String::new()
    } else {
        namespace
    };
    let missing = |what: String| {
        (
            StatusCode::NOT_FOUND,
            Html(keel_ui::pages::problem(&viewer, "Not found", &what).into_string()),
        )
            .into_response()
    };
    let Some(kind) = Kind::from_name(&kind).or_else(|| custom_kind(&state, &kind)) else {
        return missing(format!("keel serves no kind {kind}"));
    };
    let key = ObjectKey::new(kind, &namespace, &name);
    let object = match state.cache.get(&key) {
        Some(stored) => stored.object.clone(),
        None => match state.store.get(&key).await {
            Ok(Some(stored)) => stored.object,
            Ok(None) => {
                return missing(format!(
                    "no {kind} {name} in the cluster{}",
                    in_ns(&namespace)
                ));
            }
            Err(e) => return missing(format!("cannot read {kind} {name}: {e}")),
        },
    };
    let data = gather(&state, &key, &object).await;
    Html(keel_ui::pages::object::object(&viewer, &data).into_string()).into_response()
}

fn in_ns(namespace: &str) -> String {
    if namespace.is_empty() {
        String::new()
    } else {
        format!(" in namespace {namespace}")
    }
}

/// A custom kind by its name, among the objects held.
fn custom_kind(state: &AppState, name: &str) -> Option<Kind> {
    state
        .cache
        .all()
        .iter()
        .map(|s| s.object.kind())
        .find(|k| k.as_str() == name)
}

/// YAML of an object as the API shows it (Secret values replaced).
fn yaml(object: &Object) -> String {
    serde_yaml::to_string(&shown(object)).unwrap_or_else(|e| format!("# cannot show: {e}\n"))
}

async fn gather(state: &AppState, key: &ObjectKey, object: &Object) -> ObjectPage {
    let (h, why) = health(object);
    let live = yaml(object);
    let declared = declared(state, key).await;
    let diff = match &declared {
        Ok(d) => similar::TextDiff::from_lines(&d.yaml, &live)
            .unified_diff()
            .context_radius(3)
            .header("declared in git", "live")
            .to_string(),
        Err(_) => String::new(),
    };
    let related = |o: &Object| Related {
        kind: o.kind().as_str().to_string(),
        namespace: o.namespace().to_string(),
        name: o.name().to_string(),
        health: health(o).0.as_str(),
    };
    let owner = owner_key(object).map(|key| match state.cache.get(&key) {
        Some(o) => related(&o.object),
        None => Related {
            kind: key.kind.as_str().to_string(),
            namespace: key.namespace,
            name: key.name,
            health: "Missing",
        },
    });
    let children = match object.meta().uid.as_deref() {
        Some(uid) => state
            .cache
            .dependents(uid)
            .iter()
            .map(|s| related(&s.object))
            .collect(),
        None => Vec::new(),
    };
    // The app containers first: theirs is the log most asked for.
    let containers = match object {
        Object::Pod(p) => p
            .spec
            .containers
            .iter()
            .chain(p.spec.init_containers.iter().flatten())
            .map(|c| c.name.clone())
            .collect(),
        _ => Vec::new(),
    };
    ObjectPage {
        kind: key.kind.as_str().to_string(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        health: h.as_str(),
        why,
        owner,
        children,
        declared,
        live,
        diff,
        events: events(state, key).await,
        containers,
        api_path: keel_api::paths::objects(key.kind, Some(&key.namespace), Some(&key.name)),
    }
}

/// Where git declares `key` at the commit applied now, or why that is not shown.
async fn declared(state: &AppState, key: &ObjectKey) -> Result<Declared, String> {
    let status = crate::http::leader::sync_status(state).await;
    let Some(commit) = status.applied_commit.clone() else {
        return Err("Nothing is applied yet.".into());
    };
    let Some(source) = &state.source else {
        return Err("This server reads no repository.".into());
    };
    let declarations = state
        .ui
        .declarations
        .of(source, &commit)
        .await
        .map_err(|e| {
            format!(
                "Cannot read commit {} from git: {e}",
                keel_ui::short(&commit)
            )
        })?;
    if let Some(d) = declarations.get(key) {
        return Ok(Declared {
            commit,
            file: d.file.clone(),
            line: d.line,
            yaml: yaml(&d.object),
        });
    }
    let short = keel_ui::short(&commit);
    // Made by a controller: name the object git declares that it comes from.
    Err(match declared_owner(state, key, &declarations) {
        Some((owner, d)) => format!(
            "Not declared in git: keel made it for {} {}, declared in {}:{} at {short}.",
            owner.kind, owner.name, d.file, d.line
        ),
        None => format!("Not declared in git at {short}: keel or one of its controllers made it."),
    })
}

/// The nearest controlling owner of `key` that git declares (a pod's Deployment).
fn declared_owner<'d>(
    state: &AppState,
    key: &ObjectKey,
    declarations: &'d HashMap<ObjectKey, Declaration>,
) -> Option<(ObjectKey, &'d Declaration)> {
    let mut at = state.cache.get(key)?;
    // Pod → ReplicaSet → Deployment is the longest chain; owner loops stop here.
    for _ in 0..4 {
        let owner_key = owner_key(&at.object)?;
        if let Some(d) = declarations.get(&owner_key) {
            return Some((owner_key, d));
        }
        at = state.cache.get(&owner_key)?;
    }
    None
}

/// The key of `object`'s controlling owner, when it names a kind keel serves.
fn owner_key(object: &Object) -> Option<ObjectKey> {
    let owner = crate::controllers::pods::controller_of(object.meta())?;
    let kind = Kind::from_name(&owner.kind)?;
    let ns = if kind.info().namespaced {
        object.namespace()
    } else {
        ""
    };
    Some(ObjectKey::new(kind, ns, &owner.name))
}

/// The object's Events, newest first.
async fn events(state: &AppState, key: &ObjectKey) -> Vec<EventRow> {
    let ns = (!key.namespace.is_empty()).then_some(key.namespace.as_str());
    let Ok(list) = state.store.list(Kind::Event, ns, None).await else {
        return Vec::new();
    };
    let mut rows: Vec<(String, EventRow)> = list
        .items
        .into_iter()
        .filter_map(|s| match s.object {
            Object::Event(e)
                if e.involved_object.kind.as_deref() == Some(key.kind.as_str())
                    && e.involved_object.name.as_deref() == Some(key.name.as_str()) =>
            {
                let last = e
                    .last_timestamp
                    .as_ref()
                    .or(e.first_timestamp.as_ref())
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                Some((
                    last.clone(),
                    EventRow {
                        kind: e.type_.map(|t| format!("{t:?}")).unwrap_or_default(),
                        reason: e.reason.unwrap_or_default(),
                        message: e.message.unwrap_or_default(),
                        count: e.count.unwrap_or(1),
                        last,
                    },
                ))
            }
            _ => None,
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0));
    rows.into_iter()
        .take(EVENTS_SHOWN)
        .map(|(_, r)| r)
        .collect()
}
