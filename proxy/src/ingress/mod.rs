//! The node's ingress proxy: HTTP and HTTPS for the Ingresses keel serves, on every node's
//! address (ports 80 and 443 by default), as an in-cluster ingress controller does.
//!
//! # Layout
//! - [`routes`]: the routing table (hosts, paths, default backend; pure).
//! - [`tls`]: certificates by SNI from the Ingresses' TLS Secrets.
//! - `forward`: one request routed and passed to an endpoint, upgrades included.
//!
//! # Guarantees
//! - HTTP/1.1 and HTTP/2 from clients (HTTP/2 over TLS by ALPN, and in the clear with prior
//!   knowledge); HTTP/1.1 to endpoints, which see `X-Forwarded-For`, `-Proto`, `-Host` and
//!   `X-Real-IP`. WebSocket (any `Upgrade`) passes through.
//! - An update swaps the table and certificates whole: requests in flight finish on the
//!   table they started with.
//! - Nothing matches: 404; a backend without ready endpoints: 503 naming the Service; an
//!   endpoint that fails: 502.

mod forward;
pub mod routes;
pub mod tls;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use keel_schema::types::core::Secret;
use keel_schema::types::networking::Ingress;
use tokio::net::TcpListener;

use crate::model::ProxiedService;
use forward::Shared;
use routes::Routes;
use tls::{Certificates, SniResolver};

/// A client must send its request headers within this long.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Connecting to an endpoint gives up after this long (502).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
pub struct IngressConfig {
    pub http: SocketAddr,
    pub https: SocketAddr,
}

/// The Ingresses and Secrets the certificates came from, and the problems found then.
type BuiltFrom = (Vec<Ingress>, Vec<Secret>, Vec<String>);

/// A running ingress proxy. Dropping it stops accepting.
pub struct IngressProxy {
    /// Where it listens: HTTP, HTTPS.
    pub addresses: (SocketAddr, SocketAddr),
    shared: Arc<Shared>,
    certs: Arc<SniResolver>,
    /// What the certificates were last built from, and the problems then (said once each):
    /// every desired set brings the same Ingresses and Secrets again, and their PEM is
    /// parsed only when they change.
    built_from: Mutex<Option<BuiltFrom>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for IngressProxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl IngressProxy {
    /// Listens on both ports; an address in use is an error naming it.
    pub async fn start(config: IngressConfig) -> Result<IngressProxy, String> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|e| format!("the ingress proxy cannot listen on {addr}: {e}"))
        };
        let http = bind(config.http).await?;
        let https = bind(config.https).await?;
        let addresses = (
            http.local_addr().map_err(|e| e.to_string())?,
            https.local_addr().map_err(|e| e.to_string())?,
        );
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let shared = Arc::new(Shared {
            routes: Default::default(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        });
        let certs = Arc::new(SniResolver::default());
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(certs.clone());
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let tasks = vec![
            tokio::spawn(accept(http, shared.clone(), None)),
            tokio::spawn(accept(https, shared.clone(), Some(acceptor))),
        ];
        tracing::info!(http = %config.http, https = %config.https, "ingress proxy listening");
        Ok(IngressProxy {
            addresses,
            shared,
            certs,
            built_from: Mutex::default(),
            tasks,
        })
    }

    /// Swaps in the table and certificates for the served `ingresses`.
    pub fn update(&self, ingresses: &[Ingress], secrets: &[Secret], services: &[ProxiedService]) {
        let routes = Arc::new(Routes::build(ingresses, services));
        *self
            .shared
            .routes
            .write()
            .unwrap_or_else(|e| e.into_inner()) = routes;
        let mut built = self.built_from.lock().unwrap_or_else(|e| e.into_inner());
        if built
            .as_ref()
            .is_some_and(|(i, s, _)| i.as_slice() == ingresses && s.as_slice() == secrets)
        {
            return;
        }
        let (certs, problems) = Certificates::build(ingresses, secrets);
        *self
            .certs
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(certs);
        let said = built
            .as_ref()
            .map(|(_, _, p)| p.as_slice())
            .unwrap_or_default();
        for p in problems.iter().filter(|p| !said.contains(p)) {
            tracing::warn!("{p}");
        }
        *built = Some((ingresses.to_vec(), secrets.to_vec(), problems));
    }
}

async fn accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors, most likely: wait rather than spin.
                tracing::warn!(error = %e, "ingress proxy accept failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let scheme = if tls.is_some() { "https" } else { "http" };
            let service =
                service_fn(move |req| forward::serve(shared.clone(), req, client, scheme));
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let served = match tls {
                None => {
                    builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await
                }
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls_stream) => {
                        builder
                            .serve_connection_with_upgrades(TokioIo::new(tls_stream), service)
                            .await
                    }
                    Err(e) => {
                        tracing::debug!(%client, error = %e, "TLS handshake failed");
                        return;
                    }
                },
            };
            if let Err(e) = served {
                tracing::debug!(%client, error = %e, "ingress connection ended with an error");
            }
        });
    }
}
