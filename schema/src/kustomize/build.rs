//! Building one kustomization, as kustomize v5 does: its resources (files and other
//! kustomizations), then its components, then its generators, then its transformers in
//! kustomize's order. The top-level build then names generated objects after their
//! content's hash and points every reference at the renamed objects.

use std::sync::Arc;

use super::Problem;
use super::context::{Builder, Loaded, display_dir};
use super::kustomization::{self, FILE_NAMES};
use super::paths::{self, join};
use super::resource::Res;
use crate::path::FieldPath;
use crate::yaml::{Mark, Node, Value};

/// Kustomizations nest at most this deep (a chain longer than this is a cycle in all but
/// name).
const MAX_DEPTH: usize = 32;

impl<'a> Builder<'a> {
    /// Builds the kustomization in `dir` as the top of a tree: its objects in kustomize's
    /// output order, or `None` when it has problems (which are recorded).
    pub fn build(&mut self, dir: &str) -> Option<Vec<Res>> {
        let before = self.problems.len();
        let (objects, order) = self.accumulate(dir, false, Vec::new())?;
        let mut objects = objects;
        super::generators::add_hashes(&mut objects);
        super::names::fix_references(&mut objects);
        for res in &mut objects {
            super::node::keep_yaml12_strings(&mut res.node);
        }
        if order.as_deref() != Some("fifo") {
            super::order::legacy_sort(&mut objects);
        }
        (self.problems.len() == before).then_some(objects)
    }

    /// Reads and parses a kustomization.
    fn load(&mut self, dir: &str, component: bool) -> Option<Loaded> {
        let path = self.kustomization_file(dir)?;
        self.consumed.insert(path.clone());
        let all: Vec<&str> = FILE_NAMES
            .iter()
            .copied()
            .filter(|name| join(dir, name).is_ok_and(|p| self.files.is_file(&p)))
            .collect();
        if all.len() > 1 {
            let message = format!(
                "this folder has {}; kustomize reads one, so keep one",
                all.join(" and ")
            );
            self.problem(&path, Mark { line: 1, col: 1 }, message);
        }
        let bytes = self.files.read(&path).unwrap_or_default();
        let root = self.parse_one(&path, &bytes)?;
        let (fields, problems) = kustomization::read(&root, component);
        for p in problems {
            self.problems.push(Problem {
                file: path.clone(),
                mark: p.mark,
                field: p.field,
                message: p.message,
            });
        }
        Some(Loaded {
            file: Arc::from(path.as_str()),
            root,
            fields,
        })
    }

    fn parse_one(&mut self, path: &str, bytes: &[u8]) -> Option<Node> {
        let docs = self.parse(path, bytes)?;
        let mut roots = docs.into_iter();
        match roots.next() {
            Some(root) => Some(root),
            None => {
                self.problem(path, Mark { line: 1, col: 1 }, "the kustomization is empty");
                None
            }
        }
    }

    /// Everything the kustomization in `dir` makes, on top of `input` (a component works on
    /// its parent's objects), and its sort order.
    fn accumulate(
        &mut self,
        dir: &str,
        component: bool,
        input: Vec<Res>,
    ) -> Option<(Vec<Res>, Option<String>)> {
        if self.stack.len() >= MAX_DEPTH {
            let at = self.stack.last().cloned().unwrap_or_default();
            self.problem(
                &at,
                Mark { line: 1, col: 1 },
                format!("kustomizations nest deeper than {MAX_DEPTH} levels"),
            );
            return None;
        }
        let k = self.load(dir, component)?;
        self.stack.push(dir.to_string());
        self.consumed.insert(dir.to_string());
        let mut objects = input;
        let f = &k.fields;
        let lists = [("resources", &f.resources), ("bases", &f.bases)];
        for (field, entries) in lists {
            for (i, entry) in entries.iter().flatten().enumerate() {
                let at = FieldPath::new(field).index(i);
                self.resource(&k, dir, entry, &at, &mut objects);
            }
        }
        for (i, entry) in f.components.iter().flatten().enumerate() {
            let at = FieldPath::new("components").index(i);
            objects = self.component(&k, dir, entry, &at, objects);
        }
        super::generators::run(self, &k, dir, &mut objects);
        self.transform(&k, dir, &mut objects);
        self.stack.pop();
        let order = f.sort_options.as_ref().and_then(|s| s.order.clone());
        Some((objects, order))
    }

    fn transform(&mut self, k: &Loaded, dir: &str, objects: &mut Vec<Res>) {
        super::patches::strategic_merge_list(self, k, dir, objects);
        super::patches::patches(self, k, dir, objects);
        if let Some(ns) = k.fields.namespace.as_deref().filter(|n| !n.is_empty()) {
            super::names::set_namespace(objects, ns);
        }
        super::names::prefix_suffix(&k.fields, objects);
        super::fields::labels(&k.fields, objects);
        super::fields::annotations(&k.fields, objects);
        super::patches::json6902_list(self, k, dir, objects);
        for i in super::fields::replicas(&k.fields, objects) {
            let name = k
                .fields
                .replicas
                .iter()
                .flatten()
                .nth(i)
                .and_then(|r| r.name.clone())
                .unwrap_or_default();
            let message = format!(
                "Not found: no Deployment, ReplicaSet, ReplicationController or StatefulSet named {name:?} to scale"
            );
            self.field_problem(
                k,
                &FieldPath::new("replicas").index(i).field("name"),
                message,
            );
        }
        super::fields::images(&k.fields, objects);
        super::replacements::run(self, k, dir, objects);
    }

    /// One entry of `resources`: a file of objects, or a folder with a kustomization.
    fn resource(
        &mut self,
        k: &Loaded,
        dir: &str,
        entry: &str,
        at: &FieldPath,
        objects: &mut Vec<Res>,
    ) {
        if paths::is_remote(entry) {
            let message = format!(
                "Unsupported value: {entry:?}: remote resources are not fetched by keel; commit them into the repository"
            );
            self.field_problem(k, at, message);
            return;
        }
        let path = match join(dir, entry) {
            Ok(p) => p,
            Err(e) => return self.field_problem(k, at, format!("Invalid value: {e}")),
        };
        let added: Vec<Res> = if let Some(bytes) = self.files.read(&path) {
            if !paths::within(dir, &path) {
                let message = format!(
                    "Forbidden: file {entry:?} is not in or below {:?} (kustomize's load restriction); list its folder's kustomization instead",
                    display_dir(dir)
                );
                return self.field_problem(k, at, message);
            }
            self.consumed.insert(path.clone());
            self.objects_of(&path, &bytes)
        } else if self.files.is_dir(&path) {
            if self.stack.contains(&path) {
                let message = format!(
                    "Invalid value: {entry:?}: the kustomizations include each other in a cycle"
                );
                return self.field_problem(k, at, message);
            }
            if self.kustomization_file(&path).is_none() {
                let message =
                    format!("Invalid value: {entry:?}: the folder has no kustomization.yaml");
                return self.field_problem(k, at, message);
            }
            if let Some((objects, problems)) = self.built.get(&path).cloned() {
                self.problems.extend(problems);
                objects
            } else {
                let before = self.problems.len();
                let Some((objects, _)) = self.accumulate(&path, false, Vec::new()) else {
                    return;
                };
                let problems = self.problems[before..].to_vec();
                self.built.insert(path.clone(), (objects.clone(), problems));
                objects
            }
        } else {
            self.missing.insert(path.clone());
            let message = if paths::above_root(&path) {
                format!("Not found: {entry:?}: it lies above the folder keel reads")
            } else {
                format!("Not found: {entry:?}: no such file or folder in the revision")
            };
            return self.field_problem(k, at, message);
        };
        self.add(k, at, objects, added);
    }

    fn component(
        &mut self,
        k: &Loaded,
        dir: &str,
        entry: &str,
        at: &FieldPath,
        objects: Vec<Res>,
    ) -> Vec<Res> {
        let path = match join(dir, entry) {
            Ok(p) => p,
            Err(e) => {
                self.field_problem(k, at, format!("Invalid value: {e}"));
                return objects;
            }
        };
        if paths::is_remote(entry)
            || !self.files.is_dir(&path)
            || self.kustomization_file(&path).is_none()
        {
            let message = format!(
                "Invalid value: {entry:?}: a component is a folder of the revision with a kustomization.yaml of kind Component"
            );
            self.field_problem(k, at, message);
            return objects;
        }
        if self.stack.contains(&path) {
            let message = format!(
                "Invalid value: {entry:?}: the kustomizations include each other in a cycle"
            );
            self.field_problem(k, at, message);
            return objects;
        }
        let kept = objects.clone();
        match self.accumulate(&path, true, objects) {
            Some((objects, _)) => objects,
            None => kept,
        }
    }

    /// The objects of a manifest file (a `List`'s items each count).
    fn objects_of(&mut self, path: &str, bytes: &[u8]) -> Vec<Res> {
        let file: Arc<str> = Arc::from(path);
        let mut out = Vec::new();
        let roots = self.parse(path, bytes).unwrap_or_default();
        let roots = match crate::encrypted::open(roots, self.decrypt) {
            Ok(roots) => roots,
            Err(refused) => {
                self.problem(path, refused.mark, refused.message);
                return Vec::new();
            }
        };
        for root in roots {
            if !matches!(root.value, Value::Map(_)) {
                self.problem(path, root.mark, format!("expected a Kubernetes object (a mapping with apiVersion and kind), found {}", root.describe()));
                continue;
            }
            if root.get("kind").and_then(Node::as_str) == Some("List") {
                if let Some(Value::Seq(items)) = root.get("items").map(|n| &n.value) {
                    out.extend(items.iter().map(|i| Res::new(i.clone(), file.clone())));
                }
                continue;
            }
            if root
                .get("kind")
                .and_then(Node::as_str)
                .is_none_or(str::is_empty)
                || super::node::text_at(&root, &["metadata", "name"]).is_none()
            {
                self.problem(
                    path,
                    root.mark,
                    "a resource of a kustomization needs kind and metadata.name",
                );
                continue;
            }
            out.push(Res::new(root, file.clone()));
        }
        out
    }
}
