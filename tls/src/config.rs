//! rustls configurations for keel's two gRPC services (TLS 1.3 only, ring as the provider,
//! HTTP/2 by ALPN; every peer certificate must chain to the cluster CA), and for the HTTP
//! API served over HTTPS.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::{Credentials, Error};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, Error> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.clone())
        .map_err(|e| Error::Invalid(format!("the cluster CA certificate: {e}")))?;
    Ok(Arc::new(roots))
}

/// Whether a server insists on a client certificate at the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Every client presents a certificate from the CA (the agents' API).
    Required,
    /// A client may come without one (to join); one it presents must be from the CA.
    Optional,
}

/// A server presenting `credentials`, accepting clients whose certificates chain to `ca`.
pub fn server_config(
    ca: &CertificateDer<'static>,
    credentials: Arc<Credentials>,
    auth: ClientAuth,
) -> Result<Arc<ServerConfig>, Error> {
    let builder = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider());
    let builder = match auth {
        ClientAuth::Required => builder,
        ClientAuth::Optional => builder.allow_unauthenticated(),
    };
    let verifier = builder
        .build()
        .map_err(|e| Error::Invalid(format!("client verifier: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Invalid(format!("TLS versions: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(credentials);
    config.alpn_protocols = vec![b"h2".to_vec()];
    no_resumption_server(&mut config);
    Ok(Arc::new(config))
}

/// An HTTPS server presenting `credentials` to any client (the HTTP API, which checks
/// bearer tokens, not certificates): TLS 1.2 and 1.3, HTTP/1.1.
pub fn https_server_config(credentials: Arc<Credentials>) -> Result<Arc<ServerConfig>, Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Invalid(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(credentials);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client trusting `ca` only, presenting `credentials` when given.
pub fn client_config(
    ca: &CertificateDer<'static>,
    credentials: Option<Arc<Credentials>>,
) -> Result<Arc<ClientConfig>, Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Invalid(format!("TLS versions: {e}")))?
        .with_root_certificates(roots(ca)?);
    let mut config = match credentials {
        Some(c) => builder.with_client_cert_resolver(c),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// A client for joining: it knows only the CA's fingerprint (from the join token), and
/// trusts a server whose chain includes a CA with that fingerprint and is valid under it.
pub fn pinned_client_config(ca_fingerprint: &str) -> Result<Arc<ClientConfig>, Error> {
    let verifier = Arc::new(PinnedCa {
        fingerprint: ca_fingerprint.to_ascii_lowercase(),
        provider: provider(),
    });
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Invalid(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Every connection is a full handshake. A resumed TLS 1.3 session carries the identity of
/// the handshake it resumes: the certificate checked then, perhaps since renewed or expired.
/// keel's connections are few and long-lived, so the saving is not worth that.
fn no_resumption_server(config: &mut ServerConfig) {
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
}

#[derive(Debug)]
struct PinnedCa {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The control plane sends its CA after its own certificate; the pin says which CA
        // that must be, and the usual checks then run with it as the only root.
        let ca = intermediates
            .iter()
            .find(|c| crate::ca::fingerprint(c) == self.fingerprint)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the server's CA does not match the join token's fingerprint".into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(format!("the server's CA: {e}")))?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(format!("verifier: {e}")))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
