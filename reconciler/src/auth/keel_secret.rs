//! Records keel keeps in the store as Secrets of its own types in `keel-system` (join
//! tokens, node certificate bindings): every server sees them, Secret values are redacted in
//! the API, and git cannot declare their `keel.dev/` types.

use std::collections::BTreeMap;

use base64::Engine;
use keel_schema::Object;
use keel_schema::types::core::{Secret, SecretData};

/// The namespace keel's own Secrets live in.
pub const NAMESPACE: &str = "keel-system";

/// A Secret `keel-system/NAME` of type `type_` holding `fields` (text, stored base64).
pub fn build<'a>(
    name: String,
    type_: &str,
    fields: impl IntoIterator<Item = (&'a str, String)>,
) -> Object {
    let b64 = base64::engine::general_purpose::STANDARD;
    let data = fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), b64.encode(v)))
        .collect();
    let mut secret = Secret {
        api_version: "v1".into(),
        kind: "Secret".into(),
        type_: Some(type_.into()),
        data: Some(SecretData(data)),
        ..Default::default()
    };
    secret.metadata.name = Some(name);
    secret.metadata.namespace = Some(NAMESPACE.into());
    Object::Secret(secret)
}

/// The text fields of `object` when it is a Secret of type `type_` (fields that are not
/// base64 of UTF-8 text are left out); `None` for anything else.
pub fn fields(object: &Object, type_: &str) -> Option<BTreeMap<String, String>> {
    let Object::Secret(secret) = object else {
        return None;
    };
    if secret.type_.as_deref() != Some(type_) {
        return None;
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    Some(
        secret
            .data
            .as_ref()?
            .0
            .iter()
            .filter_map(|(k, v)| {
                let text = String::from_utf8(b64.decode(v).ok()?).ok()?;
                Some((k.clone(), text))
            })
            .collect(),
    )
}
