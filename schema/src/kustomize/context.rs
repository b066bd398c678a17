//! What a build carries: the files it reads, the kustomizations being built (to catch
//! cycles), and every problem found; with the reading and reporting every step shares.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::kustomization::{FILE_NAMES, Kustomization};
use super::paths::{self, join};
use super::resource::{Id, Res};

/// The most objects one kustomization may render (a chain of bases that doubles at each
/// level would otherwise grow without bound).
pub const MAX_OBJECTS: usize = 100_000;
use super::{Files, Problem};
use crate::encrypted::Decrypt;
use crate::path::FieldPath;
use crate::yaml::{Mark, Node, parse_documents};

/// One build over a repository's files: what it read, and every problem it found.
pub struct Builder<'a> {
    pub files: &'a dyn Files,
    /// Opens SOPS-encrypted resource files.
    pub decrypt: Option<&'a dyn Decrypt>,
    /// Folders of kustomizations being built, innermost last (to catch cycles).
    pub(super) stack: Vec<String>,
    pub problems: Vec<Problem>,
    /// Every file and kustomization folder read.
    pub consumed: BTreeSet<String>,
    /// Files and folders looked for and not found: when one appears, what was built
    /// changes.
    pub missing: BTreeSet<String>,
    /// Folders already built as a resource, with what they gave and the problems found:
    /// a base several overlays share (a diamond) is built once.
    pub(super) built: std::collections::HashMap<String, (Vec<Res>, Vec<Problem>)>,
}

/// A kustomization read from its folder.
pub struct Loaded {
    pub file: Arc<str>,
    pub root: Node,
    pub fields: Kustomization,
}

impl<'a> Builder<'a> {
    pub fn new(files: &'a dyn Files, decrypt: Option<&'a dyn Decrypt>) -> Self {
        Self {
            files,
            decrypt,
            stack: Vec::new(),
            problems: Vec::new(),
            consumed: BTreeSet::new(),
            missing: BTreeSet::new(),
            built: std::collections::HashMap::new(),
        }
    }

    pub fn problem(&mut self, file: &str, mark: Mark, message: impl Into<String>) {
        self.problems.push(Problem {
            file: file.to_string(),
            mark,
            field: None,
            message: message.into(),
        });
    }

    /// A problem with the field at `path` of a kustomization.
    pub fn field_problem(&mut self, k: &Loaded, path: &FieldPath, message: impl Into<String>) {
        self.problems.push(Problem {
            file: k.file.to_string(),
            mark: path.locate(&k.root),
            field: Some(path.to_string()),
            message: message.into(),
        });
    }

    /// The kustomization file of `dir`, if it has one.
    pub fn kustomization_file(&self, dir: &str) -> Option<String> {
        FILE_NAMES
            .iter()
            .map(|name| join(dir, name).unwrap_or_default())
            .find(|path| self.files.is_file(path))
    }

    /// The non-empty documents of a YAML file, or `None` (with a problem) when it is not
    /// YAML.
    pub fn parse(&mut self, path: &str, bytes: &[u8]) -> Option<Vec<Node>> {
        let start = Mark { line: 1, col: 1 };
        let Ok(text) = std::str::from_utf8(bytes) else {
            self.problem(path, start, "file is not valid UTF-8");
            return None;
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        match parse_documents(text) {
            Ok(docs) => Some(docs.into_iter().filter_map(|d| d.root).collect()),
            Err(e) => {
                self.problem(path, e.mark, format!("YAML syntax error: {}", e.message));
                None
            }
        }
    }

    /// Adds objects, refusing one whose identity is already there.
    pub fn add(&mut self, k: &Loaded, at: &FieldPath, objects: &mut Vec<Res>, added: Vec<Res>) {
        let mut have: std::collections::HashMap<Id, usize> = objects
            .iter()
            .enumerate()
            .map(|(i, o)| (o.id(), i))
            .collect();
        for res in added {
            if objects.len() >= MAX_OBJECTS {
                let message =
                    format!("Forbidden: the kustomization renders more than {MAX_OBJECTS} objects");
                self.field_problem(k, at, message);
                return;
            }
            let id = res.id();
            if let Some(&i) = have.get(&id) {
                let ns = if id.namespace.is_empty() {
                    String::new()
                } else {
                    format!("{}/", id.namespace)
                };
                let message = format!(
                    "Duplicate value: {} {ns}{} is already declared (by {}); an object may come from one resource only",
                    id.kind, id.name, objects[i].file
                );
                self.field_problem(k, at, message);
                continue;
            }
            have.insert(id, objects.len());
            objects.push(res);
        }
    }

    /// Reads a file a kustomization names (a patch or a generator's input), which must lie
    /// in or below its folder.
    pub fn read_file(
        &mut self,
        k: &Loaded,
        dir: &str,
        entry: &str,
        at: &FieldPath,
    ) -> Option<(String, Vec<u8>)> {
        let path = match join(dir, entry) {
            Ok(p) => p,
            Err(e) => {
                self.field_problem(k, at, format!("Invalid value: {e}"));
                return None;
            }
        };
        if !paths::within(dir, &path) {
            let message = format!(
                "Forbidden: file {entry:?} is not in or below {:?} (kustomize's load restriction)",
                display_dir(dir)
            );
            self.field_problem(k, at, message);
            return None;
        }
        match self.files.read(&path) {
            Some(bytes) => {
                self.consumed.insert(path.clone());
                Some((path, bytes))
            }
            None => {
                self.missing.insert(path.clone());
                self.field_problem(
                    k,
                    at,
                    if self.files.is_dir(&path) {
                        format!("Invalid value: {entry:?} is a folder; name the files in it")
                    } else {
                        format!("Not found: {entry:?}: no such file in the revision")
                    },
                );
                None
            }
        }
    }
}

pub(super) fn display_dir(dir: &str) -> &str {
    if dir.is_empty() { "." } else { dir }
}
