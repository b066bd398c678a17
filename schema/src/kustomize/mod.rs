//! Kustomize, natively: a folder with a `kustomization.yaml` is rendered as kustomize v5
//! renders it, so that `keel` applies exactly what `kubectl kustomize` prints, with no Go
//! binary at run time and every problem located in the kustomization or patch.
//!
//! A revision's kustomizations are found among its files. Each one that no other
//! kustomization includes is built on its own, and its objects join the revision; the files
//! and folders a kustomization reads belong to it and are not read again as plain manifests.
//! Objects keep the file and line their resource was declared at, so validation errors point
//! at the base; generated objects point at the generator.
//!
//! # Layout
//! - this file: finding a revision's kustomizations and building them.
//! - [`kustomization`]: the file's fields; [`build`]: one kustomization, recursively;
//!   [`resource`]: an object being built; [`paths`]: paths relative to a kustomization.
//! - [`generators`]: ConfigMap and Secret generators and their hashes; [`patches`],
//!   [`smp`] and [`json_patch`]: the patches; [`target`]: selecting objects;
//!   [`names`]: namespaces, prefixes, suffixes and the references that follow them;
//!   [`fields`]: labels, annotations, replicas and images; [`replacements`].
//! - [`order`]: kustomize's output order; [`node`]: edits on located trees.

mod build;
mod context;
mod fields;
mod generators;
mod json_patch;
pub mod kustomization;
mod names;
pub mod node;
mod order;
mod patches;
mod paths;
mod replacements;
mod resource;
mod smp;
mod target;

use std::collections::BTreeSet;
use std::sync::Arc;

pub use generators::content_hash;

use crate::encrypted::Decrypt;
use crate::error::ManifestError;
use crate::yaml::{Mark, Node};

/// The files of a revision, read by path from its root (`/`-separated, no leading `./`).
/// Kustomizations read files by name (env files, patches, `Kustomization`), hidden ones
/// included, so a revision's sources offer every file, not only its manifests.
pub trait Files {
    /// The bytes of the regular file at `path`, or `None` when there is none (folders,
    /// symbolic links and missing paths alike).
    fn read(&self, path: &str) -> Option<Vec<u8>>;
    /// Whether `path` is a folder.
    fn is_dir(&self, path: &str) -> bool;
    /// Whether `path` is a regular file (without reading it, where the source can tell).
    fn is_file(&self, path: &str) -> bool {
        self.read(path).is_some()
    }
}

/// A problem in a kustomization or a file it reads.
#[derive(Debug, Clone)]
pub struct Problem {
    pub file: String,
    pub mark: Mark,
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn into_error(self) -> ManifestError {
        ManifestError {
            file: self.file,
            line: self.mark.line,
            column: self.mark.col,
            kind: None,
            namespace: None,
            name: None,
            field: self.field,
            message: crate::error::excerpt_quoted(&self.message),
        }
    }
}

/// One object a kustomization made: the file its resource was declared in (a generator's
/// kustomization for a generated object) and its tree.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub file: Arc<str>,
    pub root: Node,
    /// The kustomization folder that built it (`""` for the root).
    pub dir: String,
}

/// A kustomization built on its own, and the files it read.
#[derive(Debug, Clone, Default)]
pub struct Root {
    pub dir: String,
    pub files: BTreeSet<String>,
    /// What it looked for and did not find.
    pub missing: BTreeSet<String>,
}

/// What rendering a revision's kustomizations gave.
#[derive(Debug, Default)]
pub struct Output {
    pub objects: Vec<Rendered>,
    pub problems: Vec<ManifestError>,
    /// Files and folders the kustomizations read: they are not plain manifests.
    pub consumed: BTreeSet<String>,
    /// The kustomizations built on their own, in path order, each with every file it read
    /// (its bases' included): where a change to a file shows.
    pub roots: Vec<Root>,
}

/// Whether a file name is a kustomization's.
pub fn is_kustomization(path: &str) -> bool {
    let name = path.rsplit_once('/').map_or(path, |(_, n)| n);
    kustomization::FILE_NAMES.contains(&name)
}

/// Builds every kustomization among `names` (the revision's manifest file names) that no
/// other includes. A folder's components are built only as part of what includes them.
pub fn render_revision(files: &dyn Files, names: &[&str], decrypt: Option<&dyn Decrypt>) -> Output {
    let mut dirs: Vec<String> = names
        .iter()
        .filter(|n| is_kustomization(n))
        .map(|n| paths::parent(n).to_string())
        .collect();
    dirs.sort();
    dirs.dedup();
    let mut out = Output::default();
    if dirs.is_empty() {
        return out;
    }
    // Everything each kustomization reads, to find those no other includes.
    let mut built = Vec::new();
    let mut included = BTreeSet::new();
    for dir in &dirs {
        let mut b = context::Builder::new(files, decrypt);
        let is_component = is_component(files, dir);
        let objects = if is_component { None } else { b.build(dir) };
        included.extend(b.consumed.iter().filter(|p| *p != dir).cloned());
        built.push((dir.clone(), objects, b, is_component));
    }
    // A kustomization inside another's folder belongs to it: it counts only if included.
    let all: BTreeSet<&str> = dirs.iter().map(String::as_str).collect();
    let nested = |dir: &str| !dir.is_empty() && below_any(&all, paths::parent(dir));
    let mut seen = BTreeSet::new();
    for (dir, objects, b, is_component) in built {
        out.consumed.extend(b.consumed.iter().cloned());
        if nested(&dir) && !included.contains(&dir) {
            continue;
        }
        // Every kustomization builds on its own (kustomize builds a base before an overlay
        // transforms it), so a problem found in any build is real; one found by several
        // builds is reported once.
        for problem in b.problems.into_iter().map(Problem::into_error) {
            if seen.insert(problem.clone()) {
                out.problems.push(problem);
            }
        }
        if included.contains(&dir) || is_component {
            continue;
        }
        out.roots.push(Root {
            dir: dir.clone(),
            files: b
                .consumed
                .iter()
                .filter(|p| reads_file(files, p))
                .cloned()
                .collect(),
            missing: b.missing.clone(),
        });
        for res in objects.into_iter().flatten() {
            out.objects.push(Rendered {
                file: res.file,
                root: res.node,
                dir: dir.clone(),
            });
        }
    }
    out
}

/// Whether `dir` or a folder above it is in `dirs` (the root, `""`, is above everything).
pub fn below_any(dirs: &BTreeSet<&str>, dir: &str) -> bool {
    let mut at = dir;
    loop {
        if dirs.contains(at) {
            return true;
        }
        if at.is_empty() {
            return false;
        }
        at = paths::parent(at);
    }
}

fn reads_file(files: &dyn Files, path: &str) -> bool {
    !files.is_dir(path)
}

/// The kustomizations a change to `changed` (files of the revision) reaches: each with the
/// changed files it reads.
pub fn reached<'a>(roots: &'a [Root], changed: &[String]) -> Vec<(&'a str, Vec<&'a str>)> {
    roots
        .iter()
        .filter_map(|r| {
            let hit: Vec<&str> = r
                .files
                .iter()
                .filter(|f| changed.contains(f))
                .map(String::as_str)
                .collect();
            (!hit.is_empty()).then_some((r.dir.as_str(), hit))
        })
        .collect()
}

/// Builds the one kustomization in `dir`, for `keel render DIR`.
pub fn render_dir(
    files: &dyn Files,
    dir: &str,
    decrypt: Option<&dyn Decrypt>,
) -> Result<Vec<Rendered>, Vec<ManifestError>> {
    let mut b = context::Builder::new(files, decrypt);
    if b.kustomization_file(dir).is_none() {
        let shown = if dir.is_empty() { "." } else { dir };
        return Err(vec![ManifestError::file(
            shown,
            "no kustomization.yaml, kustomization.yml or Kustomization here",
        )]);
    }
    match b.build(dir) {
        Some(objects) => Ok(objects
            .into_iter()
            .map(|r| Rendered {
                file: r.file,
                root: r.node,
                dir: dir.to_string(),
            })
            .collect()),
        None => Err(b.problems.into_iter().map(Problem::into_error).collect()),
    }
}

fn is_component(files: &dyn Files, dir: &str) -> bool {
    let b = context::Builder::new(files, None);
    let Some(path) = b.kustomization_file(dir) else {
        return false;
    };
    let bytes = files.read(&path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    crate::yaml::parse_documents(&text)
        .ok()
        .and_then(|docs| docs.into_iter().find_map(|d| d.root))
        .and_then(|root| {
            root.get("kind")
                .and_then(Node::as_str)
                .map(|k| k == "Component")
        })
        .unwrap_or(false)
}
