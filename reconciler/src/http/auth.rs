//! The bearer-token check in front of the read and admin endpoints (the token itself is
//! [`crate::auth::api_token`]).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::errors::status;
use crate::auth::api_token::ApiToken;

/// axum middleware: 401 without the right bearer token.
pub async fn require(State(token): State<Arc<ApiToken>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if token.accepts(given) {
        return next.run(request).await;
    }
    let message = if given.is_none() {
        "this keel server needs a bearer token (Authorization: Bearer …); the keel CLI sends \
         KEEL_TOKEN, or the admin-token file of the server's data dir"
    } else {
        "the bearer token is wrong"
    };
    let mut response = status(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response.into_response()
}
