//! OpenAPI documents of the kinds keel serves, one per group version, as kube-apiserver
//! serves them under `/openapi/v3/`: what `kubectl explain` reads, and what tells kubectl
//! the server checks fields itself (`fieldValidation` on each kind's PATCH), so `kubectl
//! apply` sends its request and reads the server's answer instead of validating on its own.
//!
//! Built-in kinds' schemas come from keel's own types (the ones manifests are decoded
//! into), so a field keel does not support is not in them; a custom kind's is its
//! definition's `openAPIV3Schema`.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::jsonschema::schema_of;
use crate::kinds::Kind;

/// One kind in a group version's document.
#[derive(Debug, Clone)]
pub struct DocumentedKind {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    /// The name of its schema in `components.schemas`.
    pub schema: String,
}

impl DocumentedKind {
    fn gvk(&self) -> Value {
        json!({"group": self.group, "version": self.version, "kind": self.kind})
    }

    /// The path of one object of this kind.
    fn object_path(&self) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        if self.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", self.plural)
        } else {
            format!("{base}/{}/{{name}}", self.plural)
        }
    }
}

/// The OpenAPI v3 document of `kinds` (all in one group version), whose schemas are
/// `schemas`; each kind's schema is marked with its group, version and kind.
pub fn document(kinds: &[DocumentedKind], mut schemas: Map<String, Value>) -> Value {
    for schema in schemas.values_mut() {
        optional_references_as_kubernetes_writes_them(schema);
    }
    let mut paths = Map::new();
    for kind in kinds {
        if let Some(Value::Object(schema)) = schemas.get_mut(&kind.schema) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([kind.gvk()]),
            );
        }
        let reference = json!({"$ref": format!("#/components/schemas/{}", kind.schema)});
        let answer = json!({"200": {
            "description": "OK",
            "content": {"application/json": {"schema": reference}},
        }});
        let mut parameters = vec![
            json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}),
        ];
        if kind.namespaced {
            parameters.push(json!({
                "name": "namespace", "in": "path", "required": true,
                "schema": {"type": "string"},
            }));
        }
        paths.insert(
            kind.object_path(),
            json!({
                "parameters": parameters,
                "get": {
                    "operationId": format!("read{}", kind.kind),
                    "x-kubernetes-action": "get",
                    "x-kubernetes-group-version-kind": kind.gvk(),
                    "responses": answer,
                },
                "patch": {
                    "operationId": format!("patch{}", kind.kind),
                    "description": "Refused: keel applies only what is committed to git.",
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": kind.gvk(),
                    "parameters": [{
                        "name": "fieldValidation", "in": "query",
                        "schema": {"type": "string", "uniqueItems": true},
                    }],
                    "responses": answer,
                },
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "keel", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// An optional object field is `anyOf: [{$ref}, {null}]` as generated; Kubernetes writes it
/// `allOf: [{$ref}]`, the only shape `kubectl explain` follows into the field's own fields
/// (`kubectl explain deployment.spec.strategy.rollingUpdate`).
fn optional_references_as_kubernetes_writes_them(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let reference = match map.get("anyOf") {
                Some(Value::Array(options)) if options.len() == 2 => {
                    let is_null = |v: &Value| v.get("enum") == Some(&json!([null]));
                    match (&options[0], &options[1]) {
                        (r, n) if r.get("$ref").is_some() && is_null(n) => Some(r.clone()),
                        _ => None,
                    }
                }
                _ => None,
            };
            if let Some(reference) = reference {
                map.remove("anyOf");
                map.insert("allOf".into(), json!([reference]));
            }
            map.values_mut()
                .for_each(optional_references_as_kubernetes_writes_them);
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(optional_references_as_kubernetes_writes_them),
        _ => {}
    }
}

/// The group versions of the built-in kinds (`v1`, `apps/v1`, …), each once.
pub fn built_in_group_versions() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for kind in Kind::ALL {
        let gv = kind.info().api_version;
        if !out.contains(&gv) {
            out.push(gv);
        }
    }
    out
}

/// The document of the built-in kinds served at `api_version`; `None` when none is.
pub fn built_in_document(api_version: &str) -> Option<Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut kinds = Vec::new();
    for kind in Kind::ALL
        .iter()
        .filter(|k| k.info().api_version == api_version)
    {
        let Some(reference) = schema_of(*kind, &mut generator) else {
            continue;
        };
        let Some(name) = reference["$ref"]
            .as_str()
            .and_then(|r| r.rsplit('/').next())
        else {
            continue;
        };
        let info = kind.info();
        kinds.push(DocumentedKind {
            group: info.group().to_string(),
            version: api_version
                .rsplit('/')
                .next()
                .unwrap_or(api_version)
                .to_string(),
            kind: kind.as_str().to_string(),
            plural: info.plural.to_string(),
            namespaced: info.namespaced,
            schema: name.to_string(),
        });
    }
    if kinds.is_empty() {
        return None;
    }
    let schemas = generator.take_definitions(true);
    Some(document(&kinds, schemas))
}

/// An OpenAPI v3 document as Swagger 2.0 (`/openapi/v2`, for clients that read only it):
/// the same paths and schemas, references moved to `#/definitions/`.
pub fn as_swagger(documents: &[Value]) -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for doc in documents {
        if let Some(p) = doc["paths"].as_object() {
            paths.extend(p.iter().map(|(k, v)| (k.clone(), swagger_operation(v))));
        }
        if let Some(s) = doc["components"]["schemas"].as_object() {
            definitions.extend(s.iter().map(|(k, v)| (k.clone(), swagger_schema(v))));
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "keel", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "definitions": definitions,
    })
}

/// A path item with v2's parameter form (`type` beside `in`, not under `schema`).
fn swagger_operation(item: &Value) -> Value {
    let mut item = swagger_schema(item);
    fn flatten(parameters: &mut Value) {
        for p in parameters.as_array_mut().into_iter().flatten() {
            if let Some(schema) = p.as_object_mut().and_then(|o| o.remove("schema"))
                && let (Some(p), Some(schema)) = (p.as_object_mut(), schema.as_object())
            {
                p.extend(schema.clone());
            }
        }
    }
    flatten(&mut item["parameters"]);
    for op in ["get", "patch"] {
        flatten(&mut item[op]["parameters"]);
        if let Some(answer) = item[op]["responses"]["200"].as_object_mut()
            && let Some(content) = answer.remove("content")
        {
            answer.insert(
                "schema".into(),
                content["application/json"]["schema"].clone(),
            );
        }
    }
    item
}

/// A schema with v2's references, and without v3's `nullable`.
fn swagger_schema(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "nullable")
                .map(|(k, v)| match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => (
                        k.clone(),
                        json!(r.replace("#/components/schemas/", "#/definitions/")),
                    ),
                    _ => (k.clone(), swagger_schema(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(swagger_schema).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::{as_swagger, built_in_document, built_in_group_versions};

    #[test]
    fn every_built_in_kind_is_documented_with_its_gvk_and_patch() {
        for gv in built_in_group_versions() {
            let doc = built_in_document(gv).unwrap();
            let schemas = doc["components"]["schemas"].as_object().unwrap();
            let marked = schemas
                .values()
                .filter(|s| s.get("x-kubernetes-group-version-kind").is_some())
                .count();
            let paths = doc["paths"].as_object().unwrap();
            assert_eq!(marked, paths.len(), "{gv}: one schema per kind");
            for (path, item) in paths {
                assert!(
                    item["patch"]["parameters"][0]["name"] == "fieldValidation",
                    "{path}"
                );
            }
        }
        let apps = built_in_document("apps/v1").unwrap();
        let deployment = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        assert_eq!(
            deployment["get"]["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(built_in_document("nothing/v9").is_none());
    }

    #[test]
    fn swagger_references_point_at_definitions() {
        let core = built_in_document("v1").unwrap();
        let text = as_swagger(&[core]).to_string();
        assert!(!text.contains("#/components/schemas/"));
        assert!(text.contains("#/definitions/"));
        assert!(!text.contains("\"nullable\""));
    }

    #[test]
    fn optional_object_fields_are_references_kubectl_explain_follows() {
        let apps = built_in_document("apps/v1").unwrap();
        let strategy = &apps["components"]["schemas"]["DeploymentStrategy"]["properties"];
        assert_eq!(
            strategy["rollingUpdate"]["allOf"][0]["$ref"],
            "#/components/schemas/RollingUpdate"
        );
        assert!(!apps.to_string().contains("\"anyOf\":[{\"$ref\""));
    }
}
