//! One encrypted value: `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`, opened with the data key
//! and its path as associated data, and typed as SOPS typed it.

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use base64::Engine as _;

/// AES-256-GCM with SOPS's 32-byte nonces.
type Cipher = aes_gcm::AesGcm<Aes256, U32>;

/// A decrypted value and the type SOPS recorded for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Plain {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Bytes(Vec<u8>),
    /// A time, kept as its text.
    Time(String),
}

impl Plain {
    /// The bytes SOPS hashes for this value (its `ToBytes`).
    pub fn mac_bytes(&self) -> Vec<u8> {
        match self {
            Plain::Str(s) | Plain::Time(s) => s.as_bytes().to_vec(),
            Plain::Int(i) => i.to_string().into_bytes(),
            Plain::Float(f) => format_float(*f).into_bytes(),
            Plain::Bool(b) => if *b { "True" } else { "False" }.as_bytes().to_vec(),
            Plain::Bytes(b) => b.clone(),
        }
    }
}

/// A float as Go's `strconv.FormatFloat(f, 'f', -1, 64)` writes it.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{f}")
    }
}

/// Opens `text` with `key`; `aad` is the value's path (`data:password:`) or, for the MAC,
/// the file's last-modified time. Errors never quote the value.
pub fn decrypt(text: &str, key: &[u8; 32], aad: &str) -> Result<Plain, String> {
    if text.is_empty() {
        return Ok(Plain::Str(String::new()));
    }
    let inner = text
        .strip_prefix("ENC[AES256_GCM,")
        .and_then(|t| t.strip_suffix(']'))
        .ok_or("the value is not encrypted (ENC[AES256_GCM,…]) though the file's rules say it should be")?;
    let mut parts = [None; 4];
    for field in inner.split(',') {
        let (name, value) = field.split_once(':').ok_or("a malformed ENC[…] value")?;
        let slot = match name {
            "data" => 0,
            "iv" => 1,
            "tag" => 2,
            "type" => 3,
            _ => return Err(format!("a malformed ENC[…] value (unknown field {name:?})")),
        };
        parts[slot] = Some(value);
    }
    let [Some(data), Some(iv), Some(tag), Some(kind)] = parts else {
        return Err("a malformed ENC[…] value (it needs data, iv, tag and type)".into());
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let decode = |what: &str, v: &str| {
        b64.decode(v)
            .map_err(|_| format!("a malformed ENC[…] value ({what} is not base64)"))
    };
    let (mut sealed, iv, tag) = (
        decode("data", data)?,
        decode("iv", iv)?,
        decode("tag", tag)?,
    );
    if iv.len() != 32 || tag.len() != 16 {
        return Err(
            "a malformed ENC[…] value (keel reads SOPS's 32-byte IVs and 16-byte tags)".into(),
        );
    }
    sealed.extend_from_slice(&tag);
    let cipher = Cipher::new_from_slice(key).map_err(|_| "a data key of the wrong size")?;
    let nonce = aes_gcm::Nonce::<U32>::from_slice(&iv);
    let bytes = cipher
        .decrypt(nonce, Payload { msg: &sealed, aad: aad.as_bytes() })
        .map_err(|_| "the value does not decrypt with the file's data key at this path (it was changed, or moved from another key)".to_string())?;
    let text = || {
        String::from_utf8(bytes.clone())
            .map_err(|_| "a decrypted value is not UTF-8 text".to_string())
    };
    let invalid = |t: &str| format!("a decrypted value is not the {t} its type says");
    Ok(match kind {
        "str" => Plain::Str(text()?),
        "int" => Plain::Int(text()?.trim().parse().map_err(|_| invalid("integer"))?),
        "float" => Plain::Float(text()?.trim().parse().map_err(|_| invalid("number"))?),
        "bool" => Plain::Bool(parse_bool(&text()?).ok_or_else(|| invalid("boolean"))?),
        "bytes" => Plain::Bytes(bytes),
        "time" => Plain::Time(text()?),
        other => return Err(format!("an encrypted value of unknown type {other:?}")),
    })
}

/// Go's `strconv.ParseBool`.
fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}
