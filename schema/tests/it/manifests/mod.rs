//! Data-driven tests of manifest loading: YAML in, located errors or objects out.
//!
//! Each invalid case is one file's text and the exact `(line, field)` of every error
//! expected, with a fragment of each message. Lines count from the first line of the text.

mod defaults;
mod errors;
mod invalid;
mod valid;

use keel_schema::{SourceFile, load_sources};

struct Case {
    name: &'static str,
    yaml: &'static str,
    /// `(line, field path or "", message fragment)`, in output order (by line).
    errors: &'static [(u32, &'static str, &'static str)],
}

fn source(yaml: &str) -> SourceFile {
    SourceFile {
        name: "t.yaml".into(),
        bytes: yaml.strip_prefix('\n').unwrap_or(yaml).as_bytes().to_vec(),
    }
}

/// Compares what loading `case` reports with what it expects; `Err` describes the mismatch.
fn check(case: &Case) -> Result<(), String> {
    let rev = load_sources(&[source(case.yaml)], None);
    let shown: Vec<String> = rev.errors.iter().map(|e| e.to_string()).collect();
    let got: Vec<(u32, String)> = rev
        .errors
        .iter()
        .map(|e| (e.line, e.field.clone().unwrap_or_default()))
        .collect();
    let want: Vec<(u32, String)> = case
        .errors
        .iter()
        .map(|(l, f, _)| (*l, f.to_string()))
        .collect();
    if got != want {
        return Err(format!(
            "case {:?}: expected {want:?}, got:\n  {}",
            case.name,
            shown.join("\n  ")
        ));
    }
    for (e, (_, _, fragment)) in rev.errors.iter().zip(case.errors) {
        if !e.message.contains(fragment) {
            return Err(format!(
                "case {:?}: message {:?} lacks {fragment:?}",
                case.name, e.message
            ));
        }
    }
    Ok(())
}
