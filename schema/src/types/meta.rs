//! `metadata` and the pieces every object shares.

use crate::string_map::StringMap;

use chrono::{DateTime, Utc};

/// RFC 3339 timestamps, second precision, as Kubernetes writes them.
pub type Time = DateTime<Utc>;

model! {
    pub struct ObjectMeta {
        pub name: Option<String>,
        /// Accepted beside `name` (which wins, as in Kubernetes); alone it is an error, since
        /// a name made up at each apply would make a new object at each sync.
        pub generate_name: Option<String>,
        pub namespace: Option<String>,
        pub labels: Option<StringMap>,
        pub annotations: Option<StringMap>,
        /// Set by the cluster.
        pub uid: Option<String>,
        /// Set by the cluster: the store revision of the last write (optimistic concurrency).
        pub resource_version: Option<String>,
        /// Set by the cluster: bumped on every change to `spec`.
        pub generation: Option<i64>,
        /// Set by the cluster for derived objects (the ReplicaSet of a Deployment, say).
        pub owner_references: Option<Vec<OwnerReference>>,
        /// Set by the cluster.
        pub creation_timestamp: Option<Time>,
        /// Set by the cluster when the object is being deleted.
        pub deletion_timestamp: Option<Time>,
    }
}

impl ObjectMeta {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// The same metadata but for the resource version (which every write changes).
    pub fn same_but_version(&self, other: &ObjectMeta) -> bool {
        let mut meta = self.clone();
        meta.resource_version.clone_from(&other.resource_version);
        meta == *other
    }

    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }

    pub fn labels(&self) -> &StringMap {
        static EMPTY: StringMap = StringMap::new();
        self.labels.as_ref().unwrap_or(&EMPTY)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

model! {
    pub struct OwnerReference {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub uid: String,
        pub controller: Option<bool>,
        pub block_owner_deletion: Option<bool>,
    }
}

model! {
    /// A reference to an object, as in an Event or an Endpoints address.
    pub struct ObjectReference {
        pub api_version: Option<String>,
        pub kind: Option<String>,
        pub namespace: Option<String>,
        pub name: Option<String>,
        pub uid: Option<String>,
        pub resource_version: Option<String>,
        pub field_path: Option<String>,
    }
}

model! {
    /// A status condition (`Ready`, `Progressing`, `PodScheduled`, …).
    pub struct Condition {
        #[serde(rename = "type", default)]
        pub type_: String,
        /// `True`, `False` or `Unknown`.
        #[serde(default)]
        pub status: String,
        pub last_transition_time: Option<Time>,
        pub last_heartbeat_time: Option<Time>,
        pub last_update_time: Option<Time>,
        pub last_probe_time: Option<Time>,
        pub reason: Option<String>,
        pub message: Option<String>,
    }
}
