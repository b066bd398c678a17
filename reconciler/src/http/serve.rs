//! Serving the HTTP API on a listener, so that idle or slow clients cannot take it down.
//!
//! - Headers must arrive within 10 s of a connection opening or going idle (hyper's header
//!   read timeout, which also ends idle keep-alive connections).
//! - At most [`connection_cap`] connections are served at once. Beyond them a few spare
//!   slots stay for quick requests such as `/healthz` probes: a connection in a spare slot
//!   must send its headers within 1 s, is closed after one answer (30 s at most), and the
//!   oldest spare connection is closed when a newer one needs its slot, so the spare
//!   connections never hold more than their few file descriptors.
//! - Accept errors back off instead of spinning and flooding the log.
//! - With a TLS configuration (`--tls-listen`), each connection's handshake must finish
//!   within the header timeout.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use keel_tls::listen::{Acceptor, Bounded, Evicting, Slots, connection_cap};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The server's own socket address a request's connection reached.
#[derive(Debug, Clone, Copy)]
pub struct ReachedAddress(pub Option<std::net::SocketAddr>);

/// Whether a request's connection came over TLS (`--tls-listen`): the web UI's cookie is
/// then `Secure`.
#[derive(Debug, Clone, Copy)]
pub struct OverTls(pub bool);

/// How long a client may take to send a request's headers, from connecting or from its
/// last answer.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The same, for a connection in a spare slot.
const SPARE_HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// Connections served beyond the cap, one request each.
const SPARE_SLOTS: usize = 32;
/// The longest a connection in a spare slot stays open.
const SPARE_LIFETIME: Duration = Duration::from_secs(30);
/// How long open connections get to finish after shutdown starts.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `stop`, then lets open requests finish (at most
/// [`DRAIN`]).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: CancellationToken,
) {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let cap = connection_cap(keel_tls::listen::open_files_limit());
    let (regular, spare) = (Slots::new(cap), Evicting::new(SPARE_SLOTS));
    let mut acceptor = Acceptor::new(listener, "HTTP API");
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = acceptor.accept() => accepted,
            _ = stop.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        // Beyond the cap, a spare slot: the newest connection always gets one (pushing out
        // the oldest spare), so a flood of idle clients cannot keep a probe out.
        let (tcp, hurried) = match regular.try_take() {
            Some(slot) => (Bounded::new(tcp, slot), false),
            None => (Bounded::evictable(tcp, &spare, SPARE_LIFETIME), true),
        };
        // HTTP/1.1 only: sniffing for HTTP/2 would wait for a first byte with no timeout.
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(if hurried {
                SPARE_HEADER_TIMEOUT
            } else {
                HEADER_TIMEOUT
            })
            .keep_alive(!hurried);
        // Handlers may need the address this connection reached (the token proof).
        let reached = ReachedAddress(tcp.get_ref().local_addr().ok());
        let over_tls = OverTls(tls.is_some());
        let service = TowerToHyperService::new(tower::util::MapRequest::new(
            router.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(reached);
                request.extensions_mut().insert(over_tls);
                request
            },
        ));
        let stop = stop.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let Some(tls) = tls else {
                return serve_connection(&builder, tcp, service, stop, peer).await;
            };
            // The handshake gets the time the headers would.
            match tokio::time::timeout(HEADER_TIMEOUT, tls.accept(tcp)).await {
                Ok(Ok(stream)) => serve_connection(&builder, stream, service, stop, peer).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
    connections.close();
    if tokio::time::timeout(DRAIN, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open after {DRAIN:?}; closing them");
    }
}

/// One connection, HTTP/1.1 with upgrades, until it ends or `stop` (then answers in
/// flight finish).
async fn serve_connection<S, T>(
    builder: &hyper::server::conn::http1::Builder,
    io: T,
    service: S,
    stop: CancellationToken,
    peer: std::net::SocketAddr,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming> + Send,
    S::Future: Send + 'static,
    S::ResBody: 'static + Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    <S::ResBody as hyper::body::Body>::Data: Send,
{
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "HTTP connection ended");
    }
}
