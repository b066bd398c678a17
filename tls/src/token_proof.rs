//! How the CLI tells a server on this machine that holds a local admin token from any other
//! program listening on a loopback port, before sending the token.
//!
//! The CLI sends a fresh random nonce; the server answers HMAC-SHA256 keyed with its admin
//! token over the nonce. Only a server holding that token can answer, and the answer reveals
//! nothing of the token, so the CLI sends a token found in a local data dir only to the
//! server it belongs to.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The longest nonce a server answers for (hex of 32 bytes is 64).
pub const MAX_NONCE_CHARS: usize = 128;

/// The proof that whoever computed it holds `token`, for `nonce`.
pub fn proof(token: &str, nonce: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.trim().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(b"keel admin token proof\0");
    mac.update(nonce.as_bytes());
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
    fn proofs_depend_on_both_the_token_and_the_nonce() {
        let n = nonce().unwrap();
        assert_eq!(n.len(), 64);
        assert_eq!(
            proof("t1", &n),
            proof("t1\n", &n),
            "the file's newline does not count"
        );
        assert_ne!(proof("t1", &n), proof("t2", &n));
        assert_ne!(proof("t1", &n), proof("t1", &nonce().unwrap()));
    }
}
