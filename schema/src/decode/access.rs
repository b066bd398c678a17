//! Lists and mappings: each element gets its path; a struct's unknown keys are recorded
//! (with a suggestion) and skipped.

use serde::de::{self, DeserializeSeed, IntoDeserializer};

use super::deserializer::De;
use super::suggest::suggest;
use super::{DeError, Issue, Link};
use crate::yaml::Node;

pub(super) struct SeqAccess<'n, 'p> {
    items: &'n [Node],
    next: usize,
    parent: De<'n, 'p>,
}

impl<'n, 'p> SeqAccess<'n, 'p> {
    pub(super) fn new(items: &'n [Node], parent: De<'n, 'p>) -> Self {
        SeqAccess {
            items,
            next: 0,
            parent,
        }
    }
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(item) = self.items.get(self.next) else {
            return Ok(None);
        };
        let link = Link::Index(self.parent.path, self.next);
        self.next += 1;
        let de = De {
            node: item,
            key_mark: None,
            path: &link,
            ctx: self.parent.ctx,
        };
        seed.deserialize(de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.next)
    }
}

pub(super) struct MapAccess<'n, 'p> {
    entries: &'n [(Node, Node)],
    next: usize,
    /// The struct's field names, when decoding a struct; keys outside them are unknown fields.
    fields: Option<&'static [&'static str]>,
    parent: De<'n, 'p>,
}

impl<'n, 'p> MapAccess<'n, 'p> {
    pub(super) fn new(
        entries: &'n [(Node, Node)],
        fields: Option<&'static [&'static str]>,
        parent: De<'n, 'p>,
    ) -> Self {
        MapAccess {
            entries,
            next: 0,
            fields,
            parent,
        }
    }
}

impl<'de> de::MapAccess<'de> for MapAccess<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        while let Some((key, _)) = self.entries.get(self.next) {
            let Some(name) = key.as_str() else {
                self.key_issue(key, "", "mapping keys must be strings".to_string(), None);
                self.next += 1;
                continue;
            };
            if let Some(fields) = self.fields
                && !fields.contains(&name)
            {
                let mut message = format!("unknown field {name:?}");
                let close = suggest(name, fields);
                if let Some(close) = close {
                    message.push_str(&format!(" (did you mean {close:?}?)"));
                }
                self.key_issue(key, name, message, close);
                self.next += 1;
                continue;
            }
            let de: de::value::StrDeserializer<'_, DeError> = name.into_deserializer();
            return seed.deserialize(de).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, value)) = self.entries.get(self.next) else {
            return Err(de::Error::custom("value requested after the last key"));
        };
        self.next += 1;
        let name = key.as_str().unwrap_or("");
        let link = if self.fields.is_some() {
            Link::Field(self.parent.path, name)
        } else {
            Link::Key(self.parent.path, name)
        };
        let de = De {
            node: value,
            key_mark: Some(key.mark),
            path: &link,
            ctx: self.parent.ctx,
        };
        seed.deserialize(de)
    }
}

impl MapAccess<'_, '_> {
    fn key_issue(&self, key: &Node, name: &str, message: String, suggestion: Option<&'static str>) {
        let link = if self.fields.is_some() {
            Link::Field(self.parent.path, name)
        } else {
            Link::Key(self.parent.path, name)
        };
        self.parent.ctx.issues.borrow_mut().push(Issue {
            path: link.to_path(),
            mark: key.mark,
            message,
            suggestion,
        });
    }
}
