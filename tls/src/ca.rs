//! The cluster CA: made by `keel server` on its first start (its key never leaves the
//! control plane's data dir), it signs the control plane's certificate and every node's.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    SerialNumber,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sha2::Digest;

use crate::files;
use crate::{Error, Identity};

/// How long the CA itself is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates start up to this long before they are issued, for clocks a little behind
/// (a tenth of a short certificate's validity, so that its renewal schedule stays sane).
const CLOCK_SKEW: Duration = Duration::from_secs(300);

fn backdating(validity: Duration) -> Duration {
    CLOCK_SKEW.min(validity / 10)
}

pub struct ClusterCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key: KeyPair,
}

impl ClusterCa {
    /// The CA in `dir` (`ca.crt`, `ca.key`), made there when neither exists.
    pub fn load_or_create(dir: &Path) -> Result<ClusterCa, Error> {
        let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
        files::recover_key_pair(&key_path, &cert_path)?;
        match (
            files::read_optional(&cert_path)?,
            files::read_optional(&key_path)?,
        ) {
            (Some(cert), Some(key)) => Self::from_pem(&cert, &key, &cert_path, &key_path),
            (None, None) => {
                let ca = Self::generate()?;
                files::write_key_pair(
                    &key_path,
                    ca.key.serialize_pem().as_bytes(),
                    &cert_path,
                    ca.cert_pem.as_bytes(),
                )?;
                tracing::info!(path = %cert_path.display(), fingerprint = %ca.fingerprint(), "created the cluster CA");
                Ok(ca)
            }
            (Some(_), None) => Err(missing(&key_path, &cert_path)),
            (None, Some(_)) => Err(missing(&cert_path, &key_path)),
        }
    }

    fn from_pem(cert: &str, key: &str, cert_path: &Path, key_path: &Path) -> Result<Self, Error> {
        let cert_der = CertificateDer::from_pem_slice(cert.as_bytes()).map_err(|e| {
            Error::Invalid(format!(
                "{}: not a PEM certificate: {e}",
                cert_path.display()
            ))
        })?;
        let key = KeyPair::from_pem(key).map_err(|e| {
            Error::Invalid(format!(
                "{}: not a PEM private key: {e}",
                key_path.display()
            ))
        })?;
        Ok(ClusterCa {
            cert_pem: cert.to_string(),
            cert_der,
            key,
        })
    }

    fn generate() -> Result<Self, Error> {
        let key = KeyPair::generate().map_err(rcgen_error)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        let tag = hex::encode(files::random_bytes::<4>()?);
        dn.push(DnType::CommonName, format!("keel cluster CA {tag}"));
        dn.push(DnType::OrganizationName, "keel");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = SystemTime::now();
        params.not_before = to_time(now - CLOCK_SKEW);
        params.not_after = to_time(now + CA_VALIDITY);
        params.serial_number = Some(serial()?);
        let cert = params.self_signed(&key).map_err(rcgen_error)?;
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The SHA-256 of the CA certificate, hex: what a join token pins.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert_der)
    }

    /// A certificate for `identity`'s `public_key`, valid from now for `validity`.
    pub fn issue(
        &self,
        identity: &Identity,
        public_key: &impl PublicKeyData,
        validity: Duration,
    ) -> Result<String, Error> {
        let now = SystemTime::now();
        self.issue_between(
            identity,
            public_key,
            now - backdating(validity),
            now + validity,
        )
    }

    /// A certificate for `identity` valid between two instants (tests make expired ones).
    pub fn issue_between(
        &self,
        identity: &Identity,
        public_key: &impl PublicKeyData,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<String, Error> {
        let usages = [
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign(
            &[identity.dns_name()],
            &usages,
            public_key,
            not_before,
            not_after,
        )
    }

    /// A new key and a certificate serving HTTPS at `names` (DNS names, and IP addresses
    /// as IP subject alternative names), valid from now for `validity`: the API's, which
    /// kubectl checks against the cluster CA.
    pub fn issue_serving(
        &self,
        names: &[String],
        validity: Duration,
    ) -> Result<(String, String), Error> {
        let key = KeyPair::generate().map_err(rcgen_error)?;
        let now = SystemTime::now();
        let cert = self.sign(
            names,
            &[ExtendedKeyUsagePurpose::ServerAuth],
            &key,
            now - backdating(validity),
            now + validity,
        )?;
        Ok((cert, key.serialize_pem()))
    }

    fn sign(
        &self,
        names: &[String],
        usages: &[ExtendedKeyUsagePurpose],
        public_key: &impl PublicKeyData,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<String, Error> {
        let name = names.first().cloned().unwrap_or_default();
        let mut params = CertificateParams::new(names.to_vec()).map_err(rcgen_error)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "keel");
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages.to_vec();
        params.not_before = to_time(not_before);
        params.not_after = to_time(not_after);
        params.serial_number = Some(serial()?);
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_ca_cert_der(&self.cert_der, &self.key).map_err(rcgen_error)?;
        Ok(params
            .signed_by(public_key, &issuer)
            .map_err(rcgen_error)?
            .pem())
    }

    /// Signs a certificate signing request (DER) for `identity`. Only the request's key is
    /// used (its signature proves the requester holds it); the name is the CA's to choose.
    pub fn sign_request(
        &self,
        csr_der: &[u8],
        identity: &Identity,
        validity: Duration,
    ) -> Result<String, Error> {
        let csr = CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
            .map_err(|e| Error::Invalid(format!("the certificate signing request: {e}")))?;
        self.issue(identity, &csr.public_key, validity)
    }

    /// A new key and its certificate for `identity` (the control plane's own).
    pub fn issue_with_key(
        &self,
        identity: &Identity,
        validity: Duration,
    ) -> Result<(String, String), Error> {
        let key = KeyPair::generate().map_err(rcgen_error)?;
        let cert = self.issue(identity, &key, validity)?;
        Ok((cert, key.serialize_pem()))
    }
}

/// A new private key (PEM) and a signing request for it (DER), as an agent joining makes.
pub fn new_key_and_request() -> Result<(String, Vec<u8>), Error> {
    let key = KeyPair::generate().map_err(rcgen_error)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(rcgen_error)?;
    Ok((key.serialize_pem(), csr.der().to_vec()))
}

/// The SHA-256 of a certificate, hex.
pub fn fingerprint(der: &CertificateDer<'_>) -> String {
    hex::encode(sha2::Sha256::digest(der.as_ref()))
}

fn missing(absent: &Path, present: &Path) -> Error {
    Error::Invalid(format!(
        "{} is missing but {} exists; restore it from a backup (a new CA would lock every node out)",
        absent.display(),
        present.display()
    ))
}

fn serial() -> Result<SerialNumber, Error> {
    let mut bytes = files::random_bytes::<16>()?;
    // Positive, as X.509 serial numbers must be.
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
}

fn to_time(t: SystemTime) -> time::OffsetDateTime {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn rcgen_error(e: rcgen::Error) -> Error {
    Error::Invalid(format!("certificate: {e}"))
}

/// Where the control plane keeps its PKI inside its data dir.
pub fn pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pki")
}
