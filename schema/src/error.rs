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
            message: excerpt_quoted(&message.into()),
        }
    }
}

/// The longest quoted value an error shows whole; longer ones show their first
/// [`EXCERPT_CHARS`] characters.
const QUOTED_MAX_CHARS: usize = 40;
const EXCERPT_CHARS: usize = 24;

/// `message` with each long quoted value (`"…"`, as `{:?}` writes them) cut to a short
/// excerpt and its length. Errors are printed to terminals and CI logs: a file that is not a
/// manifest (a private key committed by mistake, or a link to one) must not be shown whole.
pub fn excerpt_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(1024));
    let mut rest = message;
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..=open]);
        let quoted = &rest[open + 1..];
        let mut escaped = false;
        let close = quoted.char_indices().find_map(|(i, c)| match (escaped, c) {
            (true, _) => {
                escaped = false;
                None
            }
            (false, '\\') => {
                escaped = true;
                None
            }
            (false, '"') => Some(i),
            _ => None,
        });
        let Some(close) = close else {
            rest = quoted;
            break;
        };
        let inner = &quoted[..close];
        let chars = inner.chars().count();
        if chars > QUOTED_MAX_CHARS {
            let cut: String = inner.chars().take(EXCERPT_CHARS).collect();
            // An escape cut in half would show a stray backslash.
            let cut = cut.trim_end_matches('\\');
            out.push_str(&format!("{cut}…\" ({chars} characters)"));
        } else {
            out.push_str(inner);
            out.push('"');
        }
        rest = &quoted[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Sorts errors by file, then line and column, as `keel validate` prints them.
pub fn sort_errors(errors: &mut [ManifestError]) {
    errors.sort_by(|a, b| {
        (&a.file, a.line, a.column, &a.field, &a.message)
            .cmp(&(&b.file, b.line, b.column, &b.field, &b.message))
    });
}

#[cfg(test)]
mod tests {
    use super::excerpt_quoted;

    #[test]
    fn long_quoted_values_become_excerpts_and_short_ones_stay() {
        let key = format!("-----BEGIN PRIVATE KEY----- {}", "A".repeat(64));
        let message = format!("expected a mapping, found string {key:?}; field \"image\"");
        let shown = excerpt_quoted(&message);
        assert_eq!(
            shown,
            "expected a mapping, found string \"-----BEGIN PRIVATE KEY--…\" (92 characters); \
             field \"image\""
        );
        assert!(!shown.contains("AAAA"));
        let escaped = format!("{:?}", format!("{}\"{}", "q".repeat(23), "z".repeat(40)));
        let shown = excerpt_quoted(&format!("bad {escaped} here"));
        assert!(
            shown.starts_with("bad \"qqqqqqqqqqqqqqqqqqqqqqq…\""),
            "{shown}"
        );
        assert!(shown.ends_with("characters) here"), "{shown}");
        assert_eq!(excerpt_quoted("no \"close"), "no \"close");
        assert_eq!(excerpt_quoted("é \"ünï\" \""), "é \"ünï\" \"");
    }
}
