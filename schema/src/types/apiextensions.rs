//! `apiextensions.k8s.io/v1` CustomResourceDefinition: a kind declared by its group, names,
//! scope and versions, each version with the OpenAPI v3 schema its objects follow.

use std::collections::BTreeMap;

use super::meta::{Condition, ObjectMeta};

model! {
    pub struct CustomResourceDefinition {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: CustomResourceDefinitionSpec,
        pub status: Option<CustomResourceDefinitionStatus>,
    }
}

model! {
    pub struct CustomResourceDefinitionSpec {
        /// The API group (`stable.example.com`); the object is named `PLURAL.GROUP`.
        #[serde(default)]
        pub group: String,
        #[serde(default)]
        pub names: CustomResourceDefinitionNames,
        /// `Namespaced` or `Cluster`.
        #[serde(default)]
        pub scope: String,
        #[serde(default)]
        pub versions: Vec<CustomResourceDefinitionVersion>,
        /// How objects move between versions: only `None` (the default) here.
        pub conversion: Option<CustomResourceConversion>,
        /// Must be false in apiextensions.k8s.io/v1 (unknown fields are not kept).
        pub preserve_unknown_fields: Option<bool>,
    }
}

model! {
    pub struct CustomResourceDefinitionNames {
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub plural: String,
        pub singular: Option<String>,
        pub short_names: Option<Vec<String>>,
        pub list_kind: Option<String>,
        pub categories: Option<Vec<String>>,
    }
}

model! {
    pub struct CustomResourceDefinitionVersion {
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub served: bool,
        /// Exactly one version is the one objects are stored in.
        #[serde(default)]
        pub storage: bool,
        pub deprecated: Option<bool>,
        pub deprecation_warning: Option<String>,
        pub schema: Option<CustomResourceValidation>,
        pub subresources: Option<CustomResourceSubresources>,
        pub additional_printer_columns: Option<Vec<CustomResourceColumnDefinition>>,
        pub selectable_fields: Option<Vec<SelectableField>>,
    }
}

model! {
    pub struct CustomResourceValidation {
        #[serde(rename = "openAPIV3Schema")]
        pub open_api_v3_schema: Option<JsonSchemaProps>,
    }
}

model! {
    pub struct CustomResourceSubresources {
        /// `{}`: status is written apart from the rest (a write from git keeps it).
        pub status: Option<BTreeMap<String, serde_json::Value>>,
        pub scale: Option<CustomResourceSubresourceScale>,
    }
}

model! {
    pub struct CustomResourceSubresourceScale {
        #[serde(default)]
        pub spec_replicas_path: String,
        #[serde(default)]
        pub status_replicas_path: String,
        pub label_selector_path: Option<String>,
    }
}

model! {
    pub struct CustomResourceColumnDefinition {
        #[serde(default)]
        pub name: String,
        #[serde(rename = "type", default)]
        pub type_: String,
        pub format: Option<String>,
        pub description: Option<String>,
        pub priority: Option<i32>,
        #[serde(default)]
        pub json_path: String,
    }
}

model! {
    pub struct SelectableField {
        #[serde(default)]
        pub json_path: String,
    }
}

model! {
    pub struct CustomResourceConversion {
        /// `None` or `Webhook` (keel runs no conversion webhooks).
        #[serde(default)]
        pub strategy: String,
        pub webhook: Option<serde_json::Value>,
    }
}

model! {
    /// One node of a structural OpenAPI v3 schema, with Kubernetes' extensions.
    pub struct JsonSchemaProps {
        pub description: Option<String>,
        pub title: Option<String>,
        #[serde(rename = "type")]
        pub type_: Option<String>,
        pub format: Option<String>,
        pub default: Option<serde_json::Value>,
        pub example: Option<serde_json::Value>,
        pub nullable: Option<bool>,
        #[serde(rename = "enum")]
        pub enum_: Option<Vec<serde_json::Value>>,
        pub maximum: Option<serde_json::Value>,
        pub exclusive_maximum: Option<bool>,
        pub minimum: Option<serde_json::Value>,
        pub exclusive_minimum: Option<bool>,
        pub multiple_of: Option<serde_json::Value>,
        pub max_length: Option<i64>,
        pub min_length: Option<i64>,
        pub pattern: Option<String>,
        pub max_items: Option<i64>,
        pub min_items: Option<i64>,
        pub unique_items: Option<bool>,
        pub max_properties: Option<i64>,
        pub min_properties: Option<i64>,
        pub required: Option<Vec<String>>,
        pub items: Option<Box<JsonSchemaProps>>,
        pub properties: Option<BTreeMap<String, JsonSchemaProps>>,
        /// `false`, `true`, or the schema of every value of a map.
        pub additional_properties: Option<serde_json::Value>,
        pub all_of: Option<Vec<JsonSchemaProps>>,
        pub one_of: Option<Vec<JsonSchemaProps>>,
        pub any_of: Option<Vec<JsonSchemaProps>>,
        pub not: Option<Box<JsonSchemaProps>>,
        pub external_docs: Option<BTreeMap<String, String>>,
        #[serde(rename = "x-kubernetes-preserve-unknown-fields")]
        pub x_kubernetes_preserve_unknown_fields: Option<bool>,
        #[serde(rename = "x-kubernetes-embedded-resource")]
        pub x_kubernetes_embedded_resource: Option<bool>,
        #[serde(rename = "x-kubernetes-int-or-string")]
        pub x_kubernetes_int_or_string: Option<bool>,
        #[serde(rename = "x-kubernetes-list-map-keys")]
        pub x_kubernetes_list_map_keys: Option<Vec<String>>,
        #[serde(rename = "x-kubernetes-list-type")]
        pub x_kubernetes_list_type: Option<String>,
        #[serde(rename = "x-kubernetes-map-type")]
        pub x_kubernetes_map_type: Option<String>,
        /// CEL rules: stored, not evaluated by keel.
        #[serde(rename = "x-kubernetes-validations")]
        pub x_kubernetes_validations: Option<Vec<ValidationRule>>,
    }
}

model! {
    pub struct ValidationRule {
        #[serde(default)]
        pub rule: String,
        pub message: Option<String>,
        pub message_expression: Option<String>,
        pub reason: Option<String>,
        pub field_path: Option<String>,
        pub optional_old_self: Option<bool>,
    }
}

model! {
    pub struct CustomResourceDefinitionStatus {
        pub conditions: Option<Vec<Condition>>,
        pub accepted_names: Option<CustomResourceDefinitionNames>,
        pub stored_versions: Option<Vec<String>>,
    }
}
