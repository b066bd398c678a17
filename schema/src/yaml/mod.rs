//! The one place YAML text is read.
//!
//! Manifests are parsed into a located tree ([`Node`]): every scalar, list and mapping keeps the
//! line and column it came from, so validation can point at the offending key or value in the
//! file. The tree is built from yaml-rust2's event parser (serde_yaml keeps no locations for
//! values); swapping the YAML library means rewriting this module only.
//!
//! Scalars keep their source text. Types are resolved when a field asks for them (see
//! [`crate::decode`]), so `cpu: 0.5` never passes through a float and `value: 8080` reaches a
//! string field as `"8080"`.
//!
//! Guarantees: no input panics this module; nesting deeper than [`MAX_DEPTH`] and alias
//! expansion beyond [`MAX_NODES`] or [`MAX_BYTES`] are errors (aliases included), which
//! bounds memory and recursion.

mod build;
mod scalar;

pub use build::parse_documents;
pub use scalar::{resolve_bool, resolve_int, resolve_null};

use std::fmt;

/// Deepest nesting of lists and mappings accepted in one document.
pub const MAX_DEPTH: usize = 64;
/// Most nodes one file may expand to (aliases count once per use).
pub const MAX_NODES: usize = 2_000_000;
/// Most scalar text one file may expand to (aliases count once per use).
pub const MAX_BYTES: usize = 64 << 20;

/// A position in a file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Mark {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// How a scalar was written; plain scalars may be null, booleans or numbers, quoted and block
/// scalars are always strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
    Block,
}

/// One located YAML value.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub mark: Mark,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(String, Style),
    Seq(Vec<Node>),
    /// Entries in document order; keys are unique (duplicates are a parse error).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// True for an absent value: empty plain scalar, `~` or `null`.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(text, Style::Plain) if resolve_null(text))
    }

    /// The scalar's text when this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(text, _) => Some(text),
            _ => None,
        }
    }

    /// The entry whose key's text is `key`, when this is a mapping.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// The value under `key`, when this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// What kind of value this is, without its text (for values that must stay hidden).
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            Value::Scalar(..) if self.is_null() => "null",
            Value::Scalar(..) => "a scalar value",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// A short description of what kind of value this is, for error messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Scalar(_, _) if self.is_null() => "null".to_string(),
            Value::Scalar(text, Style::Plain) if resolve_bool(text).is_some() => {
                format!("boolean {text}")
            }
            Value::Scalar(text, Style::Plain) if resolve_int(text).is_some() => {
                format!("number {text}")
            }
            Value::Scalar(text, _) => format!("string {text:?}"),
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
        }
    }
}

/// One YAML document of a file: its root node, or `None` when the document is empty
/// (only comments, or a bare `---`).
#[derive(Debug, Clone)]
pub struct Document {
    pub index: usize,
    pub mark: Mark,
    pub root: Option<Node>,
}

/// A file that is not well-formed YAML.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    pub mark: Mark,
    pub message: String,
}
