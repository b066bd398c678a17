//! Who is looking at a page: the middleware in front of every page finds the session's
//! token, checks it as the API checks a bearer token, and hands pages a [`Viewer`]; a
//! browser without a session is sent to sign in (script requests get 401).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use keel_ui::Viewer;

use super::session::{cookie_token, csrf_token};
use crate::http::auth::Access;

/// What the middleware checks sessions with.
#[derive(Clone)]
pub struct Gate {
    pub access: Arc<Access>,
    /// `--anonymous-read`: pages are served without a session (read only).
    pub anonymous_read: bool,
}

impl Gate {
    /// The viewer a token signs in as; `None` when it is no token of this server.
    pub async fn viewer_of(&self, token: &str) -> Option<Viewer> {
        let bearer = format!("Bearer {token}");
        let admin = if self.access.admin.accepts(Some(&bearer)) {
            true
        } else if self.access.is_view_token(Some(&bearer)).await {
            false
        } else {
            return None;
        };
        Some(Viewer {
            admin,
            signed_in: true,
            csrf: csrf_token(token),
        })
    }

    /// The viewer of a request's session.
    pub async fn viewer(&self, headers: &HeaderMap) -> Option<Viewer> {
        match cookie_token(headers) {
            Some(token) => self.viewer_of(token).await,
            None => None,
        }
    }
}

/// Middleware: the page gets its [`Viewer`] as an extension.
pub async fn require(State(gate): State<Arc<Gate>>, mut request: Request, next: Next) -> Response {
    let viewer = match gate.viewer(request.headers()).await {
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
