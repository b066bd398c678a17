//! One request through the ingress proxy: routed, sent to an endpoint over HTTP/1.1 with the
//! `X-Forwarded-*` headers, and its answer passed back; an `Upgrade` (WebSocket) becomes a
//! byte stream between client and endpoint once the endpoint switches protocols.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;

use super::routes::{Resolved, Routes};

pub type Body = BoxBody<Bytes, hyper::Error>;

/// What every request is served with.
pub struct Shared {
    pub routes: RwLock<Arc<Routes>>,
    pub client: Client<HttpConnector, Incoming>,
}

fn text(status: StatusCode, message: String) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(message + "\n"))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Headers that belong to one connection, never passed on (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for h in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(h);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// The request's host, without a port: from the URI (HTTP/2) or the Host header.
fn host_of(req: &Request<Incoming>) -> String {
    let raw = req
        .uri()
        .authority()
        .map(|a| a.host().to_string())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    // `[v6]:port`, `name:port`, or a bare name.
    match raw.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || raw.starts_with('[') => {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h.to_string()
            } else {
                raw
            }
        }
        _ => raw,
    }
    .trim_start_matches('[')
    .trim_end_matches(']')
    .to_string()
}

/// Serves one request from `client` that arrived over `scheme` (`http` or `https`).
pub async fn serve(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    client: SocketAddr,
    scheme: &'static str,
) -> Result<Response<Body>, hyper::Error> {
    let host = host_of(&req);
    let routes = shared
        .routes
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let backend = match routes.resolve(&host, req.uri().path()) {
        Resolved::Backend(b) => b,
        Resolved::NotFound => {
            return Ok(text(StatusCode::NOT_FOUND, "default backend - 404".into()));
        }
    };
    let Some(endpoint) = backend.pick() else {
        return Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no ready endpoints for Service {}", backend.service),
        ));
    };
    let upgrade = is_upgrade(&req);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let original_host = req
        .headers()
        .get(header::HOST)
        .cloned()
        .or_else(|| HeaderValue::from_str(&host).ok());
    let (mut parts, body) = req.into_parts();
    let upgrade_to = parts.headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(&mut parts.headers);
    if let (true, Some(protocol)) = (upgrade, upgrade_to) {
        parts.headers.insert(header::UPGRADE, protocol);
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if let Some(h) = original_host {
        parts.headers.insert(header::HOST, h);
    }
    let client_ip = client.ip().to_string();
    let forwarded_for = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(before) => format!("{before}, {client_ip}"),
        None => client_ip.clone(),
    };
    for (name, value) in [
        ("x-forwarded-for", forwarded_for),
        ("x-forwarded-proto", scheme.to_string()),
        ("x-forwarded-host", host.clone()),
        ("x-real-ip", client_ip),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            parts.headers.insert(name, v);
        }
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    parts.uri = match format!("http://{endpoint}{path}").parse::<Uri>() {
        Ok(u) => u,
        Err(_) => {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                "malformed request path".into(),
            ));
        }
    };
    parts.version = Version::HTTP_11;
    let upstream = Request::from_parts(parts, body);
    if let Some(client_upgrade) = client_upgrade {
        return Ok(tunnel(upstream, endpoint, client_upgrade, &backend.service).await);
    }
    match shared.client.request(upstream).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, body.boxed()))
        }
        Err(e) => {
            tracing::debug!(%endpoint, service = %backend.service, error = %e, "ingress upstream failed");
            Ok(text(
                StatusCode::BAD_GATEWAY,
                format!("upstream {endpoint} of Service {} failed", backend.service),
            ))
        }
    }
}

/// An upgrade: the request on a connection of its own, and once the endpoint answers 101,
/// the two connections joined byte for byte.
async fn tunnel(
    upstream: Request<Incoming>,
    endpoint: SocketAddr,
    client_upgrade: hyper::upgrade::OnUpgrade,
    service: &str,
) -> Response<Body> {
    let bad_gateway = || {
        text(
            StatusCode::BAD_GATEWAY,
            format!("upstream {endpoint} of Service {service} failed"),
        )
    };
    let Ok(stream) = tokio::net::TcpStream::connect(endpoint).await else {
        return bad_gateway();
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return bad_gateway();
    };
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut resp = match sender.send_request(upstream).await {
        Ok(r) => r,
        Err(_) => return bad_gateway(),
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            if let (Ok(a), Ok(b)) = (client_upgrade.await, upstream_upgrade.await) {
                let _ =
                    tokio::io::copy_bidirectional(&mut TokioIo::new(a), &mut TokioIo::new(b)).await;
            }
        });
    }
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, body.boxed())
}
