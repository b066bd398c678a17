//! Bootstrap join tokens, as `keel token create` prints them:
//! `keel1:<CA fingerprint>:<id>.<secret>`. The fingerprint lets a new agent trust the control
//! plane before it has the CA (as kubeadm's `--discovery-token-ca-cert-hash` does); the id
//! names the token; the secret proves it. The control plane stores only the secret's hash.

use sha2::Digest;

use crate::Error;

const PREFIX: &str = "keel1";
const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;

#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub ca_fingerprint: String,
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for JoinToken {
    // The secret never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JoinToken({})", self.id)
    }
}

impl JoinToken {
    /// A new random token for the CA with `ca_fingerprint`.
    pub fn generate(ca_fingerprint: &str) -> Result<JoinToken, Error> {
        Ok(JoinToken {
            ca_fingerprint: ca_fingerprint.to_string(),
            id: random_text(ID_LEN)?,
            secret: random_text(SECRET_LEN)?,
        })
    }

    pub fn parse(text: &str) -> Result<JoinToken, Error> {
        let bad = |why: &str| {
            Error::Invalid(format!(
                "the join token is malformed ({why}); it looks like \
                 keel1:<64 hex digits>:<6 characters>.<16 characters>, as `keel token create` prints it"
            ))
        };
        let mut parts = text.trim().splitn(3, ':');
        let (Some(prefix), Some(fp), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("it has fewer than three ':'-separated parts"));
        };
        if prefix != PREFIX {
            return Err(bad("it does not start with keel1:"));
        }
        if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the CA fingerprint is not 64 hex digits"));
        }
        let Some((id, secret)) = rest.split_once('.') else {
            return Err(bad("no '.' between id and secret"));
        };
        if !well_formed(id, secret) {
            return Err(bad("the id or secret has the wrong length or characters"));
        }
        Ok(JoinToken {
            ca_fingerprint: fp.to_ascii_lowercase(),
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// The token as printed (it contains the secret).
    pub fn reveal(&self) -> String {
        format!(
            "{PREFIX}:{}:{}.{}",
            self.ca_fingerprint, self.id, self.secret
        )
    }
}

/// Whether `id` and `secret` have a token's lengths and characters ([a-z0-9]).
pub fn well_formed(id: &str, secret: &str) -> bool {
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    ok(id, ID_LEN) && ok(secret, SECRET_LEN)
}

/// The SHA-256 of a secret, hex: what the control plane keeps.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Compares two secrets' hashes in constant time.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// `n` random characters from [a-z0-9], without modulo bias.
pub fn random_text(n: usize) -> Result<String, Error> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in crate::files::random_bytes::<32>()? {
            // 252 = 7 × 36: bytes above it would favour the first letters.
            if b < 252 && out.len() < n {
                out.push(ALPHABET[usize::from(b) % 36] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_parses_back() {
        let fp = "ab".repeat(32);
        let t = JoinToken::generate(&fp).unwrap();
        assert_eq!(JoinToken::parse(&t.reveal()).unwrap(), t);
        assert!(!format!("{t:?}").contains(&t.secret));
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        for (text, why) in [
            ("", "fewer than three"),
            ("keel2:aa:bb", "does not start"),
            ("keel1:abc:abcdef.0123456789abcdef", "64 hex"),
            (
                &format!("keel1:{}:abcdef0123456789abcdef", "a".repeat(64)),
                "no '.'",
            ),
            (
                &format!("keel1:{}:abc.0123456789abcdef", "a".repeat(64)),
                "wrong length",
            ),
            (
                &format!("keel1:{}:ABCDEF.0123456789abcdef", "a".repeat(64)),
                "characters",
            ),
        ] {
            let e = JoinToken::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn hashes_compare() {
        assert!(hashes_equal(&secret_hash("a"), &secret_hash("a")));
        assert!(!hashes_equal(&secret_hash("a"), &secret_hash("b")));
    }
}
