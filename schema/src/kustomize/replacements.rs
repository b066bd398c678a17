//! `replacements`: a value copied from one object's field into fields of others, as
//! kustomize v5 does (whole values, or one part of a delimited value).

use super::context::{Builder, Loaded};
use super::kustomization::{FieldOptions, Replacement, Target};
use super::node::{self, get_mut, string};
use super::resource::Res;
use super::target::Matcher;
use crate::path::FieldPath;
use crate::yaml::{Node, Value};

pub fn run(b: &mut Builder<'_>, k: &Loaded, dir: &str, objects: &mut [Res]) {
    for (i, entry) in k.fields.replacements.iter().flatten().enumerate() {
        let at = FieldPath::new("replacements").index(i);
        let listed: Vec<Replacement> = match &entry.path {
            Some(path) => match from_file(b, k, dir, path, &at.field("path")) {
                Some(list) => list,
                None => continue,
            },
            None => vec![entry.clone()],
        };
        for r in &listed {
            if let Err(message) = replace(r, objects) {
                b.field_problem(k, &at, message);
            }
        }
    }
}

fn from_file(
    b: &mut Builder<'_>,
    k: &Loaded,
    dir: &str,
    path: &str,
    at: &FieldPath,
) -> Option<Vec<Replacement>> {
    let (file, bytes) = b.read_file(k, dir, path, at)?;
    let mut out = Vec::new();
    for doc in b.parse(&file, &bytes)? {
        let items = match &doc.value {
            Value::Seq(items) => items.clone(),
            _ => vec![doc.clone()],
        };
        for item in items {
            let (r, issues) = crate::decode::decode::<Replacement>(&item);
            for issue in issues {
                b.problem(&file, issue.mark, issue.message);
            }
            out.extend(r);
        }
    }
    Some(out)
}

fn replace(r: &Replacement, objects: &mut [Res]) -> Result<(), String> {
    let Some(source) = &r.source else {
        return Err("Required value: a replacement needs source (or path)".into());
    };
    let selector = Target {
        group: source.group.clone(),
        version: source.version.clone(),
        kind: source.kind.clone(),
        name: source.name.clone().map(|n| regex::escape(&n)),
        namespace: source.namespace.clone().map(|n| regex::escape(&n)),
        ..Target::default()
    };
    let matcher = Matcher::new(&selector)?;
    let found: Vec<&Res> = objects.iter().filter(|o| matcher.matches(o)).collect();
    let describe = || {
        format!(
            "{} {}",
            source.kind.as_deref().unwrap_or("object"),
            source.name.as_deref().unwrap_or("")
        )
    };
    let res = match found.as_slice() {
        [one] => *one,
        [] => {
            return Err(format!(
                "Not found: the replacement's source {} matches no object",
                describe()
            ));
        }
        many => {
            return Err(format!(
                "the replacement's source {} matches {} objects; name one",
                describe(),
                many.len()
            ));
        }
    };
    let field_path = source.field_path.as_deref().unwrap_or("metadata.name");
    let mut nodes = Vec::new();
    let mut copy = res.node.clone();
    walk(&mut copy, &split(field_path), false, &mut |n| {
        nodes.push(n.clone())
    });
    let Some(mut value) = nodes.into_iter().next() else {
        return Err(format!(
            "Not found: the source {} has no field {field_path}",
            describe()
        ));
    };
    if let Some(opts) = &source.options
        && let Some(delimiter) = opts.delimiter.as_deref().filter(|d| !d.is_empty())
    {
        let text = value.as_str().unwrap_or("").to_string();
        let parts: Vec<&str> = text.split(delimiter).collect();
        let i = opts.index.unwrap_or(0);
        let part = usize::try_from(i)
            .ok()
            .and_then(|i| parts.get(i))
            .ok_or_else(|| {
                format!(
                    "options.index {i} is out of range for the source value's {} parts",
                    parts.len()
                )
            })?;
        value = string(part, value.mark);
    }
    for (t, target) in r.targets.iter().flatten().enumerate() {
        let Some(select) = &target.select else {
            return Err(format!(
                "Required value: targets[{t}].select: a replacement target needs select"
            ));
        };
        let select = Matcher::new(select)?;
        let rejects: Vec<Matcher> = target
            .reject
            .iter()
            .flatten()
            .map(Matcher::new)
            .collect::<Result<_, _>>()?;
        let create = target
            .options
            .as_ref()
            .and_then(|o| o.create)
            .unwrap_or(false);
        for obj in objects.iter_mut() {
            if !select.matches(obj) || rejects.iter().any(|m| m.matches(obj)) {
                continue;
            }
            let mark = obj.mark();
            let default_path = vec!["metadata.name".to_string()];
            let paths = target
                .field_paths
                .as_ref()
                .filter(|p| !p.is_empty())
                .unwrap_or(&default_path);
            for path in paths {
                let mut v = value.clone();
                node::remark(&mut v, mark);
                let mut hit = false;
                walk(&mut obj.node, &split(path), create, &mut |at| {
                    hit = true;
                    set_value(at, &v, target.options.as_ref())
                });
                node::check_size(&obj.node)
                    .map_err(|e| format!("targets[{t}]: {} {}: {e}", obj.kind(), obj.name()))?;
                if !hit {
                    return Err(format!(
                        "Not found: targets[{t}]: {} {} has no field {path} (give options.create: true to make it)",
                        obj.kind(),
                        obj.name()
                    ));
                }
            }
        }
    }
    Ok(())
}

fn set_value(at: &mut Node, value: &Node, options: Option<&FieldOptions>) {
    let delimiter = options
        .and_then(|o| o.delimiter.as_deref())
        .filter(|d| !d.is_empty());
    match (delimiter, at.as_str().filter(|_| !at.is_null())) {
        (Some(d), Some(current)) => {
            let mut parts: Vec<String> = current.split(d).map(str::to_string).collect();
            let i = options.and_then(|o| o.index).unwrap_or(0);
            let text = value.as_str().unwrap_or("").to_string();
            match usize::try_from(i) {
                Ok(i) if i < parts.len() => parts[i] = text,
                Ok(_) => parts.push(text),
                Err(_) => parts.insert(0, text),
            }
            *at = string(&parts.join(d), at.mark);
        }
        // A scalar takes the value and keeps its own type: a number copied into a quoted
        // ConfigMap value stays a string, a string "3" copied into `replicas: 1` is the
        // number 3, as kustomize keeps the target's tag.
        (_, Some(_)) if value.as_str().is_some() && !value.is_null() => {
            if let (Value::Scalar(_, style), Some(text)) = (&at.value, value.as_str()) {
                *at = Node {
                    mark: at.mark,
                    value: Value::Scalar(text.to_string(), *style),
                };
            }
        }
        _ => *at = value.clone(),
    }
}

/// A field path's parts: dots separate them, except inside `[...]`.
fn split(path: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => {
                depth += 1;
                current.push(c);
            }
            ']' => {
                depth -= 1;
                current.push(c);
            }
            '.' if depth == 0 => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts
}

/// Calls `f` on each node at `parts`: a mapping key, `[KEY=VALUE]` for the list item whose
/// field matches, a number for a list index, `*` for every item. With `create`, missing
/// mapping fields are made.
fn walk(node: &mut Node, parts: &[String], create: bool, f: &mut dyn FnMut(&mut Node)) {
    let Some((first, rest)) = parts.split_first() else {
        f(node);
        return;
    };
    if let Some(inner) = first.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        if let Some((key, want)) = inner.split_once('=') {
            if let Value::Seq(items) = &mut node.value {
                // `[=VALUE]` is the list item that is VALUE; `[KEY=VALUE]` the one whose KEY is.
                let chosen = |i: &Node| match key {
                    "" => i.as_str() == Some(want),
                    key => node::text_at(i, &[key]) == Some(want),
                };
                for item in items.iter_mut().filter(|i| chosen(i)) {
                    walk(item, rest, create, f);
                }
            }
            return;
        }
        return step(node, inner, rest, create, f);
    }
    if let Value::Seq(items) = &mut node.value {
        if first == "*" {
            items.iter_mut().for_each(|i| walk(i, rest, create, f));
        } else if let Some(item) = first.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
            walk(item, rest, create, f);
        }
        return;
    }
    step(node, first, rest, create, f);
}

fn step(node: &mut Node, key: &str, rest: &[String], create: bool, f: &mut dyn FnMut(&mut Node)) {
    if get_mut(node, key).is_none() && create && matches!(node.value, Value::Map(_)) {
        let mark = node.mark;
        let fresh = if rest.is_empty() {
            string("", mark)
        } else {
            node::map(mark)
        };
        node::set(node, key, fresh);
    }
    if let Some(child) = get_mut(node, key) {
        walk(child, rest, create, f);
    }
}
