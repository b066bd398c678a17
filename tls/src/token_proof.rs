//! How the CLI tells a server on this machine that holds a local admin token from any other
//! program listening on a loopback port, before sending the token.
//!
//! The CLI sends a fresh random nonce; the server answers HMAC-SHA256 keyed with its admin
//! token over the nonce and the address the connection reached (its own socket's). Only a
//! server holding that token can answer, the answer reveals nothing of the token, and a
//! program squatting another port cannot relay the question to the real server (the address
//! would differ), so the CLI sends a token found in a local data dir only to the server it
//! belongs to.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The longest nonce a server answers for (hex of 32 bytes is 64).
pub const MAX_NONCE_CHARS: usize = 128;

/// The proof that whoever computed it holds `token`, for `nonce`, answered at `address`
/// (the server's socket address the request reached).
pub fn proof(token: &str, nonce: &str, address: std::net::SocketAddr) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.trim().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(b"keel admin token proof\0");
    mac.update(nonce.as_bytes());
    mac.update(b"\0");
    mac.update(address.to_string().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A fresh nonce: 32 random bytes, as hex.
pub fn nonce() -> Result<String, crate::Error> {
    Ok(hex::encode(crate::files::random_bytes::<32>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_depend_on_the_token_the_nonce_and_the_address() {
        let n = nonce().unwrap();
        assert_eq!(n.len(), 64);
        let at: std::net::SocketAddr = "127.0.0.1:7400".parse().unwrap();
        let other: std::net::SocketAddr = "127.0.0.1:7401".parse().unwrap();
        assert_eq!(
            proof("t1", &n, at),
            proof("t1\n", &n, at),
            "the newline does not count"
        );
        assert_ne!(proof("t1", &n, at), proof("t2", &n, at));
        assert_ne!(proof("t1", &n, at), proof("t1", &nonce().unwrap(), at));
        assert_ne!(
            proof("t1", &n, at),
            proof("t1", &n, other),
            "bound to the address"
        );
    }
}
