//! Objects of a kind a CustomResourceDefinition declares, checked against the
//! `openAPIV3Schema` of their version with the `jsonschema` crate. The schema is read as
//! Kubernetes reads it: an object's unknown fields are errors (strict field validation)
//! unless `x-kubernetes-preserve-unknown-fields` keeps them, `nullable` allows null,
//! `x-kubernetes-int-or-string` allows either, and `metadata`, `apiVersion` and `kind` are
//! the API's to check. Each error is a [`FieldError`] at the field it is about.

use std::collections::HashMap;

use serde_json::{Map, Value as Json, json};

use super::FieldError;
use crate::decode::{Issue, decode};
use crate::kinds::custom::CustomKind;
use crate::path::FieldPath;
use crate::types::apiextensions::{CustomResourceDefinition, JsonSchemaProps};
use crate::types::custom::{CustomHead, CustomObject};
use crate::yaml::{Node, Style, Value, resolve_bool, resolve_int, resolve_null};

/// The schemas of a revision's definitions, each compiled once for all its objects.
#[derive(Default)]
pub struct Schemas {
    compiled: HashMap<(String, String), Result<jsonschema::Validator, String>>,
}

/// `root` (a whole manifest of `api_version`) checked against `crd`'s schema: its fields
/// (all but `apiVersion`, `kind` and `metadata`; a `null` the schema does not allow
/// dropped first, as Kubernetes drops it), or every error found.
pub fn validate_custom_object(
    root: &Node,
    crd: &CustomResourceDefinition,
    api_version: &str,
    schemas: &mut Schemas,
) -> Result<Map<String, Json>, Vec<FieldError>> {
    let version = crate::kinds::group_version(api_version);
    let served = crd
        .spec
        .versions
        .iter()
        .find(|v| v.name == version && v.served);
    let Some(served) = served else {
        let supported: Vec<String> = crd
            .spec
            .versions
            .iter()
            .filter(|v| v.served)
            .map(|v| format!("\"{}/{}\"", crd.spec.group, v.name))
            .collect();
        return Err(vec![FieldError {
            path: FieldPath::new("apiVersion"),
            message: format!(
                "Unsupported value: {api_version:?}: {} serves {}",
                crd.metadata.name.as_deref().unwrap_or_default(),
                if supported.is_empty() {
                    "no version".to_string()
                } else {
                    supported.join(", ")
                }
            ),
        }]);
    };
    let mut instance = to_json(root);
    let Some(schema) = served
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
    else {
        // The definition itself is refused for lacking it.
        return Err(Vec::new());
    };
    let key = (crd.metadata.name().to_string(), served.name.clone());
    let validator = schemas.compiled.entry(key).or_insert_with(|| {
        jsonschema::draft4::new(&root_schema(schema)).map_err(|e| e.to_string())
    });
    let validator = match validator {
        Ok(v) => v,
        Err(e) => {
            return Err(vec![FieldError {
                path: FieldPath::new("kind"),
                message: format!("Invalid value: the definition's schema cannot be used: {e}"),
            }]);
        }
    };
    drop_nulls(&mut instance, schema);
    let mut errors: Vec<FieldError> = validator
        .iter_errors(&instance)
        .flat_map(|e| field_errors(&e))
        .collect();
    errors.dedup();
    match instance {
        Json::Object(fields) if errors.is_empty() => Ok(fields),
        _ => Err(errors),
    }
}

/// Drops each `null` whose schema does not say `nullable` (or that no schema names), as
/// Kubernetes does before it validates: `selector:` left empty means no selector.
fn drop_nulls(value: &mut Json, schema: &JsonSchemaProps) {
    match value {
        Json::Object(map) => {
            let values = match &schema.additional_properties {
                Some(v @ Json::Object(_)) => {
                    serde_json::from_value::<JsonSchemaProps>(v.clone()).ok()
                }
                _ => None,
            };
            let of = |key: &str| {
                schema
                    .properties
                    .as_ref()
                    .and_then(|p| p.get(key))
                    .or(values.as_ref())
            };
            map.retain(|key, v| !v.is_null() || of(key).is_some_and(|s| s.nullable == Some(true)));
            for (key, v) in map.iter_mut() {
                if let Some(s) = of(key) {
                    drop_nulls(v, s);
                }
            }
        }
        Json::Array(items) => {
            if let Some(item) = &schema.items {
                for v in items {
                    drop_nulls(v, item);
                }
            }
        }
        _ => {}
    }
}

/// `root` as an object of `kind`: its metadata decoded as every object's, with located
/// problems; `fields` ([`validate_custom_object`]'s, or [`as_written`]) kept as they are.
pub fn read_custom_object(
    root: &Node,
    kind: CustomKind,
    fields: Map<String, Json>,
) -> (Option<CustomObject>, Vec<Issue>) {
    let head = match &root.value {
        Value::Map(entries) => Node {
            mark: root.mark,
            value: Value::Map(
                entries
                    .iter()
                    .filter(|(k, _)| matches!(k.as_str(), Some("apiVersion" | "kind" | "metadata")))
                    .cloned()
                    .collect(),
            ),
        },
        _ => root.clone(),
    };
    let (head, issues) = decode::<CustomHead>(&head);
    (
        head.map(|h| CustomObject::new(kind, h.metadata, fields)),
        issues,
    )
}

/// A manifest's fields as written (an object of a kind no definition describes).
pub fn as_written(root: &Node) -> Map<String, Json> {
    match to_json(root) {
        Json::Object(fields) => fields,
        _ => Map::new(),
    }
}

/// The whole object's schema: the definition's, with the API's own fields left to the API.
fn root_schema(schema: &JsonSchemaProps) -> Json {
    let mut root = draft4(schema);
    allow_object_fields(&mut root);
    root
}

/// `apiVersion`, `kind` and `metadata` allowed in an object's schema (the root, or an
/// `x-kubernetes-embedded-resource`), whatever else it says of its fields.
fn allow_object_fields(schema: &mut Json) {
    if let Json::Object(map) = schema {
        let properties = map
            .entry("properties")
            .or_insert_with(|| Json::Object(Map::new()));
        if let Json::Object(properties) = properties {
            properties.insert("apiVersion".into(), json!({"type": "string"}));
            properties.insert("kind".into(), json!({"type": "string"}));
            properties.insert("metadata".into(), json!({}));
        }
    }
}

/// One OpenAPI v3 schema as JSON Schema draft 4 says it, with Kubernetes' meaning.
fn draft4(schema: &JsonSchemaProps) -> Json {
    let mut out = Map::new();
    let preserve = schema.x_kubernetes_preserve_unknown_fields == Some(true);
    let nullable = schema.nullable == Some(true);
    if let Some(t) = schema.type_.as_deref().filter(|t| !t.is_empty()) {
        out.insert(
            "type".into(),
            if nullable {
                json!([t, "null"])
            } else {
                json!(t)
            },
        );
    }
    let mut all_of: Vec<Json> = Vec::new();
    if schema.x_kubernetes_int_or_string == Some(true) {
        all_of.push(json!({"type": ["integer", "string"]}));
    }
    let copy = |out: &mut Map<String, Json>, key: &str, value: Option<Json>| {
        if let Some(v) = value {
            out.insert(key.into(), v);
        }
    };
    copy(
        &mut out,
        "enum",
        schema.enum_.clone().map(|mut values| {
            if nullable {
                values.push(Json::Null);
            }
            Json::Array(values)
        }),
    );
    copy(&mut out, "maximum", schema.maximum.clone());
    copy(&mut out, "minimum", schema.minimum.clone());
    copy(
        &mut out,
        "exclusiveMaximum",
        schema.exclusive_maximum.map(Json::Bool),
    );
    copy(
        &mut out,
        "exclusiveMinimum",
        schema.exclusive_minimum.map(Json::Bool),
    );
    copy(&mut out, "multipleOf", schema.multiple_of.clone());
    copy(
        &mut out,
        "pattern",
        schema.pattern.clone().map(Json::String),
    );
    for (key, value) in [
        ("maxLength", schema.max_length),
        ("minLength", schema.min_length),
        ("maxItems", schema.max_items),
        ("minItems", schema.min_items),
        ("maxProperties", schema.max_properties),
        ("minProperties", schema.min_properties),
    ] {
        copy(&mut out, key, value.map(|v| json!(v)));
    }
    copy(&mut out, "uniqueItems", schema.unique_items.map(Json::Bool));
    copy(
        &mut out,
        "required",
        schema.required.clone().map(|r| json!(r)),
    );
    if let Some(items) = &schema.items {
        out.insert("items".into(), draft4(items));
    }
    if let Some(properties) = &schema.properties {
        let converted: Map<String, Json> = properties
            .iter()
            .map(|(name, p)| (name.clone(), draft4(p)))
            .collect();
        out.insert("properties".into(), Json::Object(converted));
    }
    match &schema.additional_properties {
        Some(Json::Bool(allowed)) => {
            out.insert("additionalProperties".into(), Json::Bool(*allowed));
        }
        Some(values @ Json::Object(_)) => {
            if let Ok(values) = serde_json::from_value::<JsonSchemaProps>(values.clone()) {
                out.insert("additionalProperties".into(), draft4(&values));
            }
        }
        // An object's fields are those it names, unless it keeps unknown ones.
        _ if !preserve
            && (schema.properties.is_some() || schema.type_.as_deref() == Some("object")) =>
        {
            out.insert("additionalProperties".into(), Json::Bool(false));
        }
        _ => {}
    }
    for (key, list) in [
        ("allOf", &schema.all_of),
        ("oneOf", &schema.one_of),
        ("anyOf", &schema.any_of),
    ] {
        if let Some(list) = list {
            // Branches narrow values; the structure above decides which fields exist.
            let branches: Vec<Json> = list.iter().map(branch).collect();
            if key == "allOf" {
                all_of.extend(branches);
            } else {
                out.insert(key.into(), Json::Array(branches));
            }
        }
    }
    if let Some(not) = &schema.not {
        out.insert("not".into(), branch(not));
    }
    if !all_of.is_empty() {
        out.insert("allOf".into(), Json::Array(all_of));
    }
    let mut out = Json::Object(out);
    if schema.x_kubernetes_embedded_resource == Some(true) {
        allow_object_fields(&mut out);
    }
    out
}

/// A schema under allOf, oneOf, anyOf or not: as [`draft4`], without closing objects.
fn branch(schema: &JsonSchemaProps) -> Json {
    let mut open = schema.clone();
    open.x_kubernetes_preserve_unknown_fields = Some(true);
    draft4(&open)
}

/// A manifest as JSON, plain scalars resolved as YAML 1.1 resolves them.
fn to_json(node: &Node) -> Json {
    match &node.value {
        Value::Scalar(text, Style::Plain) => {
            if resolve_null(text) {
                Json::Null
            } else if let Some(b) = resolve_bool(text) {
                Json::Bool(b)
            } else if let Some(i) = resolve_int(text) {
                json!(i)
            } else if let Some(f) = float(text) {
                json!(f)
            } else {
                Json::String(text.clone())
            }
        }
        Value::Scalar(text, _) => Json::String(text.clone()),
        Value::Seq(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), to_json(v))))
                .collect(),
        ),
    }
}

/// A plain scalar that is a finite decimal number (`1.5`, `-2e3`).
fn float(text: &str) -> Option<serde_json::Number> {
    let numeric = text.chars().any(|c| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    numeric
        .then(|| text.parse::<f64>().ok())
        .flatten()
        .and_then(serde_json::Number::from_f64)
}

/// One jsonschema error as keel's errors: where, in Kubernetes' words.
fn field_errors(error: &jsonschema::ValidationError<'_>) -> Vec<FieldError> {
    use jsonschema::error::ValidationErrorKind as E;
    let mut path = FieldPath::root();
    for segment in error.instance_path().iter() {
        path = match segment {
            jsonschema::paths::LocationSegment::Property(name) => path.field(&name),
            jsonschema::paths::LocationSegment::Index(i) => path.index(i),
        };
    }
    let value = show(error.instance());
    let at = |path: FieldPath, message: String| vec![FieldError { path, message }];
    match error.kind() {
        E::Required { property } => at(
            path.field(property.as_str().unwrap_or_default()),
            "Required value".into(),
        ),
        E::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| FieldError {
                path: path.field(name),
                message: format!("unknown field {name:?}"),
            })
            .collect(),
        E::Type { kind } => at(
            path,
            format!(
                "Invalid value: {value}: must be of type {}",
                type_name(kind)
            ),
        ),
        E::Enum { options } => {
            let supported: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| o.to_string())
                .collect();
            at(
                path,
                format!(
                    "Unsupported value: {value}: supported values: {}",
                    supported.join(", ")
                ),
            )
        }
        E::Minimum { limit } => at(
            path,
            format!("Invalid value: {value}: should be greater than or equal to {limit}"),
        ),
        E::Maximum { limit } => at(
            path,
            format!("Invalid value: {value}: should be less than or equal to {limit}"),
        ),
        E::Pattern { pattern } => at(
            path,
            format!("Invalid value: {value}: should match '{pattern}'"),
        ),
        E::MinLength { limit } => at(
            path,
            format!("Invalid value: {value}: should be at least {limit} chars long"),
        ),
        E::MaxLength { limit } => at(
            path,
            format!("Too long: may not be more than {limit} bytes"),
        ),
        E::MinItems { limit } => at(
            path,
            format!("Invalid value: {limit}: should have at least {limit} items"),
        ),
        E::MaxItems { limit } => at(path, format!("Too many: must have at most {limit} items")),
        _ => at(path, format!("Invalid value: {value}: {error}")),
    }
}

fn type_name(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(t) => t.to_string(),
        jsonschema::error::TypeKind::Multiple(set) => {
            let names: Vec<String> = set.iter().map(|t| t.to_string()).collect();
            names.join(" or ")
        }
    }
}

/// A value as an error shows it: strings quoted, anything else as JSON, cut short.
fn show(value: &Json) -> String {
    let text = value.to_string();
    if text.chars().count() > 64 {
        let cut: String = text.chars().take(60).collect();
        format!("{cut}...")
    } else {
        text
    }
}
