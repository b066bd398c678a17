//! JSON patches (RFC 6902) on located trees: add, remove, replace, move, copy and test, with
//! JSON pointers (RFC 6901, `~1` for `/` and `~0` for `~`).

use super::node::to_json;
use crate::yaml::{Node, Style, Value};

/// One operation, read from the patch document.
pub struct Op {
    pub op: String,
    pub path: String,
    pub from: Option<String>,
    pub value: Option<Node>,
}

/// Reads a patch document: a list of operations. `Err` says what is wrong with which one.
pub fn read_ops(doc: &Node) -> Result<Vec<Op>, (usize, String)> {
    let Value::Seq(items) = &doc.value else {
        return Err((
            0,
            format!(
                "a JSON patch is a list of operations, found {}",
                doc.describe()
            ),
        ));
    };
    let mut ops = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let text = |key: &str| item.get(key).and_then(Node::as_str).map(str::to_string);
        let Some(op) = text("op") else {
            return Err((i, "an operation needs op".into()));
        };
        let Some(path) = text("path") else {
            return Err((i, format!("the {op} operation needs path")));
        };
        let value = item.get("value").cloned();
        let from = text("from");
        match op.as_str() {
            "add" | "replace" | "test" if value.is_none() => {
                return Err((i, format!("the {op} operation needs value")));
            }
            "move" | "copy" if from.is_none() => {
                return Err((i, format!("the {op} operation needs from")));
            }
            "add" | "replace" | "test" | "move" | "copy" | "remove" => {}
            other => {
                return Err((
                    i,
                    format!(
                        "Unsupported value: {other:?}: op must be add, remove, replace, move, copy or test"
                    ),
                ));
            }
        }
        ops.push(Op {
            op,
            path,
            from,
            value,
        });
    }
    Ok(ops)
}

/// Applies `ops` in order. `Err` names the first that failed and why; the tree is then
/// partly patched and must be dropped.
pub fn apply(doc: &mut Node, ops: &[Op]) -> Result<(), (usize, String)> {
    for (i, op) in ops.iter().enumerate() {
        apply_one(doc, op).map_err(|e| (i, format!("{} {}: {e}", op.op, op.path)))?;
        super::node::check_size(doc).map_err(|e| (i, format!("{} {}: {e}", op.op, op.path)))?;
    }
    Ok(())
}

fn apply_one(doc: &mut Node, op: &Op) -> Result<(), String> {
    let path = pointer(&op.path)?;
    match op.op.as_str() {
        "add" => add(doc, &path, op.value.clone().unwrap_or_else(null)),
        "remove" => remove(doc, &path).map(drop),
        "replace" => {
            let target = find_mut(doc, &path)?;
            *target = op.value.clone().unwrap_or_else(null);
            Ok(())
        }
        "move" => {
            let from = pointer(op.from.as_deref().unwrap_or_default())?;
            if path.starts_with(&from) && path.len() > from.len() {
                return Err("cannot move a value into itself".into());
            }
            let value = remove(doc, &from)?;
            add(doc, &path, value)
        }
        "copy" => {
            let from = pointer(op.from.as_deref().unwrap_or_default())?;
            let value = find_mut(doc, &from)?.clone();
            add(doc, &path, value)
        }
        "test" => {
            let found = find_mut(doc, &path)?;
            let want = op.value.as_ref().map(to_json).unwrap_or_default();
            if to_json(found) == want {
                Ok(())
            } else {
                Err(format!(
                    "test failed: the value is {}, not {want}",
                    to_json(found)
                ))
            }
        }
        _ => Err("unknown operation".into()),
    }
}

fn null() -> Node {
    Node {
        mark: Default::default(),
        value: Value::Scalar("null".into(), Style::Plain),
    }
}

/// The reference tokens of a JSON pointer.
fn pointer(text: &str) -> Result<Vec<String>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = text.strip_prefix('/') else {
        return Err(format!(
            "{text:?} is not a JSON pointer (it must start with /)"
        ));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn index(token: &str, len: usize, allow_end: bool) -> Result<usize, String> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    let i: usize = token
        .parse()
        .ok()
        .filter(|_| token == "0" || !token.starts_with('0'))
        .ok_or_else(|| format!("{token:?} is not a list index"))?;
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if i > max || (!allow_end && len == 0) {
        return Err(format!(
            "index {i} is out of range (the list has {len} items)"
        ));
    }
    Ok(i)
}

fn find_mut<'a>(doc: &'a mut Node, path: &[String]) -> Result<&'a mut Node, String> {
    let mut at = doc;
    for (depth, token) in path.iter().enumerate() {
        let shown = || format!("/{}", path[..=depth].join("/"));
        at = match &mut at.value {
            Value::Map(entries) => entries
                .iter_mut()
                .find(|(k, _)| k.as_str() == Some(token.as_str()))
                .map(|(_, v)| v)
                .ok_or_else(|| format!("{} does not exist", shown()))?,
            Value::Seq(items) => {
                let i = index(token, items.len(), false)?;
                &mut items[i]
            }
            Value::Scalar(..) => return Err(format!("{} does not exist", shown())),
        };
    }
    Ok(at)
}

fn add(doc: &mut Node, path: &[String], value: Node) -> Result<(), String> {
    let Some((last, parent)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    let parent = find_mut(doc, parent)?;
    if parent.is_null() {
        parent.value = Value::Map(Vec::new());
    }
    match &mut parent.value {
        Value::Map(entries) => {
            match entries
                .iter_mut()
                .find(|(k, _)| k.as_str() == Some(last.as_str()))
            {
                Some((_, v)) => *v = value,
                None => entries.push((
                    Node {
                        mark: value.mark,
                        value: Value::Scalar(last.clone(), Style::Plain),
                    },
                    value,
                )),
            }
            Ok(())
        }
        Value::Seq(items) => {
            let i = index(last, items.len(), true)?;
            items.insert(i, value);
            Ok(())
        }
        Value::Scalar(..) => Err(format!("the parent of {last:?} is not an object or a list")),
    }
}

fn remove(doc: &mut Node, path: &[String]) -> Result<Node, String> {
    let Some((last, parent)) = path.split_last() else {
        return Err("cannot remove the whole object".into());
    };
    let parent = find_mut(doc, parent)?;
    match &mut parent.value {
        Value::Map(entries) => {
            let at = entries
                .iter()
                .position(|(k, _)| k.as_str() == Some(last.as_str()))
                .ok_or_else(|| format!("/{} does not exist", path.join("/")))?;
            Ok(entries.remove(at).1)
        }
        Value::Seq(items) => {
            let i = index(last, items.len(), false)?;
            Ok(items.remove(i))
        }
        Value::Scalar(..) => Err(format!("/{} does not exist", path.join("/"))),
    }
}
