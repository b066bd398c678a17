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

use super::errors::{bad_request, status, unavailable};
use super::state::AppState;
use keel_schema::Kind;
use keel_store::ObjectKey;

/// How long the agent may take to start answering.
const LOGS_ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What `…/log` was asked for.
struct LogQuery {
    container: String,
    follow: bool,
    previous: bool,
    /// 0: all lines (the agent's meaning); `Some(0)` asked for none.
    tail_lines: Option<i64>,
}

/// A boolean parameter; the error message when it is not one.
fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, String> {
    match q.get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(format!("{name}: {other:?} is not true or false")),
    }
}

impl LogQuery {
    /// Kubernetes' parameters, checked; why not, for a 400.
    fn parse(q: &HashMap<String, String>) -> Result<LogQuery, String> {
        if let Some(key) = q.keys().find(|k| {
            !matches!(
                k.as_str(),
                "container" | "follow" | "tailLines" | "previous"
            )
        }) {
            return Err(format!(
                "unknown parameter {key:?} (container, follow, tailLines and previous are supported)"
            ));
        }
        let (follow, previous) = (flag(q, "follow")?, flag(q, "previous")?);
        let tail_lines = match q.get("tailLines").map(|t| t.parse::<i64>()) {
            None => None,
            Some(Ok(n)) if n >= 0 => Some(n),
            Some(_) => return Err("tailLines: must be a whole number, 0 or more".into()),
        };
        Ok(LogQuery {
            container: q.get("container").cloned().unwrap_or_default(),
            follow,
            previous,
            tail_lines,
        })
    }
}

fn text(body: Body) -> Response {
    let content_type = [(
        axum::http::header::CONTENT_TYPE,
        "text/plain; charset=utf-8",
    )];
    (content_type, body).into_response()
}

pub async fn pod_log(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let query = match LogQuery::parse(&q) {
        Ok(query) => query,
        Err(message) => return bad_request(message),
    };
    let (node, address) = match agent_of(&state, &ns, &name).await {
        Ok(found) => found,
        Err(response) => return *response,
    };
    if query.tail_lines == Some(0) {
        // No lines asked for (the agent's 0 means "all").
        return text(Body::empty());
    }
    // The timeout covers the wait for the agent's answer, not the stream that follows.
    let mut client = match state
        .dialer
        .connect(&node, &address, Some(LOGS_ANSWER_TIMEOUT))
        .await
    {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let request = LogsRequest {
        namespace: ns,
        pod: name,
        container: query.container,
        tail_lines: query.tail_lines.unwrap_or(0),
        follow: query.follow,
        previous: query.previous,
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
    text(Body::from_stream(body))
}

/// The node of pod `ns/name` and its agent's address; the error answer when there is none.
pub(crate) async fn agent_of(
    state: &AppState,
    ns: &str,
    name: &str,
) -> Result<(String, String), Box<Response>> {
    let pod = match state.store.get(&ObjectKey::new(Kind::Pod, ns, name)).await {
        Ok(Some(s)) => s.object,
        Ok(None) => {
            let message = format!("pods \"{name}\" not found");
            return Err(Box::new(status(StatusCode::NOT_FOUND, "NotFound", message)));
        }
        Err(e) => return Err(Box::new(unavailable(e.to_string()))),
    };
    let Object::Pod(pod) = pod else {
        return Err(Box::new(bad_request("not a pod")));
    };
    let Some(node) = pod.spec.node_name.clone().filter(|n| !n.is_empty()) else {
        let message = format!("pod \"{name}\" is not scheduled to a node yet");
        return Err(Box::new(bad_request(message)));
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
    match address {
        Some(address) => Ok((node, address)),
        None => Err(Box::new(unavailable(format!(
            "node {node:?} of pod \"{name}\" is not registered"
        )))),
    }
}
