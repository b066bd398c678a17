//! SOPS files opened with age keys, as `sops --decrypt` opens them: the data key unwrapped
//! with one of the age identities, every value decrypted (AES-256-GCM, the value's path as
//! associated data), and the MAC over the plaintext checked, so a file whose values were
//! swapped, removed or added after encryption is refused.
//!
//! The format is SOPS's own (its documentation and its `stores/yaml`): a `sops` block at the
//! top of each document, values as `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`, which values
//! are encrypted by `encrypted_regex`, `unencrypted_regex`, `encrypted_suffix` and
//! `unencrypted_suffix`, and `mac_only_encrypted`. Only age recipients are supported here
//! (no PGP, cloud KMS or Vault); YAML comments are not part of a manifest, so comment
//! encryption rules are refused.
//!
//! # Layout
//! - this file: age identities, and [`AgeKeys`] as the loader's [`Decrypt`].
//! - [`metadata`]: the `sops` block; [`value`]: one encrypted value; [`tree`]: the walk
//!   over a file's documents that decrypts and hashes.
//! - `testing` (feature `testing`): an encrypter, for tests of keel and of this crate.
#![forbid(unsafe_code)]

mod metadata;
#[cfg(feature = "testing")]
pub mod testing;
mod tree;
mod value;

use std::io::Read;
use std::path::Path;

use keel_schema::encrypted::{Decrypt, Refused};
use keel_schema::yaml::Node;

/// Why age keys could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the age key file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no age identity (AGE-SECRET-KEY-1… lines)")]
    Empty { path: String },
    #[error("{path} line {line}: not an age identity (expected AGE-SECRET-KEY-1…)")]
    Invalid { path: String, line: usize },
}

/// The age identities a server or a command was given.
pub struct AgeKeys {
    identities: Vec<age::x25519::Identity>,
}

impl std::fmt::Debug for AgeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves.
        write!(f, "AgeKeys({} identities)", self.identities.len())
    }
}

impl AgeKeys {
    /// Reads an age key file as `age-keygen` writes it: `AGE-SECRET-KEY-1…` lines, with
    /// `#` comments and blank lines.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_text(&text, &shown)
    }

    /// As [`AgeKeys::from_file`], from the file's text (`path` names it in errors).
    pub fn from_text(text: &str, path: &str) -> Result<Self, KeyError> {
        let mut identities = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let identity =
                line.parse::<age::x25519::Identity>()
                    .map_err(|_| KeyError::Invalid {
                        path: path.to_string(),
                        line: i + 1,
                    })?;
            identities.push(identity);
        }
        if identities.is_empty() {
            return Err(KeyError::Empty {
                path: path.to_string(),
            });
        }
        Ok(Self { identities })
    }

    /// The recipients (public keys) of the identities, for messages.
    pub fn recipients(&self) -> Vec<String> {
        self.identities
            .iter()
            .map(|i| i.to_public().to_string())
            .collect()
    }

    /// The file's data key, from the first of its age stanzas one of our identities opens.
    fn data_key(&self, stanzas: &[metadata::AgeStanza]) -> Result<[u8; 32], String> {
        for stanza in stanzas {
            let reader = age::armor::ArmoredReader::new(stanza.enc.as_bytes());
            let Ok(decryptor) = age::Decryptor::new(reader) else {
                continue;
            };
            let identities = self.identities.iter().map(|i| i as &dyn age::Identity);
            let Ok(mut plain) = decryptor.decrypt(identities) else {
                continue;
            };
            let mut key = Vec::new();
            if plain.read_to_end(&mut key).is_ok()
                && let Ok(key) = <[u8; 32]>::try_from(key.as_slice())
            {
                return Ok(key);
            }
        }
        let for_whom: Vec<&str> = stanzas.iter().map(|s| s.recipient.as_str()).collect();
        Err(format!(
            "none of the age keys given opens this file (it is encrypted for {}; the keys given are for {})",
            if for_whom.is_empty() {
                "no age recipient".to_string()
            } else {
                for_whom.join(", ")
            },
            self.recipients().join(", ")
        ))
    }
}

impl Decrypt for AgeKeys {
    fn decrypt(&self, documents: &[Node]) -> Result<Vec<Node>, Refused> {
        tree::open(documents, |stanzas| self.data_key(stanzas))
    }
}
