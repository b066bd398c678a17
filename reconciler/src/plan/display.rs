//! The YAML a plan shows for an object. Secret values never appear: each is replaced by a
//! marker that still tells a changed value from an unchanged one.

use keel_schema::Object;
use serde_json::Value;

use super::diff::comparable;

pub const REDACTED: &str = "<redacted>";
pub const REDACTED_CHANGED: &str = "<redacted, changed>";

fn secret_data(o: Option<&Object>) -> Option<&std::collections::BTreeMap<String, String>> {
    match o {
        Some(Object::Secret(s)) => s.data.as_ref().map(|d| &d.0),
        _ => None,
    }
}

/// `object` as YAML for display, compared against `other` (the other side of a change) so a
/// changed Secret value is marked as such.
pub fn yaml(object: &Object, other: Option<&Object>) -> String {
    let mut value = comparable(object);
    if let (Some(data), Value::Object(map)) = (secret_data(Some(object)), &mut value) {
        let theirs = secret_data(other);
        let masked: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| {
                let changed = theirs.and_then(|t| t.get(k)).is_some_and(|t| t != v);
                let marker = if changed { REDACTED_CHANGED } else { REDACTED };
                (k.clone(), Value::String(marker.to_string()))
            })
            .collect();
        map.insert("data".into(), Value::Object(masked));
    }
    serde_yaml::to_string(&value).unwrap_or_default()
}

/// A unified diff of two objects' display YAML (either side may be absent).
pub fn unified(old: Option<&Object>, new: Option<&Object>, label: &str) -> String {
    // The old side never shows "changed": only the new side carries the marker.
    let before = old.map(|o| yaml(o, None)).unwrap_or_default();
    let after = new.map(|n| yaml(n, old)).unwrap_or_default();
    similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{label}"), &format!("b/{label}"))
        .to_string()
}
