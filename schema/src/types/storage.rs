//! `v1` storage: PersistentVolumeClaim (declared) and PersistentVolume (made by keel's
//! node-local provisioner, StorageClass `local-path`).

use std::collections::BTreeMap;

use super::meta::{ObjectMeta, ObjectReference};
use super::pod::ResourceRequirements;
use crate::quantity::Quantity;
use crate::selector::LabelSelector;

/// The one StorageClass keel provides: a directory on the node where the claim's first pod
/// lands (as k3s' default).
pub const LOCAL_PATH: &str = "local-path";
/// The CSI driver name keel's PersistentVolumes carry; the volume handle names the
/// directory under the agent's data dir.
pub const LOCAL_PATH_DRIVER: &str = "local-path.keel.dev";

model! {
    pub struct PersistentVolumeClaim {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: PersistentVolumeClaimSpec,
        pub status: Option<PersistentVolumeClaimStatus>,
    }
}

model! {
    pub struct PersistentVolumeClaimSpec {
        /// `ReadWriteOnce`, `ReadOnlyMany`, `ReadWriteMany`, `ReadWriteOncePod`.
        pub access_modes: Option<Vec<String>>,
        /// `requests.storage`: the size asked for.
        pub resources: Option<ResourceRequirements>,
        /// `local-path` (the default) is the only class keel provides.
        pub storage_class_name: Option<String>,
        /// `Filesystem` (default); keel has no block volumes.
        #[schemars(extend("enum" = ["Filesystem", "Block", null]))]
        pub volume_mode: Option<String>,
        /// The PersistentVolume it is bound to (set by keel's provisioner).
        pub volume_name: Option<String>,
        pub selector: Option<LabelSelector>,
    }
}

model! {
    pub struct PersistentVolumeClaimStatus {
        /// `Pending` or `Bound` (or `Lost`).
        pub phase: Option<String>,
        pub access_modes: Option<Vec<String>>,
        pub capacity: Option<BTreeMap<String, Quantity>>,
    }
}

model! {
    /// One entry of a StatefulSet's `volumeClaimTemplates`: a PersistentVolumeClaim each pod
    /// gets, named TEMPLATE-SET-ORDINAL.
    pub struct PersistentVolumeClaimTemplate {
        #[serde(default)]
        pub api_version: Option<String>,
        pub kind: Option<String>,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: PersistentVolumeClaimSpec,
    }
}

model! {
    pub struct PersistentVolume {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
        #[serde(default)]
        pub spec: PersistentVolumeSpec,
        pub status: Option<PersistentVolumeStatus>,
    }
}

model! {
    pub struct PersistentVolumeSpec {
        pub capacity: Option<BTreeMap<String, Quantity>>,
        pub access_modes: Option<Vec<String>>,
        /// `Delete` (the class's default) or `Retain`.
        pub persistent_volume_reclaim_policy: Option<String>,
        pub storage_class_name: Option<String>,
        pub volume_mode: Option<String>,
        /// The claim it is bound to.
        pub claim_ref: Option<ObjectReference>,
        /// The node holding the data: pods using it run there.
        pub node_affinity: Option<VolumeNodeAffinity>,
        pub csi: Option<CsiVolumeSource>,
    }
}

model! {
    pub struct CsiVolumeSource {
        #[serde(default)]
        pub driver: String,
        #[serde(default)]
        pub volume_handle: String,
    }
}

model! {
    pub struct VolumeNodeAffinity {
        pub required: Option<NodeSelector>,
    }
}

model! {
    pub struct NodeSelector {
        #[serde(default)]
        pub node_selector_terms: Vec<NodeSelectorTerm>,
    }
}

model! {
    pub struct NodeSelectorTerm {
        /// All must hold (a term with none matches no node).
        pub match_expressions: Option<Vec<NodeSelectorRequirement>>,
        /// On node fields: only `metadata.name`.
        pub match_fields: Option<Vec<NodeSelectorRequirement>>,
    }
}

model! {
    pub struct NodeSelectorRequirement {
        #[serde(default)]
        pub key: String,
        /// `In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`.
        #[serde(default)]
        pub operator: String,
        pub values: Option<Vec<String>>,
    }
}

model! {
    pub struct PersistentVolumeStatus {
        /// `Available`, `Bound`, `Released` or `Failed`.
        pub phase: Option<String>,
        pub message: Option<String>,
    }
}

impl PersistentVolume {
    /// The node a local volume lives on (`kubernetes.io/hostname In [NODE]`).
    pub fn node(&self) -> Option<&str> {
        let terms = &self
            .spec
            .node_affinity
            .as_ref()?
            .required
            .as_ref()?
            .node_selector_terms;
        terms
            .iter()
            .flat_map(|t| t.match_expressions.iter().flatten())
            .find_map(|e| {
                (e.key == "kubernetes.io/hostname" && e.operator == "In")
                    .then(|| e.values.as_ref()?.first().map(String::as_str))
                    .flatten()
            })
    }

    /// The directory name of a volume of keel's local-path provisioner.
    pub fn local_handle(&self) -> Option<&str> {
        let csi = self.spec.csi.as_ref()?;
        (csi.driver == LOCAL_PATH_DRIVER).then_some(csi.volume_handle.as_str())
    }
}
