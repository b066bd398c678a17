//! Who is looking at a page: the middleware in front of every page takes the session's
//! token (which `cookie_guard` made the request's bearer token), checks it as the API
//! does, and hands pages a [`Viewer`]; a browser without a session is sent to sign in
//! (script requests get 401).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use keel_ui::Viewer;

use super::session::csrf_token;
use crate::http::auth::{Access, UiSession};

/// What the middleware checks sessions with.
#[derive(Clone)]
pub struct Gate {
    pub access: Arc<Access>,
    /// `--anonymous-read`: pages are served without a session (read only).
    pub anonymous_read: bool,
}

impl Gate {
    /// Whether `token` is the admin token (`Some(true)`), a live view token
    /// (`Some(false)`), or neither.
    pub async fn role_of(&self, token: &str) -> Option<bool> {
        let bearer = format!("Bearer {token}");
        if self.access.admin.accepts(Some(&bearer)) {
            Some(true)
        } else if self.access.is_view_token(Some(&bearer)).await {
            Some(false)
        } else {
            None
        }
    }

    /// The viewer of a request that came with a session (its token is the request's
    /// bearer token, put there by `cookie_guard`).
    pub fn viewer(&self, request: &Request) -> impl Future<Output = Option<Viewer>> + Send + '_ {
        let found = session_of(request);
        async move {
            let (session, token) = found?;
            let admin = self.role_of(&token).await?;
            Some(Viewer {
                admin,
                signed_in: true,
                csrf: csrf_token(&session),
            })
        }
    }
}

/// A request's session id and its token, when it came with a live session.
fn session_of(request: &Request) -> Option<(String, String)> {
    let UiSession(session) = request.extensions().get::<UiSession>()?;
    let token = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    Some((session.clone(), token.to_string()))
}

/// Middleware: the page gets its [`Viewer`] as an extension.
pub async fn require(State(gate): State<Arc<Gate>>, mut request: Request, next: Next) -> Response {
    let viewer = match gate.viewer(&request).await {
        Some(v) => v,
        None if gate.anonymous_read => Viewer::default(),
        None => {
            let path = request.uri().path();
            let for_script = path.starts_with("/ui/api/")
                || path.starts_with("/ui/fragment/")
                || path == "/ui/live"
                || request.method() != axum::http::Method::GET;
            if for_script {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "sign in first: /ui/login",
                )
                    .into_response();
            }
            return Redirect::to("/ui/login").into_response();
        }
    };
    request.extensions_mut().insert(viewer);
    next.run(request).await
}
