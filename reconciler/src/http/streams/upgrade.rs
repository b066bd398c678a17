//! Accepting a WebSocket upgrade with one of Kubernetes' channel subprotocols; anything else
//! (a plain request, SPDY, no shared subprotocol) is a 400 `Status` that says what is served.

use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::http::HeaderMap;
use axum::response::Response;

use crate::http::errors::bad_request;

/// The largest WebSocket message or frame a client may send.
const MAX_MESSAGE: usize = 1024 * 1024;

/// The upgrade, with the first of `protocols` the client offered chosen.
pub fn accept(
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: &HeaderMap,
    protocols: &'static [&'static str],
) -> Result<(WebSocketUpgrade, &'static str), Box<Response>> {
    let served = protocols.join(", ");
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(_) => {
            let asked = headers
                .get(axum::http::header::UPGRADE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let message = if asked.to_ascii_lowercase().starts_with("spdy") {
                format!(
                    "keel serves this over WebSocket ({served}), not SPDY: use a client that speaks WebSocket (kubectl 1.30 or newer, client-go, kube-rs, keel)"
                )
            } else {
                format!("Upgrade request required: this is a WebSocket endpoint ({served})")
            };
            return Err(Box::new(bad_request(message)));
        }
    };
    // Clients send keystrokes and socket reads; nothing here needs a large message.
    let upgrade = upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .protocols(protocols.iter().copied());
    let chosen = upgrade
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .and_then(|p| protocols.iter().copied().find(|known| *known == p));
    match chosen {
        Some(protocol) => Ok((upgrade, protocol)),
        None => Err(Box::new(bad_request(format!(
            "no WebSocket subprotocol in common: keel speaks {served}"
        )))),
    }
}

/// The closing message: a normal closure with its code, which client-go requires (a close
/// without a code is an error to it).
pub fn normal_close() -> axum::extract::ws::Message {
    axum::extract::ws::Message::Close(Some(axum::extract::ws::CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: "".into(),
    }))
}
