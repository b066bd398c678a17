//! How the API shows an object, and whether it is one a list or watch asked for.

use keel_schema::{Kind, Object};
use serde_json::{Value, json};

use super::query::ListOptions;

/// An object as the API shows it: Secret values replaced by a marker (base64 in `data`, as
/// clients decode it).
pub fn shown(object: &Object) -> Value {
    let mut v = serde_json::to_value(object).unwrap_or_default();
    if object.kind() == Kind::Secret {
        for (field, marker) in [
            ("data", keel_api::REDACTED_DATA),
            ("stringData", keel_api::REDACTED),
        ] {
            if let Some(Value::Object(data)) = v.get_mut(field) {
                for value in data.values_mut() {
                    *value = json!(marker);
                }
            }
        }
    }
    v
}

/// Whether `object` passes the list's selectors (labels, then fields on its shown form).
pub fn selected(options: &ListOptions, object: &Object) -> bool {
    options
        .labels
        .as_ref()
        .is_none_or(|s| s.matches(object.meta().labels()))
        && (options.fields.is_empty() || options.fields.matches(&shown(object)))
}
