//! A certificate and its key, swappable while connections use them: a renewed certificate
//! is served to the next handshake without restarting any server.

use std::sync::{Arc, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::{Error, identity};

#[derive(Debug)]
pub struct Credentials {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Credentials {
    /// From a PEM certificate chain (leaf first) and a PEM private key.
    pub fn from_pem(chain: &str, key: &str) -> Result<Arc<Credentials>, Error> {
        Ok(Arc::new(Credentials {
            current: RwLock::new(certified(chain, key)?),
        }))
    }

    /// Serves `chain` and `key` from the next handshake on.
    pub fn replace(&self, chain: &str, key: &str) -> Result<(), Error> {
        let new = certified(chain, key)?;
        match self.current.write() {
            Ok(mut c) => *c = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
        Ok(())
    }

    fn get(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The leaf certificate now served.
    pub fn leaf(&self) -> CertificateDer<'static> {
        self.get().cert[0].clone()
    }

    /// The leaf certificate's validity, as Unix seconds (not before, not after).
    pub fn validity(&self) -> Option<(i64, i64)> {
        let leaf = self.leaf();
        Some((identity::not_before(&leaf)?, identity::not_after(&leaf)?))
    }
}

fn certified(chain: &str, key: &str) -> Result<Arc<CertifiedKey>, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Invalid(format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Invalid("no certificate in the PEM text".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
        .map_err(|e| Error::Invalid(format!("not a PEM private key: {e}")))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| Error::Invalid(format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(certs, signer);
    certified
        .keys_match()
        .map_err(|e| Error::Invalid(format!("the key does not match the certificate: {e}")))?;
    Ok(Arc::new(certified))
}

impl ResolvesServerCert for Credentials {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

impl ResolvesClientCert for Credentials {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
