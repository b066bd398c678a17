//! PersistentVolumeClaims, as declared or as a StatefulSet's `volumeClaimTemplates`: what
//! keel's one StorageClass (`local-path`, node-local directories) can provide.

use super::Errors;
use crate::path::FieldPath;
use crate::types::storage::{LOCAL_PATH, PersistentVolumeClaimSpec};

const ACCESS_MODES: &[&str] = &[
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];

pub fn validate_claim_spec(spec: &PersistentVolumeClaimSpec, path: &FieldPath, errs: &mut Errors) {
    let modes = spec.access_modes.as_deref().unwrap_or_default();
    let at = path.field("accessModes");
    if modes.is_empty() {
        errs.required_because(&at, "at least 1 access mode is required");
    }
    for (i, mode) in modes.iter().enumerate() {
        errs.one_of(&at.index(i), Some(mode), ACCESS_MODES);
    }
    if modes.len() > 1 && modes.iter().any(|m| m == "ReadWriteOncePod") {
        errs.forbidden(&at, "may not use ReadWriteOncePod with other access modes");
    }
    let storage = path.field("resources").field("requests").field("storage");
    match spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
    {
        None => errs.required(&storage),
        Some(q) => match q.value() {
            Ok(v) if v > 0 => {}
            Ok(_) => errs.invalid(&storage, q.as_str(), "must be greater than zero"),
            Err(e) => errs.invalid(&storage, q.as_str(), e),
        },
    }
    if let Some(class) = spec.storage_class_name.as_deref()
        && class != LOCAL_PATH
    {
        errs.invalid(
            &path.field("storageClassName"),
            class,
            format!("keel provides StorageClass {LOCAL_PATH:?} only (directories on the node where the claim's first pod runs); omit storageClassName or set it to {LOCAL_PATH:?}"),
        );
    }
    errs.one_of(
        &path.field("volumeMode"),
        spec.volume_mode.as_deref(),
        &["Filesystem"],
    );
    if spec.volume_name.as_deref().is_some_and(|v| !v.is_empty()) {
        errs.forbidden(
            &path.field("volumeName"),
            "keel binds claims to the volumes it provisions; a volume cannot be named",
        );
    }
    if spec.selector.is_some() {
        errs.forbidden(
            &path.field("selector"),
            "keel binds claims to the volumes it provisions; volumes cannot be selected",
        );
    }
}
