//! `keel get` columns of PersistentVolumeClaims and PersistentVolumes, as kubectl shows them.

use keel_schema::types::storage::{PersistentVolume, PersistentVolumeClaim};

use super::{Columns, age, name, or_none};

/// `RWO,RWX` from access modes, as kubectl abbreviates them.
fn modes(list: Option<&Vec<String>>) -> String {
    let short = |m: &str| match m {
        "ReadWriteOnce" => "RWO".to_string(),
        "ReadOnlyMany" => "ROX".to_string(),
        "ReadWriteMany" => "RWX".to_string(),
        "ReadWriteOncePod" => "RWOP".to_string(),
        other => other.to_string(),
    };
    list.into_iter()
        .flatten()
        .map(|m| short(m))
        .collect::<Vec<_>>()
        .join(",")
}

fn storage(
    map: Option<&std::collections::BTreeMap<String, keel_schema::quantity::Quantity>>,
) -> String {
    map.and_then(|m| m.get("storage"))
        .map(|q| q.as_str().to_string())
        .unwrap_or_default()
}

pub(super) const CLAIM: Columns<PersistentVolumeClaim> = Columns {
    normal: &[
        ("NAME", |c, _| name(&c.metadata)),
        ("STATUS", |c, _| {
            c.status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Pending".into())
        }),
        ("VOLUME", |c, _| {
            c.spec.volume_name.clone().unwrap_or_default()
        }),
        ("CAPACITY", |c, _| {
            storage(c.status.as_ref().and_then(|s| s.capacity.as_ref()))
        }),
        ("ACCESS MODES", |c, _| {
            modes(c.status.as_ref().and_then(|s| s.access_modes.as_ref()))
        }),
        ("STORAGECLASS", |c, _| {
            or_none(c.spec.storage_class_name.clone().unwrap_or_default())
        }),
        ("AGE", |c, now| age(&c.metadata, now)),
    ],
    wide: &[],
};

pub(super) const VOLUME: Columns<PersistentVolume> = Columns {
    normal: &[
        ("NAME", |v, _| name(&v.metadata)),
        ("CAPACITY", |v, _| storage(v.spec.capacity.as_ref())),
        ("ACCESS MODES", |v, _| modes(v.spec.access_modes.as_ref())),
        ("RECLAIM POLICY", |v, _| {
            v.spec
                .persistent_volume_reclaim_policy
                .clone()
                .unwrap_or_default()
        }),
        ("STATUS", |v, _| {
            if v.metadata.deletion_timestamp.is_some() {
                return "Terminating".to_string();
            }
            v.status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default()
        }),
        ("CLAIM", |v, _| {
            or_none(
                v.spec
                    .claim_ref
                    .as_ref()
                    .map(|r| {
                        format!(
                            "{}/{}",
                            r.namespace.as_deref().unwrap_or(""),
                            r.name.as_deref().unwrap_or("")
                        )
                    })
                    .unwrap_or_default(),
            )
        }),
        ("STORAGECLASS", |v, _| {
            or_none(v.spec.storage_class_name.clone().unwrap_or_default())
        }),
        ("NODE", |v, _| {
            or_none(v.node().unwrap_or_default().to_string())
        }),
        ("AGE", |v, now| age(&v.metadata, now)),
    ],
    wide: &[],
};
