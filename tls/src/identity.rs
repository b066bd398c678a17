//! Who a certificate speaks for. keel's CA issues two kinds of certificate, told apart by
//! their one DNS name: `control-plane.keel` for the control plane, `NODE.node.keel` for the
//! agent of node NODE. The same name is the TLS server name each side dials, so a connection
//! to node A's address that answers with node B's certificate fails at the handshake.

use rustls::pki_types::{CertificateDer, ServerName};

const CONTROL_PLANE: &str = "control-plane.keel";
const NODE_SUFFIX: &str = ".node.keel";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    ControlPlane,
    Node(String),
}

impl Identity {
    /// The DNS name in this identity's certificate.
    pub fn dns_name(&self) -> String {
        match self {
            Identity::ControlPlane => CONTROL_PLANE.to_string(),
            Identity::Node(name) => format!("{name}{NODE_SUFFIX}"),
        }
    }

    /// The name a client verifies when it dials this identity.
    pub fn server_name(&self) -> Result<ServerName<'static>, crate::Error> {
        ServerName::try_from(self.dns_name())
            .map_err(|_| crate::Error::Invalid(format!("{self} is not a valid server name")))
    }

    /// The identity a certificate (DER) was issued for, if it is one of keel's.
    pub fn of_certificate(der: &CertificateDer<'_>) -> Option<Identity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let san = cert.subject_alternative_name().ok().flatten()?;
        let names: Vec<&str> = san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(*d),
                _ => None,
            })
            .collect();
        // keel issues exactly one name; anything else is not a keel identity.
        let [name] = names.as_slice() else {
            return None;
        };
        if *name == CONTROL_PLANE {
            return Some(Identity::ControlPlane);
        }
        let node = name.strip_suffix(NODE_SUFFIX)?;
        (!node.is_empty()).then(|| Identity::Node(node.to_string()))
    }

    /// The identity of a gRPC request's peer: the first certificate it presented. `None`
    /// when it presented none (plaintext, or a TLS client without a certificate).
    pub fn of_peer<T>(request: &tonic::Request<T>) -> Option<Identity> {
        let certs = request.peer_certs()?;
        Identity::of_certificate(certs.first()?)
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::ControlPlane => write!(f, "the control plane"),
            Identity::Node(n) => write!(f, "node {n:?}"),
        }
    }
}

/// When a certificate (DER) stops being valid, as Unix seconds.
pub fn not_after(der: &CertificateDer<'_>) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// A certificate's (DER) serial number, as lowercase hex.
pub fn serial(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(hex::encode(cert.raw_serial()))
}

/// The serial number of the first certificate in `pem`, as lowercase hex.
pub fn serial_of_pem(pem: &str) -> Option<String> {
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    serial(&der)
}

/// When a certificate (DER) became valid, as Unix seconds.
pub fn not_before(der: &CertificateDer<'_>) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_before.timestamp())
}
