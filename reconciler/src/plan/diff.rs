//! Semantic differences between two sets of objects.

use std::collections::BTreeMap;

use keel_schema::Object;

use serde_json::Value;

/// What a change does: create, update or delete (the API's plan rows carry it).
pub use keel_api::plan::Action;

/// One object that differs.
#[derive(Debug, Clone)]
pub struct Change {
    pub action: Action,
    pub old: Option<Object>,
    pub new: Option<Object>,
}

impl Change {
    /// The object this change is about (the new one, or the deleted one).
    pub fn object(&self) -> &Object {
        self.new
            .as_ref()
            .or(self.old.as_ref())
            .unwrap_or_else(|| unreachable!("a change has a side"))
    }
}

/// Identity within a revision: API group, kind, namespace, name.
fn identity(o: &Object) -> (&'static str, &'static str, String, String) {
    let info = o.info();
    (
        info.group(),
        info.kind.as_str(),
        o.namespace().to_string(),
        o.name().to_string(),
    )
}

/// An object as compared: everything the repository decides, nothing the cluster sets.
pub fn comparable(o: &Object) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        map.remove("status");
        // A claim's volume is bound by the cluster.
        if o.kind() == keel_schema::Kind::PersistentVolumeClaim
            && let Some(Value::Object(spec)) = map.get_mut("spec")
        {
            spec.remove("volumeName");
        }
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            for field in [
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "deletionTimestamp",
                "ownerReferences",
            ] {
                meta.remove(field);
            }
        }
    }
    v
}

/// Creates, updates and deletes that turn `old` into `new`, ordered by kind (as in
/// [`keel_schema::KINDS`]), namespace and name. Unchanged objects are left out.
pub fn diff(old: &[Object], new: &[Object]) -> Vec<Change> {
    let before: BTreeMap<_, &Object> = old.iter().map(|o| (identity(o), o)).collect();
    let after: BTreeMap<_, &Object> = new.iter().map(|o| (identity(o), o)).collect();
    let mut changes = Vec::new();
    for (id, n) in &after {
        match before.get(id) {
            None => changes.push(Change {
                action: Action::Create,
                old: None,
                new: Some((*n).clone()),
            }),
            Some(o) if comparable(o) != comparable(n) => changes.push(Change {
                action: Action::Update,
                old: Some((*o).clone()),
                new: Some((*n).clone()),
            }),
            Some(_) => {}
        }
    }
    for (id, o) in &before {
        if !after.contains_key(id) {
            changes.push(Change {
                action: Action::Delete,
                old: Some((*o).clone()),
                new: None,
            });
        }
    }
    let order = |c: &Change| {
        let o = c.object();
        (
            o.kind().rank(),
            o.namespace().to_string(),
            o.name().to_string(),
        )
    };
    changes.sort_by_key(order);
    changes
}
