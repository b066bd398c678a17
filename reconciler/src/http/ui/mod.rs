//! The web UI at `/`: server-rendered pages (`keel-ui`) over the same state as the API.
//! Nothing here changes desired state; the few operations a page offers (restart a pod,
//! cordon a node, a terminal) go through the Kubernetes API's own endpoints with the
//! session's CSRF token.
//!
//! - [`session`]: the cookie, CSRF tokens, one-time sign-in codes; [`login`]: sign in/out.
//! - [`viewer`]: who is looking (the middleware in front of every page).
//! - [`pages`]: overview, tree, nodes; [`object`]: one object (what git declares of it:
//!   [`declarations`]); [`plans`]: history, the diff
//!   between two commits, the plan of a branch.
//! - [`live`]: server-sent events saying when something changed.
//! - [`state`]: what the UI keeps between requests.

pub mod declarations;
pub mod live;
pub mod login;
pub mod object;
pub mod pages;
pub mod plans;
pub mod session;
pub mod state;
pub mod viewer;

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::auth::Access;
use super::state::AppState;

/// The largest sign-in form (a token and little else).
const MAX_LOGIN_BODY: usize = 4096;

/// The UI's routes; `access` checks the session's token.
pub fn routes(access: Arc<Access>, anonymous_read: bool) -> Router<AppState> {
    let gate = viewer::Gate {
        access,
        anonymous_read,
    };
    let pages = Router::new()
        .route("/", get(pages::overview))
        .route("/ui/fragment/overview", get(pages::overview_fragment))
        .route("/ui/live", get(live::events))
        .route("/ui/tree", get(pages::tree))
        .route("/ui/api/tree", get(pages::tree_rows))
        .route("/ui/nodes", get(pages::nodes))
        .route("/ui/objects/{kind}/{namespace}/{name}", get(object::page))
        .route("/ui/history", get(plans::history))
        .route("/ui/diff", get(plans::diff))
        .route("/ui/plan", get(plans::branch))
        .route("/ui/logout", post(login::logout))
        .route("/ui/{*rest}", get(unknown_page))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::new(gate.clone()),
            viewer::require,
        ));
    let open = Router::new()
        .route(
            "/ui/login",
            get(login::show)
                .post(login::submit)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_LOGIN_BODY)),
        )
        .layer(axum::Extension(Arc::new(gate)))
        .route("/ui/assets/{name}", get(asset));
    pages
        .merge(open)
        .layer(axum::middleware::map_response(security_headers))
}

/// A page the UI does not have (a mistyped or truncated address): a page saying so.
async fn unknown_page(
    axum::Extension(viewer): axum::Extension<keel_ui::Viewer>,
    uri: axum::http::Uri,
) -> Response {
    let message = format!(
        "The web UI has no page at {}: start from the overview, the tree or the history.",
        uri.path()
    );
    (
        StatusCode::NOT_FOUND,
        axum::response::Html(keel_ui::pages::problem(&viewer, "Not found", &message).into_string()),
    )
        .into_response()
}

/// The stylesheet and script (their URLs carry their hash, so they are kept for good).
async fn asset(Path(name): Path<String>) -> Response {
    match keel_ui::assets::asset(&name) {
        Some((body, content_type)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// What every UI answer carries: the Content-Security-Policy, no framing, no sniffing, no
/// referrer to other sites, and pages never cached (they hold live state and the CSRF token).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(keel_ui::CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        // Not no-referrer: under it browsers send `Origin: null` with form posts, and the
        // origin check of sign-out would refuse the UI's own form.
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
