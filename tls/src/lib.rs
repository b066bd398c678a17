//! keel's cluster identity and the mutual TLS between control plane and agents.
//!
//! - [`ca`]: the cluster CA (`keel server` makes it on first start) and the certificates it
//!   issues: the control plane's, and each node's from the node's signing request.
//! - [`identity`]: who a certificate speaks for (`control-plane.keel`, `NODE.node.keel`).
//! - [`credentials`]: a certificate and key that renewal swaps under live servers.
//! - [`config`]: the rustls configurations (TLS 1.3, peers must chain to the CA; a join
//!   pins the CA by the fingerprint in its token).
//! - [`transport`]: tonic over those configurations.
//! - [`join_token`]: the bootstrap token format.
//! - [`files`]: key files written whole, mode 0600.
#![forbid(unsafe_code)]

pub mod ca;
pub mod config;
pub mod credentials;
pub mod files;
pub mod identity;
pub mod join_token;
pub mod listen;
pub mod token_proof;
pub mod transport;

pub use ca::ClusterCa;
pub use credentials::Credentials;
pub use identity::Identity;
pub use join_token::JoinToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: {1}")]
    File(String, String),
    #[error("{0}")]
    Invalid(String),
}

/// Certificates for nodes and the control plane last this long unless told otherwise
/// (a year, as the kubelet's do); they are renewed when a third of that is left.
pub const DEFAULT_CERT_VALIDITY: std::time::Duration =
    std::time::Duration::from_secs(365 * 24 * 3600);

/// Whether a certificate valid from `not_before` to `not_after` (Unix seconds) is due for
/// renewal at `now`: when less than a third of its lifetime is left.
pub fn renewal_due(not_before: i64, not_after: i64, now: i64) -> bool {
    let lifetime = (not_after - not_before).max(1);
    not_after - now < lifetime / 3
}
