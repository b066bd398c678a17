//! The shape every list endpoint answers with (`{"apiVersion", "kind": "PodList",
//! "metadata": {"resourceVersion"}, "items"}`).

use keel_schema::Object;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectList<T = Object> {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ListMeta,
    pub items: Vec<T>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta {
    /// The store revision the list was taken at (absent for keel's own lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

impl<T> ObjectList<T> {
    /// A list as Kubernetes names it: `PodList` at `v1`, or a plain `List`.
    pub fn new(
        api_version: &str,
        kind: &str,
        resource_version: Option<u64>,
        items: Vec<T>,
    ) -> Self {
        ObjectList {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            metadata: ListMeta {
                resource_version: resource_version.map(|r| r.to_string()),
            },
            items,
        }
    }
}
