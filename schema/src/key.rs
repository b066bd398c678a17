//! [`ObjectKey`]: where an object lives — its kind, namespace and name.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::kinds::{Kind, Object};

/// Where an object lives: kind, namespace (empty for cluster-scoped kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        Self {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    pub fn of(object: &Object) -> Self {
        // A custom object's scope is its definition's, which made its namespace what it is.
        let namespace = if object.info().namespaced || matches!(object, Object::Custom(_)) {
            object.namespace()
        } else {
            ""
        };
        Self::new(object.kind(), namespace, object.name())
    }

    /// `kind/namespace/name`, the key below the store's registry prefix (a custom kind's
    /// first part: [`Kind::key_segment`]).
    pub fn path(&self) -> String {
        format!(
            "{}/{}/{}",
            self.kind.key_segment(),
            self.namespace,
            self.name
        )
    }

    /// Parses [`ObjectKey::path`] back; `None` for a kind keel does not know.
    pub fn from_path(path: &str) -> Option<Self> {
        let mut parts = path.splitn(3, '/');
        let kind = Kind::from_key_segment(parts.next()?)?;
        Some(Self::new(kind, parts.next()?, parts.next()?))
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_and_unknown_kinds_are_refused() {
        let key = ObjectKey::new(Kind::Deployment, "prod", "web");
        assert_eq!(key.path(), "Deployment/prod/web");
        assert_eq!(ObjectKey::from_path(&key.path()), Some(key.clone()));
        assert_eq!(key.to_string(), "Deployment prod/web");
        assert_eq!(ObjectKey::new(Kind::Node, "", "n1").to_string(), "Node n1");
        assert_eq!(ObjectKey::from_path("Widget/prod/web"), None);
        let json = serde_json::to_value(&key).unwrap();
        assert_eq!(json["kind"], "Deployment");
        assert_eq!(serde_json::from_value::<ObjectKey>(json).unwrap(), key);
    }
}
