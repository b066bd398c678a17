//! The walk over a file's documents: every value in document order, its path the keys above
//! it (list items share their list's path, as in SOPS), decrypted where the rules say it is
//! encrypted, and hashed for the MAC.

use keel_schema::encrypted::{Refused, is_encrypted};
use keel_schema::yaml::{Mark, Node, Style, Value, resolve_int, resolve_null};
use sha2::{Digest, Sha512};

use super::metadata::{self, AgeStanza, Metadata};
use super::value::{self, Plain, format_float};

/// What SOPS hashes first when only encrypted values count, so that such a MAC never equals
/// one over every value.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// Opens a file's documents; `data_key` unwraps the data key from the age stanzas.
pub fn open(
    documents: &[Node],
    data_key: impl Fn(&[AgeStanza]) -> Result<[u8; 32], String>,
) -> Result<Vec<Node>, Refused> {
    let refused = |mark: Mark, message: String| Refused { mark, message };
    let first = documents.iter().find(|d| is_encrypted(d)).ok_or_else(|| {
        refused(
            Mark::default(),
            "the file is not encrypted with SOPS".into(),
        )
    })?;
    let (key_node, block) = first
        .entry("sops")
        .ok_or_else(|| refused(first.mark, "no sops block".into()))?;
    let meta = metadata::read(block, key_node.mark).map_err(|(m, e)| refused(m, e))?;
    let key = data_key(&meta.age).map_err(|e| refused(meta.mark, e))?;
    let mut walk = Walk {
        meta: &meta,
        key: &key,
        hash: Sha512::new(),
    };
    if meta.mac_only_encrypted {
        walk.hash.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    let mut out = Vec::with_capacity(documents.len());
    for doc in documents {
        let mut doc = doc.clone();
        if let Value::Map(entries) = &mut doc.value {
            entries.retain(|(k, _)| k.as_str() != Some("sops"));
        }
        walk.node(&mut doc, &mut Vec::new())?;
        // sops writes its block into every document of a file, empty ones too: what is
        // left of those is nothing.
        if matches!(&doc.value, Value::Map(entries) if entries.is_empty()) {
            continue;
        }
        out.push(doc);
    }
    let computed: String = walk
        .hash
        .finalize()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let recorded = value::decrypt(&meta.mac, &key, &meta.last_modified)
        .map_err(|e| refused(meta.mark, format!("the file's MAC cannot be read: {e}")))?;
    if recorded != Plain::Str(computed) {
        return Err(refused(
            meta.mark,
            "the file's MAC does not match its values: it was changed after it was encrypted (edit it with sops, which updates the MAC)".into(),
        ));
    }
    Ok(out)
}

struct Walk<'a> {
    meta: &'a Metadata,
    key: &'a [u8; 32],
    hash: Sha512,
}

impl Walk<'_> {
    fn node(&mut self, node: &mut Node, path: &mut Vec<String>) -> Result<(), Refused> {
        // Nulls are neither encrypted nor hashed, as in SOPS.
        if node.is_null() {
            return Ok(());
        }
        match &mut node.value {
            Value::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    path.push(k.as_str().unwrap_or_default().to_string());
                    self.node(v, path)?;
                    path.pop();
                }
                Ok(())
            }
            Value::Seq(items) => items.iter_mut().try_for_each(|i| self.node(i, path)),
            Value::Scalar(..) => self.leaf(node, path),
        }
    }

    fn leaf(&mut self, node: &mut Node, path: &[String]) -> Result<(), Refused> {
        let encrypted = self.meta.rules.encrypted(path);
        let text = node.as_str().unwrap_or_default().to_string();
        if encrypted {
            let aad = format!("{}:", path.join(":"));
            let plain = value::decrypt(&text, self.key, &aad).map_err(|e| Refused {
                mark: node.mark,
                message: format!("{}: {e}", path.join(".")),
            })?;
            self.hash.update(plain.mac_bytes());
            *node = as_node(plain, node.mark);
        } else if !self.meta.mac_only_encrypted {
            self.hash.update(plain_bytes(node));
        }
        Ok(())
    }
}

/// A decrypted value as a located scalar of its type.
fn as_node(plain: Plain, mark: Mark) -> Node {
    let (text, style) = match plain {
        Plain::Str(s) | Plain::Time(s) => (s, Style::Quoted),
        Plain::Int(i) => (i.to_string(), Style::Plain),
        Plain::Float(f) => (format_float(f), Style::Plain),
        Plain::Bool(b) => (b.to_string(), Style::Plain),
        Plain::Bytes(b) => (String::from_utf8_lossy(&b).into_owned(), Style::Quoted),
    };
    Node {
        mark,
        value: Value::Scalar(text, style),
    }
}

/// The bytes SOPS hashes for a value it left in clear: the value as its YAML reader typed
/// it (`true` as `True`, `0x10` as `16`), strings as written.
fn plain_bytes(node: &Node) -> Vec<u8> {
    let Value::Scalar(text, style) = &node.value else {
        return Vec::new();
    };
    if *style != Style::Plain || resolve_null(text) {
        return text.as_bytes().to_vec();
    }
    match text.as_str() {
        "true" | "True" | "TRUE" => return b"True".to_vec(),
        "false" | "False" | "FALSE" => return b"False".to_vec(),
        _ => {}
    }
    if let Some(i) = resolve_int(text) {
        return i.to_string().into_bytes();
    }
    let numeric = text.chars().any(|c| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if numeric && let Ok(f) = text.parse::<f64>() {
        return format_float(f).into_bytes();
    }
    text.as_bytes().to_vec()
}
