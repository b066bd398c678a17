//! `patches`, and the deprecated `patchesStrategicMerge` and `patchesJson6902`: strategic
//! merge and JSON 6902 patches, each applied to the objects its target (or, for a strategic
//! merge patch without one, its own kind and name) selects.

use super::context::{Builder, Loaded};
use super::json_patch;
use super::kustomization::{Patch, Target};
use super::node::{self, remark};
use super::resource::Res;
use super::smp::{self, Outcome};
use super::target::Matcher;
use crate::path::FieldPath;
use crate::yaml::{Node, Value};

/// A patch's documents, with where problems in them are reported.
struct Source {
    /// The file a problem is located in, and the node standing for the whole patch there.
    file: String,
    docs: Vec<Node>,
    /// Set for an inline patch: its documents' marks are relative to the string, so
    /// problems are located at the kustomization's field instead.
    inline_at: Option<FieldPath>,
}

/// `patches`: each with a path or an inline patch, and an optional target.
pub fn patches(b: &mut Builder<'_>, k: &Loaded, dir: &str, objects: &mut Vec<Res>) {
    for (i, p) in k.fields.patches.iter().flatten().enumerate() {
        let at = FieldPath::new("patches").index(i);
        let Some(source) = read(b, k, dir, p, &at) else {
            continue;
        };
        let matcher = match p.target.as_ref().map(Matcher::new).transpose() {
            Ok(m) => m,
            Err(e) => {
                b.field_problem(k, &at.field("target"), format!("Invalid value: {e}"));
                continue;
            }
        };
        let allow = Allow::of(p);
        for doc in &source.docs {
            if let Value::Seq(_) = doc.value {
                let Some(matcher) = &matcher else {
                    b.field_problem(
                        k,
                        &at,
                        "Required value: a JSON 6902 patch (a list of operations) needs a target",
                    );
                    continue;
                };
                json6902(b, k, &at, &source, doc, matcher, objects);
            } else {
                strategic(b, k, &at, &source, doc, matcher.as_ref(), allow, objects);
            }
        }
    }
}

/// `patchesStrategicMerge`: paths to strategic merge patches, or the patches inline.
pub fn strategic_merge_list(b: &mut Builder<'_>, k: &Loaded, dir: &str, objects: &mut Vec<Res>) {
    for (i, entry) in k
        .fields
        .patches_strategic_merge
        .iter()
        .flatten()
        .enumerate()
    {
        let at = FieldPath::new("patchesStrategicMerge").index(i);
        // An entry is inline YAML when it spans lines or is a mapping; a path otherwise.
        let inline = entry.contains('\n') || entry.trim_start().starts_with('{');
        let p = Patch {
            path: (!inline).then(|| entry.clone()),
            patch: inline.then(|| entry.clone()),
            ..Patch::default()
        };
        let Some(source) = read(b, k, dir, &p, &at) else {
            continue;
        };
        for doc in &source.docs {
            strategic(b, k, &at, &source, doc, None, Allow::default(), objects);
        }
    }
}

/// `patchesJson6902`: JSON patches with their targets.
pub fn json6902_list(b: &mut Builder<'_>, k: &Loaded, dir: &str, objects: &mut [Res]) {
    for (i, p) in k.fields.patches_json6902.iter().flatten().enumerate() {
        let at = FieldPath::new("patchesJson6902").index(i);
        let Some(target) = &p.target else {
            b.field_problem(k, &at.field("target"), "Required value");
            continue;
        };
        let matcher = match Matcher::new(&exact(target)) {
            Ok(m) => m,
            Err(e) => {
                b.field_problem(k, &at.field("target"), format!("Invalid value: {e}"));
                continue;
            }
        };
        let Some(source) = read(b, k, dir, p, &at) else {
            continue;
        };
        for doc in &source.docs {
            json6902(b, k, &at, &source, doc, &matcher, objects);
        }
    }
}

/// A legacy target names one object exactly: its name is not a pattern.
fn exact(target: &Target) -> Target {
    let mut t = target.clone();
    t.name = t.name.map(|n| regex::escape(&n));
    t.namespace = t.namespace.map(|n| regex::escape(&n));
    t
}

#[derive(Default, Clone, Copy)]
struct Allow {
    name: bool,
    kind: bool,
}

impl Allow {
    fn of(p: &Patch) -> Self {
        let o = p.options.as_ref();
        Self {
            name: o.and_then(|o| o.allow_name_change).unwrap_or(false),
            kind: o.and_then(|o| o.allow_kind_change).unwrap_or(false),
        }
    }
}

fn read(b: &mut Builder<'_>, k: &Loaded, dir: &str, p: &Patch, at: &FieldPath) -> Option<Source> {
    match (&p.path, &p.patch) {
        (Some(_), Some(_)) => {
            b.field_problem(
                k,
                at,
                "Invalid value: a patch has a path or an inline patch, not both",
            );
            None
        }
        (None, None) => {
            b.field_problem(k, at, "Required value: a patch needs path or patch");
            None
        }
        (Some(path), None) => {
            let (file, bytes) = b.read_file(k, dir, path, &at.field("path"))?;
            let docs = b.parse(&file, &bytes)?;
            Some(Source {
                file,
                docs,
                inline_at: None,
            })
        }
        (None, Some(text)) => {
            let docs = match crate::yaml::parse_documents(text) {
                Ok(docs) => docs.into_iter().filter_map(|d| d.root).collect(),
                Err(e) => {
                    let message = format!(
                        "YAML syntax error in the inline patch, at its line {}: {}",
                        e.mark, e.message
                    );
                    b.field_problem(k, &at.field("patch"), message);
                    return None;
                }
            };
            Some(Source {
                file: k.file.to_string(),
                docs,
                inline_at: Some(at.field("patch")),
            })
        }
    }
}

fn report(
    b: &mut Builder<'_>,
    k: &Loaded,
    at: &FieldPath,
    source: &Source,
    doc: &Node,
    message: String,
) {
    match &source.inline_at {
        Some(field) => b.field_problem(k, field, message),
        None if source.file == *k.file => b.field_problem(k, at, message),
        None => b.problem(&source.file.clone(), doc.mark, message),
    }
}

#[allow(clippy::too_many_arguments)]
fn strategic(
    b: &mut Builder<'_>,
    k: &Loaded,
    at: &FieldPath,
    source: &Source,
    doc: &Node,
    matcher: Option<&Matcher>,
    allow: Allow,
    objects: &mut Vec<Res>,
) {
    if !matches!(doc.value, Value::Map(_)) {
        let message = format!(
            "a strategic merge patch is a mapping, found {}",
            doc.describe()
        );
        return report(b, k, at, source, doc, message);
    }
    let selected: Vec<usize> = match matcher {
        Some(m) => (0..objects.len())
            .filter(|&i| m.matches(&objects[i]))
            .collect(),
        None => match own_target(doc, objects) {
            Ok(i) => vec![i],
            Err(message) => return report(b, k, at, source, doc, message),
        },
    };
    let mut deleted = Vec::new();
    for i in selected {
        let res = &mut objects[i];
        let mut patch = doc.clone();
        remark(&mut patch, res.mark());
        let new_name = node::text_at(&patch, &["metadata", "name"]).map(str::to_string);
        if let Some(meta) = node::get_mut(&mut patch, "metadata") {
            node::remove(meta, "name");
            node::remove(meta, "namespace");
        }
        if !allow.kind {
            node::remove(&mut patch, "apiVersion");
            node::remove(&mut patch, "kind");
        }
        let mut patched = res.node.clone();
        let schema = smp::Schema {
            builtin: res.is_builtin(),
            service: res.kind() == "Service" && res.group().is_empty(),
        };
        match smp::merge(&mut patched, &patch, schema) {
            Ok(Outcome::Deleted) => deleted.push(i),
            Ok(Outcome::Patched) if let Err(e) = node::check_size(&patched) => {
                let message = format!("cannot patch {} {}: {e}", res.kind(), res.name());
                report(b, k, at, source, doc, message);
            }
            Ok(Outcome::Patched) => {
                res.node = patched;
                if allow.name
                    && let Some(name) = new_name
                {
                    res.rename(&name);
                }
            }
            Err(e) => {
                let message = format!("cannot patch {} {}: {e}", res.kind(), res.name());
                report(b, k, at, source, doc, message);
            }
        }
    }
    for i in deleted.into_iter().rev() {
        objects.remove(i);
    }
}

/// The one object a strategic merge patch without a target names by its own kind, name and
/// namespace (current or original names both count, as a base's names do in an overlay).
fn own_target(doc: &Node, objects: &[Res]) -> Result<usize, String> {
    let kind = node::text_at(doc, &["kind"]).unwrap_or("");
    let name = node::text_at(doc, &["metadata", "name"]).unwrap_or("");
    if kind.is_empty() || name.is_empty() {
        return Err("a strategic merge patch without a target needs kind and metadata.name to say what it patches".into());
    }
    let group = node::text_at(doc, &["apiVersion"]).map(crate::kinds::api_group);
    let namespace = node::text_at(doc, &["metadata", "namespace"]);
    let found: Vec<usize> = (0..objects.len())
        .filter(|&i| {
            let o = &objects[i];
            o.kind() == kind
                && group.is_none_or(|g| g == o.group())
                && (o.name() == name || o.original().name == name)
                && o.is_in(namespace.unwrap_or(""))
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!(
            "Not found: no {kind} named {name:?} to patch among the kustomization's objects"
        )),
        many => {
            let exact: Vec<usize> = many
                .iter()
                .copied()
                .filter(|&i| objects[i].name() == name)
                .collect();
            match exact.as_slice() {
                [one] => Ok(*one),
                _ => Err(format!(
                    "the patch matches {} objects named {name:?} of kind {kind}; give metadata.namespace or a target",
                    many.len()
                )),
            }
        }
    }
}

fn json6902(
    b: &mut Builder<'_>,
    k: &Loaded,
    at: &FieldPath,
    source: &Source,
    doc: &Node,
    matcher: &Matcher,
    objects: &mut [Res],
) {
    let ops = match json_patch::read_ops(doc) {
        Ok(ops) => ops,
        Err((i, message)) => {
            let message = format!("operation {i}: {message}");
            return report(b, k, at, source, doc, message);
        }
    };
    for res in objects.iter_mut().filter(|r| matcher.matches(r)) {
        let mut ops_here: Vec<json_patch::Op> = Vec::new();
        for op in &ops {
            let mut value = op.value.clone();
            if let Some(v) = value.as_mut() {
                remark(v, res.mark());
            }
            ops_here.push(json_patch::Op {
                op: op.op.clone(),
                path: op.path.clone(),
                from: op.from.clone(),
                value,
            });
        }
        let mut patched = res.node.clone();
        match json_patch::apply(&mut patched, &ops_here) {
            Ok(()) => {
                let before = res.id();
                res.node = patched;
                if res.id() != before {
                    res.history.push(before);
                }
            }
            Err((i, e)) => {
                let message = format!(
                    "cannot patch {} {}: operation {i}: {e}",
                    res.kind(),
                    res.name()
                );
                report(b, k, at, source, doc, message);
            }
        }
    }
}
