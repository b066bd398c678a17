//! Typed objects from located YAML trees: a serde `Deserializer` over [`Node`] that reports
//! every problem with its field path and position, and keeps going.
//!
//! Unlike a plain serde deserializer this one does not stop at the first problem. A value of
//! the wrong type is recorded as an [`Issue`] and replaced by an empty placeholder; an unknown
//! field is recorded (with a suggestion when a known field is close) and skipped. So one pass
//! over a document reports every decoding problem in it, each located, and validation then runs
//! on the rest. Scalars reach string fields as their source text (`value: 8080` is `"8080"`).

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

use crate::path::{FieldPath, Seg};
use crate::yaml::{Mark, Node, Style, Value, resolve_bool, resolve_int, resolve_null};

/// One decoding problem: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: FieldPath,
    pub mark: Mark,
    pub message: String,
    /// For an unknown field: the known field it is probably a misspelling of.
    pub suggestion: Option<&'static str>,
}

/// Decodes `root` into `T`, returning the value (unless a problem made that impossible) and
/// every problem found on the way.
pub fn decode<T: DeserializeOwned>(root: &Node) -> (Option<T>, Vec<Issue>) {
    decode_with(root, false)
}

/// As [`decode`]; with `redact`, messages name the type of a wrong value but never its text
/// (for Secrets).
pub fn decode_with<T: DeserializeOwned>(root: &Node, redact: bool) -> (Option<T>, Vec<Issue>) {
    // A value no placeholder can stand in for (a list where an int-or-string belongs, say)
    // fails the whole object. Rather than lose every other problem in it, decode again with
    // that node read as absent, until the object decodes; its problem is kept.
    let mut poisoned = HashSet::new();
    let mut fatal_issues = Vec::new();
    loop {
        let ctx = Ctx {
            issues: RefCell::new(Vec::new()),
            redact,
            poisoned: poisoned.clone(),
            fatal: RefCell::new(None),
        };
        let link = Link::Root;
        let de = De {
            node: root,
            key_mark: None,
            path: &link,
            ctx: &ctx,
        };
        let value = T::deserialize(de).ok();
        let fatal = ctx.fatal.into_inner();
        let mut issues = ctx.issues.into_inner();
        match (value, fatal) {
            (None, Some((node, issue)))
                if poisoned.len() < MAX_RETRIES && poisoned.insert(node) =>
            {
                fatal_issues.push(issue);
            }
            (value, _) => {
                issues.extend(fatal_issues);
                return (value, issues);
            }
        }
    }
}

/// How many unplaceable values one object may have before decoding gives up on it.
const MAX_RETRIES: usize = 32;

struct Ctx {
    issues: RefCell<Vec<Issue>>,
    redact: bool,
    /// Nodes (by address) to read as absent: values that failed a previous attempt.
    poisoned: HashSet<usize>,
    /// The first failure that stopped this attempt: its node and its issue.
    fatal: RefCell<Option<(usize, Issue)>>,
}

fn address(node: &Node) -> usize {
    std::ptr::from_ref(node) as usize
}

/// The path to the node being decoded, as a chain on the stack; made into a [`FieldPath`]
/// only when a problem is recorded.
enum Link<'p> {
    Root,
    Field(&'p Link<'p>, &'p str),
    Key(&'p Link<'p>, &'p str),
    Index(&'p Link<'p>, usize),
}

impl Link<'_> {
    fn to_path(&self) -> FieldPath {
        let mut segs = Vec::new();
        let mut at = self;
        loop {
            match at {
                Link::Root => break,
                Link::Field(parent, name) => {
                    segs.push(Seg::Field((*name).to_string()));
                    at = parent;
                }
                Link::Key(parent, key) => {
                    segs.push(Seg::Key((*key).to_string()));
                    at = parent;
                }
                Link::Index(parent, i) => {
                    segs.push(Seg::Index(*i));
                    at = parent;
                }
            }
        }
        let mut path = FieldPath::root();
        for seg in segs.into_iter().rev() {
            path.push(seg);
        }
        path
    }
}

/// A problem that stopped decoding of the value it happened in. `recorded` is true once it
/// has been turned into an [`Issue`], so outer levels pass it through unchanged.
#[derive(Debug)]
pub struct DeError {
    message: String,
    recorded: bool,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            recorded: false,
        }
    }
}

#[derive(Clone, Copy)]
struct De<'n, 'p> {
    node: &'n Node,
    /// The mark of the key this value sits under, used to point at lists and mappings.
    key_mark: Option<Mark>,
    path: &'p Link<'p>,
    ctx: &'p Ctx,
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
        let access = SeqAccess {
            items,
            next: 0,
            parent: self,
        };
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
        let access = MapAccess {
            entries,
            next: 0,
            fields,
            parent: self,
        };
        self.record(visitor.visit_map(access))
    }
}

struct SeqAccess<'n, 'p> {
    items: &'n [Node],
    next: usize,
    parent: De<'n, 'p>,
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

/// `0999`: digits with a leading zero that are not octal.
fn is_leading_zero_decimal(text: &str) -> bool {
    let digits = text.trim_start_matches(['-', '+']);
    digits.len() > 1 && digits.starts_with('0') && digits.chars().all(|c| c.is_ascii_digit())
}

/// The known field closest to a misspelt one: same letters ignoring case, or at most two
/// edits away.
fn suggest(name: &str, fields: &[&'static str]) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    fields
        .iter()
        .map(|f| (edit_distance(&lower, &f.to_ascii_lowercase()), *f))
        .filter(|(d, f)| *d <= 2.min(f.len() / 3 + 1))
        .min()
        .map(|(_, f)| f)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("imagee", &["image", "name"]), Some("image"));
        assert_eq!(
            suggest("containerport", &["containerPort"]),
            Some("containerPort")
        );
        assert_eq!(suggest("zzz", &["image", "name"]), None);
    }
}
