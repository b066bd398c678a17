//! Secrets encrypted at rest (`keel server --encryption-key-file`), as Kubernetes'
//! EncryptionConfiguration with the `aesgcm` provider: each stored Secret is AES-256-GCM
//! with a fresh 96-bit nonce, bound to its key in the store (the additional data), so a
//! ciphertext copied to another Secret's key does not decrypt. Other kinds are stored as
//! they are. The stored form is still JSON (the etcd engine embeds records in JSON):
//! `{"keelEncrypted":"aesgcm-v1","keyId":"…","data":"<base64 nonce+ciphertext>"}`.
//!
//! Secrets written before encryption was turned on stay readable and are encrypted at their
//! next write, as in Kubernetes. An encrypted Secret read without the key, or with another
//! key, is an error naming both, never a silent empty Secret.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::StoreError;

const SCHEME: &str = "aesgcm-v1";
const MARKER: &[u8] = b"{\"keelEncrypted\"";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    keel_encrypted: String,
    key_id: String,
    data: String,
}

pub struct SecretCipher {
    cipher: Aes256Gcm,
    /// The first 8 hex digits of the key's SHA-256: says which key a record needs.
    id: String,
}

impl std::fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretCipher({})", self.id)
    }
}

impl SecretCipher {
    /// The key in `path`: 32 bytes, base64 (`head -c 32 /dev/urandom | base64`).
    pub fn from_key_file(path: &std::path::Path) -> Result<SecretCipher, StoreError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            StoreError::Invalid(format!("--encryption-key-file {}: {e}", path.display()))
        })?;
        Self::from_base64(text.trim()).map_err(|e| {
            StoreError::Invalid(format!(
                "--encryption-key-file {}: {e}; make a key with: head -c 32 /dev/urandom | base64 > {}",
                path.display(),
                path.display()
            ))
        })
    }

    pub fn from_base64(text: &str) -> Result<SecretCipher, String> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("not base64: {e}"))?;
        if key.len() != 32 {
            return Err(format!(
                "the key is {} bytes; AES-256 needs exactly 32",
                key.len()
            ));
        }
        let cipher = Aes256Gcm::new_from_slice(&key).map_err(|e| e.to_string())?;
        Ok(SecretCipher {
            cipher,
            id: hex::encode(&sha2::Sha256::digest(&key)[..4]),
        })
    }

    /// The stored form of `plain` (a Secret's JSON) at `path`.
    pub fn seal(&self, path: &str, plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce)
            .map_err(|e| StoreError::Backend(format!("no randomness for a nonce: {e}")))?;
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: path.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Backend(format!("cannot encrypt {path}")))?;
        let mut data = nonce.to_vec();
        data.extend_from_slice(&sealed);
        serde_json::to_vec(&Envelope {
            keel_encrypted: SCHEME.into(),
            key_id: self.id.clone(),
            data: base64::engine::general_purpose::STANDARD.encode(data),
        })
        .map_err(|e| StoreError::Backend(e.to_string()))
    }
}

/// Whether stored bytes are an encrypted record.
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MARKER)
}

/// The plain JSON of an encrypted record at `path`.
pub fn open(
    cipher: Option<&SecretCipher>,
    path: &str,
    bytes: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: path.to_string(),
        reason,
    };
    let envelope: Envelope =
        serde_json::from_slice(bytes).map_err(|e| corrupt(format!("encrypted record: {e}")))?;
    let Some(cipher) = cipher else {
        return Err(StoreError::Invalid(format!(
            "{path} is encrypted (key {}), and this server has no --encryption-key-file; \
             start it with the key the store was written with",
            envelope.key_id
        )));
    };
    if envelope.keel_encrypted != SCHEME {
        return Err(corrupt(format!(
            "unknown encryption {:?}",
            envelope.keel_encrypted
        )));
    }
    if envelope.key_id != cipher.id {
        return Err(StoreError::Invalid(format!(
            "{path} was encrypted with key {}, but --encryption-key-file holds key {}; \
             start the server with the key the store was written with",
            envelope.key_id, cipher.id
        )));
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(&envelope.data)
        .map_err(|e| corrupt(format!("encrypted record: {e}")))?;
    if data.len() < 12 {
        return Err(corrupt("encrypted record shorter than its nonce".into()));
    }
    let (nonce, sealed) = data.split_at(12);
    cipher
        .cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: path.as_bytes(),
            },
        )
        .map_err(|_| {
            corrupt(
                "the encrypted record does not decrypt: altered, or moved from another key".into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretCipher {
        SecretCipher::from_base64(&base64::engine::general_purpose::STANDARD.encode([byte; 32]))
            .unwrap()
    }

    #[test]
    fn sealed_records_open_only_with_their_key_at_their_path() {
        let plain = br#"{"data":{"password":"aHVudGVyMg=="}}"#;
        let sealed = key(1).seal("/Secret/default/db", plain).unwrap();
        assert!(is_sealed(&sealed));
        assert!(!String::from_utf8_lossy(&sealed).contains("aHVudGVyMg"));
        assert_eq!(
            open(Some(&key(1)), "/Secret/default/db", &sealed).unwrap(),
            plain
        );
        let no_key = open(None, "/Secret/default/db", &sealed)
            .unwrap_err()
            .to_string();
        assert!(no_key.contains("no --encryption-key-file"), "{no_key}");
        let wrong = open(Some(&key(2)), "/Secret/default/db", &sealed)
            .unwrap_err()
            .to_string();
        assert!(wrong.contains("was encrypted with key"), "{wrong}");
        let moved = open(Some(&key(1)), "/Secret/default/other", &sealed)
            .unwrap_err()
            .to_string();
        assert!(moved.contains("does not decrypt"), "{moved}");
        // Two writes of the same value differ (fresh nonces).
        assert_ne!(sealed, key(1).seal("/Secret/default/db", plain).unwrap());
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(SecretCipher::from_base64("not base64!").is_err());
        let short = base64::engine::general_purpose::STANDARD.encode([0u8; 16]);
        assert!(
            SecretCipher::from_base64(&short)
                .unwrap_err()
                .contains("exactly 32")
        );
    }
}
