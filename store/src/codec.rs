//! What both engines do the same way: the stored form of an object, and the fields the store
//! itself sets (uid, creation time, generation, resourceVersion).

use chrono::Utc;
use keel_schema::{Kind, Object};
use serde_json::Value;

use super::encryption::SecretCipher;
use super::{ObjectKey, Result, StoreError, Stored};

/// The bytes stored for an object: its JSON, without `resourceVersion` (the engine's own
/// revision is the truth and is filled in on read).
/// With a cipher, Secrets are stored encrypted (see [`super::encryption`]).
pub fn encode(object: &mut Object, cipher: Option<&SecretCipher>) -> Result<Vec<u8>> {
    // The revision is the store's, not part of the stored JSON: taken out while encoding
    // and put back, rather than encoding a copy (a pod's deep copy on every update was a
    // few KiB allocated and freed per write, on the committer's thread).
    let version = object.meta_mut().resource_version.take();
    let json = serde_json::to_vec(&*object);
    object.meta_mut().resource_version = version;
    let json = json.map_err(|e| {
        // This object's fault, not the engine's: it fails only its own write.
        StoreError::Invalid(format!("cannot encode {}: {e}", ObjectKey::of(object)))
    })?;
    match cipher {
        Some(c) if matches!(object, Object::Secret(_)) => {
            c.seal(&ObjectKey::of(object).path(), &json)
        }
        _ => Ok(json),
    }
}

/// Reads a stored object. `key` is where it was found (its path ends in
/// `kind/namespace/name`, which names the type to parse as).
pub fn decode(
    key: &str,
    bytes: &[u8],
    revision: u64,
    cipher: Option<&SecretCipher>,
) -> Result<Stored> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_string(),
        reason,
    };
    let object_key =
        key_of(key).ok_or_else(|| corrupt("key names no object of a known kind".into()))?;
    let opened;
    let bytes = if super::encryption::is_sealed(bytes) {
        // Sealed at the object's path: the key ends in it (engines prefix their own).
        opened = super::encryption::open(cipher, &object_key.path(), bytes)?;
        opened.as_slice()
    } else {
        bytes
    };
    // Refitted: the store keeps what it decodes (its cache, watch events), a restart
    // decodes every object at once, and serde leaves vectors room to grow.
    let mut object = keel_schema::fit::fitted(
        Object::from_json_slice(object_key.kind, bytes).map_err(|e| corrupt(e.to_string()))?,
    );
    object.meta_mut().resource_version = Some(revision.to_string());
    Ok(Stored {
        object,
        resource_version: revision,
    })
}

/// The object a store key ending `kind/namespace/name` names.
fn key_of(key: &str) -> Option<ObjectKey> {
    let mut parts = key.rsplitn(4, '/');
    let (name, namespace, kind) = (parts.next()?, parts.next()?, parts.next()?);
    Some(ObjectKey::new(
        Kind::from_key_segment(kind)?,
        namespace,
        name,
    ))
}

/// Rejects objects the store cannot key.
pub fn check_key(object: &Object) -> Result<ObjectKey> {
    let key = ObjectKey::of(object);
    if key.name.is_empty() {
        return Err(StoreError::Invalid(format!(
            "{} has no name",
            object.kind()
        )));
    }
    if object.info().namespaced && key.namespace.is_empty() {
        return Err(StoreError::Invalid(format!("{key} has no namespace")));
    }
    if key.name.contains('/') || key.namespace.contains('/') {
        return Err(StoreError::Invalid(format!(
            "{key}: names may not contain '/'"
        )));
    }
    Ok(key)
}

/// A new object: fresh uid (unless the caller chose one), creation time, generation 1.
pub fn prepare_create(mut object: Object) -> Result<Object> {
    check_key(&object)?;
    object.set_type_meta();
    let meta = object.meta_mut();
    if meta.uid.as_deref().is_none_or(str::is_empty) {
        meta.uid = Some(uuid::Uuid::new_v4().to_string());
    }
    if meta.creation_timestamp.is_none() {
        meta.creation_timestamp = Some(Utc::now());
    }
    meta.generation = Some(1);
    meta.resource_version = None;
    Ok(object)
}

/// An update: identity (uid, creation time) kept from the stored object; the generation
/// bumped when anything outside metadata and status changed, as Kubernetes does.
pub fn prepare_update(old: &Object, mut object: Object) -> Result<Object> {
    check_key(&object)?;
    object.set_type_meta();
    let old_meta = old.meta();
    let generation = old_meta.generation.unwrap_or(1);
    let changed = match (old, &object) {
        // Most writes are pods' binds and status reports: a pod's body is its spec, and
        // comparing it typed spares two conversions to JSON per write.
        (Object::Pod(a), Object::Pod(b)) => a.spec != b.spec,
        _ => spec_of(old) != spec_of(&object),
    };
    object.keep_status_from(old);
    let meta = object.meta_mut();
    meta.uid = old_meta.uid.clone();
    meta.creation_timestamp = old_meta.creation_timestamp;
    if meta.owner_references.is_none() {
        meta.owner_references.clone_from(&old_meta.owner_references);
    }
    meta.generation = Some(if changed { generation + 1 } else { generation });
    meta.resource_version = None;
    Ok(object)
}

/// Everything but metadata and status.
fn spec_of(object: &Object) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("metadata");
        map.remove("status");
    }
    value
}

/// What one op writes once its precondition holds against the current object.
pub enum Prepared {
    Put(Box<Object>, super::WatchEventType),
    Delete,
}

/// Checks `op`'s precondition against `old` (the object as stored now, if any) and prepares
/// what to write: both engines decide conflicts the same way. Takes the op: the object it
/// carries becomes the one written, not a copy of it.
pub fn prepare_op(op: super::BatchOp, old: Option<&Stored>) -> Result<Prepared> {
    use super::{BatchOp, WatchEventType};
    match (op, old) {
        (op @ BatchOp::Create(_), Some(_)) => Err(StoreError::AlreadyExists(op.key())),
        (BatchOp::Create(object), None) => Ok(Prepared::Put(
            Box::new(prepare_create(object)?),
            WatchEventType::Added,
        )),
        (op @ (BatchOp::Update { .. } | BatchOp::Delete { .. }), None) => {
            Err(StoreError::NotFound(op.key()))
        }
        (BatchOp::Update { object, expected }, Some(old)) => {
            at_expected(old, expected, || ObjectKey::of(&object))?;
            Ok(Prepared::Put(
                Box::new(prepare_update(&old.object, object)?),
                WatchEventType::Modified,
            ))
        }
        (BatchOp::Delete { key, expected }, Some(old)) => {
            if let Some(expected) = expected {
                at_expected(old, expected, || key.clone())?;
            }
            Ok(Prepared::Delete)
        }
    }
}

/// An op's precondition: the object is still at the revision the writer read.
fn at_expected(old: &Stored, expected: u64, key: impl FnOnce() -> ObjectKey) -> Result<()> {
    if old.resource_version == expected {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            key: key(),
            expected,
            actual: old.resource_version,
        })
    }
}

/// A batch names each object once: "create then delete" in one unit has no single meaning.
pub fn check_distinct(batch: &super::Batch) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for op in &batch.ops {
        let key = op.key();
        if !seen.insert(key.clone()) {
            return Err(StoreError::Invalid(format!(
                "{key} appears twice in one batch"
            )));
        }
    }
    Ok(())
}

/// Shared by both engines' watchers: does a change of `key` concern a watch on `kind`?
pub fn kind_matches(filter: Option<Kind>, key: &ObjectKey) -> bool {
    filter.is_none_or(|k| k == key.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_json_has_no_resource_version_and_the_object_keeps_its_own() {
        let mut object = Object::from_json_slice(
            Kind::ConfigMap,
            br#"{"apiVersion":"v1","kind":"ConfigMap",
                 "metadata":{"name":"c","namespace":"default","resourceVersion":"7"},
                 "data":{"k":"v"}}"#,
        )
        .expect("a ConfigMap");
        let json = encode(&mut object, None).expect("encodes");
        let stored: Value = serde_json::from_slice(&json).expect("JSON");
        assert_eq!(stored["metadata"]["resourceVersion"], Value::Null);
        assert_eq!(stored["data"]["k"], "v");
        assert_eq!(object.meta().resource_version.as_deref(), Some("7"));
        let path = ObjectKey::of(&object).path();
        let read = decode(&path, &json, 9, None).expect("decodes");
        assert_eq!(read.object.meta().resource_version.as_deref(), Some("9"));
    }
}
