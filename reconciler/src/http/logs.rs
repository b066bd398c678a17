//! `GET /api/v1/namespaces/{ns}/pods/{name}/log`: a container's logs, streamed from the
//! agent of the pod's node (Kubernetes' path and parameters: `container`, `follow`,
//! `tailLines`, `previous`). Bad parameters are a 400 `Status`, a missing pod a 404, an
//! unreachable agent a 503, each saying which.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use keel_agent_protocol::LogsRequest;
use keel_schema::object::Object;

use super::errors::status;
use super::state::AppState;
use keel_schema::Kind;
use keel_store::ObjectKey;

/// How long the agent may take to start answering.
const LOGS_ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn bad(message: String) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// A boolean parameter; the error message when it is not one.
fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, String> {
    match q.get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(format!("{name}: {other:?} is not true or false")),
    }
}

pub async fn pod_log(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    for key in q.keys() {
        if !matches!(
            key.as_str(),
            "container" | "follow" | "tailLines" | "previous"
        ) {
            return bad(format!(
                "unknown parameter {key:?} (container, follow, tailLines and previous are supported)"
            ));
        }
    }
    let (follow, previous) = match (flag(&q, "follow"), flag(&q, "previous")) {
        (Ok(f), Ok(p)) => (f, p),
        (Err(m), _) | (_, Err(m)) => return bad(m),
    };
    let tail_lines = match q.get("tailLines").map(|t| t.parse::<i64>()) {
        None => 0,
        Some(Ok(n)) if n >= 0 => n,
        Some(_) => return bad("tailLines: must be a whole number, 0 or more".into()),
    };
    let pod = match state
        .store
        .get(&ObjectKey::new(Kind::Pod, &ns, &name))
        .await
    {
        Ok(Some(s)) => s.object,
        Ok(None) => {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("pods \"{name}\" not found"),
            );
        }
        Err(e) => {
            return status(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                e.to_string(),
            );
        }
    };
    let Object::Pod(pod) = pod else {
        return bad("not a pod".into());
    };
    let Some(node) = pod.spec.node_name.clone().filter(|n| !n.is_empty()) else {
        return bad(format!("pod \"{name}\" is not scheduled to a node yet"));
    };
    let address = match state
        .store
        .get(&ObjectKey::new(Kind::Node, "", &node))
        .await
    {
        Ok(Some(s)) => s
            .object
            .meta()
            .annotation(crate::nodes::AGENT_ADDRESS)
            .map(str::to_string),
        _ => None,
    };
    let Some(address) = address else {
        return status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            format!("node {node:?} of pod \"{name}\" is not registered"),
        );
    };
    if tail_lines == 0 && q.contains_key("tailLines") {
        // No lines asked for (the agent's 0 means "all").
        return (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            "",
        )
            .into_response();
    }
    // The timeout covers the wait for the agent's answer, not the stream that follows.
    let mut client = match state
        .dialer
        .connect(&node, &address, Some(LOGS_ANSWER_TIMEOUT))
        .await
    {
        Ok(c) => c,
        Err(e) => return status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", e),
    };
    let request = LogsRequest {
        namespace: ns,
        pod: name,
        container: q.get("container").cloned().unwrap_or_default(),
        tail_lines,
        follow,
        previous,
    };
    let stream = match client.logs(request).await {
        Ok(s) => s.into_inner(),
        Err(e) => {
            let (code, reason) = match e.code() {
                tonic::Code::NotFound => (StatusCode::NOT_FOUND, "NotFound"),
                tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
                    (StatusCode::BAD_REQUEST, "BadRequest")
                }
                _ => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            };
            return status(code, reason, e.message().to_string());
        }
    };
    let body = stream.map(|chunk| match chunk {
        Ok(c) => Ok(axum::body::Bytes::from(c.data)),
        Err(e) => Err(std::io::Error::other(e.message().to_string())),
    });
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        Body::from_stream(body),
    )
        .into_response()
}
