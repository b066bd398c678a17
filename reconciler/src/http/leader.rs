//! What a server says of the leadership, and what a follower passes on to the leader.
//!
//! - `/healthz`: `ok`, then this server's role, the leader and the term, a line each.
//! - A follower answers `keel status` with the leader's sync status (it runs no sync loop
//!   of its own), marked with its own view of the leadership.
//! - A follower passes a webhook on to the leader as it came (body and signature headers),
//!   and answers with the leader's answer.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use keel_api::status::SyncStatus;

use super::errors::error;
use super::state::AppState;

/// How long a follower waits for the leader when passing something on.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> String {
    let view = state.leadership.view();
    let mut text = format!("ok\nserver: {}\nrole: {}\n", view.server, view.role);
    if let Some(leader) = &view.leader {
        text.push_str(&format!("leader: {leader}\n"));
    }
    if let Some(term) = view.term {
        text.push_str(&format!("term: {term}\n"));
    }
    if let Some(error) = &view.error {
        text.push_str(&format!("election: {error}\n"));
    }
    text
}

/// One client for every call to the leader (plain HTTP; reqwest still wants a TLS crypto
/// provider installed before it builds one).
fn client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            // Fails only when a provider is already installed, which is as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .timeout(FORWARD_TIMEOUT)
                .build()
                .unwrap_or_default()
        })
        .clone()
}

/// The sync status to show: this server's own when it leads; the leader's, fetched, when it
/// follows (this server's own, which says nothing was synced here, when the leader cannot
/// be reached or nobody leads).
pub async fn sync_status(state: &AppState) -> SyncStatus {
    let own = || {
        let mut s = state.status.get();
        s.control_plane = Some(state.leadership.view());
        s
    };
    let Some(leader) = state.leadership.other_leader() else {
        return own();
    };
    let url = format!("http://{leader}{}", keel_api::paths::STATUS);
    let fetched = client()
        .get(&url)
        .bearer_auth(state.api_token.secret())
        .send()
        .await
        .and_then(|r| r.error_for_status());
    let status = match fetched {
        Ok(r) => r.json::<SyncStatus>().await.ok(),
        Err(e) => {
            tracing::debug!(leader = %leader, error = %e, "cannot read the leader's sync status");
            None
        }
    };
    match status {
        Some(mut s) => {
            s.control_plane = Some(state.leadership.view());
            s
        }
        None => own(),
    }
}

/// A webhook this follower received, passed on to the leader.
pub async fn forward_webhook(state: &AppState, headers: &HeaderMap, body: Bytes) -> Response {
    let Some(leader) = state.leadership.other_leader() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no keel server leads right now (election in progress); the leader fetches on its own once elected",
        );
    };
    let mut request = client()
        .post(format!("http://{leader}/api/webhook"))
        .body(body);
    for name in [
        "content-type",
        "x-hub-signature-256",
        "x-github-event",
        "x-github-delivery",
    ] {
        if let Some(v) = headers.get(name) {
            request = request.header(name, v.as_bytes());
        }
    }
    match request.send().await {
        Ok(r) => {
            let code = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = r.bytes().await.unwrap_or_default();
            (
                code,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            format!("this server follows {leader}, which did not take the webhook: {e}"),
        ),
    }
}
