//! The bearer-token checks in front of the API: reads take the admin token or a view token
//! (`keel token create --role view`); everything that changes something takes the admin
//! token only (the token itself is [`crate::auth::api_token`], view tokens are
//! [`crate::auth::stored_tokens`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::errors::status;
use super::ui::session;
use crate::auth::api_token::ApiToken;
use crate::auth::stored_tokens::StoredTokens;

/// How long a view token, once found in the store, is taken without asking again: a
/// deleted view token stops working within this.
const VIEW_TOKEN_REMEMBERED: Duration = Duration::from_secs(10);

/// The tokens the API takes.
pub struct Access {
    pub admin: Arc<ApiToken>,
    pub view: Arc<StoredTokens>,
    /// View tokens lately found valid (by their SHA-256), and when.
    recent: Mutex<HashMap<String, Instant>>,
}

impl Access {
    pub fn new(admin: Arc<ApiToken>, view: Arc<StoredTokens>) -> Arc<Access> {
        Arc::new(Access {
            admin,
            view,
            recent: Mutex::default(),
        })
    }

    /// Whether the headers carry a view token that is live.
    pub async fn is_view_token(&self, header: Option<&str>) -> bool {
        let Some(bearer) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        let digest = keel_tls::join_token::secret_hash(bearer.trim());
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.retain(|_, at| at.elapsed() < VIEW_TOKEN_REMEMBERED);
            if recent.contains_key(&digest) {
                return true;
            }
        }
        if !self.view.accepts_bearer(bearer).await {
            return false;
        }
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.insert(digest, Instant::now());
        true
    }
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// Whether the request carries the admin token.
pub fn is_admin(access: &ApiToken, headers: &HeaderMap) -> bool {
    access.accepts(authorization(headers))
}

/// The web UI session a request came with (set by [`cookie_guard`]).
#[derive(Debug, Clone)]
pub struct UiSession(pub String);

/// axum middleware over every route: a request with the web UI's session cookie (and no
/// `Authorization` of its own) goes on as its session's token, once the cookie's rules
/// hold (the CSRF token for changes, this origin for WebSockets; else 403). An unknown or
/// ended session is no credential at all.
pub async fn cookie_guard(
    State(ui): State<Arc<crate::http::ui::state::UiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    if headers.contains_key(header::AUTHORIZATION) {
        return next.run(request).await;
    }
    let Some(id) = session::cookie_token(headers).map(str::to_string) else {
        return next.run(request).await;
    };
    let Some(token) = ui.sessions.token(&id) else {
        return next.run(request).await;
    };
    let over_tls = request
        .extensions()
        .get::<super::serve::OverTls>()
        .is_some_and(|t| t.0);
    if let Err(why) = session::check_cookie_request(
        request.method(),
        request.uri().path(),
        headers,
        over_tls,
        &id,
    ) {
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("forbidden: {why}"),
        );
    }
    if let Ok(value) = header::HeaderValue::from_str(&format!("Bearer {token}")) {
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    request.extensions_mut().insert(UiSession(id));
    next.run(request).await
}

/// axum middleware for reads: the admin token or a view token, else 401.
pub async fn require(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    let given = authorization(request.headers());
    if access.admin.accepts(given) || access.is_view_token(given).await {
        return next.run(request).await;
    }
    unauthorized(given.is_none())
}

/// axum middleware for changes: the admin token only (a view token is 403).
pub async fn require_admin(
    State(access): State<Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    let given = authorization(request.headers());
    if access.admin.accepts(given) {
        return next.run(request).await;
    }
    if access.is_view_token(given).await {
        return forbidden();
    }
    unauthorized(given.is_none())
}

/// 403 for a view token asking to change something.
pub fn forbidden() -> Response {
    status(
        StatusCode::FORBIDDEN,
        "Forbidden",
        "forbidden: this needs the admin token; view tokens only read",
    )
}

fn unauthorized(none_given: bool) -> Response {
    let message = if none_given {
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
