//! tonic over keel's own TLS: a stream of handshaken connections for `serve_with_incoming`,
//! and a connector for `Endpoint`. keel builds the rustls configurations itself (a pinned CA
//! to join, certificates swapped on renewal), which tonic's own TLS settings cannot express.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

use crate::listen::{Acceptor, Evicting, Slots};
use tonic::transport::{Channel, Endpoint, Uri};

/// A peer that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at most.
const MAX_HANDSHAKES: usize = 256;

/// How many connections a gRPC listener holds.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Connections of peers with a certificate (or any, in plaintext).
    pub connections: usize,
    /// Connections without a client certificate (the control plane accepts them for Join
    /// only). They are few and short-lived: each is closed after `anonymous_lifetime`, and
    /// the oldest is closed when a new one would pass the cap.
    pub anonymous: usize,
    pub anonymous_lifetime: Duration,
}

impl Caps {
    /// Caps for a process allowed `open_files` descriptors.
    pub fn for_open_files(open_files: u64) -> Self {
        Self {
            connections: crate::listen::connection_cap(open_files),
            anonymous: 64,
            // A Join is one call: a certificate signed in milliseconds.
            anonymous_lifetime: Duration::from_secs(30),
        }
    }
}

/// A served connection: its slot is held while it is open.
pub type Served<S> = crate::listen::Bounded<S>;

/// Accepts connections on `listener` and yields those that complete a TLS handshake under
/// `config`; the others are logged (with the peer's address and rustls' reason) and closed.
/// Handshakes run concurrently, so a slow or silent peer holds up nobody. Connections beyond
/// `caps` are closed at once: a stranger's idle connections cannot use up the process's file
/// descriptors, nor the room kept for agents with certificates.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    caps: Caps,
) -> impl Stream<Item = Result<Served<TlsStream<TcpStream>>, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let handshakes = Slots::new(MAX_HANDSHAKES);
    let certified = Slots::new(caps.connections);
    let anonymous = Evicting::new(caps.anonymous);
    let mut listener = Acceptor::new(listener, "gRPC");
    tokio::spawn(async move {
        loop {
            // Beyond MAX_HANDSHAKES peers mid-handshake, accepting waits.
            let permit = tokio::select! {
                p = handshakes.take() => p,
                _ = tx.closed() => return,
            };
            let Some(permit) = permit else { return };
            let (tcp, peer) = tokio::select! {
                a = listener.accept() => a,
                // The server is gone (it dropped the stream): stop listening.
                _ = tx.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            let (certified, anonymous) = (certified.clone(), anonymous.clone());
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::warn!(%peer, error = %e, "refused a connection: TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "refused a connection: no TLS handshake within 10s");
                        return;
                    }
                };
                drop(permit);
                let has_certificate = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|c| !c.is_empty());
                let served = if has_certificate {
                    let Some(slot) = certified.try_take() else {
                        tracing::debug!(%peer, "refused a connection: too many open");
                        return;
                    };
                    Served::new(tls, slot)
                } else {
                    // The newest always gets in: idle strangers cannot lock out a Join.
                    Served::evictable(tls, &anonymous, caps.anonymous_lifetime)
                };
                let _ = tx.send(Ok(served)).await;
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Plaintext connections (`--insecure`), capped at `caps.connections`.
fn incoming_plain(
    listener: TcpListener,
    caps: Caps,
) -> impl Stream<Item = Result<Served<TcpStream>, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let slots = Slots::new(caps.connections);
    let mut listener = Acceptor::new(listener, "gRPC");
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                a = listener.accept() => a,
                _ = tx.closed() => return,
            };
            let Some(slot) = slots.try_take() else {
                tracing::debug!(%peer, "refused a connection: too many open");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            if tx.send(Ok(Served::new(tcp, slot))).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Serves `router` on `listener` until `shutdown`: over TLS with `tls`, plaintext without
/// (`--insecure`).
pub async fn serve(
    router: tonic::transport::server::Router,
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    caps: Caps,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    match tls {
        Some(config) => {
            router
                .serve_with_incoming_shutdown(incoming(listener, config, caps), shutdown)
                .await
        }
        None => {
            router
                .serve_with_incoming_shutdown(incoming_plain(listener, caps), shutdown)
                .await
        }
    }
}

/// Client TLS for one peer: the configuration and the name its certificate must carry.
#[derive(Clone)]
pub struct ClientTls {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
}

/// Connects `endpoint` (an `http://HOST:PORT` URI) over TLS, or plaintext when `tls` is
/// `None` (`--insecure`).
pub async fn connect(
    endpoint: Endpoint,
    tls: Option<ClientTls>,
) -> Result<Channel, tonic::transport::Error> {
    let Some(tls) = tls else {
        return endpoint.connect().await;
    };
    let connector = tower::service_fn(move |uri: Uri| {
        let tls = tls.clone();
        async move {
            let host = uri
                .host()
                .ok_or_else(|| std::io::Error::other(format!("{uri} has no host")))?
                .trim_matches(['[', ']'])
                .to_string();
            let port = uri.port_u16().unwrap_or(80);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            let stream = TlsConnector::from(tls.config)
                .connect(tls.server_name, tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    endpoint.connect_with_connector(connector).await
}
