//! Small edits on located YAML trees, the material kustomize works on: values found, set
//! and removed by key, new values made, and a tree's JSON meaning (for comparisons and hashes).

use serde_json::Value as Json;

use crate::yaml::{Mark, Node, Style, Value, resolve_int, resolve_null};

/// A string value. Quoted, so that `"8080"` or `"true"` stays a string wherever it goes.
pub fn string(text: &str, mark: Mark) -> Node {
    Node {
        mark,
        value: Value::Scalar(text.to_string(), Style::Quoted),
    }
}

/// An empty mapping.
pub fn map(mark: Mark) -> Node {
    Node {
        mark,
        value: Value::Map(Vec::new()),
    }
}

pub fn get_mut<'a>(node: &'a mut Node, key: &str) -> Option<&'a mut Node> {
    match &mut node.value {
        Value::Map(entries) => entries
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// The text at `path` (keys from `node`), when it is a scalar.
pub fn text_at<'a>(node: &'a Node, path: &[&str]) -> Option<&'a str> {
    let mut at = node;
    for key in path {
        at = at.get(key)?;
    }
    at.as_str().filter(|_| !at.is_null())
}

/// Sets `key` to `value` in a mapping (a null node becomes a mapping first), keeping the
/// key's place when it exists.
pub fn set(node: &mut Node, key: &str, value: Node) {
    if node.is_null() {
        node.value = Value::Map(Vec::new());
    }
    let Value::Map(entries) = &mut node.value else {
        return;
    };
    match entries.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
        Some((_, v)) => *v = value,
        None => entries.push((string_key(key, value.mark), value)),
    }
}

/// A mapping key as YAML writes it: plain.
pub fn string_key(key: &str, mark: Mark) -> Node {
    Node {
        mark,
        value: Value::Scalar(key.to_string(), Style::Plain),
    }
}

/// Removes `key` from a mapping, returning its value.
pub fn remove(node: &mut Node, key: &str) -> Option<Node> {
    let Value::Map(entries) = &mut node.value else {
        return None;
    };
    let at = entries.iter().position(|(k, _)| k.as_str() == Some(key))?;
    Some(entries.remove(at).1)
}

/// The mapping under `key`, made (or made from a null) when missing. `None` when the value
/// there is a scalar or a list: kustomize leaves such fields alone.
pub fn ensure_map<'a>(node: &'a mut Node, key: &str) -> Option<&'a mut Node> {
    let mark = node.mark;
    if node.is_null() {
        node.value = Value::Map(Vec::new());
    }
    if !matches!(node.value, Value::Map(_)) {
        return None;
    }
    if get_mut(node, key).is_none_or(|v| v.is_null()) {
        set(node, key, map(mark));
    }
    get_mut(node, key).filter(|v| matches!(v.value, Value::Map(_)))
}

/// Every node of `node` re-marked at `mark`: values a patch or generator brings into an
/// object are located at the object itself, not at lines of another file.
pub fn remark(node: &mut Node, mark: Mark) {
    node.mark = mark;
    match &mut node.value {
        Value::Scalar(..) => {}
        Value::Seq(items) => items.iter_mut().for_each(|n| remark(n, mark)),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            remark(k, mark);
            remark(v, mark);
        }),
    }
}

/// What a tree means as JSON, plain scalars resolved as kustomize reads them: `null`/`~`,
/// `true`/`false` (not YAML 1.1's `yes` or `on`), integers (YAML 1.1's, octal `0644`
/// included) and floats; the rest are strings.
pub fn to_json(node: &Node) -> Json {
    match &node.value {
        Value::Scalar(text, Style::Plain) => plain(text),
        Value::Scalar(text, _) => Json::String(text.clone()),
        Value::Seq(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), to_json(v))))
                .collect(),
        ),
    }
}

fn plain(text: &str) -> Json {
    if resolve_null(text) {
        return Json::Null;
    }
    match text {
        "true" | "True" | "TRUE" => return Json::Bool(true),
        "false" | "False" | "FALSE" => return Json::Bool(false),
        _ => {}
    }
    // Integers as kustomize reads them: `0644` is octal, as in YAML 1.1.
    if let Some(i) = resolve_int(text) {
        return Json::from(i);
    }
    let numeric = text.chars().any(|c| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if numeric
        && let Some(n) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
    {
        return Json::Number(n);
    }
    Json::String(text.to_string())
}

/// A located tree from JSON, every node at `mark`: strings quoted, other scalars plain.
pub fn from_json(json: &Json, mark: Mark) -> Node {
    let value = match json {
        Json::Null => Value::Scalar("null".into(), Style::Plain),
        Json::Bool(b) => Value::Scalar(b.to_string(), Style::Plain),
        Json::Number(n) => Value::Scalar(n.to_string(), Style::Plain),
        Json::String(s) => Value::Scalar(s.clone(), Style::Quoted),
        Json::Array(items) => Value::Seq(items.iter().map(|i| from_json(i, mark)).collect()),
        Json::Object(fields) => Value::Map(
            fields
                .iter()
                .map(|(k, v)| (string_key(k, mark), from_json(v, mark)))
                .collect(),
        ),
    };
    Node { mark, value }
}

/// The most nodes one object may grow to through patches and replacements, and how deep
/// it may nest (as deep as a file may): a few copy operations would otherwise double an
/// object until memory or the stack runs out.
pub const MAX_OBJECT_NODES: usize = 200_000;

/// `Err` says how an object grew past [`MAX_OBJECT_NODES`] or [`crate::yaml::MAX_DEPTH`].
/// Counts without recursion, and stops at the first excess.
pub fn check_size(root: &Node) -> Result<(), String> {
    let mut stack = vec![(root, 0usize)];
    let mut count = 0usize;
    while let Some((node, depth)) = stack.pop() {
        count += 1;
        if count > MAX_OBJECT_NODES {
            return Err(format!("the object grows past {MAX_OBJECT_NODES} values"));
        }
        if depth > crate::yaml::MAX_DEPTH {
            return Err(format!(
                "the object nests deeper than {} levels",
                crate::yaml::MAX_DEPTH
            ));
        }
        match &node.value {
            Value::Scalar(..) => {}
            Value::Seq(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Map(entries) => stack.extend(entries.iter().map(|(_, v)| (v, depth + 1))),
        }
    }
    Ok(())
}

/// Marks as strings the plain scalars YAML 1.1 would read as booleans but kustomize (YAML
/// 1.2) keeps as text (`y`, `no`, `on`, …), so a rendered object means what `kubectl
/// kustomize` prints (it quotes them).
pub fn keep_yaml12_strings(node: &mut Node) {
    let mut stack = vec![node];
    while let Some(node) = stack.pop() {
        match &mut node.value {
            Value::Scalar(text, style) => {
                let yaml12_bool = matches!(
                    text.as_str(),
                    "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
                );
                if *style == Style::Plain
                    && !yaml12_bool
                    && crate::yaml::resolve_bool(text).is_some()
                {
                    *style = Style::Quoted;
                }
            }
            Value::Seq(items) => stack.extend(items.iter_mut()),
            Value::Map(entries) => stack.extend(entries.iter_mut().map(|(_, v)| v)),
        }
    }
}
