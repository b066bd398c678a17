//! Certificates for HTTPS, chosen by SNI from the served Ingresses' `tls` entries and their
//! Secrets (type kubernetes.io/tls: PEM `tls.crt` and `tls.key`). An entry without hosts
//! serves any name no other entry claims.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use keel_schema::types::core::Secret;
use keel_schema::types::networking::Ingress;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Certificates by host: exact names, one-label wildcards, and a default.
#[derive(Debug, Default)]
pub struct Certificates {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `.example.com` for `*.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

fn certified_key(secret: &Secret) -> Result<Arc<CertifiedKey>, String> {
    let data = secret.data.as_ref().map(|d| &d.0);
    let field = |name: &str| -> Result<Vec<u8>, String> {
        let text = data
            .and_then(|d| d.get(name))
            .ok_or_else(|| format!("no `{name}` in its data"))?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("`{name}` is not base64: {e}"))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&field("tls.crt")?)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("`tls.crt` is not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("`tls.crt` holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&field("tls.key")?)
        .map_err(|e| format!("`tls.key` is not a PEM private key: {e}"))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("`tls.key`: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(certs, signer)))
}

impl Certificates {
    /// The certificates of `ingresses` from `secrets`, and a message per entry that could
    /// not be used (a missing Secret, a bad PEM), naming the Ingress and the Secret.
    pub fn build(ingresses: &[Ingress], secrets: &[Secret]) -> (Certificates, Vec<String>) {
        let mut out = Certificates::default();
        let mut problems = Vec::new();
        for ing in ingresses {
            let ns = ing.metadata.namespace();
            for tls in ing.spec.tls.iter().flatten() {
                let Some(name) = tls.secret_name.as_deref() else {
                    continue;
                };
                let secret = secrets
                    .iter()
                    .find(|s| s.metadata.namespace() == ns && s.metadata.name() == name);
                let key = match secret
                    .ok_or_else(|| "no such Secret".to_string())
                    .and_then(certified_key)
                {
                    Ok(k) => k,
                    Err(why) => {
                        problems.push(format!(
                            "Ingress {ns}/{}: TLS Secret {ns}/{name}: {why}",
                            ing.metadata.name()
                        ));
                        continue;
                    }
                };
                let hosts = tls.hosts.as_deref().unwrap_or_default();
                if hosts.is_empty() {
                    out.default.get_or_insert(key.clone());
                }
                for host in hosts {
                    let host = host.to_ascii_lowercase();
                    match host.strip_prefix('*') {
                        Some(suffix) => out.wildcard.entry(suffix.to_string()),
                        None => out.exact.entry(host),
                    }
                    .or_insert_with(|| key.clone());
                }
            }
        }
        (out, problems)
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.default.is_none()
    }

    /// The certificate for `name` (SNI), or the default one.
    pub fn find(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let name = name.map(str::to_ascii_lowercase);
        if let Some(n) = &name {
            if let Some(k) = self.exact.get(n) {
                return Some(k.clone());
            }
            if let Some((_, suffix)) = n.split_once('.')
                && let Some(k) = self.wildcard.get(&format!(".{suffix}"))
            {
                return Some(k.clone());
            }
        }
        self.default.clone()
    }
}

/// The resolver rustls asks during each handshake; the certificates are swapped on updates.
#[derive(Debug, Default)]
pub struct SniResolver {
    pub current: RwLock<Arc<Certificates>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certs = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        certs.find(hello.server_name())
    }
}
