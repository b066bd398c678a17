//! History, the diff between two commits, and the plan of a branch: read from the
//! repository the server follows, planned by the same engine as `keel plan`
//! ([`crate::plan::revisions`]), one at a time.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use keel_ui::Viewer;
use keel_ui::pages::plan::PlanView;

use crate::http::state::AppState;

/// Commits shown in History.
const HISTORY_SHOWN: usize = 200;

/// Plans the UI makes at once (each reads two revisions); apart from `keel plan
/// --server`'s, so readers of the UI cannot keep CI's plans waiting.
static PLANNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// `GET /ui/history`.
pub async fn history(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Response {
    let status = crate::http::leader::sync_status(&state).await;
    match state.store.history(HISTORY_SHOWN).await {
        Ok(records) => Html(
            keel_ui::pages::history::history(&viewer, &records, status.applied_commit.as_deref())
                .into_string(),
        )
        .into_response(),
        Err(e) => problem(&viewer, &format!("cannot read the history: {e}")),
    }
}

fn problem(viewer: &Viewer, message: &str) -> Response {
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        Html(keel_ui::pages::problem(viewer, "Cannot show this", message).into_string()),
    )
        .into_response()
}

/// A commit id as typed: 4 to 40 hex digits (anything else is not looked up).
fn commit_id(text: &str) -> Result<&str, String> {
    let text = text.trim();
    if (4..=40).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text)
    } else {
        Err(format!(
            "{text:?} is not a commit id (4 to 40 hexadecimal digits)"
        ))
    }
}

/// `GET /ui/diff?from=A&to=B`.
pub async fn diff(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let asked = |name: &str| {
        query
            .get(name)
            .ok_or_else(|| format!("pick a commit to compare {name} (?from=…&to=…)"))
            .and_then(|c| commit_id(c).map(str::to_string))
    };
    let plan = match (asked("from"), asked("to")) {
        (Ok(from), Ok(to)) => plan_between(&state, from, to).await,
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    Html(keel_ui::pages::plan::diff(&viewer, &plan).into_string()).into_response()
}

/// `GET /ui/plan?branch=B` or `?commit=C`: against the commit applied now.
pub async fn branch(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let branches = match &state.source {
        Some(source) => {
            let source = source.clone();
            tokio::task::spawn_blocking(move || source.branches())
                .await
                .unwrap_or_default()
        }
        None => Vec::new(),
    };
    let given = |name: &str| query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let asked: Option<Result<String, String>> = match (given("commit"), given("branch")) {
        (Some(commit), _) => Some(commit_id(commit).map(str::to_string)),
        (None, Some(branch)) if branches.iter().any(|b| b == branch) => {
            Some(Ok(format!("refs/heads/{branch}")))
        }
        (None, Some(branch)) => Some(Err(format!("no branch {branch:?} in the repository"))),
        (None, None) => None,
    };
    let shown = given("commit").or(given("branch"));
    let plan = match asked {
        None => None,
        Some(Err(e)) => Some(Err(e)),
        Some(Ok(to)) => {
            let status = crate::http::leader::sync_status(&state).await;
            Some(match status.applied_commit {
                Some(from) => plan_between(&state, from, to).await,
                None => Err("nothing is applied yet, so there is nothing to plan against".into()),
            })
        }
    };
    Html(keel_ui::pages::plan::branch(&viewer, &branches, shown, plan.as_ref()).into_string())
        .into_response()
}

/// The plan from `from` to `to`, off the async threads.
async fn plan_between(state: &AppState, from: String, to: String) -> Result<PlanView, String> {
    let Some(source) = state.source.clone() else {
        return Err("this server reads no repository".into());
    };
    let Ok(_running) = PLANNING.try_acquire() else {
        return Err("other plans are running on this server; try again in a moment".into());
    };
    let planned = tokio::task::spawn_blocking(move || {
        let tree = source.tree().map_err(|e| e.to_string())?;
        crate::plan::revisions::between(&tree, &from, &to, source.path(), None)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
    let plan = planned.plan;
    Ok(PlanView {
        from: plan.from,
        to: plan.to,
        changes: plan.changes,
        errors: plan.errors.iter().map(ToString::to_string).collect(),
        notes: plan.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hex_commit_ids_are_looked_up() {
        assert_eq!(commit_id(" a1b2c3d "), Ok("a1b2c3d"));
        assert!(commit_id("HEAD").is_err());
        assert!(commit_id("--upload-pack=x").is_err());
        assert!(commit_id("abc").is_err());
    }
}
