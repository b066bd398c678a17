//! Strategic merge patches, as kustomize applies them: mappings merge key by key, a null
//! removes a key, lists of a built-in kind's objects with a Kubernetes merge key
//! (containers by `name`, ports by number and protocol, …) merge item by item, every other
//! list is replaced (always, for custom kinds, which kustomize has no schema for);
//! `$patch: replace|delete|merge` directives are honoured.

use crate::yaml::{Node, Style, Value};

/// What a patch did to the object at its root.
pub enum Outcome {
    Patched,
    /// `$patch: delete` at the root: the object goes away.
    Deleted,
}

/// What is known of the object being patched.
#[derive(Clone, Copy)]
pub struct Schema {
    /// A kind Kubernetes builds in: its lists have merge keys.
    pub builtin: bool,
    /// A Service: `spec.ports` merge on port and protocol.
    pub service: bool,
}

/// Merges `patch` into `object`. `Err` names a directive keel does not know.
pub fn merge(object: &mut Node, patch: &Node, schema: Schema) -> Result<Outcome, String> {
    if directive(patch) == Some("delete") {
        return Ok(Outcome::Deleted);
    }
    merge_map(object, patch, &mut Vec::new(), schema)?;
    Ok(Outcome::Patched)
}

fn directive(node: &Node) -> Option<&str> {
    node.get("$patch").and_then(Node::as_str)
}

fn merge_map(
    dst: &mut Node,
    patch: &Node,
    path: &mut Vec<String>,
    schema: Schema,
) -> Result<(), String> {
    let Value::Map(entries) = &patch.value else {
        *dst = added(patch);
        return Ok(());
    };
    match directive(patch) {
        Some("replace") => {
            *dst = added(patch);
            return Ok(());
        }
        None | Some("merge") => {}
        Some(other) => return Err(format!("unknown $patch directive {other:?}")),
    }
    if !matches!(dst.value, Value::Map(_)) {
        dst.value = Value::Map(Vec::new());
    }
    for (key, value) in entries {
        let Some(name) = key.as_str() else { continue };
        if name == "$patch" || name.starts_with("$setElementOrder/") || name == "$retainKeys" {
            continue;
        }
        if let Some(field) = name.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Value::Seq(gone)) = (super::node::get_mut(dst, field), &value.value)
                && let Value::Seq(items) = &mut list.value
            {
                items.retain(|i| !gone.iter().any(|g| g.as_str() == i.as_str()));
            }
            continue;
        }
        if value.is_null()
            || (matches!(value.value, Value::Map(_)) && directive(value) == Some("delete"))
        {
            super::node::remove(dst, name);
            continue;
        }
        path.push(name.to_string());
        match (super::node::get_mut(dst, name), &value.value) {
            (Some(d), Value::Map(_)) => merge_map(d, value, path, schema)?,
            (Some(d), Value::Seq(items)) => merge_list(d, items, path, schema)?,
            (Some(d), _) => *d = value.clone(),
            (None, _) => {
                let key = Node {
                    mark: key.mark,
                    value: Value::Scalar(name.to_string(), Style::Plain),
                };
                if let Value::Map(dst_entries) = &mut dst.value {
                    dst_entries.push((key, added(value)));
                }
            }
        }
        path.pop();
    }
    Ok(())
}

fn merge_list(
    dst: &mut Node,
    items: &[Node],
    path: &mut Vec<String>,
    schema: Schema,
) -> Result<(), String> {
    let replace = items
        .iter()
        .any(|i| directive(i) == Some("replace") && is_directive_only(i));
    let patch_items: Vec<&Node> = items.iter().filter(|i| !is_directive_only(i)).collect();
    let field = path.last().map(String::as_str).unwrap_or("");
    let key = if schema.builtin {
        merge_key(path, schema)
    } else {
        None
    };
    let Value::Seq(current) = &mut dst.value else {
        *dst = added(&Node {
            mark: dst.mark,
            value: Value::Seq(items.to_vec()),
        });
        return Ok(());
    };
    if replace || (key.is_none() && !(schema.builtin && PRIMITIVE_MERGE.contains(&field))) {
        *current = patch_items
            .into_iter()
            .filter(|i| directive(i) != Some("delete"))
            .map(added)
            .collect();
        return Ok(());
    }
    if PRIMITIVE_MERGE.contains(&field) {
        for item in patch_items {
            if !current
                .iter()
                .any(|c| c.as_str().is_some() && c.as_str() == item.as_str())
            {
                current.push(item.clone());
            }
        }
        return Ok(());
    }
    let Some(key) = key else { return Ok(()) };
    if let Some(number) = key.strip_suffix("+protocol") {
        return merge_ports(current, &patch_items, number, path, schema);
    }
    // Items the patch names come first, in the patch's order, then the others in theirs:
    // the order kustomize gives a merged list.
    let mut rest: Vec<Option<Node>> = std::mem::take(current).into_iter().map(Some).collect();
    let mut merged = Vec::new();
    for item in patch_items {
        let id = item.get(key).and_then(Node::as_str);
        let at = id.and_then(|id| {
            rest.iter().position(|c| {
                c.as_ref().and_then(|c| c.get(key)).and_then(Node::as_str) == Some(id)
            })
        });
        let found = at.and_then(|i| rest[i].take());
        match (directive(item), found) {
            (Some("delete"), _) => {}
            (_, Some(mut existing)) => {
                merge_map(&mut existing, item, path, schema)?;
                merged.push(existing);
            }
            (_, None) => merged.push(added(item)),
        }
    }
    merged.extend(rest.into_iter().flatten());
    *current = merged;
    Ok(())
}

/// Lists of scalars whose items are kept as a set.
const PRIMITIVE_MERGE: [&str; 1] = ["finalizers"];

/// Kubernetes' `patchMergeKey` for the list at `path` of a built-in kind. Ports merge on
/// their number and protocol together (`containerPort+protocol`, `port+protocol`).
fn merge_key(path: &[String], schema: Schema) -> Option<&'static str> {
    let field = path.last().map(String::as_str).unwrap_or("");
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "ports" if in_container(path) => Some("containerPort+protocol"),
        "ports" if schema.service && path.len() == 2 && path[0] == "spec" => Some("port+protocol"),
        _ => None,
    }
}

/// Whether the list at `path` is a container's field.
fn in_container(path: &[String]) -> bool {
    path.iter().rev().nth(1).is_some_and(|f| {
        matches!(
            f.as_str(),
            "containers" | "initContainers" | "ephemeralContainers"
        )
    })
}

/// Ports merge on their number and protocol together, as kustomize merges them: a matched
/// port keeps its place, new ports go first; a patch port whose number matches but whose
/// protocol is left out is dropped (kustomize v5 does so; keel renders what it renders).
fn merge_ports(
    current: &mut Vec<Node>,
    patch: &[&Node],
    number: &str,
    path: &mut Vec<String>,
    schema: Schema,
) -> Result<(), String> {
    let key = |n: &Node| {
        (
            n.get(number).and_then(Node::as_str).map(str::to_string),
            n.get("protocol").and_then(Node::as_str).map(str::to_string),
        )
    };
    let mut new = Vec::new();
    for item in patch {
        let (port, protocol) = key(item);
        let exact = current
            .iter()
            .position(|c| key(c) == (port.clone(), protocol.clone()));
        match (directive(item), exact) {
            (Some("delete"), Some(i)) => {
                current.remove(i);
            }
            (Some("delete"), None) => {}
            (_, Some(i)) => merge_map(&mut current[i], item, path, schema)?,
            (_, None) if current.iter().any(|c| key(c).0 == port) => {}
            (_, None) => new.push(added(item)),
        }
    }
    new.append(current);
    *current = new;
    Ok(())
}

fn is_directive_only(node: &Node) -> bool {
    matches!(&node.value, Value::Map(entries) if entries.len() == 1) && directive(node).is_some()
}

/// What a patch adds where the object had nothing: the value with its directives applied
/// (items marked `$patch: delete` and keys set to null left out, directive keys dropped).
fn added(node: &Node) -> Node {
    let mut out = node.clone();
    clean(&mut out);
    out
}

fn clean(node: &mut Node) {
    match &mut node.value {
        Value::Map(entries) => {
            let dropped = |k: &Node, v: &Node| {
                k.as_str().is_some_and(|k| k.starts_with('$'))
                    || v.is_null()
                    || (matches!(v.value, Value::Map(_)) && directive(v) == Some("delete"))
            };
            entries.retain(|(k, v)| !dropped(k, v));
            entries.iter_mut().for_each(|(_, v)| clean(v));
        }
        Value::Seq(items) => {
            items.retain(|i| !is_directive_only(i) && directive(i) != Some("delete"));
            items.iter_mut().for_each(clean);
        }
        Value::Scalar(..) => {}
    }
}
