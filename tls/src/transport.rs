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
use tonic::transport::{Channel, Endpoint, Uri};

/// A peer that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at most.
const MAX_HANDSHAKES: usize = 256;

/// Accepts connections on `listener` and yields those that complete a TLS handshake under
/// `config`; the others are logged (with the peer's address and rustls' reason) and closed.
/// Handshakes run concurrently, so a slow or silent peer holds up nobody.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    // Peers mid-handshake at once: beyond this, accepting waits, so strangers opening
    // connections and saying nothing cannot use up the process's file descriptors.
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                // The server is gone (it dropped the stream): stop listening.
                _ = tx.closed() => return,
            };
            let Ok(permit) = handshakes.clone().acquire_owned().await else {
                return;
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(%peer, error = %e, "refused a connection: TLS handshake failed");
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "refused a connection: no TLS handshake within 10s");
                    }
                }
            });
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
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    match tls {
        Some(config) => {
            router
                .serve_with_incoming_shutdown(incoming(listener, config), shutdown)
                .await
        }
        None => {
            router
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    shutdown,
                )
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
