//! Manifests committed encrypted with SOPS: how loading recognises them and asks for them
//! opened. The cryptography lives in `keel-sops`; this crate only knows the shape, so
//! reading a revision stays free of keys unless the caller brings them.

use crate::yaml::{Mark, Node, Value};

/// Opens a SOPS-encrypted file: the values of its documents decrypted, their `sops` blocks
/// gone. A file's documents share one data key and one MAC, so they open together.
pub trait Decrypt: Send + Sync {
    fn decrypt(&self, documents: &[Node]) -> Result<Vec<Node>, Refused>;
}

/// Why a file could not be opened, located in it. Never quotes a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub mark: Mark,
    pub message: String,
}

/// Whether a document is SOPS-encrypted: a top-level `sops` mapping holding a `mac`.
pub fn is_encrypted(document: &Node) -> bool {
    document
        .get("sops")
        .is_some_and(|s| matches!(s.value, Value::Map(_)) && s.get("mac").is_some())
}

/// Opens a file's `documents` if any is encrypted, with `decrypt` when keys were given.
pub fn open(documents: Vec<Node>, decrypt: Option<&dyn Decrypt>) -> Result<Vec<Node>, Refused> {
    let Some(first) = documents.iter().find(|d| is_encrypted(d)) else {
        return Ok(documents);
    };
    match decrypt {
        Some(d) => d.decrypt(&documents),
        None => Err(Refused {
            mark: first.entry("sops").map_or(first.mark, |(k, _)| k.mark),
            message: "this file is encrypted with SOPS and no age key was given to open it (--sops-age-key-file, or SOPS_AGE_KEY_FILE)".into(),
        }),
    }
}
