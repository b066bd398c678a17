//! Signing in and out: the form (a pasted token), the one-time link of `keel ui`, and
//! `POST /api/keel/ui-login`, which makes that link's code.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Redirect, Response};
use axum::{Extension as Ext, Form};
use keel_ui::Viewer;
use serde::Deserialize;

use super::session::{cleared_cookie, same, session_cookie};
use super::viewer::Gate;
use crate::http::auth::UiSession;
use crate::http::serve::OverTls;
use crate::http::state::AppState;

/// A signed-in answer: a new session's cookie, then the overview.
fn signed_in(state: &AppState, token: &str, over_tls: Option<Ext<OverTls>>) -> Response {
    let secure = over_tls.is_some_and(|Ext(OverTls(tls))| tls);
    let id = match state.ui.sessions.start(token) {
        Ok(id) => id,
        Err(e) => return form(StatusCode::INTERNAL_SERVER_ERROR, Some(&e.to_string())),
    };
    let mut response = Redirect::to("/").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&id, secure));
    response
}

fn form(status: StatusCode, problem: Option<&str>) -> Response {
    (
        status,
        Html(keel_ui::pages::login::login(problem).into_string()),
    )
        .into_response()
}

/// `GET /ui/login`: the form; with `?code=`, the one-time link's sign-in.
pub async fn show(
    State(state): State<AppState>,
    Extension(gate): Extension<Arc<Gate>>,
    over_tls: Option<Ext<OverTls>>,
    Query(query): Query<HashMap<String, String>>,
    request: axum::extract::Request,
) -> Response {
    if let Some(code) = query.get("code") {
        return match state.ui.logins.redeem(code) {
            Some(token) if gate.role_of(&token).await.is_some() => {
                signed_in(&state, &token, over_tls)
            }
            _ => form(
                StatusCode::UNAUTHORIZED,
                Some(
                    "This sign-in link was used already or has expired (links last 2 minutes and work once). Run keel ui again.",
                ),
            ),
        };
    }
    if gate.viewer(&request).await.is_some() {
        return Redirect::to("/").into_response();
    }
    form(StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    /// Absent reads as empty: refused with the form's message, not a bare 422.
    #[serde(default)]
    token: String,
}

/// `POST /ui/login`: a pasted token.
pub async fn submit(
    State(state): State<AppState>,
    Extension(gate): Extension<Arc<Gate>>,
    over_tls: Option<Ext<OverTls>>,
    Form(login): Form<LoginForm>,
) -> Response {
    let token = login.token.trim();
    if gate.role_of(token).await.is_none() {
        return form(
            StatusCode::UNAUTHORIZED,
            Some(
                "That token is not accepted by this server: use the admin token or a view token (keel token create --role view).",
            ),
        );
    }
    signed_in(&state, token, over_tls)
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/logout`: ends the session (the form carries the CSRF token, so no other page
/// can sign a user out).
pub async fn logout(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    session: Option<Ext<UiSession>>,
    Form(form): Form<LogoutForm>,
) -> Response {
    let Some(Ext(UiSession(id))) = session else {
        return Redirect::to("/ui/login").into_response();
    };
    if !viewer.signed_in || !same(&form.csrf, &viewer.csrf) {
        return (
            StatusCode::FORBIDDEN,
            "the sign-out form lacks this session's CSRF token; reload the page",
        )
            .into_response();
    }
    state.ui.sessions.end(&id);
    let mut response = Redirect::to("/ui/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cleared_cookie());
    response
}

/// `POST /api/keel/ui-login` (admin or view token): a one-time sign-in path for the
/// caller's token.
pub async fn issue_code(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return crate::http::errors::error(
            StatusCode::BAD_REQUEST,
            "a sign-in link is made for the bearer token of the request",
        );
    };
    match state.ui.logins.issue(token) {
        Ok(code) => Json(keel_api::ui::UiLogin {
            path: format!("/ui/login?code={code}"),
            expires_in_seconds: super::session::CODE_LIFETIME.as_secs(),
        })
        .into_response(),
        Err(e) => crate::http::errors::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
