//! Objects of kinds keel does not build in: each waits until every file of the revision
//! is read, then is read against the revision's CustomResourceDefinition for its kind,
//! stored opaque when keel.yaml's `acceptUnknownKinds` lists it, or refused.

use std::sync::Arc;

use super::{Loader, Manifest, Subject, repeats};
use crate::defaults::apply_defaults;
use crate::error::ManifestError;
use crate::kinds::{CustomKind, Object, api_group, group_version};
use crate::path::FieldPath;
use crate::repo_config::RepoConfig;
use crate::types::apiextensions::CustomResourceDefinition;
use crate::validate::custom_objects::{as_written, read_custom_object, validate_custom_object};
use crate::validate::validate_object;
use crate::yaml::Node;

/// An object of a kind keel does not build in, waiting for every file to be read.
pub(super) struct UnknownKind {
    /// The error for a kind nothing declares.
    error: ManifestError,
    file: Arc<str>,
    api_version: String,
    root: Node,
}

impl Loader {
    /// An object of a kind keel does not build in: `message` (at `path`) is its error
    /// unless the revision turns out to declare its kind.
    pub(super) fn defer_unknown(
        &mut self,
        file: &Arc<str>,
        root: Node,
        subject: &Subject,
        path: &FieldPath,
        message: String,
        api_version: String,
    ) {
        let before = self.errors.len();
        self.field_error(file, &root, subject, path, message);
        if let Some(error) = self.errors.drain(before..).next() {
            self.unknown_kinds.push(UnknownKind {
                error,
                file: file.clone(),
                api_version,
                root,
            });
        }
    }

    /// The errors of objects of unknown kinds, now that every CustomResourceDefinition of
    /// the revision is known: one that a definition declares says so.
    pub(super) fn settle_unknown_kinds(&mut self, config: &RepoConfig) {
        for unknown in std::mem::take(&mut self.unknown_kinds) {
            let UnknownKind {
                error,
                file,
                api_version,
                root,
            } = unknown;
            let kind = error.kind.clone().unwrap_or_default();
            let group = api_group(&api_version);
            let declared = self.manifests.iter().find_map(|m| match &m.object {
                Object::CustomResourceDefinition(crd)
                    if crd.spec.group == group && crd.spec.names.kind == kind =>
                {
                    Some(crd.clone())
                }
                _ => None,
            });
            match declared {
                Some(crd) => self.custom_object(&file, root, &crd, &api_version),
                None => match CustomKind::of_object(&api_version, &kind, true) {
                    Some(opaque) if config.accepts_unknown(group, &kind) => {
                        let mut root = root;
                        self.fill_namespace(&mut root);
                        let fields = as_written(&root);
                        self.read_custom(&file, root, opaque, fields)
                    }
                    _ => self.errors.push(error),
                },
            }
        }
    }

    /// An object of a kind the revision's `crd` declares: checked against the schema of
    /// its version, then read, validated and defaulted as every object is.
    fn custom_object(
        &mut self,
        file: &Arc<str>,
        root: Node,
        crd: &CustomResourceDefinition,
        api_version: &str,
    ) {
        let mut root = root;
        if crd.spec.scope != "Cluster" {
            self.fill_namespace(&mut root);
        }
        let subject = Subject::scoped(&root, crd.spec.scope != "Cluster");
        let kind = CustomKind::of_definition(crd, group_version(api_version));
        match validate_custom_object(&root, crd, api_version, &mut self.schemas) {
            Ok(fields) => self.read_custom(file, root, kind, fields),
            Err(errors) => {
                for e in errors {
                    self.field_error(file, &root, &subject, &e.path, e.message);
                }
                // Its metadata's problems are told now too, not after the body's are fixed.
                self.checked_custom(file, &root, kind, serde_json::Map::new());
            }
        }
    }

    /// A custom object, its body checked already (or accepted unchecked): read, validated
    /// and defaulted as every object is, and kept if it is valid.
    fn read_custom(
        &mut self,
        file: &Arc<str>,
        root: Node,
        kind: CustomKind,
        fields: serde_json::Map<String, serde_json::Value>,
    ) {
        if let Some(mut object) = self.checked_custom(file, &root, kind, fields) {
            apply_defaults(&mut object);
            self.manifests.push(Manifest {
                file: file.clone(),
                line: root.mark.line,
                root,
                object,
            });
        }
    }

    /// `root` read as an object of `kind` with `fields`, its problems reported (metadata
    /// included); the object, unless it could not be read.
    fn checked_custom(
        &mut self,
        file: &Arc<str>,
        root: &Node,
        kind: CustomKind,
        fields: serde_json::Map<String, serde_json::Value>,
    ) -> Option<Object> {
        let subject = Subject::scoped(root, kind.info().namespaced);
        let (object, issues) = read_custom_object(root, kind, fields);
        for issue in &issues {
            let field = (!issue.path.is_empty()).then(|| issue.path.to_string());
            self.error(file, issue.mark, &subject, field, issue.message.clone());
        }
        let object = Object::Custom(object?);
        for e in validate_object(&object) {
            if issues.iter().any(|i| repeats(i, &e)) {
                continue;
            }
            self.field_error(file, root, &subject, &e.path, e.message);
        }
        Some(object)
    }
}
