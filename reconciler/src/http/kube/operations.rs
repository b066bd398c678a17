//! The writes the Kubernetes API allows: operations on the running cluster that are not
//! desired state, so git has nothing to say about them. Each needs the admin token (a view
//! token gets 403) and is recorded as an Event.
//!
//! - `kubectl delete pod`: a restart. A pod on a node is marked deleted and stopped there
//!   (its controller starts a replacement at once); a pod on no node is deleted. A pod git
//!   declares itself comes back at the next sync.
//! - `kubectl cordon`, `uncordon` (and `drain`, which cordons, then deletes each pod): a
//!   PATCH of a node that sets only `spec.unschedulable`.
//! - `kubectl rollout restart`: a PATCH of a Deployment, StatefulSet or DaemonSet that sets
//!   only its template's `kubectl.kubernetes.io/restartedAt`, which applying git then keeps
//!   (`crate::apply::live`).
//!
//! `dryRun=All` (`kubectl … --dry-run=server`, in the query or a DELETE's `DeleteOptions`)
//! answers as the operation would and changes nothing; `DeleteOptions.preconditions` (uid,
//! resourceVersion) are checked, a mismatch is 409. Any other write is not an operation and
//! is refused ([`super::writes`]).

use std::collections::HashMap;

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use chrono::Utc;
use keel_schema::types::core::EventType;
use keel_schema::{Kind, Object};
use keel_store::{ObjectKey, StoreError};
use serde_json::Value;

use super::super::auth::{forbidden, is_admin};
use super::super::errors::{internal, status};
use super::super::state::AppState;
use super::objects::not_found;
use super::view::shown;
use crate::apply::live::{RESTARTED_AT, template_mut};

/// The component events of these operations name.
const COMPONENT: &str = "keel-api";
/// Tries of a read-change-write that raced another writer (a node's heartbeat).
const TRIES: usize = 5;

/// One operation the API allows.
enum Operation {
    DeletePod,
    Schedulable(bool),
    Restart(String),
}

/// The operation a write is, if it is one.
fn operation(
    kind: Kind,
    method: &Method,
    subresource: Option<&str>,
    body: &[u8],
) -> Option<Operation> {
    if subresource.is_some() {
        return None;
    }
    match (kind, method) {
        (Kind::Pod, &Method::DELETE) => Some(Operation::DeletePod),
        (Kind::Node, &Method::PATCH) => unschedulable_patch(body).map(Operation::Schedulable),
        (Kind::Deployment | Kind::StatefulSet | Kind::DaemonSet, &Method::PATCH) => {
            restart_patch(body).map(Operation::Restart)
        }
        _ => None,
    }
}

/// `{"spec":{"unschedulable":true|false|null}}` and nothing else (a merge or strategic
/// merge patch, as kubectl cordon sends), or the same as a one-op JSON patch.
fn unschedulable_patch(body: &[u8]) -> Option<bool> {
    let patch: Value = serde_json::from_slice(body).ok()?;
    let value = match &patch {
        Value::Object(top) if top.len() == 1 => match top.get("spec")? {
            Value::Object(spec) if spec.len() == 1 => spec.get("unschedulable")?,
            _ => return None,
        },
        Value::Array(ops) if ops.len() == 1 => {
            let op = &ops[0];
            let replaces = matches!(op["op"].as_str(), Some("add" | "replace"));
            if !replaces || op["path"] != "/spec/unschedulable" {
                return None;
            }
            &op["value"]
        }
        _ => return None,
    };
    match value {
        Value::Bool(b) => Some(*b),
        Value::Null => Some(false),
        _ => None,
    }
}

/// The time in `{"spec":{"template":{"metadata":{"annotations":{RESTARTED_AT: T}}}}}`,
/// when that is the whole patch (`kubectl rollout restart`).
fn restart_patch(body: &[u8]) -> Option<String> {
    let patch: Value = serde_json::from_slice(body).ok()?;
    let only = |v: &Value, key: &str| -> Option<Value> {
        let map = v.as_object()?;
        (map.len() == 1).then(|| map.get(key).cloned()).flatten()
    };
    let annotations = only(
        &only(&only(&only(&patch, "spec")?, "template")?, "metadata")?,
        "annotations",
    )?;
    only(&annotations, RESTARTED_AT)?
        .as_str()
        .map(str::to_string)
}

/// How the client asked for the operation: a dry run, and what the object must still be.
#[derive(Debug, Default)]
struct Asked {
    dry_run: bool,
    uid: Option<String>,
    resource_version: Option<String>,
}

impl Asked {
    /// From the query (`dryRun=All`) and a DELETE's body (`DeleteOptions`).
    fn of(query: &HashMap<String, String>, body: &[u8]) -> Asked {
        let options: Value = serde_json::from_slice(body).unwrap_or_default();
        let text = |v: &Value| v.as_str().map(str::to_string);
        Asked {
            dry_run: query.get("dryRun").is_some_and(|d| d == "All")
                || options["dryRun"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|v| v == "All")),
            uid: text(&options["preconditions"]["uid"]),
            resource_version: text(&options["preconditions"]["resourceVersion"]),
        }
    }

    /// Why `stored` fails the preconditions, if it does.
    fn unmet(&self, stored: &keel_store::Stored) -> Option<String> {
        let meta = stored.object.meta();
        if let Some(uid) = &self.uid
            && meta.uid.as_deref() != Some(uid.as_str())
        {
            return Some(format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta.uid.as_deref().unwrap_or("")
            ));
        }
        match &self.resource_version {
            Some(rv) if *rv != stored.resource_version.to_string() => Some(format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                stored.resource_version
            )),
            _ => None,
        }
    }
}

/// The answer to a write that is an allowed operation; `None` for any other write.
pub async fn perform(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    (params, query): (&HashMap<String, String>, &HashMap<String, String>),
    kind: Kind,
    body: &[u8],
) -> Option<Response> {
    let name = params.get("name")?;
    let operation = operation(kind, method, params.get("sub").map(String::as_str), body)?;
    if !is_admin(&state.api_token, headers) {
        return Some(forbidden());
    }
    let asked = Asked::of(query, body);
    let namespace = if kind.info().namespaced {
        params.get("ns").map(String::as_str).unwrap_or("")
    } else {
        ""
    };
    let key = ObjectKey::new(kind, namespace, name);
    let result = match operation {
        Operation::DeletePod => delete_pod(state, &key, &asked).await,
        Operation::Schedulable(cordon) => set_unschedulable(state, &key, cordon, &asked).await,
        Operation::Restart(at) => restart(state, &key, &at, &asked).await,
    };
    Some(match result {
        Ok(object) => (StatusCode::OK, Json(shown(&object))).into_response(),
        Err(Failure::NotFound) => not_found(kind.info(), name),
        Err(Failure::Store(e)) => internal(e.to_string()),
        Err(Failure::Busy) => status(
            StatusCode::CONFLICT,
            "Conflict",
            format!("{key} kept changing; try again"),
        ),
        Err(Failure::Precondition(why)) => status(StatusCode::CONFLICT, "Conflict", why),
    })
}

enum Failure {
    NotFound,
    Busy,
    Precondition(String),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => Failure::NotFound,
            other => Failure::Store(other),
        }
    }
}

/// Reads `key`, changes it with `change` (false: nothing to change) and writes it, again
/// when another writer came between; a dry run answers with the change unwritten.
async fn update(
    state: &AppState,
    key: &ObjectKey,
    asked: &Asked,
    change: impl Fn(&mut Object) -> bool,
) -> Result<Object, Failure> {
    for _ in 0..TRIES {
        let stored = state.store.get(key).await?.ok_or(Failure::NotFound)?;
        if let Some(why) = asked.unmet(&stored) {
            return Err(Failure::Precondition(why));
        }
        let mut object = stored.object.clone();
        if !change(&mut object) {
            return Ok(stored.object);
        }
        if asked.dry_run {
            return Ok(object);
        }
        match state.store.update(object, stored.resource_version).await {
            Ok(written) => return Ok(written.object),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Failure::Busy)
}

async fn delete_pod(state: &AppState, key: &ObjectKey, asked: &Asked) -> Result<Object, Failure> {
    for _ in 0..TRIES {
        let stored = state.store.get(key).await?.ok_or(Failure::NotFound)?;
        if let Some(why) = asked.unmet(&stored) {
            return Err(Failure::Precondition(why));
        }
        match delete_pod_at(state, key, &stored, asked).await {
            Err(Failure::Busy) => continue,
            done => return done,
        }
    }
    Err(Failure::Busy)
}

/// Deletes the pod as `stored` has it; [`Failure::Busy`] when it changed since.
async fn delete_pod_at(
    state: &AppState,
    key: &ObjectKey,
    stored: &keel_store::Stored,
    asked: &Asked,
) -> Result<Object, Failure> {
    let Object::Pod(pod) = &stored.object else {
        return Err(Failure::NotFound);
    };
    let on_node = pod.spec.node_name.as_deref().is_some_and(|n| !n.is_empty());
    let replaced_by = match pod
        .metadata
        .owner_references
        .as_deref()
        .and_then(|o| o.first())
    {
        Some(owner) => format!("its {} {} replaces it", owner.kind, owner.name),
        None if state.status.source_of(key).is_some() => {
            "keel makes it again from git at the next sync".to_string()
        }
        None => "nothing replaces it".to_string(),
    };
    let graceful = on_node && !pod.is_finished();
    if asked.dry_run {
        let mut would = stored.object.clone();
        if graceful && would.meta().deletion_timestamp.is_none() {
            would.meta_mut().deletion_timestamp = Some(Utc::now());
        }
        return Ok(would);
    }
    let deleted = if graceful {
        // Stopped on its node first; the node's report of it stopped removes it.
        if stored.object.meta().deletion_timestamp.is_some() {
            return Ok(stored.object.clone());
        }
        let mut marked = stored.object.clone();
        marked.meta_mut().deletion_timestamp = Some(Utc::now());
        match state.store.update(marked, stored.resource_version).await {
            Ok(written) => written.object,
            Err(StoreError::Conflict { .. }) => return Err(Failure::Busy),
            Err(e) => return Err(e.into()),
        }
    } else {
        match state.store.delete(key, Some(stored.resource_version)).await {
            Ok(gone) => gone.object,
            Err(StoreError::Conflict { .. }) => return Err(Failure::Busy),
            Err(e) => return Err(e.into()),
        }
    };
    state.events.object(
        &deleted,
        EventType::Normal,
        "Deleted",
        format!("Deleted through the Kubernetes API (a restart): {replaced_by}"),
        COMPONENT,
    );
    Ok(deleted)
}

async fn set_unschedulable(
    state: &AppState,
    key: &ObjectKey,
    cordon: bool,
    asked: &Asked,
) -> Result<Object, Failure> {
    let node = update(state, key, asked, |o| {
        let Object::Node(n) = o else { return false };
        if n.spec.unschedulable.unwrap_or(false) == cordon {
            return false;
        }
        n.spec.unschedulable = cordon.then_some(true);
        true
    })
    .await?;
    if asked.dry_run {
        return Ok(node);
    }
    let (reason, what) = if cordon {
        (
            "NodeNotSchedulable",
            "cordoned: no new pods are scheduled to it",
        )
    } else {
        (
            "NodeSchedulable",
            "uncordoned: pods are scheduled to it again",
        )
    };
    tracing::info!(node = %key.name, cordon, "node scheduling changed through the API");
    state.events.object(
        &node,
        EventType::Normal,
        reason,
        format!("Node {} {what}", key.name),
        COMPONENT,
    );
    Ok(node)
}

async fn restart(
    state: &AppState,
    key: &ObjectKey,
    at: &str,
    asked: &Asked,
) -> Result<Object, Failure> {
    let restarted = update(state, key, asked, |o| {
        let Some(template) = template_mut(o) else {
            return false;
        };
        let annotations = template.metadata.annotations.get_or_insert_default();
        if annotations.get(RESTARTED_AT).map(String::as_str) == Some(at) {
            return false;
        }
        annotations.insert(RESTARTED_AT.to_string(), at.to_string());
        true
    })
    .await?;
    if asked.dry_run {
        return Ok(restarted);
    }
    state.events.object(
        &restarted,
        EventType::Normal,
        "Restarted",
        format!("Rollout restart at {at}, through the Kubernetes API; git's spec is unchanged"),
        COMPONENT,
    );
    Ok(restarted)
}

#[cfg(test)]
mod tests {
    use super::{restart_patch, unschedulable_patch};

    #[test]
    fn only_the_patches_kubectl_sends_are_operations() {
        assert_eq!(
            unschedulable_patch(br#"{"spec":{"unschedulable":true}}"#),
            Some(true)
        );
        assert_eq!(
            unschedulable_patch(br#"{"spec":{"unschedulable":null}}"#),
            Some(false)
        );
        assert_eq!(
            unschedulable_patch(br#"[{"op":"replace","path":"/spec/unschedulable","value":true}]"#),
            Some(true)
        );
        for other in [
            &br#"{"spec":{"unschedulable":true,"taints":[]}}"#[..],
            br#"{"metadata":{"labels":{"a":"b"}}}"#,
            br#"[{"op":"remove","path":"/spec/unschedulable"}]"#,
            b"not json",
        ] {
            assert_eq!(unschedulable_patch(other), None);
        }
        let restart = br#"{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-12-05T21:00:00Z"}}}}}"#;
        assert_eq!(
            restart_patch(restart).as_deref(),
            Some("2026-12-05T21:00:00Z")
        );
        let more = br#"{"spec":{"replicas":5,"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"x"}}}}}"#;
        assert_eq!(restart_patch(more), None, "a scale is not a restart");
    }
}
