//! [`CustomObject`]: an object of a kind a CustomResourceDefinition declares. Its body is
//! what its definition's schema allows, so it is kept as JSON: `apiVersion`, `kind` and
//! `metadata` are read as every object's, every other top-level field (`spec`, `status`,
//! `data`, …) is kept as written.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::meta::{Condition, ObjectMeta};
use crate::kinds::custom::CustomKind;

model! {
    /// What every object has, read from a custom object's manifest with located errors (its
    /// other fields are its definition's schema's to check).
    pub struct CustomHead {
        #[serde(default)]
        pub api_version: String,
        #[serde(default)]
        pub kind: String,
        #[serde(default)]
        pub metadata: ObjectMeta,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomObject {
    kind: CustomKind,
    pub metadata: ObjectMeta,
    fields: Map<String, Value>,
    /// `status.conditions`, read once (health and status ask for them as typed values).
    conditions: Vec<Condition>,
}

/// Why JSON is not a custom object.
#[derive(Debug, thiserror::Error)]
pub enum CustomObjectError {
    #[error("a custom object is a JSON object")]
    NotAnObject,
    #[error("a custom object's apiVersion names its group (GROUP/VERSION), found {0:?}")]
    NoGroup(String),
    #[error("invalid metadata: {0}")]
    Metadata(#[source] serde_json::Error),
}

impl CustomObject {
    /// An object of `kind` with `metadata` and the other top-level `fields` (any
    /// `apiVersion`, `kind` or `metadata` among them are dropped: they are the kind's).
    pub fn new(kind: CustomKind, metadata: ObjectMeta, mut fields: Map<String, Value>) -> Self {
        for own in ["apiVersion", "kind", "metadata"] {
            fields.remove(own);
        }
        let conditions = read_conditions(&fields);
        CustomObject {
            kind,
            metadata,
            fields,
            conditions,
        }
    }

    /// Reads an object as the store and the API keep it.
    pub fn from_json(value: Value) -> Result<Self, CustomObjectError> {
        let Value::Object(mut fields) = value else {
            return Err(CustomObjectError::NotAnObject);
        };
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        let api_version = text(fields.get("apiVersion"));
        let name = text(fields.get("kind"));
        let metadata: ObjectMeta = match fields.remove("metadata") {
            Some(m) => serde_json::from_value(m).map_err(CustomObjectError::Metadata)?,
            None => ObjectMeta::default(),
        };
        let namespaced = metadata.namespace.as_deref().is_some_and(|n| !n.is_empty());
        let kind = CustomKind::of_object(&api_version, &name, namespaced)
            .ok_or(CustomObjectError::NoGroup(api_version))?;
        Ok(CustomObject::new(kind, metadata, fields))
    }

    pub fn kind(&self) -> CustomKind {
        self.kind
    }

    /// The top-level fields besides `apiVersion`, `kind` and `metadata`.
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// The fields a repository declares: all but `status`.
    pub fn declared(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.fields.iter().filter(|(k, _)| *k != "status")
    }

    pub fn status(&self) -> Option<&Value> {
        self.fields.get("status")
    }

    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// Sets or (`None`) removes `status`.
    pub fn set_status(&mut self, status: Option<Value>) {
        match status {
            Some(s) => self.fields.insert("status".into(), s),
            None => self.fields.remove("status"),
        };
        self.conditions = read_conditions(&self.fields);
    }
}

/// `status.conditions`, those that read as conditions.
fn read_conditions(fields: &Map<String, Value>) -> Vec<Condition> {
    fields
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| serde_json::from_value(c.clone()).ok())
        .collect()
}

impl Serialize for CustomObject {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len() + 3))?;
        map.serialize_entry("apiVersion", self.kind.info().api_version)?;
        map.serialize_entry("kind", self.kind.name())?;
        map.serialize_entry("metadata", &self.metadata)?;
        for (key, value) in &self.fields {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for CustomObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        CustomObject::from_json(value).map_err(serde::de::Error::custom)
    }
}
