//! CustomResourceDefinitions, checked as Kubernetes' apiextensions validation checks them:
//! names, scope, versions (exactly one stored), and each version's schema, which must be
//! structural (a type at every level, items for arrays, metadata left to the API).

use super::{Errors, names};
use crate::path::FieldPath;
use crate::types::apiextensions::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    JsonSchemaProps,
};

const SCOPES: [&str; 2] = ["Namespaced", "Cluster"];
const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];
const COLUMN_TYPES: [&str; 5] = ["boolean", "date", "integer", "number", "string"];
const LIST_TYPES: [&str; 3] = ["atomic", "map", "set"];
/// A schema nested deeper than this is refused rather than walked.
const MAX_SCHEMA_DEPTH: usize = 64;

pub fn validate_crd(crd: &CustomResourceDefinition, errs: &mut Errors) {
    let spec = &crd.spec;
    let at = FieldPath::new("spec");
    if spec.group.is_empty() {
        errs.required(&at.field("group"));
    } else if let Some(why) = names::dns1123_subdomain(&spec.group) {
        errs.invalid(&at.field("group"), spec.group.as_str(), why);
    } else if !spec.group.contains('.') {
        errs.invalid(
            &at.field("group"),
            spec.group.as_str(),
            "should be a domain with at least one dot",
        );
    }
    validate_names(&spec.names, &at.field("names"), errs);
    let expected = format!("{}.{}", spec.names.plural, spec.group);
    if let Some(name) = crd.metadata.name.as_deref()
        && !spec.names.plural.is_empty()
        && !spec.group.is_empty()
        && name != expected
    {
        errs.invalid(
            &FieldPath::new("metadata").field("name"),
            name,
            format!("must be spec.names.plural+\".\"+spec.group: {expected:?}"),
        );
    }
    if spec.scope.is_empty() {
        errs.required(&at.field("scope"));
    } else if !SCOPES.contains(&spec.scope.as_str()) {
        errs.unsupported(&at.field("scope"), &spec.scope, &SCOPES);
    }
    if spec.preserve_unknown_fields == Some(true) {
        errs.push(
            &at.field("preserveUnknownFields"),
            "Invalid value: true: must be false; set x-kubernetes-preserve-unknown-fields: true in the schema instead",
        );
    }
    if let Some(conversion) = &spec.conversion {
        let strategy = at.field("conversion").field("strategy");
        match conversion.strategy.as_str() {
            "None" => {}
            "Webhook" => errs.forbidden(&strategy, "keel runs no conversion webhooks"),
            other => errs.unsupported(&strategy, other, &["None"]),
        }
    }
    validate_versions(crd, &at.field("versions"), errs);
}

fn validate_names(names_: &CustomResourceDefinitionNames, at: &FieldPath, errs: &mut Errors) {
    let label = |errs: &mut Errors, path: &FieldPath, value: &str| {
        errs.name(path, value, names::dns1035_label);
    };
    if names_.plural.is_empty() {
        errs.required(&at.field("plural"));
    } else {
        label(errs, &at.field("plural"), &names_.plural);
    }
    if let Some(singular) = names_.singular.as_deref().filter(|s| !s.is_empty()) {
        label(errs, &at.field("singular"), singular);
    }
    if names_.kind.is_empty() {
        errs.required(&at.field("kind"));
    } else if let Some(why) = names::dns1035_label(&names_.kind.to_ascii_lowercase()) {
        errs.invalid(&at.field("kind"), names_.kind.as_str(), why);
    }
    if let Some(list_kind) = names_.list_kind.as_deref() {
        if list_kind == names_.kind {
            errs.invalid(
                &at.field("listKind"),
                list_kind,
                "kind and listKind may not be the same",
            );
        } else if let Some(why) = names::dns1035_label(&list_kind.to_ascii_lowercase()) {
            errs.invalid(&at.field("listKind"), list_kind, why);
        }
    }
    for (field, list) in [
        ("shortNames", &names_.short_names),
        ("categories", &names_.categories),
    ] {
        for (i, value) in list.iter().flatten().enumerate() {
            label(errs, &at.field(field).index(i), value);
        }
    }
}

fn validate_versions(crd: &CustomResourceDefinition, at: &FieldPath, errs: &mut Errors) {
    let versions = &crd.spec.versions;
    if versions.is_empty() {
        errs.required_because(at, "must have at least one version");
        return;
    }
    let stored = versions.iter().filter(|v| v.storage).count();
    if stored != 1 {
        errs.push(
            at,
            format!(
                "Invalid value: {stored} versions marked as storage: must have exactly one version marked as storage version"
            ),
        );
    }
    if !versions.iter().any(|v| v.served) {
        errs.push(
            at,
            "Invalid value: no version marked as served: must have at least one version marked as served",
        );
    }
    for (i, version) in versions.iter().enumerate() {
        let here = at.index(i);
        if version.name.is_empty() {
            errs.required(&here.field("name"));
        } else {
            errs.name(&here.field("name"), &version.name, names::dns1035_label);
            if versions[..i].iter().any(|v| v.name == version.name) {
                errs.duplicate(&here.field("name"), version.name.as_str());
            }
        }
        let schema_at = here.field("schema").field("openAPIV3Schema");
        match version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
        {
            None => errs.required_because(&schema_at, "schemas are required"),
            Some(schema) => validate_root_schema(schema, &schema_at, errs),
        }
        for (j, column) in version
            .additional_printer_columns
            .iter()
            .flatten()
            .enumerate()
        {
            validate_column(
                column,
                &here.field("additionalPrinterColumns").index(j),
                errs,
            );
        }
        if let Some(scale) = version.subresources.as_ref().and_then(|s| s.scale.as_ref()) {
            let scale_at = here.field("subresources").field("scale");
            for (field, value) in [
                ("specReplicasPath", &scale.spec_replicas_path),
                ("statusReplicasPath", &scale.status_replicas_path),
            ] {
                if !value.starts_with('.') {
                    errs.invalid(
                        &scale_at.field(field),
                        value.as_str(),
                        "should be a JSON path starting with '.'",
                    );
                }
            }
        }
    }
}

fn validate_column(column: &CustomResourceColumnDefinition, at: &FieldPath, errs: &mut Errors) {
    if column.name.is_empty() {
        errs.required(&at.field("name"));
    }
    if column.type_.is_empty() {
        errs.required(&at.field("type"));
    } else if !COLUMN_TYPES.contains(&column.type_.as_str()) {
        errs.unsupported(&at.field("type"), &column.type_, &COLUMN_TYPES);
    }
    if column.json_path.is_empty() {
        errs.required(&at.field("jsonPath"));
    }
}

/// The root: an object, whose `metadata` may say no more than `name` and `generateName`
/// are strings (the API checks metadata itself).
fn validate_root_schema(schema: &JsonSchemaProps, at: &FieldPath, errs: &mut Errors) {
    match schema.type_.as_deref() {
        Some("object") => {}
        None | Some("") if schema.x_kubernetes_preserve_unknown_fields == Some(true) => {}
        None | Some("") => errs.required_because(&at.field("type"), "must be object at the root"),
        Some(other) => errs.unsupported(&at.field("type"), other, &["object"]),
    }
    if let Some(metadata) = schema.properties.as_ref().and_then(|p| p.get("metadata")) {
        let metadata_at = at.field("properties").key("metadata");
        let only_names = metadata.properties.iter().flatten().all(|(name, s)| {
            matches!(name.as_str(), "name" | "generateName") && s.type_.as_deref() == Some("string")
        }) && metadata.type_.as_deref().is_none_or(|t| t == "object")
            && metadata.items.is_none()
            && metadata.additional_properties.is_none()
            && metadata.required.is_none();
        if !only_names {
            errs.forbidden(
                &metadata_at,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            );
        }
    }
    validate_schema(schema, at, 0, errs);
}

/// One level of a structural schema, and everything under it.
fn validate_schema(schema: &JsonSchemaProps, at: &FieldPath, depth: usize, errs: &mut Errors) {
    if depth > MAX_SCHEMA_DEPTH {
        errs.forbidden(
            at,
            format!("schemas may nest at most {MAX_SCHEMA_DEPTH} levels"),
        );
        return;
    }
    let int_or_string = schema.x_kubernetes_int_or_string == Some(true);
    let preserve = schema.x_kubernetes_preserve_unknown_fields == Some(true);
    match schema.type_.as_deref() {
        Some(t) if !t.is_empty() && int_or_string => errs.forbidden(
            &at.field("type"),
            "must be empty if x-kubernetes-int-or-string is true",
        ),
        Some(t) if !t.is_empty() && !TYPES.contains(&t) => {
            errs.unsupported(&at.field("type"), t, &TYPES)
        }
        None | Some("") if depth > 0 && !int_or_string && !preserve => errs.required_because(
            &at.field("type"),
            "must not be empty for specified object fields",
        ),
        _ => {}
    }
    // (An array at the root is refused as such above.)
    if depth > 0 && schema.type_.as_deref() == Some("array") && schema.items.is_none() {
        errs.required_because(&at.field("items"), "must be specified for arrays");
    }
    if let Some(pattern) = &schema.pattern
        && let Err(e) = regex::Regex::new(pattern)
    {
        errs.invalid(
            &at.field("pattern"),
            pattern.as_str(),
            summary(&e.to_string()),
        );
    }
    for (field, value) in [
        ("maxLength", schema.max_length),
        ("minLength", schema.min_length),
        ("maxItems", schema.max_items),
        ("minItems", schema.min_items),
        ("maxProperties", schema.max_properties),
        ("minProperties", schema.min_properties),
    ] {
        errs.non_negative(&at.field(field), value);
    }
    if let Some(list_type) = schema.x_kubernetes_list_type.as_deref() {
        let list_type_at = at.field("x-kubernetes-list-type");
        if !LIST_TYPES.contains(&list_type) {
            errs.unsupported(&list_type_at, list_type, &LIST_TYPES);
        } else if list_type == "map" && schema.x_kubernetes_list_map_keys.is_none() {
            errs.required_because(
                &at.field("x-kubernetes-list-map-keys"),
                "must be specified when x-kubernetes-list-type is map",
            );
        }
    }
    if let Some(properties) = &schema.properties {
        if schema.additional_properties.is_some() {
            errs.forbidden(
                &at.field("additionalProperties"),
                "additionalProperties and properties are mutually exclusive",
            );
        }
        for (name, property) in properties {
            validate_schema(property, &at.field("properties").key(name), depth + 1, errs);
        }
    }
    if let Some(items) = &schema.items {
        validate_schema(items, &at.field("items"), depth + 1, errs);
    }
    if let Some(additional) = &schema.additional_properties {
        let additional_at = at.field("additionalProperties");
        match additional {
            serde_json::Value::Bool(_) => {}
            serde_json::Value::Object(_) => {
                match serde_json::from_value::<JsonSchemaProps>(additional.clone()) {
                    Ok(values) => {
                        // Read as JSON (it may be a boolean), so unknown fields are found by
                        // what does not survive a round trip through the type.
                        let read = serde_json::to_value(&values).unwrap_or_default();
                        for unknown in dropped_fields(additional, &read, &additional_at) {
                            errs.push(&unknown, "unknown field");
                        }
                        validate_schema(&values, &additional_at, depth + 1, errs);
                    }
                    Err(e) => errs.push(&additional_at, format!("Invalid value: {e}")),
                }
            }
            _ => errs.push(
                &additional_at,
                "Invalid value: must be a boolean or a schema",
            ),
        }
    }
    for (field, list) in [
        ("allOf", &schema.all_of),
        ("oneOf", &schema.one_of),
        ("anyOf", &schema.any_of),
    ] {
        for (i, branch) in list.iter().flatten().enumerate() {
            validate_branch(branch, &at.field(field).index(i), depth + 1, errs);
        }
    }
    if let Some(not) = &schema.not {
        validate_branch(not, &at.field("not"), depth + 1, errs);
    }
}

/// A schema under allOf, oneOf, anyOf or not: it may only narrow what the structure above
/// says, so it declares no type of its own and nothing else is asked of it here.
fn validate_branch(schema: &JsonSchemaProps, at: &FieldPath, depth: usize, errs: &mut Errors) {
    if schema.type_.as_deref().is_some_and(|t| !t.is_empty()) {
        errs.forbidden(
            &at.field("type"),
            "must be empty to be structural (the type is given outside allOf, oneOf, anyOf and not)",
        );
    }
    if depth > MAX_SCHEMA_DEPTH {
        errs.forbidden(
            at,
            format!("schemas may nest at most {MAX_SCHEMA_DEPTH} levels"),
        );
    }
}

/// The fields of `original` that `read` (the same JSON after a trip through a type) lost.
fn dropped_fields(
    original: &serde_json::Value,
    read: &serde_json::Value,
    at: &FieldPath,
) -> Vec<FieldPath> {
    let (serde_json::Value::Object(original), serde_json::Value::Object(read)) = (original, read)
    else {
        return Vec::new();
    };
    let mut dropped = Vec::new();
    for (key, value) in original {
        match read.get(key) {
            None if !value.is_null() => dropped.push(at.field(key)),
            None => {}
            Some(kept) => dropped.extend(dropped_fields(value, kept, &at.field(key))),
        }
    }
    dropped
}

/// The last line of a regex error: what is wrong (the lines above draw the pattern).
fn summary(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or(text)
}
