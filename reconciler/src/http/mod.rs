//! The HTTP API of `keel server` (axum): `/healthz`, `POST /api/webhook`, `/metrics`, keel's
//! own endpoints (`/api/keel/…`), and the read API at Kubernetes' paths.
//!
//! Three tiers: `/healthz` and the webhook (verified by its signature) are open; reads need
//! the admin token or a view token unless the server runs with `--anonymous-read`; tokens,
//! node deletion, exec, attach, port-forward and the operations the Kubernetes API allows need the admin token
//! ([`auth`]).
//!
//! # Layout
//! - [`state`]: what handlers read; [`errors`]: error answers; [`auth`]: the token check.
//! - [`kube`]: the Kubernetes API (discovery, reads, watches, Tables; writes refused);
//!   [`logs`]: a pod's logs from its agent; [`streams`]: exec, attach and port-forward.
//! - [`keel`]: status, history, applied objects, `/metrics`; [`plan`]: `keel plan --server`.
//! - [`tokens`]: join tokens; [`webhook`]: GitHub push webhooks.
//! - [`serve`]: the accept loop, with connection caps and timeouts.
//! - [`leader`]: `/healthz`, and what a follower passes on to the leader (webhooks, the
//!   sync status).
//! - [`ui`]: the web UI at `/`, signed in with the same tokens (kept in a cookie, which
//!   [`auth::cookie_guard`] lets through only with the page's CSRF token).

pub mod auth;
pub mod errors;
pub mod keel;
pub mod kube;
pub mod leader;
pub mod logs;
pub mod nodes;
pub mod plan;
pub mod serve;
pub mod state;
pub mod streams;
pub mod tokens;
pub mod ui;
pub mod webhook;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, delete, get, post};

pub use state::AppState;

/// Webhook bodies larger than this get 413.
pub const MAX_WEBHOOK_BODY: usize = 1024 * 1024;
/// Plan requests carry a whole revision's objects (10,000 objects are about 15 MiB).
pub const MAX_PLAN_BODY: usize = 32 * 1024 * 1024;
/// Token requests are a duration and a note.
pub const MAX_TOKEN_BODY: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let access = auth::Access::new(state.api_token.clone(), state.view_tokens.clone());
    let require_token = axum::middleware::from_fn_with_state(access.clone(), auth::require);
    let require_admin = axum::middleware::from_fn_with_state(access.clone(), auth::require_admin);
    let ui = ui::routes(access, state.anonymous_read);
    let open = Router::new()
        .route(keel_api::paths::HEALTHZ, get(leader::healthz))
        .route(
            "/api/webhook",
            post(webhook::receive).layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY)),
        )
        .route(
            keel_api::paths::TOKEN_PROOF,
            post(tokens::prove).layer(DefaultBodyLimit::max(1024)),
        );
    let admin = Router::new()
        .route(
            keel_api::paths::TOKENS,
            post(tokens::create)
                .get(tokens::list)
                .layer(DefaultBodyLimit::max(MAX_TOKEN_BODY)),
        )
        .route(keel_api::paths::TOKEN, delete(tokens::delete))
        .route(keel_api::paths::NODE, delete(nodes::delete))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/exec",
            any(streams::exec::exec),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/attach",
            any(streams::exec::attach),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/portforward",
            any(streams::port_forward::port_forward),
        )
        .route_layer(require_admin);
    // A sign-in link for the caller's own token, admin or view; a token is needed even
    // under --anonymous-read (the link signs in as it).
    let link = Router::new()
        .route(keel_api::paths::UI_LOGIN, post(ui::login::issue_code))
        .route_layer(require_token.clone());
    let read = read_routes();
    let read = if state.anonymous_read {
        read
    } else {
        read.route_layer(require_token)
    };
    open.merge(read)
        .merge(link)
        .merge(admin)
        .merge(ui)
        .layer(axum::middleware::from_fn_with_state(
            state.ui.clone(),
            auth::cookie_guard,
        ))
        .with_state(state)
}

fn read_routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(keel::metrics))
        .route(keel_api::paths::STATUS, get(keel::status))
        .route(keel_api::paths::HISTORY, get(keel::history))
        .route(keel_api::paths::APPLIED, get(keel::applied))
        .route(
            keel_api::paths::PLAN,
            post(plan::plan).layer(DefaultBodyLimit::max(MAX_PLAN_BODY)),
        )
        .merge(kube::routes())
}
