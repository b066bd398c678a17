//! A JSON Schema (draft-07) for keel manifests, for editors: point yaml-language-server at the
//! output of `keel schema` and it completes and checks fields as you type.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Value, json};

use crate::object::{KINDS, KindInfo};
use crate::repo_config::RepoConfig;
use crate::types::apps::{DaemonSet, Deployment, ReplicaSet};
use crate::types::batch::Job;
use crate::types::core::{ConfigMap, Namespace, ReplicationController, Secret, Service};
use crate::types::pod::Pod;

fn kind_schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

/// The schema of one manifest document: any supported kind, chosen by `kind`, with
/// `apiVersion` pinned to where the kind is served.
pub fn manifest_schema() -> Value {
    let mut generator = SchemaSettings::draft07().into_generator();
    let declarable: Vec<&KindInfo> = KINDS.iter().filter(|k| !k.live_only).collect();
    let mut branches = Vec::new();
    for info in &declarable {
        let reference = match info.kind {
            "Pod" => kind_schema::<Pod>(&mut generator),
            "Service" => kind_schema::<Service>(&mut generator),
            "ReplicationController" => kind_schema::<ReplicationController>(&mut generator),
            "ConfigMap" => kind_schema::<ConfigMap>(&mut generator),
            "Secret" => kind_schema::<Secret>(&mut generator),
            "Namespace" => kind_schema::<Namespace>(&mut generator),
            "Deployment" => kind_schema::<Deployment>(&mut generator),
            "ReplicaSet" => kind_schema::<ReplicaSet>(&mut generator),
            "DaemonSet" => kind_schema::<DaemonSet>(&mut generator),
            _ => kind_schema::<Job>(&mut generator),
        };
        branches.push(json!({
            "if": {"properties": {"kind": {"const": info.kind}}, "required": ["kind"]},
            "then": {
                "allOf": [
                    reference,
                    {
                        "properties": {"apiVersion": {"const": info.api_version}},
                        "required": ["metadata"]
                    }
                ]
            }
        }));
    }
    // `kind: List` holds manifests of any kind under `items`.
    branches.push(json!({
        "if": {"properties": {"kind": {"const": "List"}}, "required": ["kind"]},
        "then": {
            "properties": {
                "apiVersion": {"const": "v1"},
                "kind": {"const": "List"},
                "metadata": {"type": "object"},
                "items": {"type": "array", "items": {"$ref": "#"}}
            },
            "additionalProperties": false
        }
    }));
    let definitions = generator.take_definitions(true);
    let mut kinds: Vec<&str> = declarable.iter().map(|k| k.kind).collect();
    kinds.push("List");
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://keel.dev/schema/manifest.json",
        "title": "keel manifest",
        "description": "A Kubernetes-style object keel can apply from git.",
        "type": "object",
        "required": ["apiVersion", "kind"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"enum": kinds}
        },
        "allOf": branches,
        "definitions": definitions,
    })
}

/// The schema of `keel.yaml`.
pub fn repo_config_schema() -> Value {
    let generator = SchemaSettings::draft07().into_generator();
    generator.into_root_schema_for::<RepoConfig>().to_value()
}
