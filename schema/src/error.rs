//! Located manifest errors: `FILE:LINE:COL: KIND NAMESPACE/NAME: field.path: message`.

use std::fmt;

use serde::Serialize;

/// One problem found in a manifest. Every field but `file`, `line`, `column` and `message` is
/// absent when the problem is not about one object (a YAML syntax error, say).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ManifestError {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(kind) = &self.kind {
            let name = self.name.as_deref().unwrap_or("<unnamed>");
            match &self.namespace {
                Some(ns) => write!(f, "{kind} {ns}/{name}: ")?,
                None => write!(f, "{kind} {name}: ")?,
            }
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ManifestError {}

impl ManifestError {
    /// A problem with a whole file (it cannot be read as a manifest), located at its start.
    pub fn file(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: 1,
            column: 1,
            kind: None,
            namespace: None,
            name: None,
            field: None,
            message: message.into(),
        }
    }
}

/// Sorts errors by file, then line and column, as `keel validate` prints them.
pub fn sort_errors(errors: &mut [ManifestError]) {
    errors.sort_by(|a, b| {
        (&a.file, a.line, a.column, &a.field, &a.message)
            .cmp(&(&b.file, b.line, b.column, &b.field, &b.message))
    });
}
