//! Typed objects from located YAML trees: a serde `Deserializer` over [`Node`] that reports
//! every problem with its field path and position, and keeps going.
//!
//! Unlike a plain serde deserializer this one does not stop at the first problem. A value of
//! the wrong type is recorded as an [`Issue`] and replaced by an empty placeholder; an unknown
//! field is recorded (with a suggestion when a known field is close) and skipped. So one pass
//! over a document reports every decoding problem in it, each located, and validation then runs
//! on the rest. Scalars reach string fields as their source text (`value: 8080` is `"8080"`).
//!
//! # Layout
//! - this file: the entry points, the per-decode context, paths and the error type;
//!   [`deserializer`]: the serde `Deserializer` over one node, and its lists and mappings,
//!   where unknown fields are caught; [`suggest`]: "did you mean" for them.

mod deserializer;
mod suggest;

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeOwned};

use crate::path::{FieldPath, Seg};
use crate::yaml::{Mark, Node};
use deserializer::De;

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

pub(crate) struct Ctx {
    issues: RefCell<Vec<Issue>>,
    redact: bool,
    /// Nodes (by address) to read as absent: values that failed a previous attempt.
    poisoned: HashSet<usize>,
    /// The first failure that stopped this attempt: its node and its issue.
    fatal: RefCell<Option<(usize, Issue)>>,
}

pub(crate) fn address(node: &Node) -> usize {
    std::ptr::from_ref(node) as usize
}

/// The path to the node being decoded, as a chain on the stack; made into a [`FieldPath`]
/// only when a problem is recorded.
pub(crate) enum Link<'p> {
    Root,
    Field(&'p Link<'p>, &'p str),
    Key(&'p Link<'p>, &'p str),
    Index(&'p Link<'p>, usize),
}

impl Link<'_> {
    pub(crate) fn to_path(&self) -> FieldPath {
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
