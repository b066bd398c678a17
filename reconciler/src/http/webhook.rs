//! `POST /api/webhook`: GitHub push webhooks nudge the sync loop to fetch at once. With a
//! secret, `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>` must verify (checked
//! in constant time); the body is never trusted for content, only for which branch moved.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

use super::errors::error;
use super::state::AppState;

pub async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(secret) = &state.webhook_secret {
        let header = headers
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok());
        if !signature_valid(secret, &body, header) {
            tracing::warn!("webhook with a missing or wrong X-Hub-Signature-256 refused");
            return error(
                StatusCode::UNAUTHORIZED,
                "missing or invalid X-Hub-Signature-256",
            );
        }
    }
    if !state.leadership.role().leads() {
        return super::leader::forward_webhook(&state, &headers, body).await;
    }
    if headers.get("x-github-event").and_then(|v| v.to_str().ok()) == Some("ping") {
        return (StatusCode::OK, Json(json!({"pong": true}))).into_response();
    }
    let payload = match payload(&headers, body) {
        Ok(p) => p,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    if let Some(pushed) = payload.get("ref").and_then(|r| r.as_str()) {
        let ours = format!("refs/heads/{}", state.status.get().branch);
        if pushed != ours {
            return (
                StatusCode::ACCEPTED,
                Json(json!({"ignored": format!("push to {pushed}, following {ours}")})),
            )
                .into_response();
        }
    }
    let _ = state.trigger.try_send(());
    (StatusCode::ACCEPTED, Json(json!({"fetching": true}))).into_response()
}

/// The push's JSON: the body, or (GitHub's other content type) the form's `payload`; why
/// not, for a 400.
fn payload(headers: &HeaderMap, body: Bytes) -> Result<serde_json::Value, String> {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let body = if form && body.starts_with(b"payload=") {
        match form_payload(&body) {
            Some(json) => Bytes::from(json),
            None => return Err("form body's payload is not URL-encoded".into()),
        }
    } else {
        body
    };
    serde_json::from_slice(&body).map_err(|e| format!("body is not JSON: {e}"))
}

/// True when `header` is the body's signature under `secret`.
pub fn signature_valid(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The signature header value for `body` (for tests and for senders).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The `payload` field of a form-encoded webhook body, decoded.
pub fn form_payload(body: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let value = text
        .split('&')
        .find_map(|pair| pair.strip_prefix("payload="))?;
    let mut out = Vec::with_capacity(value.len());
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_payloads() {
        assert_eq!(
            form_payload(b"payload=%7B%22ref%22%3A+1%7D").as_deref(),
            Some(&b"{\"ref\": 1}"[..])
        );
        assert_eq!(form_payload(b"other=1"), None);
        assert_eq!(form_payload(b"payload=%4"), None);
        assert_eq!(form_payload(b"payload=%zz"), None);
    }

    #[test]
    fn signatures() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = sign(b"s3cret", body);
        assert!(signature_valid(b"s3cret", body, Some(&good)));
        assert!(!signature_valid(b"other", body, Some(&good)));
        assert!(!signature_valid(b"s3cret", b"tampered", Some(&good)));
        assert!(!signature_valid(b"s3cret", body, None));
        assert!(!signature_valid(b"s3cret", body, Some("sha256=zz")));
        assert!(!signature_valid(b"s3cret", body, Some("sha1=abcd")));
    }
}
