//! Loading a revision: every manifest file of a tree, parsed, decoded, validated and defaulted
//! as a whole. The result either has no errors (the revision may be applied) or lists every
//! problem, located; callers never apply a revision with errors.
//!
//! Sources are plain `(name, bytes)` pairs so that a directory on disk ([`collect_paths`]) and
//! a git tree load the same way.
//!
//! # Layout
//! - this file: one file's objects read, decoded and validated (`Loader`); [`revision`]: a
//!   revision from its files, app by app; [`collect`]: the files of paths on disk.

pub mod apps;
mod collect;
mod config;
mod custom;
mod disk_files;
mod revision;

pub use collect::{CollectError, Collected, collect_paths};
pub use disk_files::{DiskFiles, InMemory};
pub use revision::{load_app, load_sources, load_sources_with, read_config};

use std::sync::Arc;

use crate::decode::{Issue, decode_with};
use crate::defaults::{DEFAULT_NAMESPACE, apply_defaults};
use crate::encrypted::Decrypt;
use crate::error::ManifestError;
use crate::kinds::{Kind, KindInfo, Object};
use crate::path::FieldPath;
use crate::repo_config::RepoConfig;
use crate::validate::custom_objects::Schemas;
use crate::validate::{FieldError, validate_object};
use crate::yaml::{self, Mark, Node, parse_documents};

/// One file of a revision. `Debug` shows its name and size, never its text (it may hold
/// Secrets).
#[derive(Clone)]
pub struct SourceFile {
    /// The name errors report (a path relative to where the user pointed keel).
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A valid object and where it came from. `Debug` leaves out the raw YAML tree, which
/// holds Secret values in clear.
#[derive(Clone)]
pub struct Manifest {
    pub file: Arc<str>,
    /// The line of the object's first key.
    pub line: u32,
    /// The located tree the object was decoded from.
    pub root: Node,
    pub object: Object,
}

impl std::fmt::Debug for SourceFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceFile")
            .field("name", &self.name)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifest")
            .field("file", &self.file)
            .field("line", &self.line)
            .field("object", &self.object)
            .finish_non_exhaustive()
    }
}

/// Everything loaded from one revision.
#[derive(Debug, Default)]
pub struct Revision {
    /// The objects, in file order. Only complete and valid when `errors` is empty.
    pub manifests: Vec<Manifest>,
    /// Every problem found, sorted by file, line and column.
    pub errors: Vec<ManifestError>,
    pub config: RepoConfig,
    /// The kustomizations built on their own, with the files each read.
    pub kustomizations: Vec<crate::kustomize::Root>,
}

impl Manifest {
    /// An error about this object's field `path`, located in its file like a validation
    /// error, for checks made after loading (the server's address allocation).
    pub fn error_at(&self, path: &FieldPath, message: impl Into<String>) -> ManifestError {
        let mark = path.locate(&self.root);
        ManifestError {
            file: self.file.to_string(),
            line: mark.line,
            column: mark.col,
            kind: Some(self.object.kind().to_string()),
            namespace: self
                .object
                .info()
                .namespaced
                .then(|| self.object.namespace().to_string()),
            name: Some(self.object.name().to_string()),
            field: (!path.is_empty()).then(|| path.to_string()),
            message: crate::error::excerpt_quoted(&message.into()),
        }
    }
}

impl Revision {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// How many folders deep a revision's manifests may be, in git trees and on disk alike
/// (repositories rarely go past five; a bound keeps a hostile tree from exhausting a walk).
pub const MAX_FOLDER_DEPTH: usize = 64;

/// Why a folder too deep to read is reported, not walked.
pub fn too_deep_message() -> String {
    format!(
        "folders nest deeper than {MAX_FOLDER_DEPTH} levels here; keel does not read below that"
    )
}

/// True for file names keel reads as manifests (and kustomizations).
pub fn is_manifest_name(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml") || name == "Kustomization"
}

/// What an error is about, for its `KIND NAMESPACE/NAME:` part.
#[derive(Clone)]
struct Subject {
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
}

impl Subject {
    const NONE: Subject = Subject {
        kind: None,
        namespace: None,
        name: None,
    };

    fn of(node: &Node, info: Option<&KindInfo>) -> Subject {
        Subject::scoped(node, info.is_none_or(|i| i.namespaced))
    }

    fn scoped(node: &Node, namespaced: bool) -> Subject {
        let meta = node.get("metadata");
        let text = |key: &str| {
            meta.and_then(|m| m.get(key))
                .and_then(Node::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let kind = node
            .get("kind")
            .and_then(Node::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Subject {
            kind,
            namespace: namespaced
                .then(|| text("namespace").unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())),
            name: text("name"),
        }
    }
}

#[derive(Default)]
struct Loader {
    manifests: Vec<Manifest>,
    errors: Vec<ManifestError>,
    /// Objects of kinds keel does not know: what their error says depends on whether the
    /// revision declares a CustomResourceDefinition for them, which may come in any file,
    /// so it is written once every file is read.
    unknown_kinds: Vec<custom::UnknownKind>,
    /// The revision's definitions' schemas, compiled once.
    schemas: Schemas,
    /// The namespace of namespaced objects that name none (an app's; else `default`).
    namespace: Option<String>,
}

impl Loader {
    fn error(
        &mut self,
        file: &str,
        mark: Mark,
        subject: &Subject,
        field: Option<String>,
        message: String,
    ) {
        self.errors.push(ManifestError {
            file: file.to_string(),
            line: mark.line,
            column: mark.col,
            kind: subject.kind.clone(),
            namespace: subject.namespace.clone(),
            name: subject.name.clone(),
            field,
            message: crate::error::excerpt_quoted(&message),
        });
    }

    fn field_error(
        &mut self,
        file: &str,
        root: &Node,
        subject: &Subject,
        path: &FieldPath,
        message: String,
    ) {
        let field = (!path.is_empty()).then(|| path.to_string());
        self.error(file, path.locate(root), subject, field, message);
    }

    fn file(&mut self, source: &SourceFile, decrypt: Option<&dyn Decrypt>) {
        let file: Arc<str> = Arc::from(source.name.as_str());
        let Ok(text) = std::str::from_utf8(&source.bytes) else {
            self.error(
                &file,
                Mark { line: 1, col: 1 },
                &Subject::NONE,
                None,
                "file is not valid UTF-8".into(),
            );
            return;
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if let Some((mark, c)) = forbidden_char(text) {
            let message = format!(
                "YAML does not allow the control character U+{:04X} here",
                u32::from(c)
            );
            self.error(&file, mark, &Subject::NONE, None, message);
            return;
        }
        match parse_documents(text) {
            Err(e) => self.error(
                &file,
                e.mark,
                &Subject::NONE,
                None,
                format!("YAML syntax error: {}", e.message),
            ),
            Ok(docs) => {
                let roots: Vec<Node> = docs.into_iter().filter_map(|d| d.root).collect();
                match crate::encrypted::open(roots, decrypt) {
                    Ok(roots) => {
                        for root in roots {
                            self.object(&file, root, false);
                        }
                    }
                    Err(refused) => {
                        self.error(&file, refused.mark, &Subject::NONE, None, refused.message);
                    }
                }
            }
        }
    }

    fn object(&mut self, file: &Arc<str>, root: Node, in_list: bool) {
        if !matches!(root.value, yaml::Value::Map(_)) {
            let message = format!(
                "expected a Kubernetes object (a mapping with apiVersion and kind), found {}",
                root.describe()
            );
            self.error(file, root.mark, &Subject::NONE, None, message);
            return;
        }
        let subject = Subject::of(&root, None);
        let kind = root
            .get("kind")
            .and_then(Node::as_str)
            .unwrap_or("")
            .to_string();
        let kind = kind.as_str();
        let api_version = root
            .get("apiVersion")
            .and_then(Node::as_str)
            .unwrap_or("")
            .to_string();
        let api_version = api_version.as_str();
        let kind_path = FieldPath::new("kind");
        let api_path = FieldPath::new("apiVersion");
        if kind.is_empty() {
            self.field_error(file, &root, &subject, &kind_path, "Required value".into());
        }
        if api_version.is_empty() {
            self.field_error(file, &root, &subject, &api_path, "Required value".into());
        }
        if kind.is_empty() {
            return;
        }
        if kind == "List" {
            self.list(file, root, in_list, &subject);
            return;
        }
        let Some(info) = Kind::from_name(kind).map(Kind::info) else {
            let supported: Vec<String> = Kind::declarable()
                .map(|k| format!("{:?}", k.as_str()))
                .collect();
            let message = format!(
                "Unsupported value: {kind:?}: keel supports the kinds {}, or those a CustomResourceDefinition in the revision declares or keel.yaml's acceptUnknownKinds lists",
                supported.join(", ")
            );
            let api_version = api_version.to_string();
            self.defer_unknown(file, root, &subject, &kind_path, message, api_version);
            return;
        };
        // A built-in kind's name in another group (Knative's Service, Calico's
        // NetworkPolicy) is a custom kind if the revision declares it; otherwise the
        // apiVersion is wrong.
        let group = crate::kinds::api_group(api_version);
        if !api_version.is_empty() && group != info.group() {
            let message = format!(
                "Unsupported value: {api_version:?}: {kind} is served as {:?}",
                info.api_version
            );
            let api_version = api_version.to_string();
            self.defer_unknown(file, root, &subject, &api_path, message, api_version);
            return;
        }
        let mut root = root;
        if info.namespaced {
            self.fill_namespace(&mut root);
        }
        let subject = Subject::of(&root, Some(info));
        if info.live_only {
            let message = format!(
                "Forbidden: {kind} objects are kept by the cluster and cannot be declared in git"
            );
            self.field_error(file, &root, &subject, &kind_path, message);
            return;
        }
        if !api_version.is_empty() && api_version != info.api_version {
            let message = format!(
                "Unsupported value: {api_version:?}: {kind} is served as {:?}",
                info.api_version
            );
            self.field_error(file, &root, &subject, &api_path, message);
        }
        let (object, issues) = decode_object(info, &root);
        for issue in &issues {
            let field = (!issue.path.is_empty()).then(|| issue.path.to_string());
            self.error(file, issue.mark, &subject, field, issue.message.clone());
        }
        let Some(mut object) = object else { return };
        for e in validate_object(&object)
            .into_iter()
            .chain(crate::ordering::check(&object))
        {
            if issues.iter().any(|i| repeats(i, &e)) {
                continue;
            }
            self.field_error(file, &root, &subject, &e.path, e.message);
        }
        apply_defaults(&mut object);
        object.set_type_meta();
        self.manifests.push(Manifest {
            file: file.clone(),
            line: root.mark.line,
            root,
            object,
        });
    }

    /// An app's namespace written into a namespaced object that names none, before it is
    /// read: its errors, checks and defaults then all see the namespace it will have.
    fn fill_namespace(&self, root: &mut Node) {
        let Some(namespace) = &self.namespace else {
            return;
        };
        let named = crate::kustomize::node::text_at(root, &["metadata", "namespace"])
            .is_some_and(|n| !n.is_empty());
        if named {
            return;
        }
        if let Some(meta) = crate::kustomize::node::ensure_map(root, "metadata") {
            let mark = meta.mark;
            crate::kustomize::node::set(
                meta,
                "namespace",
                crate::kustomize::node::string(namespace, mark),
            );
        }
    }

    fn list(&mut self, file: &Arc<str>, root: Node, in_list: bool, subject: &Subject) {
        if in_list {
            let message = "Forbidden: a List may not contain another List".to_string();
            self.field_error(file, &root, subject, &FieldPath::new("kind"), message);
            return;
        }
        let yaml::Value::Map(entries) = root.value else {
            return;
        };
        for (key, value) in entries {
            match key.as_str() {
                Some("apiVersion") => {
                    if value.as_str() != Some("v1") {
                        let message = format!(
                            "Unsupported value: {:?}: List is served as \"v1\"",
                            value.as_str().unwrap_or("")
                        );
                        self.error(
                            file,
                            value.mark,
                            subject,
                            Some("apiVersion".into()),
                            message,
                        );
                    }
                }
                Some("kind") | Some("metadata") => {}
                Some("items") => match value.value {
                    yaml::Value::Seq(items) => {
                        for item in items {
                            self.object(file, item, true);
                        }
                    }
                    _ if value.is_null() => {}
                    _ => {
                        let message = format!("expected a list, found {}", value.describe());
                        self.error(file, key.mark, subject, Some("items".into()), message);
                    }
                },
                other => {
                    let name = other.unwrap_or("");
                    self.error(
                        file,
                        key.mark,
                        subject,
                        Some(name.to_string()),
                        format!("unknown field {name:?}"),
                    );
                }
            }
        }
    }
}

/// The first character YAML does not allow in a stream (C0/C1 controls other than tab, line
/// breaks and NEL), with its position. The parser would otherwise stop at a NUL and quietly
/// drop the rest of the file.
fn forbidden_char(text: &str) -> Option<(Mark, char)> {
    let mut line = 1u32;
    let mut col = 1u32;
    for c in text.chars() {
        let allowed = matches!(c, '\t' | '\n' | '\r' | '\u{85}') || !(c.is_control());
        if !allowed {
            return Some((Mark { line, col }, c));
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    None
}

/// True when a validation error only repeats a decoding problem: the field failed to decode
/// (and holds a placeholder), or it is "missing" because it was misspelt (`imagee`).
fn repeats(issue: &Issue, e: &FieldError) -> bool {
    if !issue.path.is_empty() && e.path.starts_with(&issue.path) {
        return true;
    }
    match (issue.suggestion, issue.path.parent()) {
        (Some(meant), Some(parent)) => e.path.starts_with(&parent.field(meant)),
        _ => false,
    }
}

fn decode_object(info: &KindInfo, root: &Node) -> (Option<Object>, Vec<Issue>) {
    if info.kind == Kind::Secret {
        // Decoding messages for Secrets name types, never values.
        let (value, issues) = decode_with(root, true);
        (value.map(Object::Secret), issues)
    } else {
        Object::decode(info.kind, root)
    }
}
