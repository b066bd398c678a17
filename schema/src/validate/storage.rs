//! ConfigMaps and Secrets: keys, base64 values, sizes. Secret values never appear in messages.

use std::collections::BTreeMap;

use base64::Engine;

use super::{Errors, Hidden, names};
use crate::path::FieldPath;
use crate::types::core::{ConfigMap, Secret};

/// Kubernetes' limit on the data of one ConfigMap or Secret.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// Decodes base64 as Kubernetes does (standard alphabet, padding, line breaks ignored).
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: String = text.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    base64::engine::general_purpose::STANDARD.decode(compact)
}

/// Describes a base64 error by position only: the decoder's own message quotes the
/// offending byte, which for a Secret is part of the secret.
fn base64_problem(e: &base64::DecodeError) -> String {
    match e {
        base64::DecodeError::InvalidByte(offset, _) => {
            format!("illegal base64 data at input byte {offset}")
        }
        base64::DecodeError::InvalidLastSymbol(offset, _) => {
            format!("illegal base64 data at input byte {offset} (last symbol)")
        }
        base64::DecodeError::InvalidLength(len) => {
            format!("illegal base64 data: length {len} is not a multiple of 4")
        }
        base64::DecodeError::InvalidPadding => "illegal base64 data: bad padding".to_string(),
    }
}

fn check_size(total: usize, errs: &mut Errors) {
    if total > MAX_DATA_BYTES {
        errs.push(
            &FieldPath::new("data"),
            format!("Too long: must have at most {MAX_DATA_BYTES} bytes"),
        );
    }
}

pub fn validate_configmap(cm: &ConfigMap, errs: &mut Errors) {
    let mut total = 0;
    let data = cm.data.clone().unwrap_or_default();
    for (k, v) in &data {
        errs.name(&FieldPath::new("data").key_name(k), k, names::config_key);
        total += v.len();
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        let at = FieldPath::new("binaryData").key(k);
        errs.name(
            &FieldPath::new("binaryData").key_name(k),
            k,
            names::config_key,
        );
        if data.contains_key(k) {
            errs.duplicate(&FieldPath::new("binaryData").key_name(k), k);
        }
        match decode_base64(v) {
            Ok(bytes) => total += bytes.len(),
            Err(e) => errs.invalid(&at, Hidden, base64_problem(&e)),
        }
    }
    check_size(total, errs);
}

pub fn validate_secret(secret: &Secret, errs: &mut Errors) {
    let mut total = 0;
    let empty = BTreeMap::new();
    for (k, v) in secret.data.as_ref().map(|d| &d.0).unwrap_or(&empty) {
        let at = FieldPath::new("data").key(k);
        errs.name(&FieldPath::new("data").key_name(k), k, names::config_key);
        match decode_base64(v) {
            Ok(bytes) => total += bytes.len(),
            Err(e) => errs.invalid(&at, Hidden, base64_problem(&e)),
        }
    }
    for (k, v) in secret.string_data.as_ref().map(|d| &d.0).unwrap_or(&empty) {
        errs.name(
            &FieldPath::new("stringData").key_name(k),
            k,
            names::config_key,
        );
        total += v.len();
    }
    // The registry logins of `imagePullSecrets`: their one key, holding the JSON the agent
    // reads (an error names a position, never the content).
    let registry_key = match secret.type_.as_deref() {
        Some("kubernetes.io/dockerconfigjson") => Some(".dockerconfigjson"),
        Some("kubernetes.io/dockercfg") => Some(".dockercfg"),
        _ => None,
    };
    if let Some(key) = registry_key {
        let raw = secret
            .data
            .as_ref()
            .and_then(|d| d.0.get(key))
            .map(|v| decode_base64(v).ok());
        let plain = secret
            .string_data
            .as_ref()
            .and_then(|d| d.0.get(key))
            .map(|v| v.as_bytes().to_vec());
        let field = if plain.is_some() {
            "stringData"
        } else {
            "data"
        };
        match raw.flatten().or(plain) {
            None => errs.required(&FieldPath::new(field).key_name(key)),
            Some(bytes) => {
                let parsed = serde_json::from_slice::<serde_json::Value>(&bytes);
                let shaped = match &parsed {
                    Ok(v) if key == ".dockerconfigjson" => {
                        v.get("auths").is_some_and(|a| a.is_object())
                    }
                    Ok(v) => v.is_object(),
                    Err(_) => false,
                };
                if !shaped {
                    let why = match parsed {
                        Err(e) => format!(
                            "is not valid JSON (line {}, column {})",
                            e.line(),
                            e.column()
                        ),
                        Ok(_) if key == ".dockerconfigjson" => {
                            "must be a JSON object with an \"auths\" object".to_string()
                        }
                        Ok(_) => "must be a JSON object of registries".to_string(),
                    };
                    errs.push(
                        &FieldPath::new(field).key_name(key),
                        format!("Invalid value: {why}"),
                    );
                }
            }
        }
    }
    match secret.type_.as_deref() {
        Some("") => errs.required(&FieldPath::new("type")),
        // keel keeps join tokens and node certificate bindings as Secrets of its own types;
        // one from git could let a committer join nodes or take a node's name.
        Some(t) if t.starts_with("keel.dev/") => errs.forbidden(
            &FieldPath::new("type"),
            format!("Secret type {t:?} is keel's own; git cannot declare it"),
        ),
        _ => {}
    }
    check_size(total, errs);
}
