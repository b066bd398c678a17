//! `POST /api/keel/plan` (`keel plan --server`): a loaded revision's objects, planned against
//! what this server has applied.
//!
//! Secrets arrive without values and are compared by key only: the server never confirms or
//! denies a value, so this endpoint cannot be used to guess one.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use keel_api::plan::{PlanReport, PlanRequest};
use keel_schema::Object;
use serde_json::value::RawValue;

use super::errors::error;
use super::state::AppState;
use crate::controllers::pods::without_git_markers;

/// The most objects one plan takes (a revision of 10,000 objects is about 15 MiB).
pub const MAX_OBJECTS: usize = 20_000;
/// The largest object a plan takes, as JSON (Kubernetes stores at most 1.5 MiB per object).
pub const MAX_OBJECT_BYTES: usize = 2 * 1024 * 1024;
/// How deeply an object's JSON may nest (manifests rarely pass 15).
pub const MAX_DEPTH: usize = 64;
/// Plans parsed and diffed at once; each holds its revision's objects in memory.
pub const CONCURRENT_PLANS: usize = 2;

static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_PLANS);

/// Takes the request as bytes and checks its shape (nesting, object count and sizes) before
/// building any object: parsed whole into JSON values, a 32 MiB body took 670 MB.
pub async fn plan(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    // Before the body is read: at most two bodies are in memory at once.
    let Ok(_running) = RUNNING.try_acquire() else {
        let mut busy = error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{CONCURRENT_PLANS} plans are running on this server; try again in a moment"),
        );
        busy.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        return busy;
    };
    let body: Bytes = match axum::body::to_bytes(request.into_body(), super::MAX_PLAN_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "cannot read the plan request (at most {} bytes): {e}",
                    super::MAX_PLAN_BODY
                ),
            );
        }
    };
    // The request wraps the objects two levels deep: {"objects": [ … ]}.
    if let Some(depth) = deeper_than(&body, MAX_DEPTH + 2) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("an object nests deeper than {MAX_DEPTH} levels (at byte {depth})"),
        );
    }
    let request: PlanRequest<Box<RawValue>> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("not a plan request: {e}")),
    };
    if request.objects.len() > MAX_OBJECTS {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a plan takes at most {MAX_OBJECTS} objects; this one has {}",
                request.objects.len()
            ),
        );
    }
    if let Some((i, raw)) = request
        .objects
        .iter()
        .enumerate()
        .find(|(_, raw)| raw.get().len() > MAX_OBJECT_BYTES)
    {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "objects[{i}] is {} bytes; a plan takes objects of at most {MAX_OBJECT_BYTES}",
                raw.get().len()
            ),
        );
    }
    let mut desired = Vec::with_capacity(request.objects.len());
    // One object's JSON tree at a time.
    for (i, raw) in request.objects.iter().enumerate() {
        let parsed = serde_json::from_str(raw.get())
            .map_err(|e| e.to_string())
            .and_then(|value| Object::from_json(value).map_err(|e| e.to_string()));
        match parsed {
            // Hooks and objects marked Skip are not desired state.
            Ok(o) if keel_schema::ordering::is_desired(&o) => desired.push(o),
            Ok(_) => {}
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("objects[{i}]: {e}")),
        }
    }
    let allow_empty = request.allow_empty;
    drop(request);
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
    // What applying keeps of the live objects (a restart mark, a binding) is no change.
    let live: std::collections::HashMap<keel_store::ObjectKey, &Object> = current
        .iter()
        .map(|o| (keel_store::ObjectKey::of(o), o))
        .collect();
    let left_to_autoscalers = crate::plan::autoscaled::leave_to_autoscalers(&current, &mut desired);
    let autoscaled = crate::apply::live::Autoscaled::of(&desired);
    for wanted in &mut desired {
        if let Some(now) = live.get(&keel_store::ObjectKey::of(wanted))
            && let std::borrow::Cow::Owned(kept) =
                crate::apply::live::kept(wanted, now, &autoscaled)
        {
            *wanted = kept;
        }
    }
    let mut changes = crate::plan::diff(&current, &desired);
    let verdict = crate::plan::rules::apply_rules(&current, &mut changes, allow_empty);
    let from = state
        .status
        .get()
        .applied_commit
        .map(|c| c.chars().take(7).collect::<String>())
        .unwrap_or_else(|| "cluster".into());
    let refused = verdict.refused || !assignment_errors.is_empty();
    let mut notes = verdict.notes;
    notes.extend(left_to_autoscalers);
    match will_it_fit(&state.store, &changes, &desired).await {
        Ok(pending) => notes.extend(pending.iter().map(crate::plan::fit::Pending::note)),
        Err(e) => notes.push(format!("whether the new pods fit was not checked: {e}")),
    }
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

/// The new revision's pods, placed by the scheduler on the live nodes beside the pods that
/// stay.
async fn will_it_fit(
    store: &keel_store::Store,
    changes: &[crate::plan::Change],
    desired: &[Object],
) -> anyhow::Result<Vec<crate::plan::fit::Pending>> {
    use keel_schema::Kind;
    let list = |kind| async move {
        store.list(kind, None, None).await.map(|l| {
            l.items
                .into_iter()
                .map(|s| s.object)
                .collect::<Vec<Object>>()
        })
    };
    let nodes = list(Kind::Node).await?;
    let pods: Vec<_> = list(Kind::Pod)
        .await?
        .into_iter()
        .filter_map(|o| match o {
            Object::Pod(p) => Some(p),
            _ => None,
        })
        .collect();
    let owners = list(Kind::ReplicaSet)
        .await?
        .into_iter()
        .filter_map(|o| {
            let owner = crate::controllers::pods::controller_of(o.meta())?;
            (owner.kind == "Deployment").then(|| {
                (
                    (o.namespace().to_string(), o.name().to_string()),
                    owner.name.clone(),
                )
            })
        })
        .collect();
    Ok(crate::plan::fit::pending(
        changes, desired, &nodes, &pods, &owners,
    ))
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

/// The offset where `json` first nests deeper than `limit` arrays and objects, if it does.
/// Brackets inside strings do not count.
fn deeper_than(json: &[u8], limit: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (at, &b) in json.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Some(at);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_outside_strings() {
        assert_eq!(deeper_than(br#"{"a":[{"b":1}]}"#, 3), None);
        assert_eq!(deeper_than(br#"{"a":[{"b":[1]}]}"#, 3), Some(11));
        assert_eq!(deeper_than(br#"{"a":"[[[[[[\"[[[["}"#, 1), None);
    }

    #[tokio::test]
    async fn plans_beyond_the_concurrent_limit_are_turned_away() {
        let held: Vec<_> = (0..CONCURRENT_PLANS)
            .map(|_| RUNNING.try_acquire().unwrap())
            .collect();
        assert!(RUNNING.try_acquire().is_err());
        drop(held);
        assert!(RUNNING.try_acquire().is_ok());
    }
}
