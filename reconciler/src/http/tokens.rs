//! `POST /api/keel/tokens` (`keel token create`) and `GET /api/keel/tokens` (`keel token
//! list`): bootstrap join tokens. Both need the admin token, whatever `--anonymous-read` says.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;

use super::errors::status;
use super::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// How long the token lives, as `keel token create --ttl` takes it (`24h`, `30m`).
    ttl: Option<String>,
    description: Option<String>,
}

pub async fn create(State(state): State<AppState>, Json(req): Json<CreateRequest>) -> Response {
    let Some(pki) = &state.pki else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "this server runs with --insecure: agents join with --insecure and no token",
        );
    };
    let ttl = match req.ttl.as_deref().map(humantime::parse_duration) {
        None => std::time::Duration::from_secs(24 * 3600),
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("ttl: {e} (give a duration such as 24h or 30m)"),
            );
        }
    };
    if let Some(d) = &req.description
        && (d.len() > 256 || d.chars().any(char::is_control))
    {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "description: at most 256 characters, no control characters",
        );
    }
    match state
        .join_tokens
        .create(&pki.ca_fingerprint(), ttl, req.description)
        .await
    {
        Ok((token, record)) => {
            tracing::info!(token = %record.id, expires = %record.expires, "join token created");
            (
                StatusCode::CREATED,
                Json(json!({
                    "token": token.reveal(),
                    "id": record.id,
                    "expires": record.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                })),
            )
                .into_response()
        }
        Err(crate::auth::join_tokens::TokenError::Invalid(m)) => {
            status(StatusCode::BAD_REQUEST, "BadRequest", m)
        }
        Err(e) => unavailable(e),
    }
}

/// `DELETE /api/keel/tokens/{id}` (`keel token delete ID`): the token joins nothing more.
pub async fn delete(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    use crate::auth::join_tokens::TokenError;
    match state.join_tokens.delete(&id).await {
        Ok(()) => {
            tracing::info!(token = %id, "join token deleted");
            (
                StatusCode::OK,
                Json(
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success",
                            "details": {"name": id, "kind": "tokens"}}),
                ),
            )
                .into_response()
        }
        Err(TokenError::Invalid(m)) => status(StatusCode::BAD_REQUEST, "BadRequest", m),
        Err(TokenError::Unknown) => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "join token {id:?} not found (expired tokens are removed; see keel token list)"
            ),
        ),
        Err(e) => unavailable(e),
    }
}

/// The store could not be read or written.
fn unavailable(e: crate::auth::join_tokens::TokenError) -> Response {
    status(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        e.to_string(),
    )
}

pub async fn list(State(state): State<AppState>) -> Response {
    match state.join_tokens.list().await {
        Ok(records) => {
            let items: Vec<_> = records
                .into_iter()
                .map(|r| {
                    json!({
                        "id": r.id,
                        "created": r.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        "expires": r.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        "description": r.description,
                    })
                })
                .collect();
            Json(json!({"items": items})).into_response()
        }
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofRequest {
    nonce: String,
}

/// `POST /api/keel/token-proof` (open): proves to the CLI that this server holds the admin
/// token it found in a local data dir, so the CLI sends it here and to no other local
/// listener. The answer reveals nothing of the token.
pub async fn prove(
    State(state): State<AppState>,
    reached: Option<axum::Extension<super::serve::ReachedAddress>>,
    Json(req): Json<ProofRequest>,
) -> Response {
    use keel_tls::token_proof::{MAX_NONCE_CHARS, proof};
    let Some(address) = reached.and_then(|r| r.0.0) else {
        return status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "this listener cannot prove its token",
        );
    };
    if req.nonce.len() < 32 || req.nonce.len() > MAX_NONCE_CHARS {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("nonce: between 32 and {MAX_NONCE_CHARS} characters"),
        );
    }
    Json(json!({"proof": proof(state.api_token.secret(), &req.nonce, address)})).into_response()
}
