//! The object model: Kubernetes field names, layout and defaults for keel's subset.

/// Declares a model struct with the derives and serde settings every API type shares:
/// camelCase names, absent options left out when serialized, and unknown fields rejected
/// (by [`crate::decode`] when reading manifests, and in the exported JSON Schema).
macro_rules! model {
    ($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        #[serde_with::skip_serializing_none]
        #[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "camelCase")]
        #[schemars(deny_unknown_fields)]
        $(#[$meta])*
        pub struct $name { $($body)* }
    };
}

pub mod apiextensions;
pub mod apps;
pub mod autoscaling;
pub mod batch;
pub mod core;
pub mod custom;
pub mod meta;
pub mod networking;
pub mod pod;
pub mod policy;
pub mod rbac;
pub mod scheduling;
pub mod storage;
