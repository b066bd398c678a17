//! The serde `Deserializer` over one located node: a wrong value is recorded and replaced
//! by a placeholder, so decoding goes on. Lists and mappings ([`SeqAccess`], [`MapAccess`])
//! give each element its path; a struct's unknown keys are recorded (with a suggestion) and
//! skipped. They live here because they and [`De`] call each other.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::suggest::suggest;
use super::{Ctx, DeError, Issue, Link, address};
use crate::yaml::{Mark, Node, Style, Value, resolve_bool, resolve_int, resolve_null};

#[derive(Clone, Copy)]
pub(super) struct De<'n, 'p> {
    pub(super) node: &'n Node,
    /// The mark of the key this value sits under, used to point at lists and mappings.
    pub(super) key_mark: Option<Mark>,
    pub(super) path: &'p Link<'p>,
    pub(super) ctx: &'p Ctx,
}

impl De<'_, '_> {
    fn mark(&self) -> Mark {
        match self.node.value {
            Value::Scalar(..) => self.node.mark,
            _ => self.key_mark.unwrap_or(self.node.mark),
        }
    }

    fn issue(&self, message: String) {
        self.ctx.issues.borrow_mut().push(Issue {
            path: self.path.to_path(),
            mark: self.mark(),
            message,
            suggestion: None,
        });
    }

    fn record<T>(&self, result: Result<T, DeError>) -> Result<T, DeError> {
        result.map_err(|mut e| {
            if !e.recorded {
                let issue = Issue {
                    path: self.path.to_path(),
                    mark: self.mark(),
                    message: e.message.clone(),
                    suggestion: None,
                };
                let mut fatal = self.ctx.fatal.borrow_mut();
                if fatal.is_none() {
                    *fatal = Some((address(self.node), issue));
                }
                e.recorded = true;
            }
            e
        })
    }

    fn poisoned(&self) -> bool {
        self.ctx.poisoned.contains(&address(self.node))
    }

    fn plain(&self) -> Option<&str> {
        match &self.node.value {
            Value::Scalar(text, Style::Plain) => Some(text),
            _ => None,
        }
    }

    fn found(&self) -> String {
        if self.ctx.redact {
            self.node.type_name().to_string()
        } else {
            self.node.describe()
        }
    }

    fn expected(&self, what: &str) {
        self.issue(format!("expected {what}, found {}", self.found()));
    }

    fn int<T: TryFrom<i64> + Default>(&self) -> T {
        match self.plain().map(|t| (t, resolve_int(t))) {
            Some((_, Some(v))) => T::try_from(v).unwrap_or_else(|_| {
                let shown = if self.ctx.redact {
                    "a number".to_string()
                } else {
                    format!("number {v}")
                };
                self.issue(format!("{shown} is out of range"));
                T::default()
            }),
            Some((t, None)) if is_leading_zero_decimal(t) => {
                self.issue(format!(
                    "{t} is not a valid octal number (a leading 0 means octal, as in YAML 1.1)"
                ));
                T::default()
            }
            Some((t, None))
                if !t.is_empty()
                    && t.trim_start_matches(['-', '+'])
                        .chars()
                        .all(|c| c.is_ascii_digit()) =>
            {
                self.issue(if self.ctx.redact {
                    "a number is out of range".to_string()
                } else {
                    format!("number {t} is out of range")
                });
                T::default()
            }
            _ => {
                self.expected("an integer");
                T::default()
            }
        }
    }
}

macro_rules! int_methods {
    ($($method:ident $ty:ty => $visit:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
                let v: $ty = self.int();
                self.record(visitor.$visit(v))
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for De<'_, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.poisoned() {
            return self.record(visitor.visit_unit());
        }
        let result = match &self.node.value {
            Value::Scalar(text, Style::Plain) => {
                if resolve_null(text) {
                    visitor.visit_unit()
                } else if let Some(b) = resolve_bool(text) {
                    visitor.visit_bool(b)
                } else if let Some(i) = resolve_int(text) {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_str(text)
                }
            }
            Value::Scalar(text, _) => visitor.visit_str(text),
            Value::Seq(_) => return self.deserialize_seq(visitor),
            Value::Map(_) => return self.deserialize_map(visitor),
        };
        self.record(result)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let b = match self.plain().and_then(resolve_bool) {
            Some(b) => b,
            None => {
                self.expected("a boolean (true or false)");
                false
            }
        };
        self.record(visitor.visit_bool(b))
    }

    int_methods! {
        deserialize_i8 i8 => visit_i8,
        deserialize_i16 i16 => visit_i16,
        deserialize_i32 i32 => visit_i32,
        deserialize_i64 i64 => visit_i64,
        deserialize_u8 u8 => visit_u8,
        deserialize_u16 u16 => visit_u16,
        deserialize_u32 u32 => visit_u32,
        deserialize_u64 u64 => visit_u64,
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let f = match self.plain().and_then(|t| t.parse::<f64>().ok()) {
            Some(f) => f,
            None => {
                self.expected("a number");
                0.0
            }
        };
        self.record(visitor.visit_f64(f))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            // A null string field is the empty string, as in Kubernetes (`value:`).
            Value::Scalar(text, Style::Plain) if resolve_null(text) => visitor.visit_str(""),
            Value::Scalar(text, _) => visitor.visit_str(text),
            _ => {
                self.expected("a string");
                visitor.visit_str("")
            }
        };
        self.record(result)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() || self.poisoned() {
            self.record(visitor.visit_none())
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.record(visitor.visit_unit())
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let items: &[Node] = match &self.node.value {
            Value::Seq(items) => items,
            _ if self.node.is_null() => &[],
            _ => {
                self.expected("a list");
                &[]
            }
        };
        let access = SeqAccess::new(items, self);
        self.record(visitor.visit_seq(access))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.map(None, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.map(Some(fields), visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Scalar(text, _) => {
                let de: de::value::StrDeserializer<'_, DeError> = text.as_str().into_deserializer();
                self.record(visitor.visit_enum(de))
            }
            _ => {
                let e = DeError {
                    message: format!("expected a string, found {}", self.found()),
                    recorded: false,
                };
                self.record(Err(e))
            }
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.record(visitor.visit_unit())
    }
}

impl<'n, 'p> De<'n, 'p> {
    fn map<'de, V: Visitor<'de>>(
        self,
        fields: Option<&'static [&'static str]>,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let entries: &[(Node, Node)] = match &self.node.value {
            Value::Map(entries) => entries,
            _ if self.node.is_null() => &[],
            _ => {
                self.expected("a mapping");
                &[]
            }
        };
        let access = MapAccess::new(entries, fields, self);
        self.record(visitor.visit_map(access))
    }
}

/// `0999`: digits with a leading zero that are not octal.
fn is_leading_zero_decimal(text: &str) -> bool {
    let digits = text.trim_start_matches(['-', '+']);
    digits.len() > 1 && digits.starts_with('0') && digits.chars().all(|c| c.is_ascii_digit())
}

struct SeqAccess<'n, 'p> {
    items: &'n [Node],
    next: usize,
    parent: De<'n, 'p>,
}

impl<'n, 'p> SeqAccess<'n, 'p> {
    fn new(items: &'n [Node], parent: De<'n, 'p>) -> Self {
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

struct MapAccess<'n, 'p> {
    entries: &'n [(Node, Node)],
    next: usize,
    /// The struct's field names, when decoding a struct; keys outside them are unknown fields.
    fields: Option<&'static [&'static str]>,
    parent: De<'n, 'p>,
}

impl<'n, 'p> MapAccess<'n, 'p> {
    fn new(
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
