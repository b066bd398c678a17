//! `POST /api/keel/tokens` (`keel token create [--role view]`), `GET /api/keel/tokens`
//! (`keel token list`) and `DELETE /api/keel/tokens/{id}`: join tokens and view tokens. All
//! need the admin token, whatever `--anonymous-read` says.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;

use super::errors::status;
use super::state::AppState;
use crate::auth::stored_tokens::{JOIN, StoredTokens, TokenError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// How long the token lives, as `keel token create --ttl` takes it (`24h`, `30m`).
    ttl: Option<String>,
    description: Option<String>,
    /// `join` (the default) or `view`.
    role: Option<String>,
}

/// The stored tokens of `role`; `None` for a role there is none of.
fn tokens_of<'a>(state: &'a AppState, role: Option<&str>) -> Option<&'a StoredTokens> {
    match role.unwrap_or("join") {
        "join" => Some(&state.join_tokens),
        "view" => Some(&state.view_tokens),
        _ => None,
    }
}

pub async fn create(State(state): State<AppState>, Json(req): Json<CreateRequest>) -> Response {
    let Some(tokens) = tokens_of(&state, req.role.as_deref()) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "role: {:?} is not join or view",
                req.role.unwrap_or_default()
            ),
        );
    };
    // A join token pins the CA the joining node must find; a view token pins nothing.
    let fingerprint = match (&state.pki, tokens.kind() == JOIN) {
        (Some(pki), true) => pki.ca_fingerprint(),
        (None, true) => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "this server runs with --insecure: agents join with --insecure and no token",
            );
        }
        (_, false) => String::new(),
    };
    let default_ttl = if tokens.kind() == JOIN { 24 } else { 30 * 24 };
    let ttl = match req.ttl.as_deref().map(humantime::parse_duration) {
        None => std::time::Duration::from_secs(default_ttl * 3600),
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
    match tokens.create(&fingerprint, ttl, req.description).await {
        Ok((token, record)) => {
            let role = tokens.kind().role;
            tracing::info!(token = %record.id, role, expires = %record.expires, "token created");
            (
                StatusCode::CREATED,
                Json(json!({
                    "token": tokens.reveal(&token),
                    "id": record.id,
                    "role": role,
                    "expires": record.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                })),
            )
                .into_response()
        }
        Err(TokenError::Invalid(m)) => status(StatusCode::BAD_REQUEST, "BadRequest", m),
        Err(e) => unavailable(e),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    // Ids are random, so a token is found under whichever kind has it.
    let mut result = state.join_tokens.delete(&id).await;
    if matches!(result, Err(TokenError::Unknown)) {
        result = state.view_tokens.delete(&id).await;
    }
    match result {
        Ok(()) => {
            tracing::info!(token = %id, "token deleted");
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
            format!("token {id:?} not found (expired tokens are removed; see keel token list)"),
        ),
        Err(e) => unavailable(e),
    }
}

fn unavailable(e: TokenError) -> Response {
    status(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        e.to_string(),
    )
}

pub async fn list(State(state): State<AppState>) -> Response {
    let mut items = Vec::new();
    for tokens in [&state.join_tokens, &state.view_tokens] {
        match tokens.list().await {
            Ok(records) => items.extend(records.into_iter().map(|r| {
                json!({
                    "id": r.id,
                    "role": tokens.kind().role,
                    "created": r.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "expires": r.expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "description": r.description,
                })
            })),
            Err(e) => return unavailable(e),
        }
    }
    Json(json!({"items": items})).into_response()
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
