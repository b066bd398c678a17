//! `keel get` columns of a custom kind: its definition's `additionalPrinterColumns`, each a
//! JSONPath into the object, as kubectl shows them (NAME first; `priority` above 0 only with
//! `-o wide`); without any, NAME and AGE.

use chrono::{DateTime, Utc};
use keel_schema::Object;
use keel_schema::types::apiextensions::CustomResourceColumnDefinition;
use serde_json::Value;

use super::format::human_duration;
use super::{age, name};

/// The header and rows for `objects` (all of one custom kind) under `columns`.
pub fn custom_table<O: std::borrow::Borrow<Object>>(
    objects: &[O],
    columns: &[CustomResourceColumnDefinition],
    wide: bool,
    now: DateTime<Utc>,
) -> (Vec<String>, Vec<Vec<String>>) {
    let shown: Vec<&CustomResourceColumnDefinition> = columns
        .iter()
        .filter(|c| wide || c.priority.unwrap_or(0) == 0)
        .collect();
    if shown.is_empty() {
        let rows = objects
            .iter()
            .map(|o| o.borrow())
            .map(|o| vec![name(o.meta()), age(o.meta(), now)])
            .collect();
        return (vec!["NAME".into(), "AGE".into()], rows);
    }
    let mut header = vec!["NAME".to_string()];
    header.extend(shown.iter().map(|c| c.name.to_ascii_uppercase()));
    let rows = objects
        .iter()
        .map(|o| o.borrow())
        .map(|o| {
            let json = serde_json::to_value(o).unwrap_or_default();
            let mut row = vec![name(o.meta())];
            row.extend(shown.iter().map(|c| cell(&json, c, now)));
            row
        })
        .collect();
    (header, rows)
}

/// One column's cell: the values its path finds, shown by its type, joined by commas.
fn cell(object: &Value, column: &CustomResourceColumnDefinition, now: DateTime<Utc>) -> String {
    let Some(found) = find(object, &column.json_path) else {
        return "<invalid path>".into();
    };
    let shown: Vec<String> = found
        .iter()
        .map(|v| match (column.type_.as_str(), v) {
            ("date", Value::String(t)) => DateTime::parse_from_rfc3339(t).map_or_else(
                |_| t.clone(),
                |t| human_duration(now - t.with_timezone(&Utc)),
            ),
            (_, Value::String(s)) => s.clone(),
            (_, other) => other.to_string(),
        })
        .collect();
    shown.join(",")
}

/// The values `path` finds in `value`, for the JSONPath kubectl's printer columns use:
/// `.a.b`, `['a']`, `[0]`, `[*]` and `[?(@.k=="v")]` (also `@.k.l`, single quotes, `!=`).
/// `None` for a path outside that.
pub fn find<'a>(value: &'a Value, path: &str) -> Option<Vec<&'a Value>> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let mut rest = path.strip_prefix('$').unwrap_or(path);
    let mut current = vec![value];
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let key = &after[..end];
            if key.is_empty() {
                return None;
            }
            current = current.into_iter().filter_map(|v| v.get(key)).collect();
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = closing(after)?;
            let inside = after[..end].trim();
            current = select(current, inside)?;
            rest = &after[end + 1..];
        } else {
            return None;
        }
    }
    Some(current)
}

/// Where the `]` closing a bracket is (quotes may hold one).
fn closing(text: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ']') => return Some(i),
            _ => {}
        }
    }
    None
}

/// One bracket: an index, `*`, a quoted key, or a filter.
fn select<'a>(current: Vec<&'a Value>, inside: &str) -> Option<Vec<&'a Value>> {
    let items = |v: &'a Value| v.as_array().map(|a| a.iter()).into_iter().flatten();
    if inside == "*" {
        return Some(
            current
                .into_iter()
                .flat_map(|v| match v {
                    Value::Object(m) => m.values().collect::<Vec<_>>(),
                    other => items(other).collect(),
                })
                .collect(),
        );
    }
    if let Ok(i) = inside.parse::<usize>() {
        return Some(current.into_iter().filter_map(|v| v.get(i)).collect());
    }
    if let Some(key) = unquote(inside) {
        return Some(current.into_iter().filter_map(|v| v.get(key)).collect());
    }
    let filter = inside.strip_prefix("?(")?.strip_suffix(')')?;
    let (left, right, equal) = match (filter.split_once("!="), filter.split_once("==")) {
        (Some((l, r)), _) => (l, r, false),
        (None, Some((l, r))) => (l, r, true),
        (None, None) => return None,
    };
    let field = left.trim().strip_prefix('@')?;
    let wanted = right.trim();
    let wanted = unquote(wanted).map_or_else(
        || serde_json::from_str::<Value>(wanted).ok(),
        |s| Some(Value::String(s.to_string())),
    )?;
    Some(
        current
            .into_iter()
            .flat_map(items)
            .filter(|item| {
                let got = find(item, field).and_then(|f| f.first().copied().cloned());
                (got.as_ref() == Some(&wanted)) == equal
            })
            .collect(),
    )
}

fn unquote(text: &str) -> Option<&str> {
    ['"', '\'']
        .iter()
        .find_map(|q| text.strip_prefix(*q).and_then(|t| t.strip_suffix(*q)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_paths_printer_columns_use() {
        let object = json!({
            "metadata": {"name": "shop-tls", "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"secretName": "tls", "dnsNames": ["a.example.com", "b.example.com"]},
            "status": {"conditions": [
                {"type": "Issuing", "status": "False"},
                {"type": "Ready", "status": "True", "message": "up to date"}]}
        });
        let text = |path: &str| {
            find(&object, path).map(|found| {
                found
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join(",")
            })
        };
        assert_eq!(text(".spec.secretName").as_deref(), Some("tls"));
        assert_eq!(text(".spec.dnsNames[1]").as_deref(), Some("b.example.com"));
        assert_eq!(
            text(".spec.dnsNames[*]").as_deref(),
            Some("a.example.com,b.example.com")
        );
        assert_eq!(
            text(r#".status.conditions[?(@.type=="Ready")].status"#).as_deref(),
            Some("True")
        );
        assert_eq!(
            text(".status.conditions[?(@.type != 'Ready')].type").as_deref(),
            Some("Issuing")
        );
        assert_eq!(
            text(".metadata.labels['app.kubernetes.io/name']").as_deref(),
            Some("web")
        );
        assert_eq!(text("{.spec.missing}").as_deref(), Some(""));
        assert_eq!(text(".spec..x"), None);
        assert_eq!(text(".spec[?(@.a=~/x/)]"), None);
        assert_eq!(text("spec"), None);
    }

    #[test]
    fn columns_show_by_type_and_priority() {
        let now = Utc::now();
        let created = (now - chrono::Duration::minutes(5)).to_rfc3339();
        let object = Object::from_json(json!({"apiVersion": "certs.example.com/v1",
            "kind": "Certificate", "metadata": {"name": "shop-tls", "namespace": "default",
            "creationTimestamp": created},
            "spec": {"secretName": "tls", "renewals": 3},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap();
        let column =
            |name: &str, type_: &str, path: &str, priority: i32| CustomResourceColumnDefinition {
                name: name.into(),
                type_: type_.into(),
                json_path: path.into(),
                priority: Some(priority),
                ..Default::default()
            };
        let columns = [
            column(
                "Ready",
                "string",
                r#".status.conditions[?(@.type=="Ready")].status"#,
                0,
            ),
            column("Secret", "string", ".spec.secretName", 0),
            column("Renewals", "integer", ".spec.renewals", 1),
            column("Age", "date", ".metadata.creationTimestamp", 0),
        ];
        let (header, rows) = custom_table(std::slice::from_ref(&object), &columns, false, now);
        assert_eq!(header, ["NAME", "READY", "SECRET", "AGE"]);
        assert_eq!(rows, [["shop-tls", "True", "tls", "5m"]]);
        let (header, rows) = custom_table(std::slice::from_ref(&object), &columns, true, now);
        assert_eq!(header, ["NAME", "READY", "SECRET", "RENEWALS", "AGE"]);
        assert_eq!(rows[0][3], "3");
        let (header, _) = custom_table(&[object], &[], false, now);
        assert_eq!(header, ["NAME", "AGE"]);
    }
}
