//! The API's error answers: a Kubernetes `Status` on the Kubernetes paths, `{"error": …}` on
//! keel's own.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use keel_api::errors::Status;
use serde_json::json;

/// A Kubernetes `Status` error.
pub fn status(code: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    (code, Json(Status::failure(code.as_u16(), reason, message))).into_response()
}

/// `{"error": message}`, as keel's own endpoints answer.
pub fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({"error": message.into()}))).into_response()
}

/// 404 for a path no kind is served at.
pub fn no_such_resource() -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
}

pub fn bad_request(message: impl Into<String>) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", message)
}

pub fn unavailable(message: impl Into<String>) -> Response {
    status(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        message,
    )
}

pub fn internal(message: impl Into<String>) -> Response {
    status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
}
