//! A WebSocket session with a keel server's API (`keel exec`, `keel port-forward`): the
//! upgrade request with the verb's token and Kubernetes' channel subprotocol, and a refusal
//! turned into the server's own message.

use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Error};

pub type Session = WebSocketStream<TcpStream>;

/// Opens `path` (with its query) on `server`, offering `protocols`; the session and the
/// subprotocol the server chose.
pub async fn open(
    server: &str,
    token: Option<&str>,
    path: &str,
    protocols: &[&str],
) -> Result<(Session, String), String> {
    let base = url::Url::parse(server).map_err(|e| format!("--server {server:?}: {e}"))?;
    let scheme = match base.scheme() {
        "http" => "ws",
        other => {
            return Err(format!(
                "--server {server:?}: keel exec and port-forward speak to an http:// server; for {other}, use kubectl with `keel kubeconfig`"
            ));
        }
    };
    let addresses = base
        .socket_addrs(|| Some(80))
        .map_err(|e| format!("--server {server:?}: {e}"))?;
    let mut origin = base.clone();
    // http to ws keeps host and port as they were written, IPv6 brackets included.
    origin
        .set_scheme(scheme)
        .map_err(|()| format!("--server {server:?}: not a WebSocket address"))?;
    let url = format!(
        "{scheme}://{}{path}",
        &origin[url::Position::BeforeHost..url::Position::AfterPort]
    );
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("{url}: {e}"))?;
    let headers = request.headers_mut();
    let offered = HeaderValue::from_str(&protocols.join(", ")).map_err(|e| format!("{e}"))?;
    headers.insert("Sec-WebSocket-Protocol", offered);
    if let Some(token) = token
        && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        value.set_sensitive(true);
        headers.insert("Authorization", value);
    }
    let connection = TcpStream::connect(&addresses[..])
        .await
        .map_err(|e| format!("cannot reach the keel server at {server}: {e}"))?;
    let (session, response) = match tokio_tungstenite::client_async(request, connection).await {
        Ok(opened) => opened,
        Err(Error::Http(response)) => return Err(refusal(server, &response)),
        Err(e) => return Err(format!("{server}: {e}")),
    };
    let chosen = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok((session, chosen))
}

/// `/api/v1/namespaces/NS/pods/POD/VERB`, with the names escaped: a name typed wrong
/// reaches the server as itself and is refused there by name.
pub fn pod_path(namespace: &str, pod: &str, verb: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    // Names are DNS labels and subdomains: letters, digits, '-' and '.' pass unchanged.
    const SEGMENT: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.');
    format!(
        "/api/v1/namespaces/{}/pods/{}/{verb}",
        utf8_percent_encode(namespace, SEGMENT),
        utf8_percent_encode(pod, SEGMENT)
    )
}

/// The server's refusal, as `Error from server (Reason): message`.
fn refusal(server: &str, response: &tungstenite::http::Response<Option<Vec<u8>>>) -> String {
    let body = response.body().as_deref().unwrap_or_default();
    let said: keel_api::errors::ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let reason = said.reason.unwrap_or_else(|| response.status().to_string());
    let message = said
        .message
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    let mut text = format!("Error from server ({reason}): {message}");
    if response.status() == tungstenite::http::StatusCode::UNAUTHORIZED
        || response.status() == tungstenite::http::StatusCode::FORBIDDEN
    {
        text.push_str(&format!(" ({})", crate::credentials::token_hint(server)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_paths_escape_what_names_cannot_hold() {
        assert_eq!(
            pod_path("default", "web-7f9c.x", "exec"),
            "/api/v1/namespaces/default/pods/web-7f9c.x/exec"
        );
        assert_eq!(
            pod_path("a b", "x/../y?z", "portforward"),
            "/api/v1/namespaces/a%20b/pods/x%2F..%2Fy%3Fz/portforward"
        );
    }
}
