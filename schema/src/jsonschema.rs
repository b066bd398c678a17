//! A JSON Schema (draft-07) for keel manifests, for editors: point yaml-language-server at the
//! output of `keel schema` and it completes and checks fields as you type.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Value, json};

use crate::kinds::Kind;
use crate::repo_config::RepoConfig;
use crate::types::apps::{DaemonSet, Deployment, ReplicaSet};
use crate::types::batch::Job;
use crate::types::core::{ConfigMap, Namespace, ReplicationController, Secret, Service};
use crate::types::pod::Pod;

fn kind_schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Option<Value> {
    Some(generator.subschema_for::<T>().to_value())
}

/// The schema of a kind git may declare; `None` for kinds the cluster keeps.
fn declared_schema(kind: Kind, generator: &mut SchemaGenerator) -> Option<Value> {
    if kind.info().live_only {
        return None;
    }
    schema_of(kind, generator)
}

/// The schema of any built-in kind (a reference into `generator`'s definitions); `None`
/// for a custom kind, whose schema is its definition's.
pub fn schema_of(kind: Kind, generator: &mut SchemaGenerator) -> Option<Value> {
    use crate::types::{apiextensions, apps, core, networking, policy, rbac, storage};
    match kind {
        Kind::Pod => kind_schema::<Pod>(generator),
        Kind::Service => kind_schema::<Service>(generator),
        Kind::ReplicationController => kind_schema::<ReplicationController>(generator),
        Kind::ConfigMap => kind_schema::<ConfigMap>(generator),
        Kind::Secret => kind_schema::<Secret>(generator),
        Kind::Namespace => kind_schema::<Namespace>(generator),
        Kind::Deployment => kind_schema::<Deployment>(generator),
        Kind::ReplicaSet => kind_schema::<ReplicaSet>(generator),
        Kind::DaemonSet => kind_schema::<DaemonSet>(generator),
        Kind::LimitRange => kind_schema::<policy::LimitRange>(generator),
        Kind::ResourceQuota => kind_schema::<policy::ResourceQuota>(generator),
        Kind::NetworkPolicy => kind_schema::<policy::NetworkPolicy>(generator),
        Kind::PodDisruptionBudget => kind_schema::<policy::PodDisruptionBudget>(generator),
        Kind::HorizontalPodAutoscaler => {
            kind_schema::<crate::types::autoscaling::HorizontalPodAutoscaler>(generator)
        }
        Kind::PersistentVolumeClaim => kind_schema::<storage::PersistentVolumeClaim>(generator),
        Kind::PersistentVolume => kind_schema::<storage::PersistentVolume>(generator),
        Kind::StatefulSet => kind_schema::<apps::StatefulSet>(generator),
        Kind::ControllerRevision => kind_schema::<apps::ControllerRevision>(generator),
        Kind::Job => kind_schema::<Job>(generator),
        Kind::CronJob => kind_schema::<crate::types::batch::CronJob>(generator),
        Kind::Ingress => kind_schema::<networking::Ingress>(generator),
        Kind::IngressClass => kind_schema::<networking::IngressClass>(generator),
        Kind::ServiceAccount => kind_schema::<core::ServiceAccount>(generator),
        Kind::Node => kind_schema::<core::Node>(generator),
        Kind::Endpoints => kind_schema::<core::Endpoints>(generator),
        Kind::Event => kind_schema::<core::Event>(generator),
        Kind::Role => kind_schema::<rbac::Role>(generator),
        Kind::ClusterRole => kind_schema::<rbac::ClusterRole>(generator),
        Kind::RoleBinding => kind_schema::<rbac::RoleBinding>(generator),
        Kind::ClusterRoleBinding => kind_schema::<rbac::ClusterRoleBinding>(generator),
        Kind::CustomResourceDefinition => {
            kind_schema::<apiextensions::CustomResourceDefinition>(generator)
        }
        Kind::Custom(_) => None,
    }
}

/// The schema of one manifest document: any supported kind, chosen by `kind`, with
/// `apiVersion` pinned to where the kind is served.
pub fn manifest_schema() -> Value {
    let mut generator = SchemaSettings::draft07().into_generator();
    let mut declarable = Vec::new();
    let mut branches = Vec::new();
    for kind in Kind::ALL {
        let Some(reference) = declared_schema(*kind, &mut generator) else {
            continue;
        };
        declarable.push(kind);
        let info = kind.info();
        branches.push(json!({
            "if": {"properties": {"kind": {"const": kind.as_str()}}, "required": ["kind"]},
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
    let mut kinds: Vec<&str> = declarable.iter().map(|k| k.as_str()).collect();
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
